// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Changing ownership: ledger before -> after through ordered steps, each
 * "make VM X's CPUs (or memory) match its entry in a ledger". Steps are
 * idempotent, so undoing is re-applying the before ledger to the steps
 * already taken, in reverse.
 *
 *   1. STATE/journal.json  <- {op, before, after, steps}   (intent)
 *   2. steps, in order (a lend: giver memory, giver CPUs, receiver CPUs,
 *      receiver memory: a guest needs its CPUs to give or take memory)
 *   3. STATE/ledger.json   <- after                        (commit)
 *   4. unlink journal
 *
 * A failure in 2 undoes the steps taken and removes the journal. A
 * vsharectl killed anywhere leaves the journal; the next run (or
 * `vsharectl recover`) rolls back to `before`, or, if the ledger already
 * holds `after` (killed between 3 and 4), just removes the journal.
 */
#include "vsharectl.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

/* Tests kill vsharectl at a named point: VSHARE_TEST_CRASH=intent|step1|
 * step2|...|commit. */
static void crash_point(const char *name)
{
	const char *want = g_getenv("VSHARE_TEST_CRASH");

	if (want && !strcmp(want, name))
		raise(SIGKILL);
}

void vs_vcpus_of(const VsHost *host, const VsCpuSet *pcpus, VsCpuSet *vcpus)
{
	vs_cpuset_clear(vcpus);
	for (guint i = 0; i < host->pcpus->len; i++)
		if (vs_cpuset_has(pcpus, g_array_index(host->pcpus, guint, i)))
			vs_cpuset_add(vcpus, i);
}

gboolean vs_ctx_init(VsCtx *ctx, const VsOpts *o, gboolean lock, GError **error)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->o = o;
	ctx->lock_fd = -1;
	ctx->log = g_string_new(NULL);
	ctx->vms = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					 (GDestroyNotify)vs_vm_free);
	if (!vs_host_load(o, &ctx->host, error))
		return FALSE;
	if (lock) {
		ctx->lock_fd = vs_state_lock(o, o->lock_wait_ms, error);
		if (ctx->lock_fd < 0)
			return FALSE;
	}
	ctx->ledger = vs_ledger_load(o, &ctx->host, error);
	return ctx->ledger != NULL;
}

void vs_ctx_clear(VsCtx *ctx)
{
	if (ctx->lock_fd >= 0)
		close(ctx->lock_fd);
	g_clear_pointer(&ctx->ledger, vs_ledger_free);
	g_clear_pointer(&ctx->imported, vs_ledger_free);
	g_clear_pointer(&ctx->vms, g_hash_table_destroy);
	if (ctx->log)
		g_string_free(ctx->log, TRUE);
	ctx->log = NULL;
	vs_host_clear(&ctx->host);
}

VsVm *vs_ctx_vm(VsCtx *ctx, const char *name, GError **error)
{
	VsVm *vm = g_hash_table_lookup(ctx->vms, name);
	VsVmConf *conf;

	if (vm)
		return vm;
	conf = vs_registry_get(ctx->o, name, error);
	if (!conf)
		return NULL;
	vm = vs_vm_open(conf, error);
	if (!vm)
		return NULL;
	g_hash_table_insert(ctx->vms, g_strdup(name), vm);
	return vm;
}

/* ---- steps ------------------------------------------------------------ */

/* A guest may use memory of every node: each holds boot memory the VM
 * keeps wherever its vCPUs are. Only a shrink drops a node, for its
 * duration, so pages leave the virtio-mem blocks first. */
static void all_nodes(const VsHost *host, VsCpuSet *nodes)
{
	vs_cpuset_clear(nodes);
	for (guint n = 0; n < host->n_nodes; n++)
		vs_cpuset_add(nodes, n);
}

/* A VM absent from a ledger is unmanaged: all its CPUs, nothing held. */
static const VsLedgerVm *entry_or_full(VsCtx *ctx, VsLedger *l,
				       const char *name, VsLedgerVm *tmp)
{
	VsLedgerVm *v = vs_ledger_find(l, name);

	if (v)
		return v;
	memset(tmp, 0, sizeof(*tmp));
	tmp->name = (char *)name;
	tmp->mode = g_strdup("coop"); /* caller frees when given back tmp */
	for (guint i = 0; i < ctx->host.pcpus->len; i++)
		vs_cpuset_add(&tmp->pcpus,
			      g_array_index(ctx->host.pcpus, guint, i));
	return tmp;
}

