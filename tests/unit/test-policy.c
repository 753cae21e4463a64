// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The policy engine (host-shim/policy) through its real code, on a fake
 * host: a controlled clock, a load source, VMs whose nice/weight/pCPUs
 * change only through the act function, a planner stand-in that refuses
 * what the ledger would (lending a pCPU the giver does not own).
 *   sandbox   io, os.execute, require, string.dump + load, debug, an
 *             endless loop (also inside pcall), a memory bomb, an error in
 *             every(): each refused or cut off; the other policy runs on
 *   paper 003 the shipped loadavg-priority.lua: nice steps and +-15
 *   elastic   the shipped elastic.lua: lend after idle samples, reclaim
 *   reload    a syntax error keeps the running version
 * With --bench: BENCH policy_run_us for elastic.lua with 2 and 100 VMs.
 * Run from the repository's root (make check does).
 */
#include "vshare-policy.h"

#include <glib/gstdio.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#define MAX_CPUS		256
#define VS_POLICY_LINE_MAX_TEST 1024 /* policy-int.h's line cap */

typedef struct {
	char name[32];
	int nice, weight;
	guint8 owner[MAX_CPUS]; /* unused */
	double busy[MAX_CPUS];	/* guest busy of vCPU i */
} FakeVm;

typedef struct {
	gint64 now_us;
	double load[3];
	guint ncpus;
	GArray *vms;	     /* FakeVm */
	int owner[MAX_CPUS]; /* pCPU -> VM index, -1 free */
	guint acts;
	GPtrArray *log;
} Fake;

static FakeVm *vm_at(Fake *f, guint i)
{
	return &g_array_index(f->vms, FakeVm, i);
}

static int vm_index(Fake *f, const char *name)
{
	for (guint i = 0; i < f->vms->len; i++)
		if (!strcmp(vm_at(f, i)->name, name))
			return (int)i;
	return -1;
}

static void add_member_int(JsonBuilder *b, const char *k, gint64 v)
{
	json_builder_set_member_name(b, k);
	json_builder_add_int_value(b, v);
}

static void vcpu_doc(Fake *f, guint i, guint c, JsonBuilder *b)
{
	FakeVm *v = vm_at(f, i);

	json_builder_begin_object(b);
	add_member_int(b, "index", c);
	add_member_int(b, "pcpu", c);
	add_member_int(b, "node", c * 2 / f->ncpus);
	json_builder_set_member_name(b, "owned");
	json_builder_add_boolean_value(b, f->owner[c] == (int)i);
	json_builder_set_member_name(b, "throttled");
	json_builder_add_boolean_value(b, FALSE);
	json_builder_set_member_name(b, "busy");
	json_builder_add_double_value(b, v->busy[c]);
	json_builder_set_member_name(b, "idle");
	json_builder_add_double_value(b, 1 - v->busy[c]);
	json_builder_end_object(b);
}

static void vm_doc(Fake *f, guint i, JsonBuilder *b)
{
	FakeVm *v = vm_at(f, i);
	double use = 0;

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "name");
	json_builder_add_string_value(b, v->name);
	json_builder_set_member_name(b, "managed");
	json_builder_add_boolean_value(b, TRUE);
	json_builder_set_member_name(b, "mode");
	json_builder_add_string_value(b, "coop");
	add_member_int(b, "nice", v->nice);
	add_member_int(b, "weight", v->weight);
	json_builder_set_member_name(b, "pcpus");
	json_builder_begin_array(b);
	for (guint c = 0; c < f->ncpus; c++)
		if (f->owner[c] == (int)i) {
			json_builder_add_int_value(b, c);
			use += v->busy[c];
		}
	json_builder_end_array(b);
	json_builder_set_member_name(b, "usage");
	json_builder_add_double_value(b, use);
	json_builder_set_member_name(b, "vcpus");
	json_builder_begin_array(b);
	for (guint c = 0; c < f->ncpus; c++)
		vcpu_doc(f, i, c, b);
	json_builder_end_array(b);
	json_builder_end_object(b);
}

