// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Make one VM match its ledger entry: its CPUs (coop through the guest
 * agent, enforce by throttling from the host, auto = coop, else enforce)
 * or its virtio-mem sizes. Idempotent, so undo is applying the old entry.
 * What the guest answers is checked: a coop change succeeds only when the
 * agent's reply names exactly the set asked for.
 */
#include "vshare-host.h"

#include <string.h>

void vs_emit(VsSession *s, const VsEvent *ev)
{
	if (s->emit)
		s->emit(ev, s->emit_data);
}

static void note(VsSession *s, const char *vm, VsEventKind kind,
		 const char *fmt, ...) G_GNUC_PRINTF(4, 5);

static void note(VsSession *s, const char *vm, VsEventKind kind,
		 const char *fmt, ...)
{
	g_autofree char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	vs_emit(s, &(VsEvent){ .kind = kind, .vm = vm, .message = msg });
}

static gint64 member_us(JsonObject *o, const char *name)
{
	JsonNode *n = o ? json_object_get_member(o, name) : NULL;

	return n && json_node_get_value_type(n) == G_TYPE_INT64
		       ? json_node_get_int(n)
		       : -1;
}

/* The agent's reply must name the set we asked for. */
static gboolean reply_matches(JsonNode *r, const VsCpuSet *cpus,
			      const VsCpuSet *mems, GError **error)
{
	JsonObject *o =
		JSON_NODE_HOLDS_OBJECT(r) ? json_node_get_object(r) : NULL;
	JsonNode *c = o ? json_object_get_member(o, "cpus") : NULL;
	JsonNode *m = o ? json_object_get_member(o, "mems") : NULL;
	VsCpuSet rc, rm;

	if (c && m && json_node_get_value_type(c) == G_TYPE_STRING &&
	    json_node_get_value_type(m) == G_TYPE_STRING &&
	    vs_cpuset_parse(json_node_get_string(c), &rc, NULL) &&
	    vs_cpuset_parse(json_node_get_string(m), &rm, NULL) &&
	    vs_cpuset_equal(&rc, cpus) && vs_cpuset_equal(&rm, mems))
		return TRUE;
	g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_HOSTILE,
		    "guest agent: vshare-set-allocation reply does not name "
		    "the set asked for: not trusting it");
	return FALSE;
}

static void emit_confined(VsSession *s, VsVm *vm, const char *c, const char *m,
			  JsonNode *r, gint64 t0)
{
	static const char *const steps[] = { "prepare", "cgroup", "knobs",
					     "journal" };
	JsonObject *o =
		JSON_NODE_HOLDS_OBJECT(r) ? json_node_get_object(r) : NULL;
	JsonNode *stn = o ? json_object_get_member(o, "steps-us") : NULL;
	JsonObject *st = stn && JSON_NODE_HOLDS_OBJECT(stn)
				 ? json_node_get_object(stn)
				 : NULL;
	VsEvent ev = { .kind = VS_EV_CONFINED,
		       .vm = vm->conf->name,
		       .cpus = c,
		       .mems = m,
		       .elapsed_us = g_get_monotonic_time() - t0 };

	ev.agent_us[0] = member_us(o, "elapsed-us");
	for (guint i = 0; i < G_N_ELEMENTS(steps); i++)
		ev.agent_us[i + 1] = member_us(st, steps[i]);
	vs_emit(s, &ev);
}

static gboolean agent_set(VsSession *s, VsVm *vm, const VsCpuSet *vcpus,
			  const VsCpuSet *mems, GError **error)
{
	gint64 t0 = g_get_monotonic_time();
	g_autoptr(VsPeer) a = vs_vm_agent(vm, s->cfg->agent_timeout_ms, error);
	g_autoptr(JsonObject) args = json_object_new();
	g_autofree char *c = vs_cpuset_format(vcpus);
	g_autofree char *m = vs_cpuset_format(mems);
	g_autoptr(JsonNode) r = NULL;

	if (!a)
		return FALSE;
	json_object_set_string_member(args, "cpus", c);
	json_object_set_string_member(args, "mems", m);
	/* One deadline for the call, nothing extends it: an agent slower
	 * than that is "slow", and the change is undone or retried. */
	r = vs_agent_call(a, "vshare-set-allocation", json_object_ref(args),
			  s->cfg->agent_timeout_ms, error);
	if (!r || !reply_matches(r, vcpus, mems, error))
		return FALSE;
	g_free(vm->agent_cpus);
	g_free(vm->agent_mems);
	vm->agent_cpus = g_strdup(c);
	vm->agent_mems = g_strdup(m);
	vm->agent_set_at = g_get_monotonic_time();
	emit_confined(s, vm, c, m, r, t0);
	return TRUE;
}

