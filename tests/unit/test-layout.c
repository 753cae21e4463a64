// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Layout policies (vs_policy_layout, paper 001's Optimizer) through the
 * real engine on a fake 2-node host, 4 pCPUs and 16 GiB per node.
 *   simple     memory-bound VMs by mpki get the roomiest node; CPU-bound
 *              keep theirs; a CPU-bound arrival moves no neighbour
 *   dino       the mpki spread is the best partition (brute force here)
 *   asymsched  each VM on the node with most of its memory, move_memory
 *              only for split high-bandwidth VMs
 *   hostile    loop, unknown VM, node 7, error(), ...: NULL + a message,
 *              and an ordinary policy still runs afterwards
 *   scale      100 VMs on 8 nodes within the default budget
 * Expected placements are computed here from the papers' rules, not taken
 * from the policies. Run from the repository's root.
 */
#include "vshare-policy.h"

#include <glib/gstdio.h>
#include <string.h>

#define GIB	  (1024ULL * 1024 * 1024)
#define MAX_NODES 8
#define MAX_VMS	  128

typedef struct {
	const char *name;
	const char *class; /* NULL: no profile */
	double mpki, bw;
	int vcpus;
	int home;		/* -1: incoming */
	guint64 mem[MAX_NODES]; /* bytes per node (resident) */
	guint64 total;		/* incoming: its size */
} TVm;

typedef struct {
	int nodes, cpus_per_node;
	guint64 mem_per_node;
	TVm vms[MAX_VMS];
	int n;
} THost;

typedef struct {
	gint64 now_us;
	guint runs;
} Fake;

/* ---- the state document ------------------------------------------------- */

static void vm_json(const THost *h, const TVm *v, int *next_cpu, GString *s)
{
	g_string_append_printf(s, "{\"name\":\"%s\"", v->name);
	if (v->home < 0)
		g_string_append_printf(s,
				       ",\"incoming\":true,\"vcpus\":%d,"
				       "\"mem\":%" G_GUINT64_FORMAT,
				       v->vcpus, v->total);
	g_string_append(s, ",\"nodes\":{");
	for (int n = 0; n < h->nodes; n++) {
		g_string_append_printf(s, "%s\"%d\":{\"pcpus\":[", n ? "," : "",
				       n);
		for (int i = 0; v->home == n && i < v->vcpus; i++)
			g_string_append_printf(
				s, "%s%d", i ? "," : "",
				next_cpu[n]++ % h->cpus_per_node +
					n * h->cpus_per_node);
		g_string_append_printf(s, "],\"mem\":%" G_GUINT64_FORMAT "}",
				       v->mem[n]);
	}
	g_string_append(s, "}");
	if (v->home >= 0) {
		g_string_append(s, ",\"vcpus\":[");
		for (int i = 0; i < v->vcpus; i++)
			g_string_append_printf(s, "%s{\"index\":%d}",
					       i ? "," : "", i);
		g_string_append(s, "]");
	}
	if (v->class)
		g_string_append_printf(
			s,
			",\"profile\":{\"mpki\":%g,\"miss_ratio\":0.3,"
			"\"bandwidth_mbps\":%g,\"class\":\"%s\"}",
			v->mpki, v->bw, v->class);
	g_string_append(s, "}");
}

static JsonNode *state_of(const THost *h)
{
	g_autoptr(GString) s = g_string_new("{\"vms\":[");
	int next_cpu[MAX_NODES] = { 0 };

	for (int i = 0; i < h->n; i++) {
		if (i)
			g_string_append_c(s, ',');
		vm_json(h, &h->vms[i], next_cpu, s);
	}
	g_string_append(s, "],\"host\":{\"nodes\":{");
	for (int n = 0; n < h->nodes; n++) {
		g_string_append_printf(s, "%s\"%d\":{\"pcpus\":[", n ? "," : "",
				       n);
		for (int c = 0; c < h->cpus_per_node; c++)
			g_string_append_printf(s, "%s%d", c ? "," : "",
					       n * h->cpus_per_node + c);
		g_string_append_printf(s, "],\"mem\":%" G_GUINT64_FORMAT "}",
				       h->mem_per_node);
	}
	g_string_append(s, "}}}");
	return json_from_string(s->str, NULL);
}