static JsonNode *fake_state(gpointer data, GError **error)
{
	Fake *f = data;
	g_autoptr(JsonBuilder) b = json_builder_new();

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "vms");
	json_builder_begin_array(b);
	for (guint i = 0; i < f->vms->len; i++)
		vm_doc(f, i, b);
	json_builder_end_array(b);
	json_builder_set_member_name(b, "host");
	json_builder_begin_object(b);
	add_member_int(b, "ncpus", f->ncpus);
	json_builder_set_member_name(b, "loadavg");
	json_builder_begin_array(b);
	for (guint k = 0; k < 3; k++)
		json_builder_add_double_value(b, f->load[k]);
	json_builder_end_array(b);
	json_builder_end_object(b);
	json_builder_end_object(b);
	return json_builder_get_root(b);
}

/* The planner stand-in: the giver must own every pCPU it lends. */
static gboolean fake_move(Fake *f, const VsPolicyAct *a, GError **error)
{
	int from = vm_index(f, a->from), to = vm_index(f, a->to);
	g_auto(GStrv) cpus = g_strsplit(a->cpus, ",", -1);

	if (from < 0 || to < 0)
		return g_set_error(error, G_IO_ERROR, 1, "no such VM"), FALSE;
	for (guint i = 0; cpus[i]; i++) {
		guint c = atoi(cpus[i]);

		if (c >= f->ncpus || f->owner[c] != from)
			return g_set_error(error, G_IO_ERROR, 2,
					   "VM %s does not own pCPU %u",
					   a->from, c),
			       FALSE;
	}
	for (guint i = 0; cpus[i]; i++)
		f->owner[atoi(cpus[i])] = to;
	return TRUE;
}

static gboolean fake_act(const VsPolicyAct *a, gpointer data, GError **error)
{
	Fake *f = data;
	int i = a->vm ? vm_index(f, a->vm) : 0;

	f->acts++;
	switch (a->kind) {
	case VS_ACT_LEND:
	case VS_ACT_RECLAIM:
		return fake_move(f, a, error);
	case VS_ACT_NICE:
		if (i < 0 || a->value < -20 || a->value > 19)
			return g_set_error(error, G_IO_ERROR, 1, "bad nice"),
			       FALSE;
		vm_at(f, i)->nice = a->value;
		return TRUE;
	case VS_ACT_WEIGHT:
		if (i < 0)
			return FALSE;
		vm_at(f, i)->weight = a->value;
		return TRUE;
	}
	return FALSE;
}

static void fake_log(const char *policy, const char *level, const char *msg,
		     gpointer data)
{
	Fake *f = data;

	g_ptr_array_add(f->log, g_strdup_printf("%s: %s", policy, msg));
	if (g_getenv("VERBOSE"))
		g_printerr("# %s [%s] %s\n", policy, level, msg);
}

static gint64 fake_now(gpointer data)
{
	return ((Fake *)data)->now_us;
}

static Fake *fake_new(guint ncpus)
{
	Fake *f = g_new0(Fake, 1);

	f->now_us = 1000000;
	f->ncpus = ncpus;
	f->vms = g_array_new(FALSE, TRUE, sizeof(FakeVm));
	f->log = g_ptr_array_new_with_free_func(g_free);
	for (guint c = 0; c < MAX_CPUS; c++)
		f->owner[c] = -1;
	return f;
}

static void fake_free(Fake *f)
{
	g_array_free(f->vms, TRUE);
	g_ptr_array_free(f->log, TRUE);
	g_free(f);
}

static FakeVm *fake_add(Fake *f, const char *name, int nice)
{
	FakeVm v = { .nice = nice, .weight = 100 };

	g_strlcpy(v.name, name, sizeof(v.name));
	g_array_append_val(f->vms, v);
	return vm_at(f, f->vms->len - 1);
}

static VsPolicyEngine *engine_for(Fake *f, const char *dir, const char *config)
{
	VsPolicyOps ops = { .state = fake_state,
			    .act = fake_act,
			    .log = fake_log,
			    .now = fake_now,
			    .wall = fake_now,
			    .data = f };
	VsPolicyLimits lim = { 2 * 1000 * 1000, 4 * 1024 * 1024, 0.05 };
	const char *dirs[] = { dir, NULL };
	VsPolicyEngine *e = vs_policy_engine_new(&ops, &lim);

	vs_policy_engine_set_dirs(e, dirs, config);
	vs_policy_engine_scan(e);
	return e;
}