static gboolean enforce(VsSession *s, VsVm *vm, const VsCpuSet *excluded,
			VsLedgerVm *want, GError **error)
{
	g_autofree char *e = vs_cpuset_format(excluded);

	if (!vs_vm_throttle(vm, excluded, error))
		return FALSE;
	want->mode = VS_MODE_ENFORCE;
	vs_emit(s, &(VsEvent){ .kind = VS_EV_THROTTLED,
			       .vm = vm->conf->name,
			       .cpus = e });
	return TRUE;
}

/* auto may fall back to enforce only where that gives the ledger's set:
 * a guest the agent confined to fewer CPUs stays confined whatever the
 * host unthrottles, so a give-back needs the agent. */
static gboolean may_fall_back(const GError *e, const VsLedgerVm *prev,
			      const VsLedgerVm *want)
{
	if (!vs_error_is(e, VS_HOST_ERROR_UNREACHABLE) &&
	    !vs_error_is(e, VS_HOST_ERROR_GONE) &&
	    !vs_error_is(e, VS_HOST_ERROR_HOSTILE))
		return FALSE;
	return !prev || prev->mode != VS_MODE_COOP ||
	       vs_cpuset_is_subset(&want->pcpus, &prev->pcpus);
}

static gboolean coop(VsSession *s, VsVm *vm, const VsCpuSet *vcpus,
		     VsLedgerVm *want, GError **error)
{
	VsCpuSet nodes, none;

	vs_host_all_nodes(&s->host, &nodes);
	vs_cpuset_clear(&none);
	/* Thaw every vCPU while the guest confines itself: with some vCPUs
	 * throttled, the guest kernel's cross-CPU waits (RCU, stop_machine)
	 * stretch to seconds. The excluded vCPUs run on pCPUs they do not
	 * own only until the agent has moved the guest off them. */
	if (strncmp(vs_vm_throttle_backend(vm), "none", 4) &&
	    !vs_vm_throttle(vm, &none, error))
		return FALSE;
	if (!agent_set(s, vm, vcpus, &nodes, error))
		return FALSE;
	want->mode = VS_MODE_COOP;
	return TRUE;
}

gboolean vs_apply_cpus(VsSession *s, const char *name, VsLedgerVm *want,
		       const VsLedgerVm *prev, VsMode mode, GError **error)
{
	VsVm *vm = vs_session_vm(s, name, error);
	VsCpuSet vcpus, excluded;
	g_autoptr(GError) local = NULL;

	if (!vm || !vs_vm_check_shape(vm, &s->host, error))
		return FALSE;
	g_hash_table_add(s->touched, g_strdup(name)); /* acting from here */
	if (!vs_vm_pin(vm, &s->host, error))
		return FALSE;
	vs_host_vcpus_of(&s->host, &want->pcpus, &vcpus);
	vs_cpuset_clear(&excluded);
	for (guint i = 0; i < vm->vcpus->len; i++)
		if (!vs_cpuset_has(&vcpus, i))
			vs_cpuset_add(&excluded, i);
	if (!vs_cpuset_count(&vcpus)) {
		/* Owns no pCPU: parked. The agent cannot confine a guest to
		 * nothing, so every vCPU is throttled from the host. */
		if (!vs_vm_throttle(vm, &excluded, error))
			return FALSE;
		vs_emit(s, &(VsEvent){ .kind = VS_EV_PARKED, .vm = name });
		return TRUE;
	}
	if (mode == VS_MODE_ENFORCE)
		return enforce(s, vm, &excluded, want, error);
	if (coop(s, vm, &vcpus, want, &local))
		return TRUE;
	if (mode == VS_MODE_COOP || !may_fall_back(local, prev, want)) {
		g_propagate_error(error, g_steal_pointer(&local));
		return FALSE;
	}
	vs_emit(s, &(VsEvent){ .kind = VS_EV_FALLBACK,
			       .vm = name,
			       .message = local->message });
	return enforce(s, vm, &excluded, want, error);
}

/* ---- memory ------------------------------------------------------------ */

/* Before a shrink the guest (coop) drops the node from its memory nodes
 * so pages migrate first; after it, the node is given back. */