static guint64 vm_total(const TVm *v)
{
	guint64 t = v->total;

	for (int n = 0; v->home >= 0 && n < MAX_NODES; n++)
		t += v->mem[n];
	return t;
}

/* ---- the engine --------------------------------------------------------- */

static JsonNode *no_state(gpointer data, GError **error)
{
	return NULL;
}

static gboolean no_act(const VsPolicyAct *a, gpointer data, GError **error)
{
	return TRUE;
}

static void count_log(const char *policy, const char *level, const char *msg,
		      gpointer data)
{
	if (g_str_has_prefix(msg, "tick"))
		((Fake *)data)->runs++;
	if (g_getenv("VERBOSE"))
		g_printerr("# %s [%s] %s\n", policy, level, msg);
}

static gint64 fake_now(gpointer data)
{
	return ((Fake *)data)->now_us;
}

static VsPolicyEngine *engine(Fake *f, const char *extra_dir)
{
	g_autofree char *cwd = g_get_current_dir();
	g_autofree char *ship =
		g_build_filename(cwd, "host-shim", "policies", NULL);
	VsPolicyOps ops = { .state = no_state,
			    .act = no_act,
			    .log = count_log,
			    .now = fake_now,
			    .wall = fake_now,
			    .data = f };
	const char *dirs[] = { ship, extra_dir, NULL };
	VsPolicyEngine *e = vs_policy_engine_new(&ops, NULL);

	vs_policy_engine_set_dirs(e, dirs, NULL);
	vs_policy_engine_scan(e);
	return e;
}

static JsonNode *run(VsPolicyEngine *e, const char *policy, const THost *h,
		     const char *incoming)
{
	g_autoptr(JsonNode) st = state_of(h);
	g_autoptr(GError) err = NULL;
	JsonNode *r = vs_policy_layout(e, policy, st, incoming, &err);

	if (!r)
		g_test_message("%s: %s", policy, err->message);
	g_assert_no_error(err);
	g_assert_nonnull(r);
	return r;
}

static JsonArray *member(JsonNode *r, const char *k)
{
	return json_object_get_array_member(json_node_get_object(r), k);
}

/* node decided for @vm in @k ("placements", "moves"), -1 none */
static int decided(JsonNode *r, const char *k, const char *vm)
{
	JsonArray *a = member(r, k);

	for (guint i = 0; i < json_array_get_length(a); i++) {
		JsonObject *o = json_array_get_object_element(a, i);

		if (!strcmp(json_object_get_string_member(o, "vm"), vm)) {
			g_test_message(
				"%s %s -> %d: %s", k, vm,
				(int)json_object_get_int_member(o, "node"),
				json_object_get_string_member(o, "reason"));
			return json_object_get_int_member(o, "node");
		}
	}
	return -1;
}

static THost two_nodes(void)
{
	return (THost){ .nodes = 2,
			.cpus_per_node = 4,
			.mem_per_node = 16 * GIB };
}

static TVm *add(THost *h, const char *name, const char *class, double mpki,
		double bw, int vcpus, int home)
{
	TVm *v = &h->vms[h->n++];

	*v = (TVm){ .name = name,
		    .class = class,
		    .mpki = mpki,
		    .bw = bw,
		    .vcpus = vcpus,
		    .home = home };
	if (home >= 0)
		v->mem[home] = 4 * GIB;
	else
		v->total = 4 * GIB;
	return v;
}

/* ---- simple --------------------------------------------------------------- */

typedef struct {
	int pcpus;
	gint64 mem;
} Cap;

static gboolean fits(const Cap *c, const TVm *v)
{
	return c->pcpus >= v->vcpus && c->mem >= (gint64)vm_total(v);
}

/* Paper 001's rule: the roomiest node that fits (pCPUs, then memory,
 * then the lower number). */
static int roomiest(const THost *h, Cap *cap, const TVm *v)
{
	int best = 0;

	for (int n = 1; n < h->nodes; n++) {
		gboolean f = fits(&cap[n], v), bf = fits(&cap[best], v);

		if ((f && !bf) ||
		    (f == bf && (cap[n].pcpus > cap[best].pcpus ||
				 (cap[n].pcpus == cap[best].pcpus &&
				  cap[n].mem > cap[best].mem))))
			best = n;
	}
	cap[best].pcpus -= v->vcpus;
	cap[best].mem -= vm_total(v);
	return best;
}