static void advance(Fake *f, VsPolicyEngine *e, double seconds)
{
	f->now_us += (gint64)(seconds * 1e6);
	vs_policy_run_due(e);
}

static void write_policy(const char *dir, const char *name, const char *src)
{
	g_autofree char *file = g_strdup_printf("%s/%s.lua", dir, name);

	g_assert_true(g_file_set_contents(file, src, -1, NULL));
}

static JsonObject *policy_info(VsPolicyEngine *e, const char *name,
			       JsonNode **keep)
{
	JsonArray *a;

	*keep = vs_policy_list(e);
	a = json_object_get_array_member(json_node_get_object(*keep),
					 "policies");
	for (guint i = 0; i < json_array_get_length(a); i++) {
		JsonObject *o = json_array_get_object_element(a, i);

		if (!strcmp(json_object_get_string_member(o, "name"), name))
			return o;
	}
	g_assert_not_reached();
	return NULL;
}

static gboolean logged(Fake *f, const char *needle)
{
	for (guint i = 0; i < f->log->len; i++)
		if (strstr(f->log->pdata[i], needle))
			return TRUE;
	return FALSE;
}

/* ---- sandbox ---------------------------------------------------------- */

static const struct {
	const char *name, *src, *why;
} hostile[] = {
	{ "io", "vshare.every(1, function() io.open('/etc/passwd') end)",
	  "'io'" },
	{ "osexec",
	  "vshare.every(1, function() os.execute('touch /tmp/vs-pwned') end)",
	  "execute" },
	{ "req", "vshare.every(1, function() require('os') end)", "require" },
	{ "dump", "vshare.every(1, function() load(string.dump(print)) end)",
	  "dump" },
	{ "binload",
	  "vshare.every(1, function() local f, err = load('\\27LuaT\\0') "
	  "error('load said: ' .. tostring(err)) end)",
	  "binary chunk" },
	{ "dbg", "vshare.every(1, function() debug.sethook(print, '', 1) end)",
	  "debug" },
	{ "loop", "vshare.every(1, function() while true do end end)",
	  "instruction budget" },
	{ "pcallloop",
	  "vshare.every(1, function() while true do "
	  "pcall(function() while true do end end) end end)",
	  "instruction budget" },
	{ "bomb",
	  "vshare.every(1, function() local t = {} for i = 1, 1e9 do "
	  "t[i] = string.rep('x', 100) .. i end end)",
	  "memory limit" },
	{ "pcallbomb",
	  "vshare.every(1, function() local t = {} while true do "
	  "pcall(function() for i = 1, 1e9 do t[#t + 1] = {} end end) end "
	  "end)",
	  "memory limit" },
	{ "err", "vshare.every(1, function() error('boom') end)", "boom" },
	{ "toploop", "while true do end", "instruction budget" },
	{ "toosoon", "vshare.every(0.001, print)", "not within" },
	{ "late", "vshare.every(1, function() vshare.every(1, print) end)",
	  "top level" },
	/* a finalizer runs with hooks off: without the refusal this one
	 * spins forever at the first collection or at lua_close */
	{ "gcloop",
	  "setmetatable({}, {__gc = function() while true do end end})",
	  "__gc finalizers are not allowed" },
	{ "gcrun",
	  "vshare.every(1, function() local t = setmetatable({}, {__gc = "
	  "function() while true do end end}) end)",
	  "__gc finalizers are not allowed" },
	/* pattern matching is C: the hook never runs inside it */
	{ "regex",
	  "vshare.every(1, function() string.find(string.rep('a', 20000), "
	  "'.-.-.-.-b') end)",
	  "pattern too costly" },
	{ "regexmethod",
	  "vshare.every(1, function() local s = string.rep('a', 20000) "
	  "s:gsub('(a*)*b', '') end)",
	  "pattern too costly" },
	{ "timers", "for i = 1, 17 do vshare.every(1, print) end",
	  "at most 16 timers" },
	{ "handlers", "for i = 1, 17 do vshare.on('vm-started', print) end",
	  "at most 16 handlers" },
	{ "bigerr",
	  "vshare.every(1, function() error(string.rep('x', 1000000)) end)",
	  "[cut: " },
};

