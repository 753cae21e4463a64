// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Paper 001's Optimizer in vshared (docs/migration.md): `vshare-host-place`.
 *
 * A VM is about to arrive by live migration; the libvirt hook on this
 * (the destination) host asks where it goes before QEMU starts. The layout
 * policy (a Lua file, `--layout-policy`, default layout-simple) decides
 * every VM's node from the profiles: the incoming one's (from its domain
 * metadata) and the local VMs' (CONF/profiles/NAME.json, the declared
 * source; docs/migration.md). The answer gives each guest NUMA cell a host
 * node and as many free pCPUs as it has vCPUs; those pCPUs are reserved
 * for the VM (RESERVE_S, or while vshared follows a VM placed with apply)
 * so two arrivals never get the same. The caller applies the incoming
 * VM's layout (its XML), or vshared does (`apply`, a followed VM).
 *
 * Neighbours: a resident VM vshared placed earlier (it holds an applied
 * reservation) and still follows moves when the policy gives it another
 * node: its threads are re-pinned at once, and its memory follows at a
 * paced rate on the mover thread (--move-rate, memmove.c) where the
 * layout is the kernel's. If the new layout does not fit, nobody moves
 * and the arrival is placed around the neighbours as they are.
 *
 * Runs on the worker (a request job), like every command.
 */
#include "vshared.h"
#include "vshare-profile.h"

#include <string.h>

#define RESERVE_S 600
#define MAX_CELLS 64

typedef struct {
	VsCpuSet cpus;
	gint64 until;	  /* monotonic us */
	gboolean applied; /* for a followed VM: held while it is followed */
	int node;	  /* its first cell's node: where it is "placed" */
} Reservation;

typedef struct {
	guint cell, vcpus;
	guint64 mem_kib;
	int node;
	VsCpuSet cpus;
} Cell;

/* A resident VM the policy gave a node (docs/migration.md,
 * "Neighbours"). */
typedef struct {
	char *vm, *reason;
	int from, to; /* from: where vshared placed it; -1: not placed */
	VsVm *followed;
	Cell cells[MAX_CELLS];
	guint n;
	gboolean wants; /* placed by vshared, followed, another node */
	char *key;	/* its reservation while the arrival is placed */
	Reservation *old;
	gboolean moved;
	char *why; /* what happened, for the answer */
} Move;

static void move_free(gpointer p)
{
	Move *m = p;

	g_free(m->vm);
	g_free(m->reason);
	g_free(m->key);
	g_free(m->old);
	g_free(m->why);
	g_free(m);
}

/* ---- arguments ------------------------------------------------------- */

static gboolean int_member(JsonObject *o, const char *k, gint64 lo, gint64 hi,
			   gint64 *out)
{
	JsonNode *n = json_object_get_member(o, k);

	if (!n || !JSON_NODE_HOLDS_VALUE(n) ||
	    json_node_get_value_type(n) != G_TYPE_INT64)
		return FALSE;
	*out = json_node_get_int(n);
	return *out >= lo && *out <= hi;
}

static gboolean cells_arg(JsonArray *a, Cell *cells, guint *n, GError **error)
{
	guint len = json_array_get_length(a);

	if (!len || len > MAX_CELLS)
		return vs_fail(error, VS_HOST_ERROR_USAGE,
			       "cells: 1 to %d guest cells, not %u", MAX_CELLS,
			       len);
	for (guint i = 0; i < len; i++) {
		JsonNode *e = json_array_get_element(a, i);
		JsonObject *o = JSON_NODE_HOLDS_OBJECT(e)
					? json_node_get_object(e)
					: NULL;
		gint64 id, v, m;

		if (!o || !int_member(o, "cell", 0, MAX_CELLS - 1, &id) ||
		    !int_member(o, "vcpus", 1, VS_MAX_CPUS, &v) ||
		    !int_member(o, "memory-kib", 0, G_MAXINT64 >> 10, &m))
			return vs_fail(error, VS_HOST_ERROR_USAGE,
				       "cells[%u]: {cell 0-%d, vcpus >= 1, "
				       "memory-kib} expected",
				       i, MAX_CELLS - 1);
		for (guint j = 0; j < i; j++)
			if (cells[j].cell == (guint)id)
				return vs_fail(error, VS_HOST_ERROR_USAGE,
					       "cells: cell %" G_GINT64_FORMAT
					       " twice",
					       id);
		cells[i] = (Cell){ .cell = (guint)id,
				   .vcpus = (guint)v,
				   .mem_kib = (guint64)m,
				   .node = -1 };
	}
	*n = len;
	return TRUE;
}

/* ---- the state the policy reads ---------------------------------------- */

/* A local VM's profile: the Monitor's last (monitor.c), else its declared
 * file (a bad file: one warning; none: the policy treats the VM as
 * unknown). */
static void add_profile(Daemon *d, JsonObject *vm)
{
	const char *name = json_object_get_string_member(vm, "name");
	g_autoptr(GError) error = NULL;
	VsProfile p;

	if (!daemon_monitor_profile(d, name, &p) &&
	    !vs_profile_load_declared(d->cfg.conf_dir, name, &p, &error)) {
		if (!vs_error_is(error, VS_PROFILE_ABSENT))
			g_warning("layout: %s: %s", name, error->message);
		return;
	}
	json_object_set_member(vm, "profile", vs_profile_to_json(&p));
}