static gint64 member_us(JsonObject *o, const char *name)
{
	return o && json_object_has_member(o, name)
		       ? json_object_get_int_member(o, name)
		       : -1;
}

/* "a: guest confined to vCPUs 0, nodes 0-1 (agent 95.1 ms: prepare 20.1,
 * cgroup 30.2, knobs 40.3, journal 4.5; 120.4 ms with connect and sync)" */
static void log_agent_reply(VsCtx *ctx, const char *name, const char *cpus,
			    const char *mems, JsonNode *r, gint64 t0)
{
	JsonObject *o =
		JSON_NODE_HOLDS_OBJECT(r) ? json_node_get_object(r) : NULL;
	JsonObject *st = o && json_object_has_member(o, "steps-us")
				 ? json_object_get_object_member(o, "steps-us")
				 : NULL;

	g_string_append_printf(
		ctx->log,
		"  %s: guest confined to vCPUs %s, nodes %s (agent %.1f ms: "
		"prepare %.1f, cgroup %.1f, knobs %.1f, journal %.1f; %.1f ms "
		"with connect and sync)\n",
		name, cpus, mems, member_us(o, "elapsed-us") / 1000.0,
		member_us(st, "prepare") / 1000.0,
		member_us(st, "cgroup") / 1000.0,
		member_us(st, "knobs") / 1000.0,
		member_us(st, "journal") / 1000.0,
		(g_get_monotonic_time() - t0) / 1000.0);
}

static gboolean agent_set(VsCtx *ctx, VsVm *vm, const VsCpuSet *vcpus,
			  const VsCpuSet *mems, GError **error)
{
	gint64 t0 = g_get_monotonic_time();
	g_autoptr(VsConn) a = vs_vm_agent(vm, ctx->o->agent_timeout_ms, error);
	g_autoptr(JsonObject) args = json_object_new();
	g_autofree char *c = vs_cpuset_format(vcpus);
	g_autofree char *m = vs_cpuset_format(mems);
	g_autoptr(JsonNode) r = NULL;

	if (!a)
		return FALSE;
	json_object_set_string_member(args, "cpus", c);
	json_object_set_string_member(args, "mems", m);
	/* --timeout decides whether the agent is alive (the sync above);
	 * the change itself may migrate memory, slow under TCG. */
	r = vs_agent_call(a, "vshare-set-allocation", json_object_ref(args),
			  MAX(ctx->o->agent_timeout_ms, VS_AGENT_CHANGE_MS),
			  error);
	if (!r)
		return FALSE;
	log_agent_reply(ctx, vm->conf->name, c, m, r, t0);
	return TRUE;
}

static gboolean agent_unreachable(const GError *e)
{
	return e->domain == G_IO_ERROR;
}

/* Make VM @name's CPUs match @want. @mode: "coop", "enforce" or "auto"
 * (coop, then enforce when the agent does not answer). The mode used is
 * stored back into @want. */