static char *scratch(void)
{
	return g_dir_make_tmp("vs-policy-XXXXXX", NULL);
}

static void test_sandbox(void)
{
	g_autofree char *dir = scratch();
	g_autofree char *conf = g_build_filename(dir, "policies.conf", NULL);
	g_autoptr(GString) c = g_string_new("[good]\nenabled=true\n");
	Fake *f = fake_new(2);
	g_autoptr(VsPolicyEngine) e = NULL;
	g_autoptr(JsonNode) keep = NULL;
	JsonObject *o;

	write_policy(dir, "good",
		     "local n = 0\nvshare.every(1, function() n = n + 1 "
		     "vshare.log('tick ' .. n) end)");
	{ /* a FIFO in the policy directory: refused, never opened blocking */
		g_autofree char *fifo = g_build_filename(dir, "fifo.lua", NULL);

		g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
		g_string_append(c, "[fifo]\nenabled=true\n");
	}
	for (guint i = 0; i < G_N_ELEMENTS(hostile); i++) {
		write_policy(dir, hostile[i].name, hostile[i].src);
		g_string_append_printf(c, "[%s]\nenabled=true\n",
				       hostile[i].name);
	}
	g_assert_true(g_file_set_contents(conf, c->str, -1, NULL));
	g_unlink("/tmp/vs-pwned");
	e = engine_for(f, dir, conf);
	for (guint k = 0; k < 4; k++)
		advance(f, e, 1.0);
	for (guint i = 0; i < G_N_ELEMENTS(hostile); i++) {
		g_clear_pointer(&keep, json_node_unref);
		o = policy_info(e, hostile[i].name, &keep);
		g_test_message("%s: %s", hostile[i].name,
			       json_object_get_string_member_with_default(
				       o, "error", "(none)"));
		g_assert_false(json_object_get_boolean_member(o, "running"));
		g_assert_nonnull(
			strstr(json_object_get_string_member_with_default(
				       o, "error", ""),
			       hostile[i].why));
	}
	g_assert_false(g_file_test("/tmp/vs-pwned", G_FILE_TEST_EXISTS));
	g_clear_pointer(&keep, json_node_unref);
	o = policy_info(e, "good", &keep);
	g_assert_true(json_object_get_boolean_member(o, "running"));
	g_assert_cmpint(json_object_get_int_member(o, "runs"), ==, 4);
	g_assert_true(logged(f, "good: tick 4"));
	g_assert_true(logged(f, "loop: disabled: instruction budget"));
	g_clear_pointer(&keep, json_node_unref);
	o = policy_info(e, "fifo", &keep);
	g_assert_false(json_object_get_boolean_member(o, "running"));
	g_assert_true(logged(f, "not a regular file"));
	g_clear_pointer(&keep, json_node_unref);
	o = policy_info(e, "bigerr", &keep);
	g_assert_cmpuint(strlen(json_object_get_string_member(o, "error")), <,
			 VS_POLICY_LINE_MAX_TEST + 64);
	fake_free(f);
}

/* What a policy may still do with metatables and patterns. A __gc added
 * after setmetatable never runs (Lua marks at setmetatable), so closing
 * the state (engine free) does not hang either. */