static void add_node_mem(Daemon *d, JsonObject *host)
{
	JsonObject *nodes = json_object_get_object_member(host, "nodes");
	VsHost *h = &d->session.host;

	for (guint n = 0; nodes && n < h->n_nodes; n++) {
		g_autofree char *key = g_strdup_printf("%u", n);
		JsonObject *o =
			json_object_has_member(nodes, key)
				? json_object_get_object_member(nodes, key)
				: NULL;

		if (o && h->node_mem[n])
			json_object_set_int_member(o, "mem",
						   (gint64)h->node_mem[n]);
	}
}

static JsonObject *incoming_doc(const char *vm, const Cell *cells, guint n,
				JsonNode *profile)
{
	JsonObject *o = json_object_new();
	guint vcpus = 0;
	guint64 kib = 0;

	for (guint i = 0; i < n; i++)
		vcpus += cells[i].vcpus, kib += cells[i].mem_kib;
	json_object_set_string_member(o, "name", vm);
	json_object_set_boolean_member(o, "incoming", TRUE);
	json_object_set_int_member(o, "vcpus", vcpus);
	json_object_set_int_member(o, "mem", (gint64)(kib << 10));
	if (profile)
		json_object_set_member(o, "profile", json_node_copy(profile));
	return o;
}

static JsonNode *layout_state(Daemon *d, const char *vm, const Cell *cells,
			      guint n, JsonNode *profile)
{
	JsonNode *state = daemon_sense_quick(d);
	JsonObject *root = json_node_get_object(state);
	JsonArray *vms = json_object_get_array_member(root, "vms");

	/* a followed VM being placed is the arriving one, not a resident */
	for (guint i = json_array_get_length(vms); i-- > 0;)
		if (!g_strcmp0(json_object_get_string_member(
				       json_array_get_object_element(vms, i),
				       "name"),
			       vm))
			json_array_remove_element(vms, i);
	for (guint i = 0; i < json_array_get_length(vms); i++) {
		JsonObject *o = json_array_get_object_element(vms, i);
		Reservation *r = g_hash_table_lookup(
			d->reserved, json_object_get_string_member(o, "name"));

		add_profile(d, o);
		if (r && r->applied)
			json_object_set_int_member(o, "placed", r->node);
	}
	json_array_add_object_element(vms, incoming_doc(vm, cells, n, profile));
	add_node_mem(d, json_object_get_object_member(root, "host"));
	return state;
}

/* ---- reservations kept across restarts: STATE/reservations.json ---- */

#define RESERVATIONS_FILE "reservations.json"
#define RESERVATIONS_MAX  (1 << 20)

static char *reservations_path(Daemon *d)
{
	return g_build_filename(d->cfg.state_dir, RESERVATIONS_FILE, NULL);
}

/* Wall-clock "until" (monotonic time does not survive a restart). */
static void save_reservations(Daemon *d)
{
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(JsonNode) root = NULL;
	g_autofree char *text = NULL, *path = reservations_path(d);
	g_autoptr(GError) error = NULL;
	gint64 skew = g_get_real_time() - g_get_monotonic_time();
	GHashTableIter it;
	gpointer k, v;

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "reservations");
	json_builder_begin_array(b);
	g_hash_table_iter_init(&it, d->reserved);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		Reservation *r = v;
		g_autofree char *cpus = vs_cpuset_format(&r->cpus);

		json_builder_begin_object(b);
		json_builder_set_member_name(b, "vm");
		json_builder_add_string_value(b, k);
		json_builder_set_member_name(b, "cpus");
		json_builder_add_string_value(b, cpus);
		json_builder_set_member_name(b, "node");
		json_builder_add_int_value(b, r->node);
		json_builder_set_member_name(b, "applied");
		json_builder_add_boolean_value(b, r->applied);
		json_builder_set_member_name(b, "until");
		json_builder_add_int_value(b,
					   (r->until + skew) / G_USEC_PER_SEC);
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
	json_builder_end_object(b);
	root = json_builder_get_root(b);
	text = json_to_string(root, TRUE);
	if (!vs_write_private(path, text, &error))
		g_warning("layout: reservations not kept: %s", error->message);
}