static gboolean apply_cpus(VsCtx *ctx, const char *name, VsLedgerVm *want,
			   const char *mode, GError **error)
{
	VsVm *vm = vs_ctx_vm(ctx, name, error);
	VsCpuSet vcpus, nodes, excluded, none;
	g_autoptr(GError) local = NULL;

	if (!vm || !vs_vm_check_shape(vm, &ctx->host, error) ||
	    !vs_vm_pin(vm, &ctx->host, error))
		return FALSE;
	vs_vcpus_of(&ctx->host, &want->pcpus, &vcpus);
	all_nodes(&ctx->host, &nodes);
	vs_cpuset_clear(&excluded);
	vs_cpuset_clear(&none);
	for (guint i = 0; i < vm->vcpus->len; i++)
		if (!vs_cpuset_has(&vcpus, i))
			vs_cpuset_add(&excluded, i);
	if (!vs_cpuset_count(&vcpus)) {
		/* Owns no pCPU: parked. The agent cannot confine a guest to
		 * nothing, so every vCPU is throttled from the host. */
		if (!vs_throttle_apply(vm, &excluded, error))
			return FALSE;
		g_string_append_printf(ctx->log,
				       "  %s: owns no pCPU: parked, every vCPU "
				       "throttled from the host\n",
				       name);
		return TRUE;
	}
	if (strcmp(mode, "enforce")) {
		/* Thaw every vCPU while the guest confines itself: with
		 * some vCPUs throttled, the guest kernel's cross-CPU waits
		 * (RCU grace periods, stop_machine to migrate a running
		 * task) stretch to seconds (measured: a parked receiver
		 * took 1.7-32 s instead of ~0.1 s). The excluded vCPUs
		 * run on pCPUs they do not own only until the agent has
		 * moved the guest off them, tens of milliseconds. */
		if (strncmp(vs_throttle_backend(), "none", 4) &&
		    !vs_throttle_apply(vm, &none, error))
			return FALSE;
		if (agent_set(ctx, vm, &vcpus, &nodes, &local)) {
			g_free(want->mode);
			want->mode = g_strdup("coop");
			return TRUE;
		}
		if (!strcmp(mode, "coop") || !agent_unreachable(local)) {
			g_propagate_error(error, g_steal_pointer(&local));
			return FALSE;
		}
		g_string_append_printf(ctx->log,
				       "  %s: agent did not answer (%s): "
				       "enforcing from the host\n",
				       name, local->message);
	}
	if (!vs_throttle_apply(vm, &excluded, error))
		return FALSE;
	g_free(want->mode);
	want->mode = g_strdup("enforce");
	{
		g_autofree char *e = vs_cpuset_format(&excluded);

		g_string_append_printf(ctx->log,
				       "  %s: vCPUs %s throttled from the host "
				       "(enforce)\n",
				       name, *e ? e : "none");
	}
	return TRUE;
}

/* Make VM @name's virtio-mem sizes match @want. Before a shrink the guest
 * (coop) drops the node from its memory nodes so pages migrate first. */
static gboolean apply_mem(VsCtx *ctx, const char *name, VsLedgerVm *want,
			  guint64 reached[VS_MAX_NODES], GError **error)
{
	VsVm *vm = vs_ctx_vm(ctx, name, error);
	VsCpuSet vcpus, nodes;

	if (!vm || !vs_vm_refresh_mem(vm, error))
		return FALSE;
	vs_vcpus_of(&ctx->host, &want->pcpus, &vcpus);
	all_nodes(&ctx->host, &nodes);
	for (guint n = 0; n < ctx->host.n_nodes; n++) {
		VsVmem *d = vs_vm_vmem_on(vm, n);
		gboolean shrink;
		guint64 got = 0;

		reached[n] = d ? d->size : 0;
		if (!d) {
			if (want->mem[n])
				return g_set_error(error, VSC_ERROR,
						   VS_EXIT_REFUSED,
						   "VM %s has no virtio-mem "
						   "device on node %u",
						   name, n),
				       FALSE;
			continue;
		}
		if (d->requested == want->mem[n] && d->size == want->mem[n])
			continue;
		shrink = want->mem[n] < d->size;
		if (shrink && !strcmp(want->mode, "coop") &&
		    vs_cpuset_count(&vcpus)) {
			VsCpuSet fewer = nodes;
			g_autoptr(GError) local = NULL;

			fewer.bits[n / 64] &= ~(1ULL << (n % 64));
			if (vs_cpuset_count(&fewer) &&
			    !agent_set(ctx, vm, &vcpus, &fewer, &local))
				g_string_append_printf(
					ctx->log,
					"  %s: could not move pages off node "
					"%u first (%s); shrinking anyway\n",
					name, n, local->message);
		}
		if (!vs_vm_mem_resize(vm, d, want->mem[n],
				      ctx->o->mem_timeout_ms, &got, error))
			return FALSE;
		reached[n] = got;
		if (shrink && !strcmp(want->mode, "coop") &&
		    vs_cpuset_count(&vcpus)) {
			g_autoptr(GError) local = NULL;

			if (!agent_set(ctx, vm, &vcpus, &nodes, &local))
				g_string_append_printf(
					ctx->log,
					"  %s: node %u not given "
					"back to the guest: %s\n",
					name, n, local->message);
		}
		if (got != want->mem[n] && ctx->allow_partial) {
			/* Keep what the guest gave: request what it has, so
			 * QEMU, guest and ledger agree. */
			d = vs_vm_vmem_on(vm, n);
			if (!d ||
			    !vs_vm_mem_resize(vm, d, got, 2000, &got, error))
				return FALSE;
			g_string_append_printf(
				ctx->log,
				"  %s: node %u virtio-mem reached "
				"only %" G_GUINT64_FORMAT
				" of %" G_GUINT64_FORMAT
				" MiB in %d ms; request set to "
				"what was reached\n",
				name, n, got >> 20, want->mem[n] >> 20,
				ctx->o->mem_timeout_ms);
			want->mem[n] = got;
			ctx->partial = TRUE;
			continue;
		}
		if (got != want->mem[n])
			return g_set_error(error, VSC_ERROR, VS_EXIT_PARTIAL,
					   "VM %s node %u: virtio-mem reached "
					   "%" G_GUINT64_FORMAT
					   " MiB of %" G_GUINT64_FORMAT
					   " MiB in %d ms",
					   name, n, got >> 20,
					   want->mem[n] >> 20,
					   ctx->o->mem_timeout_ms),
			       FALSE;
		g_string_append_printf(
			ctx->log,
			"  %s: node %u virtio-mem now %" G_GUINT64_FORMAT
			" MiB\n",
			name, n, got >> 20);
	}
	return TRUE;
}