static void test_sandbox_allowed(void)
{
	g_autofree char *dir = scratch();
	g_autofree char *conf = g_build_filename(dir, "policies.conf", NULL);
	Fake *f = fake_new(2);
	g_autoptr(VsPolicyEngine) e = NULL;
	g_autoptr(JsonNode) keep = NULL;
	JsonObject *o;

	write_policy(
		dir, "meta",
		"local mt = {__index = function(t, k) return k .. '!' end}\n"
		"local late = {}\n"
		"local keep = setmetatable({}, late)\n"
		"late.__gc = function() while true do end end\n"
		"vshare.every(1, function()\n"
		"  local t = setmetatable({}, mt)\n"
		"  local a, b = string.find('cpu 12-15 node 3', "
		"'(%d+)-(%d+)')\n"
		"  local n = ('x'):rep(5000):find('xx', 1, true)\n"
		"  local m = string.rep('a', 2000):match('^(a+)$')\n"
		"  collectgarbage()\n"
		"  vshare.log(t.hello .. ' ' .. a .. ' ' .. b .. ' ' .. n .. ' "
		"' "
		".. #m)\n"
		"end)");
	g_assert_true(
		g_file_set_contents(conf, "[meta]\nenabled=true\n", -1, NULL));
	e = engine_for(f, dir, conf);
	advance(f, e, 1.0);
	o = policy_info(e, "meta", &keep);
	g_assert_true(json_object_get_boolean_member(o, "running"));
	g_assert_true(logged(f, "meta: hello! 5 9 1 2000"));
	g_clear_pointer(&e, vs_policy_engine_free); /* lua_close: no hang */
	fake_free(f);
}

/* Everything a policy makes the daemon hold or send is capped and cut
 * with a marker: log lines per run, the length of a line, a dry run's
 * entries; and its timers together stay within a window budget. */
static void test_outputs(void)
{
	g_autofree char *dir = scratch();
	g_autofree char *conf = g_build_filename(dir, "policies.conf", NULL);
	Fake *f = fake_new(2);
	g_autoptr(VsPolicyEngine) e = NULL;
	g_autoptr(JsonNode) keep = NULL;
	g_autoptr(JsonNode) dry = NULL;
	JsonArray *acts;
	JsonObject *o;
	guint64 runs;
	const char *last;

	write_policy(dir, "chatty",
		     "vshare.every(1, function() for i = 1, 1000 do "
		     "print(string.rep('y', 5000)) end end)");
	/* under a million instructions a run (limit 2 M), 20 runs a second:
	 * only the window (5 runs' budget in 10 s) stops it */
	write_policy(dir, "busy",
		     "vshare.every(0.05, function() local x = 0 "
		     "for i = 1, 400000 do x = x + i end end)");
	g_assert_true(g_file_set_contents(
		conf, "[chatty]\nenabled=true\n[busy]\nenabled=true\n", -1,
		NULL));
	e = engine_for(f, dir, conf);
	advance(f, e, 1.0);
	g_assert_true(logged(f, "chatty: 936 more log lines of this run "
				"not logged"));
	for (guint i = 0; i < f->log->len; i++)
		g_assert_cmpuint(strlen(f->log->pdata[i]), <,
				 VS_POLICY_LINE_MAX_TEST + 64);
	g_assert_true(logged(f, "[cut: 3976 more bytes]"));

	for (guint i = 0; i < 199; i++)
		advance(f, e, 0.05);
	o = policy_info(e, "busy", &keep);
	runs = json_object_get_int_member(o, "runs");
	g_test_message("busy: %" G_GUINT64_FORMAT " runs, %" G_GINT64_FORMAT
		       " skipped in 10 s",
		       runs, json_object_get_int_member(o, "skipped"));
	g_assert_true(json_object_get_boolean_member(o, "running"));
	g_assert_cmpuint(runs, >=, 5);
	g_assert_cmpuint(runs, <=, 40);
	g_assert_cmpint(runs + json_object_get_int_member(o, "skipped"), ==,
			200);
	g_assert_true(logged(f, "busy: over its budget of 10000000 "
				"instructions in 10 s"));

	dry = vs_policy_dry_run(e, "chatty", NULL);
	g_assert_nonnull(dry);
	acts = json_object_get_array_member(json_node_get_object(dry), "acts");
	g_assert_cmpuint(json_array_get_length(acts), <=, 1001);
	last = json_array_get_string_element(acts,
					     json_array_get_length(acts) - 1);
	g_assert_nonnull(strstr(last, "[output cut: "));
	fake_free(f);
}

/* ---- paper 003's policy ------------------------------------------------- */

static char *shipped(void)
{
	g_autofree char *cwd = g_get_current_dir();
	const char *env = g_getenv("VSHARE_POLICIES");

	return env ? g_strdup(env)
		   : g_build_filename(cwd, "host-shim", "policies", NULL);
}