static gboolean load_one(Daemon *d, JsonObject *o, gint64 skew)
{
	const char *vm =
		o ? json_object_get_string_member_with_default(o, "vm", NULL)
		  : NULL;
	const char *cpus =
		o ? json_object_get_string_member_with_default(o, "cpus", "")
		  : "";
	Reservation r = { 0 };

	if (!vs_name_valid(vm, NULL) || !vs_cpuset_parse(cpus, &r.cpus, NULL) ||
	    !vs_cpuset_count(&r.cpus) ||
	    !vs_cpuset_is_subset(&r.cpus, &d->session.host.all))
		return FALSE;
	gint64 node = json_object_get_int_member_with_default(o, "node", -1);
	gint64 until = json_object_get_int_member_with_default(o, "until", 0);
	gint64 now_s = g_get_real_time() / G_USEC_PER_SEC;

	/* a file is not trusted: a node the host could have, an end no
	 * further than one reservation from now (no overflow below) */
	if (node < -1 || node >= VS_MAX_NODES || until < 0 ||
	    until > now_s + RESERVE_S)
		return FALSE;
	r.node = (int)node;
	r.applied = json_object_get_boolean_member_with_default(o, "applied",
								FALSE);
	r.until = until * G_USEC_PER_SEC - skew;
	if (r.until < g_get_monotonic_time() && !r.applied)
		return TRUE; /* ended while vshared was away */
	g_hash_table_replace(d->reserved, g_strdup(vm),
			     g_memdup2(&r, sizeof(r)));
	return TRUE;
}

/* Once per run, before the first use: what the last run promised. A
 * damaged file is a warning, never a reason to stop. */
static void load_reservations(Daemon *d)
{
	g_autofree char *path = reservations_path(d), *text = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonParser) p = json_parser_new();
	gint64 skew = g_get_real_time() - g_get_monotonic_time();
	JsonNode *root;
	JsonArray *a = NULL;
	guint bad = 0;

	if (d->reserved_loaded)
		return;
	d->reserved_loaded = TRUE;
	if (!g_file_test(path, G_FILE_TEST_EXISTS))
		return;
	text = vs_read_bounded(path, RESERVATIONS_MAX, &error);
	if (text && json_parser_load_from_data(p, text, -1, &error)) {
		root = json_parser_get_root(p);
		if (JSON_NODE_HOLDS_OBJECT(root))
			a = json_object_get_array_member(
				json_node_get_object(root), "reservations");
	}
	for (guint i = 0; a && i < json_array_get_length(a); i++) {
		JsonNode *e = json_array_get_element(a, i);

		if (!load_one(d,
			      JSON_NODE_HOLDS_OBJECT(e)
				      ? json_node_get_object(e)
				      : NULL,
			      skew))
			bad++;
	}
	if (!a || bad)
		g_warning("layout: %s: %s", path,
			  !a ? (error ? error->message : "no reservations list")
			     : "entries refused (name, pCPUs of this host)");
	g_message("layout: %u reservations kept from the last run",
		  g_hash_table_size(d->reserved));
}

/* Ended reservations go; a VM placed by the hook that vshared now
 * follows (it arrived) holds its pCPUs while it is followed. */
static void prune_reservations(Daemon *d)
{
	GHashTableIter it;
	gpointer k, v;
	gint64 now = g_get_monotonic_time();

	load_reservations(d);
	g_hash_table_iter_init(&it, d->reserved);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		Reservation *r = v;
		gboolean followed = g_hash_table_contains(d->session.vms, k);

		if (!r->applied && followed)
			r->applied = TRUE;
		else if ((!r->applied && r->until < now) ||
			 vs_ledger_find(d->session.ledger, k) ||
			 (r->applied && !followed))
			g_hash_table_iter_remove(&it);
	}
}

/* ---- pCPUs ---------------------------------------------------------- */

static gboolean reserved_by_other(Daemon *d, const char *vm, guint c)
{
	GHashTableIter it;
	gpointer k, v;

	g_hash_table_iter_init(&it, d->reserved);
	while (g_hash_table_iter_next(&it, &k, &v))
		if (strcmp(k, vm) &&
		    vs_cpuset_has(&((Reservation *)v)->cpus, c))
			return TRUE;
	return FALSE;
}

/* @want free pCPUs of @node not in @taken. */
static gboolean free_cpus(Daemon *d, const char *vm, guint node, guint want,
			  const VsCpuSet *taken, VsCpuSet *out)
{
	VsHost *h = &d->session.host;
	guint got = 0;

	vs_cpuset_clear(out);
	for (guint c = 0; c < VS_MAX_CPUS && got < want; c++) {
		if (!vs_cpuset_has(&h->node_cpus[node], c) ||
		    vs_cpuset_has(taken, c) ||
		    vs_ledger_owner(d->session.ledger, c) ||
		    reserved_by_other(d, vm, c))
			continue;
		vs_cpuset_add(out, c);
		got++;
	}
	return got == want;
}

/* Nodes that have pCPUs, ascending. */
static guint cpu_nodes(VsHost *h, guint *out)
{
	guint n = 0;

	for (guint i = 0; i < h->n_nodes; i++)
		if (vs_cpuset_count(&h->node_cpus[i]))
			out[n++] = i;
	return n;
}

/* Cell k (in the order given) goes to the k-th node from @node0: a VM
 * with one cell per host node keeps its cells on distinct nodes. */