static void shrink_nodes(VsSession *s, VsVm *vm, const VsCpuSet *vcpus,
			 guint node, gboolean before)
{
	VsCpuSet nodes;
	g_autoptr(GError) local = NULL;

	vs_host_all_nodes(&s->host, &nodes);
	if (before)
		nodes.bits[node / 64] &= ~(1ULL << (node % 64));
	if (!vs_cpuset_count(&nodes) || agent_set(s, vm, vcpus, &nodes, &local))
		return;
	note(s, vm->conf->name, VS_EV_NOTE,
	     before ? "could not move pages off node %u first (%s); "
		      "shrinking anyway"
		    : "node %u not given back to the guest: %s",
	     node, local->message);
}

static gboolean partial(VsSession *s, VsVm *vm, guint n, guint64 got,
			VsLedgerVm *want, gboolean allow, GError **error)
{
	VsVmem *d;

	if (!allow)
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_PARTIAL,
				   "VM %s node %u: virtio-mem reached "
				   "%" G_GUINT64_FORMAT
				   " MiB of %" G_GUINT64_FORMAT " MiB in %d ms",
				   vm->conf->name, n, got >> 20,
				   want->mem[n] >> 20, s->cfg->mem_timeout_ms),
		       FALSE;
	/* Keep what the guest gave: request what it has, so QEMU, guest
	 * and ledger agree. */
	d = vs_vm_vmem_on(vm, n);
	if (!d || !vs_vm_mem_resize(vm, d, got, 2000, &got, error))
		return FALSE;
	vs_emit(s, &(VsEvent){ .kind = VS_EV_MEM_PARTIAL,
			       .vm = vm->conf->name,
			       .node = n,
			       .bytes = got,
			       .want = want->mem[n],
			       .elapsed_us = s->cfg->mem_timeout_ms * 1000LL });
	want->mem[n] = got;
	s->partial = TRUE;
	return TRUE;
}

static gboolean resize_node(VsSession *s, VsVm *vm, guint n, VsVmem *d,
			    VsLedgerVm *want, gboolean allow, guint64 *reached,
			    GError **error)
{
	VsCpuSet vcpus;
	gboolean talk;
	guint64 got = 0;

	vs_host_vcpus_of(&s->host, &want->pcpus, &vcpus);
	talk = want->mem[n] < d->size && want->mode == VS_MODE_COOP &&
	       vs_cpuset_count(&vcpus);
	if (talk)
		shrink_nodes(s, vm, &vcpus, n, TRUE);
	if (!vs_vm_mem_resize(vm, d, want->mem[n], s->cfg->mem_timeout_ms, &got,
			      error))
		return FALSE;
	*reached = got;
	if (talk)
		shrink_nodes(s, vm, &vcpus, n, FALSE);
	if (got != want->mem[n])
		return partial(s, vm, n, got, want, allow, error);
	vs_emit(s, &(VsEvent){ .kind = VS_EV_MEM,
			       .vm = vm->conf->name,
			       .node = n,
			       .bytes = got });
	return TRUE;
}

gboolean vs_apply_mem(VsSession *s, const char *name, VsLedgerVm *want,
		      gboolean allow_partial, guint64 reached[VS_MAX_NODES],
		      GError **error)
{
	VsVm *vm = vs_session_vm(s, name, error);

	if (!vm || !vs_vm_refresh_mem(vm, error))
		return FALSE;
	g_hash_table_add(s->touched, g_strdup(name));
	for (guint n = 0; n < s->host.n_nodes; n++) {
		VsVmem *d = vs_vm_vmem_on(vm, n);

		reached[n] = d ? d->size : 0;
		if (!d && want->mem[n])
			return g_set_error(error, VS_HOST_ERROR,
					   VS_HOST_ERROR_REFUSED,
					   "VM %s has no virtio-mem device on "
					   "node %u",
					   name, n),
			       FALSE;
		if (!d ||
		    (d->requested == want->mem[n] && d->size == want->mem[n]))
			continue;
		if (!resize_node(s, vm, n, d, want, allow_partial, &reached[n],
				 error))
			return FALSE;
	}
	return TRUE;
}

/* Weight and nice as the ledger entry says (idempotent: undo re-applies
 * the old entry, where 0 weight is the default). */
gboolean vs_apply_tune(VsSession *s, const char *name, VsLedgerVm *want,
		       GError **error)
{
	VsVm *vm = vs_session_vm(s, name, error);

	if (!vm)
		return FALSE;
	g_hash_table_add(s->touched, g_strdup(name));
	if (!vs_vm_set_weight(vm, want->weight, error) ||
	    !vs_vm_set_nice(vm, want->nice, error))
		return FALSE;
	note(s, name, VS_EV_NOTE, "weight %d, nice %d",
	     want->weight ? want->weight : 100, want->nice);
	return TRUE;
}