static VsPolicyEngine *shipped_engine(Fake *f, const char *conf_text)
{
	g_autofree char *dir = scratch();
	g_autofree char *conf = g_build_filename(dir, "policies.conf", NULL);
	g_autofree char *ship = shipped();
	VsPolicyOps ops = { .state = fake_state,
			    .act = fake_act,
			    .log = fake_log,
			    .now = fake_now,
			    .wall = fake_now,
			    .data = f };
	const char *dirs[] = { ship, dir, NULL };
	VsPolicyEngine *e = vs_policy_engine_new(&ops, NULL);

	g_assert_true(g_file_set_contents(conf, conf_text, -1, NULL));
	vs_policy_engine_set_dirs(e, dirs, conf);
	vs_policy_engine_scan(e);
	return e;
}

/* 2 pCPUs; a nice 0, b nice 5, c nice -3. A 15-min load of 1.9 is 95 %:
 * the lowest-priority VM (b, the highest nice) steps up one per run, 10
 * runs to 15, then stays. 0.1 is 5 %: the highest-priority VM (c) steps
 * down, 12 runs to -15, then stays. 1.0 (50 %) changes nothing. */
static void test_paper(void)
{
	Fake *f = fake_new(2);
	g_autoptr(VsPolicyEngine) e = shipped_engine(
		f, "[loadavg-priority]\nenabled=true\ninterval=1\n");

	fake_add(f, "a", 0);
	fake_add(f, "b", 5);
	fake_add(f, "c", -3);
	f->load[2] = 1.9;
	for (guint i = 0; i < 9; i++)
		advance(f, e, 1);
	g_assert_cmpint(vm_at(f, 1)->nice, ==, 14);
	for (guint i = 0; i < 5; i++)
		advance(f, e, 1);
	g_assert_cmpint(vm_at(f, 1)->nice, ==, 15);
	g_assert_cmpuint(f->acts, ==, 10);
	g_assert_cmpint(vm_at(f, 0)->nice, ==, 0);
	g_assert_cmpint(vm_at(f, 2)->nice, ==, -3);
	f->load[2] = 1.0;
	for (guint i = 0; i < 5; i++)
		advance(f, e, 1);
	g_assert_cmpuint(f->acts, ==, 10);
	f->load[2] = 0.1;
	for (guint i = 0; i < 20; i++)
		advance(f, e, 1);
	g_assert_cmpint(vm_at(f, 2)->nice, ==, -15);
	g_assert_cmpuint(f->acts, ==, 22);
	g_assert_cmpint(vm_at(f, 0)->nice, ==, 0);
	g_assert_cmpint(vm_at(f, 1)->nice, ==, 15);
	/* an interval of 1 s: half a second later nothing ran */
	f->now_us += 500000;
	vs_policy_run_due(e);
	g_assert_cmpuint(f->acts, ==, 22);
	g_assert_true(logged(f, "set_nice c -15"));
	fake_free(f);
}

/* weight variant: the lowest weight steps down by 1.25 to 10. */
static void test_weight(void)
{
	Fake *f = fake_new(2);
	g_autoptr(VsPolicyEngine) e = shipped_engine(
		f, "[loadavg-weight]\nenabled=true\ninterval=1\n");

	fake_add(f, "a", 0);
	fake_add(f, "b", 0);
	vm_at(f, 0)->weight = 200;
	vm_at(f, 1)->weight = 50;
	f->load[2] = 1.9;
	for (guint i = 0; i < 30; i++)
		advance(f, e, 1);
	g_assert_cmpint(vm_at(f, 1)->weight, ==, 10);
	g_assert_cmpint(vm_at(f, 0)->weight, ==, 200);
	fake_free(f);
}

/* ---- elastic ------------------------------------------------------------ */

/* 4 pCPUs: a owns 0-1 and idles, b owns 2-3 and is busy. After 3 idle
 * samples a's highest pCPU (1) goes to b; a keeps its floor (0). When a is
 * busy again, pCPU 1 comes back at the next sample. */