static gboolean apply_step(VsCtx *ctx, VsLedger *l, const VsStep *s,
			   const char *mode, guint64 reached[VS_MAX_NODES],
			   GError **error)
{
	VsLedgerVm tmp;
	VsLedgerVm *want = (VsLedgerVm *)entry_or_full(ctx, l, s->vm, &tmp);
	guint64 dummy[VS_MAX_NODES];
	g_autofree char *keep_mode = g_strdup(want->mode);
	gboolean ok;

	if (s->kind == VS_STEP_MEM)
		ok = apply_mem(ctx, s->vm, want, reached ? reached : dummy,
			       error);
	else
		ok = apply_cpus(ctx, s->vm, want, mode ? mode : keep_mode,
				error);
	if (want == &tmp)
		g_free(tmp.mode);
	return ok;
}

/* ---- journal ------------------------------------------------------------ */

static char *journal_path(VsCtx *ctx)
{
	return g_build_filename(ctx->o->state_dir, "journal.json", NULL);
}

static gboolean journal_write(VsCtx *ctx, const char *op, VsLedger *before,
			      VsLedger *after, const VsStep *steps, guint n,
			      GError **error)
{
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(JsonNode) root = NULL;
	g_autofree char *text = NULL;
	g_autofree char *path = journal_path(ctx);

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "op");
	json_builder_add_string_value(b, op);
	json_builder_set_member_name(b, "pid");
	json_builder_add_int_value(b, getpid());
	json_builder_set_member_name(b, "before");
	json_builder_add_value(b, vs_ledger_to_json(before));
	json_builder_set_member_name(b, "after");
	json_builder_add_value(b, vs_ledger_to_json(after));
	json_builder_set_member_name(b, "steps");
	json_builder_begin_array(b);
	for (guint i = 0; i < n; i++) {
		json_builder_begin_object(b);
		json_builder_set_member_name(b, "vm");
		json_builder_add_string_value(b, steps[i].vm);
		json_builder_set_member_name(b, "kind");
		json_builder_add_string_value(
			b, steps[i].kind == VS_STEP_MEM ? "mem" : "cpus");
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
	json_builder_end_object(b);
	root = json_builder_get_root(b);
	text = json_to_string(root, TRUE);
	return vs_write_atomic(path, text, error);
}

static void journal_remove(VsCtx *ctx)
{
	g_autofree char *path = journal_path(ctx);

	if (unlink(path) < 0 && errno != ENOENT)
		g_warning("cannot remove %s: %s", path, g_strerror(errno));
}