static gboolean is_mem(const TVm *v)
{
	return v->class && !strcmp(v->class, "memory");
}

static void simple_expect(const THost *h, gboolean cpu_arrival, int *want)
{
	Cap cap[MAX_NODES];
	int order[MAX_VMS], n = 0;

	for (int i = 0; i < h->nodes; i++)
		cap[i] = (Cap){ h->cpus_per_node, h->mem_per_node };
	for (int i = 0; i < h->n; i++) {
		const TVm *v = &h->vms[i];

		if (v->home >= 0 && (!is_mem(v) || cpu_arrival)) {
			want[i] = v->home;
			cap[v->home].pcpus -= v->vcpus;
			cap[v->home].mem -= vm_total(v);
		} else if (is_mem(v)) {
			order[n++] = i;
		}
	}
	for (int a = 0; a < n; a++) /* mpki descending */
		for (int b = a + 1; b < n; b++)
			if (h->vms[order[b]].mpki > h->vms[order[a]].mpki) {
				int t = order[a];

				order[a] = order[b];
				order[b] = t;
			}
	for (int k = 0; k < n; k++)
		want[order[k]] = roomiest(h, cap, &h->vms[order[k]]);
	for (int i = 0; i < h->n; i++)
		if (h->vms[i].home < 0 && !is_mem(&h->vms[i]))
			want[i] = roomiest(h, cap, &h->vms[i]);
}

static void residents(THost *h)
{
	add(h, "a", "memory", 12.5, 4000, 2, 0);
	add(h, "b", "cpu", 0.5, 100, 2, 0)->mem[0] = 2 * GIB;
	add(h, "c", "memory", 3.0, 1500, 2, 1);
}

static void check_simple(const char *arrival_class, double mpki)
{
	Fake f = { 0 };
	g_autoptr(VsPolicyEngine) e = engine(&f, NULL);
	g_autoptr(JsonNode) r = NULL;
	THost h = two_nodes();
	gboolean cpu = !strcmp(arrival_class, "cpu");
	int want[MAX_VMS];

	residents(&h);
	add(&h, "d", arrival_class, mpki, 3000, 2, -1);
	simple_expect(&h, cpu, want);
	r = run(e, "layout-simple", &h, "d");
	g_assert_cmpuint(json_array_get_length(member(r, "placements")), ==,
			 h.n);
	for (int i = 0; i < h.n; i++)
		g_assert_cmpint(decided(r, "placements", h.vms[i].name), ==,
				want[i]);
	g_assert_cmpuint(json_array_get_length(member(r, "moves")), ==, 0);
	if (cpu) /* the paper's control: no neighbour moves */
		for (int i = 0; i < h.n - 1; i++)
			g_assert_cmpint(want[i], ==, h.vms[i].home);
}

static void test_simple(void)
{
	check_simple("memory", 20);
	/* the highest mpki (the arrival) takes the emptier node 1, a moves
	 * nowhere (node 0 has b's 2 pCPUs free), c ends on node 1 */
	check_simple("cpu", 0.2);
}

static void test_simple_reason(void)
{
	Fake f = { 0 };
	g_autoptr(VsPolicyEngine) e = engine(&f, NULL);
	g_autoptr(JsonNode) r = NULL;
	THost h = two_nodes();
	JsonObject *o;

	residents(&h);
	r = run(e, "layout-simple", &h, NULL);
	o = json_array_get_object_element(member(r, "placements"), 1);
	g_assert_cmpstr(json_object_get_string_member(o, "vm"), ==, "a");
	g_assert_nonnull(strstr(json_object_get_string_member(o, "reason"),
				"mpki 12.5, highest of 2 memory-bound VMs"));
}

/* ---- dino ----------------------------------------------------------------- */

/* The smallest possible largest per-node mpki sum (every assignment
 * whose vCPUs fit). */