static void test_elastic(void)
{
	Fake *f = fake_new(4);
	g_autoptr(VsPolicyEngine) e =
		shipped_engine(f, "[elastic]\nenabled=true\n");
	FakeVm *a, *b;

	fake_add(f, "a", 0);
	fake_add(f, "b", 0);
	a = vm_at(f, 0);
	b = vm_at(f, 1);
	f->owner[0] = f->owner[1] = 0;
	f->owner[2] = f->owner[3] = 1;
	for (guint c = 0; c < 4; c++) {
		a->busy[c] = 0.02;
		b->busy[c] = 0.97;
	}
	advance(f, e, 0.25);
	advance(f, e, 0.25);
	g_assert_cmpint(f->owner[1], ==, 0); /* 2 samples: not yet */
	advance(f, e, 0.25);
	g_assert_cmpint(f->owner[1], ==, 1);
	g_assert_cmpint(f->owner[0], ==, 0);
	for (guint i = 0; i < 12; i++) /* floor: a keeps pCPU 0 */
		advance(f, e, 0.25);
	g_assert_cmpint(f->owner[0], ==, 0);
	g_assert_cmpuint(f->acts, ==, 1);
	a = vm_at(f, 0);
	a->busy[0] = 0.9;
	advance(f, e, 0.25);
	g_assert_cmpint(f->owner[1], ==, 0);
	g_assert_cmpuint(f->acts, ==, 2);
	g_assert_true(logged(f, "reclaim b -> a pCPUs 1"));
	fake_free(f);
}

/* ---- refusals, reload, dry run ------------------------------------------ */

static void test_refused(void)
{
	g_autofree char *dir = scratch();
	g_autofree char *conf = g_build_filename(dir, "policies.conf", NULL);
	Fake *f = fake_new(2);
	g_autoptr(VsPolicyEngine) e = NULL;
	g_autoptr(JsonNode) log = NULL, keep = NULL;
	JsonArray *entries;

	fake_add(f, "a", 0);
	fake_add(f, "b", 0);
	f->owner[0] = 0;
	f->owner[1] = 1;
	write_policy(dir, "thief",
		     "vshare.every(1, function() local ok, err = "
		     "vshare.lend('a', 'b', {cpus = {1}}, 'take what is not "
		     "mine') vshare.log('said ' .. tostring(err)) end)");
	g_assert_true(
		g_file_set_contents(conf, "[thief]\nenabled=true\n", -1, NULL));
	e = engine_for(f, dir, conf);
	advance(f, e, 1);
	g_assert_cmpint(f->owner[1], ==, 1);
	g_assert_true(logged(f, "said VM a does not own pCPU 1"));
	log = vs_policy_log(e, 10);
	entries = json_object_get_array_member(json_node_get_object(log),
					       "entries");
	g_assert_cmpuint(json_array_get_length(entries), ==, 1);
	g_assert_cmpstr(
		json_object_get_string_member(
			json_array_get_object_element(entries, 0), "result"),
		==, "refused");
	g_assert_cmpstr(
		json_object_get_string_member(
			json_array_get_object_element(entries, 0), "reason"),
		==, "take what is not mine");
	g_assert_true(json_object_get_boolean_member(
		policy_info(e, "thief", &keep), "running"));
	fake_free(f);
}

static void test_reload(void)
{
	g_autofree char *dir = scratch();
	g_autofree char *conf = g_build_filename(dir, "policies.conf", NULL);
	Fake *f = fake_new(2);
	g_autoptr(VsPolicyEngine) e = NULL;
	g_autoptr(GError) err = NULL;

	write_policy(dir, "p",
		     "vshare.every(1, function() vshare.log('v1') "
		     "end)");
	g_assert_true(
		g_file_set_contents(conf, "[p]\nenabled=true\n", -1, NULL));
	e = engine_for(f, dir, conf);
	advance(f, e, 1);
	g_assert_true(logged(f, "p: v1"));
	write_policy(dir, "p", "vshare.every(1, function( end)");
	g_assert_false(vs_policy_reload(e, "p", &err));
	g_assert_nonnull(strstr(err->message, "kept the running version"));
	g_ptr_array_set_size(f->log, 0);
	advance(f, e, 1);
	g_assert_true(logged(f, "p: v1"));
	write_policy(dir, "p",
		     "vshare.every(1, function() vshare.log('v2') "
		     "end)");
	g_assert_true(vs_policy_reload(e, "p", NULL));
	advance(f, e, 1);
	g_assert_true(logged(f, "p: v2"));
	/* disable stops it; unknown names are an error */
	g_assert_true(vs_policy_enable(e, "p", FALSE, NULL));
	g_assert_cmpint(vs_policy_next_due(e), ==, -1);
	g_assert_false(vs_policy_enable(e, "nope", TRUE, NULL));
	fake_free(f);
}