/* Undo steps [0, upto] by re-applying @before, last first. */
static gboolean undo(VsCtx *ctx, VsLedger *before, const VsStep *steps,
		     gint upto, GError **error)
{
	gboolean ok = TRUE;

	for (gint i = upto; i >= 0; i--) {
		g_autoptr(GError) local = NULL;
		VsLedgerVm tmp;
		const VsLedgerVm *b =
			entry_or_full(ctx, before, steps[i].vm, &tmp);
		g_autofree char *mode = g_strdup(b->mode);

		if (b == &tmp)
			g_free(tmp.mode);
		if (!apply_step(ctx, before, &steps[i], mode, NULL, &local)) {
			if (local->domain == VSC_ERROR &&
			    local->code == VS_EXIT_PARTIAL)
				continue; /* memory the guest keeps */
			if (local->domain == G_IO_ERROR) {
				/* QEMU gone or agent silent: nothing we can
				 * restore there; say so and go on. */
				g_string_append_printf(
					ctx->log, "  undo %s skipped: %s\n",
					steps[i].vm, local->message);
				continue;
			}
			g_string_append_printf(
				ctx->log, "  undo %s %s failed: %s\n",
				steps[i].vm,
				steps[i].kind == VS_STEP_MEM ? "memory"
							     : "CPUs",
				local->message);
			if (ok)
				g_propagate_error(error,
						  g_steal_pointer(&local));
			ok = FALSE;
		}
	}
	return ok;
}

gboolean vs_change(VsCtx *ctx, const char *op, VsLedger *after,
		   const VsStep *steps, guint n_steps, const char *auto_mode,
		   GError **error)
{
	g_autoptr(VsLedger) before = vs_ledger_copy(ctx->ledger);
	g_autoptr(GError) local = NULL;

	/* VMs this change brings under management: undo restores them as
	 * they were (every pCPU, their memory). */
	for (guint i = 0; ctx->imported && i < ctx->imported->vms->len; i++) {
		VsLedgerVm *v = g_ptr_array_index(ctx->imported->vms, i);
		VsLedgerVm *n;

		if (vs_ledger_find(before, v->name))
			continue;
		n = vs_ledger_add_vm(before, v->name);
		n->unmanaged = TRUE;
		n->pcpus = v->pcpus;
		memcpy(n->mem, v->mem, sizeof(n->mem));
	}
	after->generation = before->generation + 1;
	if (!vs_ledger_validate(after, &ctx->host, error))
		return FALSE;
	if (!journal_write(ctx, op, before, after, steps, n_steps, error))
		return FALSE;
	crash_point("intent");
	for (guint i = 0; i < n_steps; i++) {
		g_autofree char *point = g_strdup_printf("step%u", i + 1);
		guint64 reached[VS_MAX_NODES] = { 0 };
		const char *mode =
			steps[i].kind == VS_STEP_CPUS ? auto_mode : NULL;

		gint64 t0 = g_get_monotonic_time();

		if (!apply_step(ctx, after, &steps[i], mode, reached, &local)) {
			g_autoptr(GError) undo_err = NULL;

			g_string_append_printf(
				ctx->log, "  step %u failed: %s; undoing\n",
				i + 1, local->message);
			if (!undo(ctx, before, steps, i, &undo_err)) {
				g_set_error(error, VSC_ERROR, VS_EXIT_FAILED,
					    "%s failed (%s) and the undo "
					    "failed too (%s): the journal is "
					    "kept; run `vsharectl recover` "
					    "once the VM is reachable",
					    op, local->message,
					    undo_err->message);
				return FALSE;
			}
			journal_remove(ctx);
			g_propagate_prefixed_error(error,
						   g_steal_pointer(&local),
						   "%s undone: ", op);
			return FALSE;
		}
		g_string_append_printf(ctx->log, "  step %u (%s %s): %.1f ms\n",
				       i + 1, steps[i].vm,
				       steps[i].kind == VS_STEP_MEM ? "memory"
								    : "CPUs",
				       (g_get_monotonic_time() - t0) / 1000.0);
		crash_point(point);
	}
	if (!vs_ledger_save(ctx->o, after, error))
		return FALSE; /* journal kept: recover rolls back */
	crash_point("commit");
	journal_remove(ctx);
	vs_ledger_free(ctx->ledger);
	ctx->ledger = vs_ledger_copy(after);
	return TRUE;
}

