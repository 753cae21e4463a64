// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Sensing for the policies (irqbalance's "sense"): the state document a
 * policy reads through vshare.vms() and vshare.host() (docs/policies.md).
 * Each call samples every registered VM and compares with the previous
 * sample, so fractions cover the time between two policy runs:
 *   host      per vCPU thread: run time (schedstat) and time throttled
 *             (the vCPU cgroup's cpu.stat); per pCPU: /proc/stat
 *   guest     per vCPU: busy / idle / steal ms from the agent's
 *             vshare-get-cpu-stats, read defensively; a VM that owns no
 *             pCPU (parked) is not asked: its throttled threads answer
 *             slowly, and the host-side view says enough
 *   ledger    owned pCPUs, mode, weight, nice, memory per node
 * Nothing here acts; a VM that cannot be opened is left out.
 */
#include "vshared.h"

#include <string.h>

#define SENSE_AGENT_MS 500 /* per agent call: a slow guest is "unknown" */

typedef struct {
	gint64 t_us;
	guint n;
	gint64 *run_ns, *thr_ns;
	gint64 (*guest)[3]; /* busy, idle, steal ms; -1 unknown */
	gboolean agent;
} Sample;

static void sample_free(gpointer p)
{
	Sample *s = p;

	g_free(s->run_ns);
	g_free(s->thr_ns);
	g_free(s->guest);
	g_free(s);
}

static gint64 ms_of(JsonObject *o, const char *k)
{
	JsonNode *n = o ? json_object_get_member(o, k) : NULL;

	return n && json_node_get_value_type(n) == G_TYPE_INT64 &&
			       json_node_get_int(n) >= 0
		       ? json_node_get_int(n)
		       : -1;
}

/* The guest's counters; FALSE when the agent did not answer in time. */
static gboolean guest_stats(VsVm *vm, Sample *s)
{
	g_autoptr(VsPeer) a = vs_vm_agent(vm, SENSE_AGENT_MS, NULL);
	g_autoptr(JsonNode) r = NULL;
	JsonArray *arr;

	if (!a)
		return FALSE;
	r = vs_agent_call(a, "vshare-get-cpu-stats", NULL, SENSE_AGENT_MS,
			  NULL);
	arr = r && JSON_NODE_HOLDS_ARRAY(r) ? json_node_get_array(r) : NULL;
	if (!arr)
		return FALSE;
	for (guint i = 0; i < MIN(json_array_get_length(arr), 8192); i++) {
		JsonNode *e = json_array_get_element(arr, i);
		JsonObject *o = JSON_NODE_HOLDS_OBJECT(e)
					? json_node_get_object(e)
					: NULL;
		gint64 cpu = ms_of(o, "cpu");

		if (cpu < 0 || cpu >= s->n)
			continue;
		s->guest[cpu][0] = ms_of(o, "busy");
		s->guest[cpu][1] = ms_of(o, "idle");
		s->guest[cpu][2] = ms_of(o, "steal");
	}
	return TRUE;
}

static Sample *take(VsVm *vm, gboolean ask_guest)
{
	Sample *s = g_new0(Sample, 1);

	s->n = vm->vcpus->len;
	s->run_ns = g_new(gint64, s->n);
	s->thr_ns = g_new(gint64, s->n);
	s->guest = g_malloc(sizeof(gint64[3]) * s->n);
	memset(s->guest, 0xff, sizeof(gint64[3]) * s->n);
	s->agent = ask_guest && guest_stats(vm, s);
	s->t_us = g_get_monotonic_time();
	for (guint i = 0; i < s->n; i++) {
		s->run_ns[i] = vs_vm_vcpu_cputime_ns(vm, i);
		s->thr_ns[i] = vs_vm_vcpu_throttled_ns(vm, i);
	}
	return s;
}

static void put_frac(JsonBuilder *b, const char *k, double v)
{
	json_builder_set_member_name(b, k);
	if (v >= 0)
		json_builder_add_double_value(b, MIN(v, 1.0));
	else
		json_builder_add_null_value(b);
}

static void put_int(JsonBuilder *b, const char *k, gint64 v)
{
	json_builder_set_member_name(b, k);
	json_builder_add_int_value(b, v);
}

/* Guest fractions of vCPU i between two samples, -1 unknown. */
static void guest_frac(const Sample *a, const Sample *b, guint i, double *f)
{
	gint64 d[3], sum = 0;

	for (guint k = 0; k < 3; k++) {
		d[k] = a && a->guest[i][k] >= 0 &&
				       b->guest[i][k] >= a->guest[i][k]
			       ? b->guest[i][k] - a->guest[i][k]
			       : -1;
		f[k] = -1;
	}
	if (d[0] < 0 || d[1] < 0)
		return;
	sum = d[0] + d[1] + MAX(d[2], 0);
	if (sum <= 0)
		return;
	for (guint k = 0; k < 3; k++)
		f[k] = d[k] >= 0 ? (double)d[k] / sum : -1;
}

static double delta_frac(gint64 a, gint64 b, double secs)
{
	return a >= 0 && b >= a && secs > 0 ? (b - a) / (secs * 1e9) : -1;
}

typedef struct {
	Daemon *d;
	VsVm *vm;
	VsLedgerVm *lv;	   /* managed */
	VsLedgerVm *tuned; /* any entry: weight, nice */
	const Sample *prev, *now;
	VsCpuSet throttled;
} VmView;

static void vcpu_doc(VmView *v, guint i, JsonBuilder *b, double *use)
{
	VsHost *h = &v->d->session.host;
	VsVcpu *c = &g_array_index(v->vm->vcpus, VsVcpu, i);
	guint pcpu = i < h->pcpus->len ? g_array_index(h->pcpus, guint, i)
				       : G_MAXUINT;
	const char *owner =
		pcpu != G_MAXUINT ? vs_ledger_owner(v->d->session.ledger, pcpu)
				  : NULL;
	double secs = v->prev ? (v->now->t_us - v->prev->t_us) / 1e6 : 0;
	double run = v->prev ? delta_frac(v->prev->run_ns[i], v->now->run_ns[i],
					  secs)
			     : -1;
	double gf[3];

	guest_frac(v->prev, v->now, i, gf);
	json_builder_begin_object(b);
	put_int(b, "index", i);
	put_int(b, "node", c->node);
	put_int(b, "pcpu", pcpu != G_MAXUINT ? (gint64)pcpu : -1);
	json_builder_set_member_name(b, "owner");
	json_builder_add_string_value(b, owner);
	json_builder_set_member_name(b, "owned");
	json_builder_add_boolean_value(b, owner && v->lv &&
						  !strcmp(owner, v->lv->name));
	json_builder_set_member_name(b, "throttled");
	json_builder_add_boolean_value(b, vs_cpuset_has(&v->throttled, i));
	put_frac(b, "usage", run);
	put_frac(b, "throttled_ratio",
		 v->prev ? delta_frac(v->prev->thr_ns[i], v->now->thr_ns[i],
				      secs)
			 : -1);
	put_frac(b, "busy", gf[0]);
	put_frac(b, "idle", gf[1]);
	put_frac(b, "steal", gf[2]);
	json_builder_end_object(b);
	if (run > 0)
		*use += run;
}

static void node_docs(VmView *v, JsonBuilder *b)
{
	VsHost *h = &v->d->session.host;

	json_builder_set_member_name(b, "nodes");
	json_builder_begin_object(b);
	for (guint n = 0; n < h->n_nodes; n++) {
		g_autofree char *key = g_strdup_printf("%u", n);
		VsVmem *m = vs_vm_vmem_on(v->vm, n);

		if (!vs_cpuset_has(&h->nodes, n))
			continue;
		json_builder_set_member_name(b, key);
		json_builder_begin_object(b);
		json_builder_set_member_name(b, "pcpus");
		json_builder_begin_array(b);
		for (guint c = 0; v->lv && c < VS_MAX_CPUS; c++)
			if (vs_cpuset_has(&v->lv->pcpus, c) &&
			    vs_cpuset_has(&h->node_cpus[n], c))
				json_builder_add_int_value(b, c);
		json_builder_end_array(b);
		put_int(b, "mem", v->lv ? (gint64)v->lv->mem[n] : 0);
		put_int(b, "plugged", m ? (gint64)m->size : 0);
		json_builder_end_object(b);
	}
	json_builder_end_object(b);
}

/* vCPU i runs on pCPU i of the host's list: does the VM own it? */
static gboolean owns_vcpu(VmView *v, guint i)
{
	GArray *pcpus = v->d->session.host.pcpus;

	return v->lv && i < pcpus->len &&
	       vs_cpuset_has(&v->lv->pcpus, g_array_index(pcpus, guint, i));
}

static void vm_doc(VmView *v, JsonBuilder *b)
{
	double use = 0, busy = 0;
	guint nb = 0;

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "name");
	json_builder_add_string_value(b, v->vm->conf->name);
	json_builder_set_member_name(b, "uuid");
	json_builder_add_string_value(b, v->vm->uuid);
	json_builder_set_member_name(b, "driver");
	json_builder_add_string_value(b, v->vm->drv->name);
	json_builder_set_member_name(b, "managed");
	json_builder_add_boolean_value(b, v->lv != NULL);
	json_builder_set_member_name(b, "mode");
	json_builder_add_string_value(b, v->lv ? vs_mode_name(v->lv->mode)
					       : "unmanaged");
	put_int(b, "weight",
		v->tuned && v->tuned->weight ? v->tuned->weight : 100);
	put_int(b, "nice", v->tuned ? v->tuned->nice : 0);
	json_builder_set_member_name(b, "agent");
	json_builder_add_boolean_value(b, v->now->agent);
	json_builder_set_member_name(b, "pcpus");
	json_builder_begin_array(b);
	for (guint c = 0; v->lv && c < VS_MAX_CPUS; c++)
		if (vs_cpuset_has(&v->lv->pcpus, c))
			json_builder_add_int_value(b, c);
	json_builder_end_array(b);
	node_docs(v, b);
	json_builder_set_member_name(b, "vcpus");
	json_builder_begin_array(b);
	for (guint i = 0; i < v->vm->vcpus->len; i++) {
		double gf[3];

		vcpu_doc(v, i, b, &use);
		guest_frac(v->prev, v->now, i, gf);
		if (gf[0] >= 0 && owns_vcpu(v, i))
			busy += gf[0], nb++;
	}
	json_builder_end_array(b);
	json_builder_set_member_name(b, "usage"); /* pCPUs: may exceed 1 */
	json_builder_add_double_value(b, use);
	put_frac(b, "busy", nb ? busy / nb : -1);
	json_builder_set_member_name(b, "interval");
	json_builder_add_double_value(
		b, v->prev ? (v->now->t_us - v->prev->t_us) / 1e6 : 0);
	json_builder_end_object(b);
}

