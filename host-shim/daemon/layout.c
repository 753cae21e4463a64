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
 * so two arrivals never get the same. Decide only:
 * the caller applies the incoming VM's layout (its XML); a neighbour's new
 * node is reported, not applied.
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
} Reservation;

typedef struct {
	guint cell, vcpus;
	guint64 mem_kib;
	int node;
	VsCpuSet cpus;
} Cell;

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
	for (guint i = 0; i < json_array_get_length(vms); i++)
		add_profile(d, json_array_get_object_element(vms, i));
	json_array_add_object_element(vms, incoming_doc(vm, cells, n, profile));
	add_node_mem(d, json_object_get_object_member(root, "host"));
	return state;
}

/* ---- pCPUs ---------------------------------------------------------- */

static void prune_reservations(Daemon *d)
{
	GHashTableIter it;
	gpointer k, v;
	gint64 now = g_get_monotonic_time();

	g_hash_table_iter_init(&it, d->reserved);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		Reservation *r = v;

		if (r->until < now || vs_ledger_find(d->session.ledger, k) ||
		    (r->applied && !g_hash_table_contains(d->session.vms, k)))
			g_hash_table_iter_remove(&it);
	}
}

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
	for (guint i = 0; i < n; i++)
		for (guint c = 0; c < VS_MAX_CPUS; c++)
			if (vs_cpuset_has(&cells[i].cpus, c))
				vs_cpuset_add(&r->cpus, c);
	r->until = g_get_monotonic_time() + (gint64)RESERVE_S * G_USEC_PER_SEC;
	g_hash_table_replace(d->reserved, g_strdup(vm), r);
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

static JsonNode *answer(const char *policy, const char *vm, JsonObject *decided,
			const Cell *cells, guint n, JsonNode *result,
			gboolean applied)
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
	json_builder_set_member_name(b, "neighbours");
	json_builder_begin_array(b);
	{
		JsonArray *p = json_object_get_array_member(r, "placements");

		for (guint i = 0; p && i < json_array_get_length(p); i++) {
			JsonNode *e = json_array_get_element(p, i);

			if (g_strcmp0(json_object_get_string_member(
					      json_node_get_object(e), "vm"),
				      vm))
				json_builder_add_value(b, json_node_copy(e));
		}
	}
	json_builder_end_array(b);
	json_builder_set_member_name(b, "moves");
	json_builder_add_value(
		b, json_node_copy(json_object_get_member(r, "moves")));
	json_builder_set_member_name(b, "applied");
	json_builder_add_boolean_value(b, applied);
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

static JsonNode *h_place(JsonObject *a, gpointer ctx, GError **error)
{
	Daemon *d = ctx;
	const char *vm = json_object_get_string_member(a, "vm");
	const char *policy =
		json_object_get_string_member_with_default(a, "policy", NULL);
	JsonNode *pnode = json_object_get_member(a, "profile");
	gboolean do_apply =
		json_object_get_boolean_member_with_default(a, "apply", FALSE);
	VsVm *followed = NULL;
	Cell cells[MAX_CELLS];
	g_autoptr(JsonNode) state = NULL, result = NULL, own = NULL;
	JsonObject *decided;
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
	/* none in the request: the Monitor's, else the declared file (the
	 * stand-in for the profile a QMP source would send) */
	if (!pnode && (daemon_monitor_profile(d, vm, &p) ||
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
	if (!assign(d, vm, (int)json_object_get_int_member(decided, "node"),
		    cells, n, error))
		return NULL;
	reserve(d, vm, cells, n, do_apply);
	g_message("layout %s: %s arrives on node %d (%s)", policy, vm,
		  cells[0].node,
		  json_object_get_string_member(decided, "reason"));
	if (do_apply && !apply(followed, cells, n, error))
		return NULL;
	return answer(policy, vm, decided, cells, n, result, do_apply);
}

void daemon_layout_init(Daemon *d)
{
	d->reserved =
		g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	vs_dispatcher_register(d->dispatcher, "vshare-host-place", h_place, d,
			       NULL);
}

void daemon_layout_free(Daemon *d)
{
	g_clear_pointer(&d->reserved, g_hash_table_destroy);
	g_clear_pointer(&d->layout_policy, g_free);
}