static gboolean assign(Daemon *d, const char *vm, int node0, Cell *cells,
		       guint n, GError **error)
{
	guint nodes[VS_MAX_NODES];
	guint nn = cpu_nodes(&d->session.host, nodes), at = 0;
	VsCpuSet taken = { 0 };

	while (at < nn && nodes[at] != (guint)node0)
		at++;
	if (at == nn)
		return vs_fail(error, VS_HOST_ERROR_REFUSED,
			       "the policy chose node %d, which has no pCPUs",
			       node0);
	for (guint i = 0; i < n; i++) {
		guint node = nodes[(at + i) % nn];

		if (!free_cpus(d, vm, node, cells[i].vcpus, &taken,
			       &cells[i].cpus))
			return vs_fail(error, VS_HOST_ERROR_REFUSED,
				       "node %u has fewer than %u free pCPUs "
				       "for guest cell %u of %s",
				       node, cells[i].vcpus, cells[i].cell, vm);
		cells[i].node = (int)node;
		for (guint c = 0; c < VS_MAX_CPUS; c++)
			if (vs_cpuset_has(&cells[i].cpus, c))
				vs_cpuset_add(&taken, c);
	}
	return TRUE;
}

static void reserve(Daemon *d, const char *vm, const Cell *cells, guint n,
		    gboolean applied)
{
	Reservation *r = g_new0(Reservation, 1);

	r->applied = applied;
	r->node = cells[0].node;
	for (guint i = 0; i < n; i++)
		for (guint c = 0; c < VS_MAX_CPUS; c++)
			if (vs_cpuset_has(&cells[i].cpus, c))
				vs_cpuset_add(&r->cpus, c);
	r->until = g_get_monotonic_time() + (gint64)RESERVE_S * G_USEC_PER_SEC;
	g_hash_table_replace(d->reserved, g_strdup(vm), r);
}

/* ---- neighbours ------------------------------------------------------ */

static gboolean cells_of_vm(VsVm *vm, Cell *cells, guint *n);
static gboolean apply(VsVm *vm, const Cell *cells, guint n, GError **error);

static Move *neighbour(Daemon *d, JsonObject *o)
{
	Move *m = g_new0(Move, 1);
	Reservation *r;

	m->vm = g_strdup(json_object_get_string_member(o, "vm"));
	m->reason = g_strdup(json_object_get_string_member(o, "reason"));
	m->to = (int)json_object_get_int_member(o, "node");
	r = g_hash_table_lookup(d->reserved, m->vm);
	m->from = r && r->applied ? r->node : -1;
	m->followed = vs_session_vm(&d->session, m->vm, NULL);
	if (m->from < 0)
		m->why = g_strdup("vshared did not place it: left as it is");
	else if (m->from == m->to)
		m->why = g_strdup_printf("stays on node %d", m->to);
	else if (!m->followed || !cells_of_vm(m->followed, m->cells, &m->n))
		m->why = g_strdup("its vCPUs are unknown: left as it is");
	else
		m->wants = TRUE;
	return m;
}

static GPtrArray *neighbours(Daemon *d, const char *vm, JsonNode *result)
{
	GPtrArray *mv = g_ptr_array_new_with_free_func(move_free);
	JsonArray *p = json_object_get_array_member(
		json_node_get_object(result), "placements");

	for (guint i = 0; p && i < json_array_get_length(p); i++) {
		JsonObject *o = json_array_get_object_element(p, i);

		if (g_strcmp0(json_object_get_string_member(o, "vm"), vm))
			g_ptr_array_add(mv, neighbour(d, o));
	}
	return mv;
}

/* The moving neighbours' pCPUs are free while the arrival is placed. */
static guint release(Daemon *d, GPtrArray *mv)
{
	guint n = 0;

	for (guint i = 0; i < mv->len; i++) {
		Move *m = mv->pdata[i];

		if (m->wants && g_hash_table_steal_extended(
					d->reserved, m->vm, (gpointer *)&m->key,
					(gpointer *)&m->old))
			n++;
	}
	return n;
}

static void restore(Daemon *d, GPtrArray *mv, const GError *why)
{
	for (guint i = 0; i < mv->len; i++) {
		Move *m = mv->pdata[i];

		if (!m->old)
			continue;
		g_hash_table_replace(d->reserved, g_steal_pointer(&m->key),
				     g_steal_pointer(&m->old));
		m->wants = FALSE;
		m->why = g_strdup_printf("not moved: the new layout does "
					 "not fit (%s)",
					 why->message);
	}
}

/* The arrival and every moving neighbour get pCPUs on their nodes, or
 * nobody moves and the arrival is placed around the neighbours. */
static gboolean place_all(Daemon *d, const char *vm, int node, Cell *cells,
			  guint n, gboolean applied, GPtrArray *mv,
			  GError **error)
{
	g_autoptr(GError) why = NULL;
	gboolean any = release(d, mv) > 0, ok;

	ok = assign(d, vm, node, cells, n, &why);
	if (ok)
		reserve(d, vm, cells, n, applied);
	for (guint i = 0; ok && i < mv->len; i++) {
		Move *m = mv->pdata[i];

		if (!m->old)
			continue;
		ok = assign(d, m->vm, m->to, m->cells, m->n, &why);
		if (ok)
			reserve(d, m->vm, m->cells, m->n, TRUE);
	}
	if (ok)
		return TRUE;
	g_hash_table_remove(d->reserved, vm);
	restore(d, mv, why);
	if (!any) {
		g_propagate_error(error, g_steal_pointer(&why));
		return FALSE;
	}
	if (!assign(d, vm, node, cells, n, error))
		return FALSE;
	reserve(d, vm, cells, n, applied);
	return TRUE;
}