static double best_max_sum(const THost *h)
{
	double best = G_MAXDOUBLE;

	for (guint m = 0; m < (1u << h->n); m++) {
		double sum[2] = { 0, 0 };
		int cpus[2] = { 0, 0 };

		for (int i = 0; i < h->n; i++) {
			sum[(m >> i) & 1] += h->vms[i].mpki;
			cpus[(m >> i) & 1] += h->vms[i].vcpus;
		}
		if (cpus[0] <= h->cpus_per_node && cpus[1] <= h->cpus_per_node)
			best = MIN(best, MAX(sum[0], sum[1]));
	}
	return best;
}

static void test_dino(void)
{
	Fake f = { 0 };
	g_autoptr(VsPolicyEngine) e = engine(&f, NULL);
	g_autoptr(JsonNode) r = NULL;
	THost h = two_nodes();
	double sum[2] = { 0, 0 };
	int node[MAX_VMS];

	add(&h, "w", "memory", 20, 4000, 2, 0);
	add(&h, "x", "memory", 15, 3000, 2, 0);
	add(&h, "y", "cpu", 1, 100, 2, 1);
	add(&h, "z", "memory", 5, 1000, 2, -1);
	r = run(e, "layout-dino", &h, "z");
	for (int i = 0; i < h.n; i++) {
		node[i] = decided(r, "placements", h.vms[i].name);
		g_assert_cmpint(node[i], >=, 0);
		sum[node[i]] += h.vms[i].mpki;
	}
	/* the two highest miss rates on different nodes, and the spread
	 * as even as any layout that fits */
	g_assert_cmpint(node[0], !=, node[1]);
	g_assert_cmpfloat(MAX(sum[0], sum[1]), ==, best_max_sum(&h));
}

/* ---- asymsched ------------------------------------------------------------ */

static void test_asymsched(void)
{
	Fake f = { 0 };
	g_autoptr(VsPolicyEngine) e = engine(&f, NULL);
	g_autoptr(JsonNode) r = NULL;
	THost h = two_nodes();
	TVm *v;

	/* x: 3 of 4 GiB on node 1 but runs on node 0, 5000 MB/s */
	v = add(&h, "x", "memory", 10, 5000, 2, 0);
	v->mem[0] = 1 * GIB, v->mem[1] = 3 * GIB;
	/* y: the same split, 200 MB/s: placed, memory not worth moving */
	v = add(&h, "y", "cpu", 1, 200, 2, 0);
	v->mem[0] = 1 * GIB, v->mem[1] = 3 * GIB;
	/* z: all on node 0, 3000 MB/s: stays, nothing to move */
	add(&h, "z", "memory", 8, 3000, 2, 0);
	r = run(e, "layout-asymsched", &h, NULL);
	/* by bandwidth: x -> 1 (3 GiB), z -> 0, y wants 1 and fits (2 left) */
	g_assert_cmpint(decided(r, "placements", "x"), ==, 1);
	g_assert_cmpint(decided(r, "placements", "z"), ==, 0);
	g_assert_cmpint(decided(r, "placements", "y"), ==, 1);
	g_assert_cmpint(decided(r, "moves", "x"), ==, 1);
	g_assert_cmpint(decided(r, "moves", "y"), ==, -1);
	g_assert_cmpint(decided(r, "moves", "z"), ==, -1);
	g_assert_cmpuint(json_array_get_length(member(r, "moves")), ==, 1);
}

/* ---- hostile -------------------------------------------------------------- */

static const struct {
	const char *name, *src, *why;
} hostile[] = {
	{ "l-loop", "function layout() while true do end end",
	  "instruction budget exceeded" },
	{ "l-pcall-loop",
	  "function layout() pcall(function() while true do end end) "
	  "vshare.place('a', 0, 'x') end",
	  "instruction budget exceeded" },
	{ "l-unknown", "function layout() vshare.place('nosuch', 0, 'x') end",
	  "no VM named 'nosuch'" },
	{ "l-swallow",
	  "function layout() pcall(vshare.place, 'nosuch', 0, 'x') end",
	  "no VM named 'nosuch'" },
	{ "l-node7", "function layout() vshare.place('a', 7, 'x') end",
	  "the host has no node 7" },
	{ "l-float", "function layout() vshare.place('a', 0.5, 'x') end",
	  "node must be an integer" },
	{ "l-twice",
	  "function layout() vshare.place('a', 0, 'x') "
	  "vshare.place('a', 1, 'y') end",
	  "already placed on node 0" },
	{ "l-noreason", "function layout() vshare.move_memory('a', 1) end",
	  "needs a reason" },
	{ "l-error", "function layout() error('boom') end", "boom" },
	{ "l-none", "x = 1", "defines no function layout" },
	{ "l-lend",
	  "function layout() vshare.lend('a', 'b', {cpus = '1'}, 'r') end",
	  "a layout policy only decides" },
	{ "l-bomb",
	  "function layout() local t = {} for i = 1, 1e8 do "
	  "t[i] = string.rep('x', 64) .. i end end",
	  "limit exceeded" },
};

