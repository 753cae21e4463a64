// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Sensing for `status` and the daemon's metrics: per VM, each vCPU ->
 * thread -> pinned pCPU -> owner in the ledger -> host CPU use between two
 * samples -> in the guest's allocation; memory per node (plugged /
 * requested / ledger / guest free). Read-only. The caller waits between
 * vs_observe_begin and vs_observe_end (the library does not sleep).
 * Agent replies are read defensively: a member of the wrong type is
 * "unknown", never trusted.
 */
#include "vshare-host.h"

#include <sched.h>
#include <string.h>

typedef struct {
	char *name;
	VsVm *vm; /* borrowed from the session */
	GError *error;
	GError *agent_error;
	char *gcpus, *gmems;  /* the guest's allocation */
	gint64 probed_at;     /* when the agent was asked */
	GHashTable *free_kib; /* node -> KiB free in the guest */
	gint64 *t0, *t1;
	gint64 (*guest)[3]; /* per vCPU: busy, idle, steal ms; -1 unknown */
} Row;

struct VsObservation {
	VsSession *s;
	GPtrArray *rows;
	gint64 start;
};

static void row_free(gpointer p)
{
	Row *r = p;

	g_free(r->name);
	g_clear_error(&r->error);
	g_clear_error(&r->agent_error);
	g_free(r->gcpus);
	g_free(r->gmems);
	if (r->free_kib)
		g_hash_table_destroy(r->free_kib);
	g_free(r->t0);
	g_free(r->t1);
	g_free(r->guest);
	g_free(r);
}

void vs_observation_free(VsObservation *o)
{
	if (!o)
		return;
	g_ptr_array_free(o->rows, TRUE);
	g_free(o);
}

static JsonObject *agent_obj(VsPeer *a, const char *cmd, int ms,
			     JsonNode **keep, GError **error)
{
	*keep = vs_agent_call(a, cmd, NULL, ms, error);
	if (!*keep)
		return NULL;
	if (!JSON_NODE_HOLDS_OBJECT(*keep)) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_HOSTILE,
			    "guest agent %s: unexpected reply", cmd);
		return NULL;
	}
	return json_node_get_object(*keep);
}

static void read_topology(Row *r, JsonObject *topo)
{
	JsonNode *nn = json_object_get_member(topo, "nodes");
	JsonArray *nodes = nn && JSON_NODE_HOLDS_ARRAY(nn)
				   ? json_node_get_array(nn)
				   : NULL;

	r->free_kib = g_hash_table_new(g_direct_hash, g_direct_equal);
	for (guint i = 0; nodes && i < MIN(json_array_get_length(nodes), 64);
	     i++) {
		JsonNode *e = json_array_get_element(nodes, i);
		JsonObject *n = JSON_NODE_HOLDS_OBJECT(e)
					? json_node_get_object(e)
					: NULL;
		JsonNode *id = n ? json_object_get_member(n, "id") : NULL;
		JsonNode *fk =
			n ? json_object_get_member(n, "mem-free-kib") : NULL;

		if (id && fk && json_node_get_value_type(id) == G_TYPE_INT64 &&
		    json_node_get_value_type(fk) == G_TYPE_INT64 &&
		    json_node_get_int(fk) >= 0)
			g_hash_table_insert(
				r->free_kib,
				GINT_TO_POINTER(json_node_get_int(id) + 1),
				GINT_TO_POINTER(
					MIN(json_node_get_int(fk), G_MAXINT)));
	}
}

static gint64 ms_of(JsonObject *o, const char *k)
{
	JsonNode *n = json_object_get_member(o, k);

	return n && json_node_get_value_type(n) == G_TYPE_INT64 &&
			       json_node_get_int(n) >= 0
		       ? json_node_get_int(n)
		       : -1;
}

/* vshare-get-cpu-stats: busy / idle / steal of each vCPU, in ms. */
static void read_cpu_stats(Row *r, JsonNode *reply)
{
	JsonArray *a = reply && JSON_NODE_HOLDS_ARRAY(reply)
			       ? json_node_get_array(reply)
			       : NULL;
	static const char *const keys[] = { "busy", "idle", "steal" };

	for (guint i = 0; a && i < MIN(json_array_get_length(a), 8192); i++) {
		JsonNode *e = json_array_get_element(a, i);
		JsonObject *o = JSON_NODE_HOLDS_OBJECT(e)
					? json_node_get_object(e)
					: NULL;
		gint64 cpu = o ? ms_of(o, "cpu") : -1;

		if (cpu < 0 || cpu >= r->vm->vcpus->len)
			continue;
		for (guint k = 0; k < 3; k++)
			r->guest[cpu][k] = ms_of(o, keys[k]);
	}
}