typedef struct {
	char *vm;
	gint64 pid;
	int node;
	guint rate;
	gint *cancel;
} MoveJob;

static void mover(gpointer data, gpointer user)
{
	MoveJob *j = data;
	g_autoptr(GError) error = NULL;
	VsMoveStats st;

	(void)user;
	if (vs_move_memory(j->pid, j->node, j->rate, j->cancel, &st, &error))
		g_message("layout: %s: memory moved to node %d: "
			  "%" G_GUINT64_FORMAT " MiB walked, %" G_GUINT64_FORMAT
			  " MiB present, %" G_GUINT64_FORMAT
			  " pages there, %" G_GUINT64_FORMAT " refused, %.1f s",
			  j->vm, j->node, st.bytes >> 20, st.present >> 20,
			  st.on_node, st.failed, st.usec / 1e6);
	else
		g_warning("layout: %s: memory move to node %d: %s", j->vm,
			  j->node, error->message);
	g_free(j->vm);
	g_free(j);
}

/* Why @node's memory cannot be bound or moved to (a declared layout's
 * nodes are not the kernel's), or NULL when it can. */
static char *not_kernel_node(Daemon *d, int node)
{
	if (d->session.host.declared)
		return g_strdup_printf("the host layout is declared "
				       "(host.conf), its node %d is not the "
				       "kernel's",
				       node);
	if (!vs_node_is_real(node))
		return g_strdup_printf("node %d is not a NUMA node of this "
				       "kernel",
				       node);
	return NULL;
}

/* A VM's memory to @node on the mover thread, where that can be done;
 * what happens, for the answer and the log. */
static char *move_memory(Daemon *d, VsVm *vm, guint cells, int node)
{
	MoveJob *j;

	g_autofree char *why = not_kernel_node(d, node);

	if (why)
		return g_strdup_printf("memory stays: %s", why);
	if (cells > 1)
		return g_strdup_printf("memory stays: moving a VM of %u "
				       "cells cell by cell is not built",
				       cells);
	j = g_new0(MoveJob, 1);
	*j = (MoveJob){ .vm = g_strdup(vm->conf->name),
			.pid = vm->qemu_pid,
			.node = node,
			.rate = d->move_rate,
			.cancel = &d->move_cancel };
	g_thread_pool_push(d->mover, j, NULL);
	return g_strdup_printf("memory moving to node %d at %u MiB/s", node,
			       d->move_rate);
}

static void move_neighbours(Daemon *d, GPtrArray *mv)
{
	for (guint i = 0; i < mv->len; i++) {
		Move *m = mv->pdata[i];
		g_autoptr(GError) error = NULL;
		g_autofree char *mem = NULL;

		if (!m->wants)
			continue;
		if (!apply(m->followed, m->cells, m->n, &error)) {
			g_warning("layout: neighbour %s: %s", m->vm,
				  error->message);
			m->why = g_strdup_printf("re-pin failed: %s",
						 error->message);
			continue;
		}
		m->moved = TRUE;
		mem = move_memory(d, m->followed, m->n, m->to);
		g_message("layout: neighbour %s moves from node %d to node "
			  "%d: threads re-pinned; %s",
			  m->vm, m->from, m->to, mem);
		m->why = g_strdup_printf("threads re-pinned; %s", mem);
	}
}

/* The policy's move_memory decisions: each gets a note. */
static void memory_decisions(Daemon *d, JsonNode *result)
{
	JsonArray *a = json_object_get_array_member(
		json_node_get_object(result), "moves");

	for (guint i = 0; a && i < json_array_get_length(a); i++) {
		JsonObject *o = json_array_get_object_element(a, i);
		const char *name = json_object_get_string_member(o, "vm");
		VsVm *vm = vs_session_vm(&d->session, name, NULL);
		Cell cells[MAX_CELLS];
		guint n = 0;
		g_autofree char *note = NULL;

		if (!vm || !cells_of_vm(vm, cells, &n))
			note = g_strdup("memory stays: vshared does not follow "
					"it");
		else
			note = move_memory(
				d, vm, n,
				(int)json_object_get_int_member(o, "node"));
		g_message("layout: %s: move_memory: %s", name, note);
		json_object_set_string_member(o, "note", note);
	}
}

/* ---- the answer ------------------------------------------------------ */

static JsonObject *decision_of(JsonNode *result, const char *vm)
{
	JsonArray *a = json_object_get_array_member(
		json_node_get_object(result), "placements");

	for (guint i = 0; a && i < json_array_get_length(a); i++) {
		JsonObject *o = json_array_get_object_element(a, i);

		if (!g_strcmp0(json_object_get_string_member(o, "vm"), vm))
			return o;
	}
	return NULL;
}