static void test_hostile(void)
{
	g_autofree char *dir = g_dir_make_tmp("vs-layout-XXXXXX", NULL);
	g_autofree char *good = g_build_filename(dir, "good.lua", NULL);
	g_autoptr(VsPolicyEngine) e = NULL;
	g_autoptr(GError) err = NULL;
	g_autoptr(JsonNode) st = NULL;
	Fake f = { .now_us = 1000000 };
	THost h = two_nodes();

	residents(&h);
	st = state_of(&h);
	for (guint i = 0; i < G_N_ELEMENTS(hostile); i++) {
		g_autofree char *p =
			g_strdup_printf("%s/%s.lua", dir, hostile[i].name);

		g_assert_true(g_file_set_contents(p, hostile[i].src, -1, NULL));
	}
	g_assert_true(g_file_set_contents(
		good, "vshare.every(1, function() vshare.log('tick') end)", -1,
		NULL));
	e = engine(&f, dir);
	g_assert_true(vs_policy_enable(e, "good", TRUE, NULL));
	for (guint i = 0; i < G_N_ELEMENTS(hostile); i++) {
		JsonNode *r =
			vs_policy_layout(e, hostile[i].name, st, NULL, &err);

		g_assert_null(r);
		g_assert_nonnull(err);
		g_test_message("%s: %s", hostile[i].name, err->message);
		g_assert_nonnull(strstr(err->message, hostile[i].why));
		g_clear_error(&err);
		f.now_us += 1000000;
		vs_policy_run_due(e);
	}
	g_assert_null(vs_policy_layout(e, "nosuch", st, NULL, &err));
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
	g_assert_cmpuint(f.runs, ==, G_N_ELEMENTS(hostile));
	/* a shipped layout policy enabled as an ordinary one: no timer */
	g_assert_true(vs_policy_enable(e, "layout-dino", TRUE, NULL));
	g_assert_cmpint(vs_policy_next_due(e), ==, f.now_us + 1000000);
}

/* ---- scale ---------------------------------------------------------------- */

static void test_scale(void)
{
	static const char *const pols[] = { "layout-simple", "layout-dino",
					    "layout-asymsched" };
	static char names[100][8];
	Fake f = { 0 };
	g_autoptr(VsPolicyEngine) e = engine(&f, NULL);
	THost h = { .nodes = 8, .cpus_per_node = 32, .mem_per_node = 64 * GIB };

	for (int i = 0; i < 100; i++) {
		TVm *v;

		g_snprintf(names[i], sizeof(names[i]), "vm%03d", i);
		v = add(&h, names[i], i % 3 ? "memory" : "cpu",
			(i * 37) % 23 + 0.5, (i * 53) % 5000, 2,
			i == 99 ? -1 : i % 8);
		if (i % 5 == 0 && v->home >= 0)
			v->mem[(i + 1) % 8] = 1 * GIB;
	}
	for (guint k = 0; k < G_N_ELEMENTS(pols); k++) {
		gint64 t0 = g_get_monotonic_time();
		g_autoptr(JsonNode) r = run(e, pols[k], &h, "vm099");

		g_test_message("%s: 100 VMs on 8 nodes in %.1f ms", pols[k],
			       (g_get_monotonic_time() - t0) / 1000.0);
		g_assert_cmpuint(json_array_get_length(member(r, "placements")),
				 ==, 100);
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/layout/simple", test_simple);
	g_test_add_func("/layout/simple-reason", test_simple_reason);
	g_test_add_func("/layout/dino", test_dino);
	g_test_add_func("/layout/asymsched", test_asymsched);
	g_test_add_func("/layout/hostile", test_hostile);
	g_test_add_func("/layout/scale", test_scale);
	return g_test_run();
}