/* ---- recovery ------------------------------------------------------------ */

static gboolean parse_steps(JsonArray *a, GArray *steps, GPtrArray *names,
			    GError **error)
{
	for (guint i = 0; i < json_array_get_length(a); i++) {
		JsonObject *o = json_array_get_object_element(a, i);
		const char *vm =
			o && json_object_has_member(o, "vm")
				? json_object_get_string_member(o, "vm")
				: NULL;
		const char *kind =
			o && json_object_has_member(o, "kind")
				? json_object_get_string_member(o, "kind")
				: NULL;
		VsStep s;

		if (!vm || !kind || !vs_name_valid(vm, NULL)) {
			g_set_error(error, VSC_ERROR, VS_EXIT_CORRUPT,
				    "journal: bad step %u", i);
			return FALSE;
		}
		g_ptr_array_add(names, g_strdup(vm));
		s.vm = g_ptr_array_index(names, names->len - 1);
		s.kind = !strcmp(kind, "mem") ? VS_STEP_MEM : VS_STEP_CPUS;
		g_array_append_val(steps, s);
	}
	return TRUE;
}

gboolean vs_recover(VsCtx *ctx, gboolean *recovered, GError **error)
{
	g_autofree char *path = journal_path(ctx);
	g_autofree char *text = NULL;
	g_autoptr(JsonParser) p = json_parser_new();
	g_autoptr(VsLedger) before = NULL;
	g_autoptr(VsLedger) after = NULL;
	g_autoptr(GArray) steps = g_array_new(FALSE, FALSE, sizeof(VsStep));
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
	JsonObject *o;

	*recovered = FALSE;
	if (!g_file_test(path, G_FILE_TEST_EXISTS))
		return TRUE;
	text = vs_read_file(path, error);
	if (!text)
		return FALSE;
	if (!json_parser_load_from_data(p, text, -1, NULL) ||
	    !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p)))
		goto corrupt;
	o = json_node_get_object(json_parser_get_root(p));
	if (!json_object_has_member(o, "before") ||
	    !json_object_has_member(o, "after") ||
	    !json_object_has_member(o, "steps") ||
	    !JSON_NODE_HOLDS_ARRAY(json_object_get_member(o, "steps")))
		goto corrupt;
	before = vs_ledger_from_json(json_object_get_member(o, "before"), NULL);
	after = vs_ledger_from_json(json_object_get_member(o, "after"), NULL);
	if (!before || !after ||
	    !parse_steps(json_object_get_array_member(o, "steps"), steps, names,
			 NULL))
		goto corrupt;
	*recovered = TRUE;
	if (ctx->ledger->generation == after->generation) {
		g_string_append_printf(ctx->log,
				       "recover: '%s' had committed; "
				       "journal removed\n",
				       json_object_get_string_member(o, "op"));
		journal_remove(ctx);
		return TRUE;
	}
	if (ctx->ledger->generation != before->generation) {
		g_set_error(error, VSC_ERROR, VS_EXIT_CORRUPT,
			    "%s belongs to ledger generation %" G_GUINT64_FORMAT
			    " but the ledger is at %" G_GUINT64_FORMAT
			    ": refusing to guess",
			    path, before->generation, ctx->ledger->generation);
		return FALSE;
	}
	g_string_append_printf(ctx->log,
			       "recover: '%s' was interrupted; rolling back\n",
			       json_object_get_string_member(o, "op"));
	if (!undo(ctx, before, (VsStep *)steps->data, (gint)steps->len - 1,
		  error)) {
		g_prefix_error(error, "recover: ");
		return FALSE;
	}
	journal_remove(ctx);
	return TRUE;
corrupt:
	g_set_error(error, VSC_ERROR, VS_EXIT_CORRUPT,
		    "%s is damaged: refusing to guess. Check the VMs with "
		    "`vsharectl status`, then remove the journal by hand",
		    path);
	return FALSE;
}