static void add_cells(JsonBuilder *b, const Cell *cells, guint n)
{
	json_builder_set_member_name(b, "cells");
	json_builder_begin_array(b);
	for (guint i = 0; i < n; i++) {
		g_autofree char *cpus = vs_cpuset_format(&cells[i].cpus);

		json_builder_begin_object(b);
		json_builder_set_member_name(b, "cell");
		json_builder_add_int_value(b, cells[i].cell);
		json_builder_set_member_name(b, "node");
		json_builder_add_int_value(b, cells[i].node);
		json_builder_set_member_name(b, "cpus");
		json_builder_add_string_value(b, cpus);
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
}

static void add_neighbours(JsonBuilder *b, GPtrArray *mv)
{
	json_builder_set_member_name(b, "neighbours");
	json_builder_begin_array(b);
	for (guint i = 0; i < mv->len; i++) {
		Move *m = mv->pdata[i];

		json_builder_begin_object(b);
		json_builder_set_member_name(b, "vm");
		json_builder_add_string_value(b, m->vm);
		json_builder_set_member_name(b, "node");
		json_builder_add_int_value(b, m->to);
		json_builder_set_member_name(b, "from");
		json_builder_add_int_value(b, m->from);
		json_builder_set_member_name(b, "reason");
		json_builder_add_string_value(b, m->reason);
		json_builder_set_member_name(b, "moved");
		json_builder_add_boolean_value(b, m->moved);
		if (m->moved)
			add_cells(b, m->cells, m->n);
		json_builder_set_member_name(b, "note");
		json_builder_add_string_value(b, m->why);
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
}

/* The cells' nodes are NUMA nodes of this kernel: a caller may bind the
 * VM's memory to them (a declared layout's nodes are not). */
static gboolean can_bind(Daemon *d, const Cell *cells, guint n)
{
	for (guint i = 0; i < n; i++) {
		g_autofree char *why = not_kernel_node(d, cells[i].node);

		if (why)
			return FALSE;
	}
	return TRUE;
}

static JsonNode *answer(const char *policy, const char *vm, JsonObject *decided,
			const Cell *cells, guint n, JsonNode *result,
			GPtrArray *mv, gboolean applied, gboolean bind)
{
	g_autoptr(JsonBuilder) b = json_builder_new();
	JsonObject *r = json_node_get_object(result);

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "policy");
	json_builder_add_string_value(b, policy);
	json_builder_set_member_name(b, "vm");
	json_builder_add_string_value(b, vm);
	json_builder_set_member_name(b, "node");
	json_builder_add_int_value(b, cells[0].node);
	json_builder_set_member_name(b, "reason");
	json_builder_add_string_value(
		b, json_object_get_string_member(decided, "reason"));
	add_cells(b, cells, n);
	add_neighbours(b, mv);
	json_builder_set_member_name(b, "moves");
	json_builder_add_value(
		b, json_node_copy(json_object_get_member(r, "moves")));
	json_builder_set_member_name(b, "applied");
	json_builder_add_boolean_value(b, applied);
	json_builder_set_member_name(b, "bind-memory");
	json_builder_add_boolean_value(b, bind);
	json_builder_end_object(b);
	return json_builder_get_root(b);
}

/* A VM vshared follows but does not own yet (e.g. a QEMU started with
 * -incoming): its cells from its vCPUs' guest nodes; memory unknown here
 * (0: the policy then weighs pCPUs only). */
static gboolean cells_of_vm(VsVm *vm, Cell *cells, guint *n)
{
	*n = 0;
	for (guint i = 0; i < vm->vcpus->len; i++) {
		VsVcpu *v = &g_array_index(vm->vcpus, VsVcpu, i);
		guint k = 0;

		if (v->node < 0 || v->node >= MAX_CELLS)
			return FALSE;
		while (k < *n && cells[k].cell != (guint)v->node)
			k++;
		if (k == *n)
			cells[(*n)++] =
				(Cell){ .cell = (guint)v->node, .node = -1 };
		cells[k].vcpus++;
	}
	return *n > 0;
}

/* Apply to a followed VM: each vCPU thread on its cell's pCPUs, every
 * other QEMU thread on all of them (an incoming migration writes guest RAM
 * from the main loop: first touch on the chosen nodes). */
static gboolean apply(VsVm *vm, const Cell *cells, guint n, GError **error)
{
	VsCpuSet all = { 0 };

	if (!vs_vm_verify_threads(vm, error))
		return FALSE;
	for (guint k = 0; k < n; k++) {
		for (guint c = 0; c < VS_MAX_CPUS; c++)
			if (vs_cpuset_has(&cells[k].cpus, c))
				vs_cpuset_add(&all, c);
		for (guint i = 0; i < vm->vcpus->len; i++) {
			VsVcpu *v = &g_array_index(vm->vcpus, VsVcpu, i);

			if (v->node == (int)cells[k].cell &&
			    !vs_pin_thread_set(v->tid, &cells[k].cpus, error))
				return FALSE;
		}
	}
	return vs_vm_pin_other_threads(vm, &all, error);
}

static gboolean cells_from(Daemon *d, JsonObject *a, const char *vm,
			   Cell *cells, guint *n, VsVm **followed,
			   GError **error)
{
	*followed = vs_session_vm(&d->session, vm, NULL);
	if (json_object_has_member(a, "cells"))
		return cells_arg(json_object_get_array_member(a, "cells"),
				 cells, n, error);
	if (*followed && cells_of_vm(*followed, cells, n))
		return TRUE;
	return vs_fail(error, VS_HOST_ERROR_USAGE,
		       "%s: give its cells, or register it (vsharectl add) "
		       "so vshared reads them",
		       vm);
}

/* The arrival will not happen: its pCPUs are free again. */
static JsonNode *release_one(Daemon *d, const char *vm, GError **error)
{
	JsonObject *o;
	JsonNode *n;
	gboolean had;

	if (!vs_name_valid(vm, error))
		return NULL;
	load_reservations(d);
	had = g_hash_table_remove(d->reserved, vm);
	save_reservations(d);
	if (had)
		g_message("layout: %s will not arrive: its pCPUs are free", vm);
	o = json_object_new();
	json_object_set_string_member(o, "vm", vm);
	json_object_set_boolean_member(o, "released", had);
	n = json_node_new(JSON_NODE_OBJECT);
	json_node_take_object(n, o);
	return n;
}

/* A profile a peer sent (transfer.c), kept for the VM's placement. */
typedef struct {
	VsProfile p;
	char *from;
	gint64 until; /* monotonic us */
} Transferred;

static void transferred_free(gpointer p)
{
	Transferred *t = p;

	g_free(t->from);
	g_free(t);
}

static gboolean transferred_profile(Daemon *d, const char *vm, VsProfile *out)
{
	Transferred *t = g_hash_table_lookup(d->transferred, vm);

	if (t && t->until < g_get_monotonic_time()) {
		g_hash_table_remove(d->transferred, vm);
		t = NULL;
	}
	if (t)
		*out = t->p;
	return t != NULL;
}

/* Where @vm goes: @a may give its cells; @pnode its profile (else the
 * one a peer sent, the Monitor's, the declared file, in that order). */
static JsonNode *place_vm(Daemon *d, JsonObject *a, const char *vm,
			  const char *policy, JsonNode *pnode,
			  gboolean do_apply, GError **error)
{
	VsVm *followed = NULL;
	Cell cells[MAX_CELLS];
	g_autoptr(JsonNode) state = NULL, result = NULL, own = NULL;
	g_autoptr(GPtrArray) mv = NULL;
	JsonObject *decided;
	gboolean ok;
	VsProfile p;
	guint n = 0;

	policy = policy ? policy : d->layout_policy;
	if (!vs_name_valid(vm, error) ||
	    !cells_from(d, a, vm, cells, &n, &followed, error) ||
	    (pnode && !vs_profile_from_json(pnode, &p, error)))
		return NULL;
	if (do_apply && !followed) {
		vs_fail(error, VS_HOST_ERROR_USAGE,
			"--apply: vshared does not follow %s (vsharectl add)",
			vm);
		return NULL;
	}
	if (!pnode && (transferred_profile(d, vm, &p) ||
		       daemon_monitor_profile(d, vm, &p) ||
		       vs_profile_load_declared(d->cfg.conf_dir, vm, &p, NULL)))
		pnode = own = vs_profile_to_json(&p);
	if (vs_ledger_find(d->session.ledger, vm)) {
		vs_fail(error, VS_HOST_ERROR_REFUSED,
			"%s already runs on this host", vm);
		return NULL;
	}
	prune_reservations(d);
	state = layout_state(d, vm, cells, n, pnode);
	result = vs_policy_layout(d->policy, policy, state, vm, error);
	if (!result)
		return NULL;
	decided = decision_of(result, vm);
	if (!decided) {
		vs_fail(error, VS_HOST_ERROR_REFUSED,
			"layout policy %s placed no node for %s", policy, vm);
		return NULL;
	}
	mv = neighbours(d, vm, result);
	ok = place_all(d, vm, (int)json_object_get_int_member(decided, "node"),
		       cells, n, do_apply, mv, error);
	save_reservations(d);
	if (!ok)
		return NULL;
	g_message("layout %s: %s arrives on node %d (%s)", policy, vm,
		  cells[0].node,
		  json_object_get_string_member(decided, "reason"));
	move_neighbours(d, mv);
	memory_decisions(d, result);
	if (do_apply && !apply(followed, cells, n, error))
		return NULL;
	return answer(policy, vm, decided, cells, n, result, mv, do_apply,
		      can_bind(d, cells, n));
}

static JsonNode *h_place(JsonObject *a, gpointer ctx, GError **error)
{
	Daemon *d = ctx;
	const char *vm = json_object_get_string_member(a, "vm");

	if (json_object_get_boolean_member_with_default(a, "release", FALSE))
		return release_one(d, vm, error);
	return place_vm(
		d, a, vm,
		json_object_get_string_member_with_default(a, "policy", NULL),
		json_object_get_member(a, "profile"),
		json_object_get_boolean_member_with_default(a, "apply", FALSE),
		error);
}

static JsonNode *peer_answer(const char *vm, gboolean stored, JsonNode *placed,
			     const char *note)
{
	JsonObject *o = json_object_new();
	JsonNode *n = json_node_new(JSON_NODE_OBJECT);

	json_object_set_string_member(o, "vm", vm);
	json_object_set_boolean_member(o, "stored", stored);
	if (placed)
		json_object_set_member(o, "placed", json_node_copy(placed));
	json_object_set_string_member(o, "note", note);
	json_node_take_object(n, o);
	return n;
}

static gboolean registered(const VsConfig *c, const char *vm)
{
	g_autoptr(VsVmConf) conf = vs_registry_get(c, vm, NULL);

	return conf != NULL;
}

/* vshare-peer-profile: a migrating VM's profile from the source's
 * vshared (transfer.c checked who sent it). Kept for the VM's placement
 * (RESERVE_S); a VM vshared follows here and does not own yet (the
 * -incoming QEMU, registered) is placed and its threads pinned now,
 * while its memory is still being copied. */
static JsonNode *h_peer_profile(JsonObject *a, gpointer ctx, GError **error)
{
	Daemon *d = ctx;
	const char *vm = json_object_get_string_member(a, "vm");
	g_autofree char *from = g_strndup(
		json_object_get_string_member_with_default(a, "from", "?"), 64);
	g_autoptr(GError) why = NULL;
	g_autoptr(JsonNode) placed = NULL;
	g_autofree char *note = NULL;
	Transferred *t;
	VsProfile p;

	g_strcanon(from, G_CSET_a_2_z G_CSET_A_2_Z G_CSET_DIGITS ".-_:[]", '?');
	if (!vs_name_valid(vm, error) ||
	    !vs_profile_from_json(json_object_get_member(a, "profile"), &p,
				  error)) {
		g_warning("layout: a profile from %s refused: %s", from,
			  (*error)->message);
		return NULL;
	}
	if (!vs_session_vm(&d->session, vm, NULL) && !registered(&d->cfg, vm)) {
		g_message(
			"layout: profile of %s from %s ignored: no VM of that "
			"name is registered or followed here",
			vm, from);
		return peer_answer(vm, FALSE, NULL,
				   "ignored: no VM of that name is registered "
				   "or followed here (vsharectl add it first)");
	}
	t = g_new0(Transferred, 1);
	*t = (Transferred){ .p = p,
			    .from = g_strdup(from),
			    .until = g_get_monotonic_time() +
				     (gint64)RESERVE_S * G_USEC_PER_SEC };
	g_hash_table_replace(d->transferred, g_strdup(vm), t);
	g_message("layout: profile of %s from %s (mpki %.1f, %.0f MB/s)", vm,
		  from, p.mpki, p.bandwidth_mbps);
	if (!vs_session_vm(&d->session, vm, NULL) ||
	    vs_ledger_find(d->session.ledger, vm))
		return peer_answer(vm, TRUE, NULL,
				   "kept for its placement (registered here, "
				   "not followed yet)");
	{
		g_autoptr(JsonObject) none = json_object_new();

		placed = place_vm(d, none, vm, NULL, NULL, TRUE, &why);
	}
	if (!placed)
		g_warning("layout: %s: not placed: %s", vm, why->message);
	note = placed ? g_strdup("placed, threads pinned")
		      : g_strdup_printf("kept; not placed: %s", why->message);
	return peer_answer(vm, TRUE, placed, note);
}

void daemon_layout_init(Daemon *d)
{
	d->reserved =
		g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	d->transferred = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					       transferred_free);
	d->mover = g_thread_pool_new(mover, NULL, 1, FALSE, NULL);
	vs_dispatcher_register(d->dispatcher, "vshare-host-place", h_place, d,
			       NULL);
	vs_dispatcher_register(d->dispatcher, "vshare-peer-profile",
			       h_peer_profile, d, NULL);
}