/* ---- the host ----------------------------------------------------------- */

static void loadavg(JsonBuilder *b)
{
	g_autofree char *text = vs_read_file("/proc/loadavg", NULL);
	g_auto(GStrv) f = g_strsplit(text ? text : "", " ", 4);

	json_builder_set_member_name(b, "loadavg");
	json_builder_begin_array(b);
	for (guint k = 0; k < 3; k++)
		json_builder_add_double_value(
			b, f[0] && k < g_strv_length(f)
				   ? g_ascii_strtod(f[k], NULL)
				   : 0);
	json_builder_end_array(b);
}

static void pcpu_docs(Daemon *d, JsonBuilder *b, gboolean keep)
{
	g_autofree char *text = vs_read_file("/proc/stat", NULL);
	GArray *now = text ? vs_parse_proc_stat(text, NULL) : NULL;
	VsHost *h = &d->session.host;

	json_builder_set_member_name(b, "pcpus");
	json_builder_begin_array(b);
	for (guint i = 0; i < h->pcpus->len; i++) {
		guint c = g_array_index(h->pcpus, guint, i);
		const char *o = vs_ledger_owner(d->session.ledger, c);
		double u = -1;

		if (now && d->stat_prev && c < now->len &&
		    c < d->stat_prev->len) {
			VsCpuTimes *a =
				&g_array_index(d->stat_prev, VsCpuTimes, c);
			VsCpuTimes *z = &g_array_index(now, VsCpuTimes, c);

			if (z->total > a->total && z->busy >= a->busy)
				u = (double)(z->busy - a->busy) /
				    (z->total - a->total);
		}
		json_builder_begin_object(b);
		put_int(b, "cpu", c);
		put_int(b, "node", vs_host_node_of(h, c));
		json_builder_set_member_name(b, "owner");
		json_builder_add_string_value(b, o);
		put_frac(b, "usage", u);
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
	if (!keep) { /* a look between two policy runs: their deltas stay */
		if (now)
			g_array_unref(now);
		return;
	}
	if (d->stat_prev)
		g_array_unref(d->stat_prev);
	d->stat_prev = now;
}

static void host_doc(Daemon *d, JsonBuilder *b, gboolean keep)
{
	VsHost *h = &d->session.host;

	json_builder_set_member_name(b, "host");
	json_builder_begin_object(b);
	put_int(b, "ncpus", h->pcpus->len);
	json_builder_set_member_name(b, "declared");
	json_builder_add_boolean_value(b, h->declared);
	loadavg(b);
	json_builder_set_member_name(b, "nodes");
	json_builder_begin_object(b);
	for (guint n = 0; n < h->n_nodes; n++) {
		g_autofree char *key = g_strdup_printf("%u", n);

		if (!vs_cpuset_has(&h->nodes, n))
			continue;
		json_builder_set_member_name(b, key);
		json_builder_begin_object(b);
		json_builder_set_member_name(b, "pcpus");
		json_builder_begin_array(b);
		for (guint c = 0; c < VS_MAX_CPUS; c++)
			if (vs_cpuset_has(&h->node_cpus[n], c))
				json_builder_add_int_value(b, c);
		json_builder_end_array(b);
		json_builder_end_object(b);
	}
	json_builder_end_object(b);
	pcpu_docs(d, b, keep);
	json_builder_end_object(b);
}

/* An agent that answered last time and not now: "agent-lost". */
static void agent_seen(Daemon *d, const char *name, gboolean up)
{
	gboolean was = GPOINTER_TO_INT(g_hash_table_lookup(d->agent_up, name));

	if (was && !up)
		g_ptr_array_add(d->policy_events,
				g_strdup_printf("agent-lost\n%s", name));
	g_hash_table_insert(d->agent_up, g_strdup(name), GINT_TO_POINTER(up));
}

/* @policy: a policy run (agents asked, samples kept for the next run's
 * deltas, agent-lost noticed); else a quick look for a layout decision
 * (nothing asked of guests, the policies' samples untouched). */
static JsonNode *sense(Daemon *d, gboolean policy)
{
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_auto(GStrv) names = vs_registry_list(&d->cfg, NULL);

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "vms");
	json_builder_begin_array(b);
	for (guint i = 0; names && names[i]; i++) {
		VmView v = { .d = d };
		gboolean ask;
		Sample *s;

		v.vm = vs_session_vm(&d->session, names[i], NULL);
		if (!v.vm)
			continue;
		v.lv = vs_ledger_find(d->session.ledger, names[i]);
		v.tuned = v.lv;
		if (v.lv && v.lv->unmanaged)
			v.lv = NULL; /* only tuned: owns nothing */
		ask = policy && (!v.lv || vs_cpuset_count(&v.lv->pcpus));
		s = take(v.vm, ask);
		v.prev = g_hash_table_lookup(d->samples, names[i]);
		if (v.prev && v.prev->n != s->n)
			v.prev = NULL;
		v.now = s;
		if (!vs_vm_throttled(v.vm, &v.throttled, NULL))
			vs_cpuset_clear(&v.throttled);
		vm_doc(&v, b);
		if (ask)
			agent_seen(d, names[i], s->agent);
		if (policy)
			g_hash_table_insert(d->samples, g_strdup(names[i]), s);
		else
			sample_free(s);
	}
	json_builder_end_array(b);
	host_doc(d, b, policy);
	json_builder_end_object(b);
	return json_builder_get_root(b);
}

JsonNode *daemon_sense(Daemon *d, GError **error)
{
	(void)error;
	return sense(d, TRUE);
}

JsonNode *daemon_sense_quick(Daemon *d)
{
	return sense(d, FALSE);
}

void daemon_sense_init(Daemon *d)
{
	d->samples = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					   sample_free);
	d->agent_up =
		g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
}