static void probe_agent(const VsConfig *c, Row *r)
{
	g_autoptr(VsPeer) a =
		vs_vm_agent(r->vm, c->agent_timeout_ms, &r->agent_error);
	g_autoptr(JsonNode) k1 = NULL, k2 = NULL;
	JsonObject *alloc, *topo;

	r->probed_at = g_get_monotonic_time();
	if (!a)
		return;
	alloc = agent_obj(a, "vshare-get-allocation", c->agent_timeout_ms, &k1,
			  &r->agent_error);
	if (!alloc)
		return;
	r->gcpus = g_strdup(vs_json_str(alloc, "cpus"));
	r->gmems = g_strdup(vs_json_str(alloc, "mems"));
	topo = agent_obj(a, "vshare-get-topology", c->agent_timeout_ms, &k2,
			 &r->agent_error);
	if (topo)
		read_topology(r, topo);
	g_clear_pointer(&k1, json_node_unref);
	k1 = vs_agent_call(a, "vshare-get-cpu-stats", NULL, c->agent_timeout_ms,
			   NULL);
	read_cpu_stats(r, k1);
}

static void sample(Row *r, gint64 *out)
{
	for (guint i = 0; i < r->vm->vcpus->len; i++)
		out[i] = vs_vm_vcpu_cputime_ns(r->vm, i);
}

VsObservation *vs_observe_begin(VsSession *s, char **names)
{
	VsObservation *o = g_new0(VsObservation, 1);

	o->s = s;
	o->rows = g_ptr_array_new_with_free_func(row_free);
	for (guint i = 0; names[i]; i++) {
		Row *r = g_new0(Row, 1);

		r->name = g_strdup(names[i]);
		g_ptr_array_add(o->rows, r);
		r->vm = vs_session_vm(s, names[i], &r->error);
		if (!r->vm)
			continue;
		r->guest = g_malloc(sizeof(gint64[3]) * r->vm->vcpus->len);
		memset(r->guest, 0xff, sizeof(gint64[3]) * r->vm->vcpus->len);
		probe_agent(s->cfg, r);
		r->t0 = g_new0(gint64, r->vm->vcpus->len + 1);
		r->t1 = g_new0(gint64, r->vm->vcpus->len + 1);
	}
	o->start = g_get_monotonic_time();
	for (guint i = 0; i < o->rows->len; i++) {
		Row *r = o->rows->pdata[i];

		if (r->vm)
			sample(r, r->t0);
	}
	return o;
}

static char *pinned_of(gint64 tid)
{
	cpu_set_t *set = CPU_ALLOC(VS_MAX_CPUS);
	gsize size = CPU_ALLOC_SIZE(VS_MAX_CPUS);
	VsCpuSet s;

	vs_cpuset_clear(&s);
	if (sched_getaffinity(tid, size, set) < 0) {
		CPU_FREE(set);
		return g_strdup("?");
	}
	for (int c = 0; c < VS_MAX_CPUS; c++)
		if (CPU_ISSET_S(c, size, set))
			vs_cpuset_add(&s, c);
	CPU_FREE(set);
	return vs_cpuset_format(&s);
}

static void member_str(JsonBuilder *b, const char *name, const char *v)
{
	json_builder_set_member_name(b, name);
	json_builder_add_string_value(b, v);
}

static void member_int(JsonBuilder *b, const char *name, gint64 v)
{
	json_builder_set_member_name(b, name);
	json_builder_add_int_value(b, v);
}

static void member_bool(JsonBuilder *b, const char *name, gboolean v)
{
	json_builder_set_member_name(b, name);
	json_builder_add_boolean_value(b, v);
}

/* A change the agent confirmed after the probe is newer than it. */
static gboolean set_since(const Row *r)
{
	return r->vm->agent_cpus && r->vm->agent_set_at > r->probed_at;
}

static void emit_agent(Row *r, JsonBuilder *b)
{
	gboolean newer = set_since(r);

	json_builder_set_member_name(b, "agent");
	json_builder_begin_object(b);
	member_bool(b, "reachable", newer || r->agent_error == NULL);
	if (r->agent_error && !newer)
		member_str(b, "error", r->agent_error->message);
	member_str(b, "cpus", newer ? r->vm->agent_cpus : r->gcpus);
	member_str(b, "mems", newer ? r->vm->agent_mems : r->gmems);
	json_builder_end_object(b);
}