JsonArray *daemon_layout_reservations(Daemon *d)
{
	JsonArray *a = json_array_new();
	g_autoptr(GList) keys = NULL;
	gint64 now = g_get_monotonic_time();

	prune_reservations(d);
	keys = g_list_sort(g_hash_table_get_keys(d->reserved),
			   (GCompareFunc)strcmp);
	for (GList *l = keys; l; l = l->next) {
		Reservation *r = g_hash_table_lookup(d->reserved, l->data);
		g_autofree char *cpus = vs_cpuset_format(&r->cpus);
		JsonObject *o = json_object_new();

		json_object_set_string_member(o, "vm", l->data);
		json_object_set_string_member(o, "cpus", cpus);
		json_object_set_int_member(o, "node", r->node);
		json_object_set_boolean_member(o, "followed", r->applied);
		if (!r->applied)
			json_object_set_int_member(o, "seconds-left",
						   (r->until - now) /
							   G_USEC_PER_SEC);
		json_array_add_object_element(a, o);
	}
	return a;
}

/* A memory move running is cancelled at its next chunk. */
void daemon_layout_stop(Daemon *d)
{
	g_atomic_int_set(&d->move_cancel, 1);
	if (d->mover)
		g_thread_pool_free(g_steal_pointer(&d->mover), FALSE, TRUE);
}

void daemon_layout_free(Daemon *d)
{
	g_clear_pointer(&d->reserved, g_hash_table_destroy);
	g_clear_pointer(&d->transferred, g_hash_table_destroy);
	g_clear_pointer(&d->layout_policy, g_free);
}