static void test_dry_run(void)
{
	Fake *f = fake_new(4);
	g_autoptr(VsPolicyEngine) e = shipped_engine(f, "");
	g_autoptr(JsonNode) r = NULL;
	JsonArray *acts;
	JsonObject *o;
	FakeVm *a, *b;

	fake_add(f, "a", 0);
	fake_add(f, "b", 0);
	a = vm_at(f, 0);
	b = vm_at(f, 1);
	f->owner[0] = f->owner[1] = 0;
	f->owner[2] = f->owner[3] = 1;
	for (guint c = 0; c < 4; c++) {
		a->busy[c] = 0.02;
		b->busy[c] = 0.97;
	}
	r = vs_policy_dry_run(e, "elastic", NULL);
	g_assert_nonnull(r);
	acts = json_object_get_array_member(json_node_get_object(r), "acts");
	g_assert_cmpuint(json_array_get_length(acts), ==, 1);
	o = json_array_get_object_element(acts, 0);
	g_assert_cmpstr(json_object_get_string_member(o, "act"), ==, "lend");
	g_assert_cmpstr(json_object_get_string_member(o, "cpus"), ==, "1");
	g_assert_cmpstr(json_object_get_string_member(o, "result"), ==,
			"dry-run");
	g_assert_cmpuint(f->acts, ==, 0);
	g_assert_cmpint(f->owner[1], ==, 0);
	fake_free(f);
}

/* ---- benchmark: one elastic run with N VMs ---------------------------- */

static double bench_elastic(guint nvms, guint runs)
{
	Fake *f = fake_new(2 * nvms);
	g_autoptr(VsPolicyEngine) e =
		shipped_engine(f, "[elastic]\nenabled=true\n");
	double us;

	for (guint i = 0; i < nvms; i++) {
		g_autofree char *name = g_strdup_printf("vm%03u", i);
		FakeVm *v;

		fake_add(f, name, 0);
		v = vm_at(f, i);
		f->owner[2 * i] = f->owner[2 * i + 1] = (int)i;
		for (guint c = 0; c < 2 * nvms; c++)
			v->busy[c] = i % 2 ? 0.95 : 0.03;
	}
	for (guint r = 0; r < runs; r++)
		advance(f, e, 0.25);
	us = vs_policy_run_us_median(e, "elastic");
	if (g_getenv("BENCH_STATE")) {
		gint64 t0 = g_get_monotonic_time();
		JsonNode *n = fake_state(f, NULL);

		printf("# state %u VMs: %.0f us\n", nvms,
		       (double)(g_get_monotonic_time() - t0));
		json_node_unref(n);
	}
	fake_free(f);
	return us;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--bench")) {
		guint runs = argc > 2 ? atoi(argv[2]) : 400;

		printf("BENCH policy_run_us_2vms %.1f us\n",
		       bench_elastic(2, runs));
		printf("BENCH policy_run_us_100vms %.1f us\n",
		       bench_elastic(100, runs));
		return 0;
	}
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/policy/sandbox", test_sandbox);
	g_test_add_func("/policy/sandbox-allowed", test_sandbox_allowed);
	g_test_add_func("/policy/outputs", test_outputs);
	g_test_add_func("/policy/paper003-nice", test_paper);
	g_test_add_func("/policy/paper003-weight", test_weight);
	g_test_add_func("/policy/elastic", test_elastic);
	g_test_add_func("/policy/refused", test_refused);
	g_test_add_func("/policy/reload", test_reload);
	g_test_add_func("/policy/dry-run", test_dry_run);
	return g_test_run();
}