static void emit_vcpu(VsSession *s, Row *r, guint i, double secs,
		      const VsCpuSet *throttled, const VsCpuSet *alloc,
		      JsonBuilder *b)
{
	VsVcpu *v = &g_array_index(r->vm->vcpus, VsVcpu, i);
	g_autofree char *pin = pinned_of(v->tid);
	guint pcpu = i < s->host.pcpus->len
			     ? g_array_index(s->host.pcpus, guint, i)
			     : G_MAXUINT;
	const char *owner =
		pcpu != G_MAXUINT ? vs_ledger_owner(s->ledger, pcpu) : NULL;
	double pct = r->t0[i] >= 0 && r->t1[i] >= 0
			     ? (r->t1[i] - r->t0[i]) / (secs * 1e7)
			     : -1;

	json_builder_begin_object(b);
	member_int(b, "vcpu", i);
	member_int(b, "node", v->node);
	member_int(b, "thread", v->tid);
	member_str(b, "pinned", pin);
	member_str(b, "pcpu-owner", owner);
	json_builder_set_member_name(b, "host-cpu-percent");
	json_builder_add_double_value(b, pct);
	member_bool(b, "throttled", vs_cpuset_has(throttled, i));
	json_builder_set_member_name(b, "in-allocation");
	if (alloc)
		json_builder_add_boolean_value(b, vs_cpuset_has(alloc, i));
	else
		json_builder_add_null_value(b);
	member_int(b, "guest-busy-ms", r->guest[i][0]);
	member_int(b, "guest-idle-ms", r->guest[i][1]);
	member_int(b, "guest-steal-ms", r->guest[i][2]);
	json_builder_end_object(b);
}

static void emit_vmem(Row *r, VsLedgerVm *lv, VsVmem *d, JsonBuilder *b)
{
	gpointer fk =
		r->free_kib ? g_hash_table_lookup(r->free_kib,
						  GINT_TO_POINTER(d->node + 1))
			    : NULL;

	json_builder_begin_object(b);
	member_int(b, "node", d->node);
	member_str(b, "device", d->id);
	member_int(b, "plugged-bytes", d->size);
	member_int(b, "requested-bytes", d->requested);
	member_int(b, "max-bytes", d->max);
	json_builder_set_member_name(b, "ledger-bytes");
	if (lv)
		json_builder_add_int_value(b, lv->mem[d->node]);
	else
		json_builder_add_null_value(b);
	member_int(b, "guest-free-kib", fk ? GPOINTER_TO_INT(fk) : -1);
	json_builder_end_object(b);
}

static void emit_vm(VsSession *s, Row *r, double secs, JsonBuilder *b)
{
	VsLedgerVm *lv = vs_ledger_find(s->ledger, r->name);
	VsCpuSet alloc, throttled;

	if (lv && lv->unmanaged) /* tuned only */
		lv = NULL;
	const char *gcpus =
		r->vm && set_since(r) ? r->vm->agent_cpus : r->gcpus;
	gboolean have = gcpus && vs_cpuset_parse(gcpus, &alloc, NULL);

	json_builder_begin_object(b);
	member_str(b, "name", r->name);
	member_bool(b, "reachable", r->vm != NULL);
	if (!r->vm) {
		member_str(b, "error", r->error->message);
		json_builder_end_object(b);
		return;
	}
	member_str(b, "driver", r->vm->drv->name);
	member_bool(b, "managed", lv != NULL);
	member_str(b, "mode", lv ? vs_mode_name(lv->mode) : "unmanaged");
	member_int(b, "qemu-pid", r->vm->qemu_pid);
	emit_agent(r, b);
	if (!vs_vm_throttled(r->vm, &throttled, NULL))
		vs_cpuset_clear(&throttled);
	json_builder_set_member_name(b, "vcpus");
	json_builder_begin_array(b);
	for (guint i = 0; i < r->vm->vcpus->len; i++)
		emit_vcpu(s, r, i, secs, &throttled, have ? &alloc : NULL, b);
	json_builder_end_array(b);
	json_builder_set_member_name(b, "memory");
	json_builder_begin_array(b);
	for (guint i = 0; i < r->vm->vmems->len; i++)
		emit_vmem(r, lv, g_ptr_array_index(r->vm->vmems, i), b);
	json_builder_end_array(b);
	json_builder_end_object(b);
}

static JsonNode *emit(VsObservation *o)
{
	g_autoptr(JsonBuilder) b = json_builder_new();
	double secs = MAX(g_get_monotonic_time() - o->start, 1) / 1e6;

	for (guint i = 0; i < o->rows->len; i++) {
		Row *r = o->rows->pdata[i];

		if (r->vm)
			sample(r, r->t1);
	}
	json_builder_begin_object(b);
	member_str(b, "host", o->s->ledger->host);
	member_bool(b, "host-declared", o->s->host.declared);
	member_int(b, "ledger-generation", o->s->ledger->generation);
	json_builder_set_member_name(b, "vms");
	json_builder_begin_array(b);
	for (guint i = 0; i < o->rows->len; i++)
		emit_vm(o->s, o->rows->pdata[i], secs, b);
	json_builder_end_array(b);
	json_builder_end_object(b);
	return json_builder_get_root(b);
}

JsonNode *vs_observe_end(VsObservation *o)
{
	return emit(o);
}

JsonNode *vs_observe_peek(VsObservation *o, char **names)
{
	guint n = g_strv_length(names);

	if (n != o->rows->len)
		return NULL;
	for (guint i = 0; i < n; i++) {
		Row *r = o->rows->pdata[i];

		if (!r->vm || strcmp(r->name, names[i]))
			return NULL;
	}
	return emit(o);
}
