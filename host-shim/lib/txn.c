// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Changing ownership: ledger before -> after through ordered steps, each
 * "make VM X's CPUs (or memory) match its entry in a ledger". Steps are
 * idempotent, so undoing is re-applying the before ledger to the steps
 * already taken, in reverse.
 *
 *   1. STATE/journal.json  <- {op, before, after, steps}   (intent)
 *   2. steps, in order (plan.c decides the order)
 *   3. STATE/ledger.json   <- after                        (commit)
 *   4. unlink journal
 *
 * A failure in 2 undoes the steps taken and removes the journal, unless a
 * VM could not be brought back because its agent did not answer while its
 * QEMU still runs: then the journal stays and `recover` (or vshared) tries
 * again until the guest agrees with the ledger. Only a VM whose QEMU is
 * gone is skipped. A process killed anywhere leaves the journal; the next
 * session rolls back to `before`, or, if the ledger already holds `after`
 * (killed between 3 and 4), just removes the journal.
 */
#include "vshare-host.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

/* Tests kill the process at a named point: VSHARE_TEST_CRASH=intent|
 * step1|step2|...|commit|undo|recover. */
static void crash_point(const char *name)
{
	const char *want = g_getenv("VSHARE_TEST_CRASH");

	if (want && !strcmp(want, name))
		raise(SIGKILL);
}

static char *journal_path(VsSession *s)
{
	return g_build_filename(s->cfg->state_dir, "journal.json", NULL);
}

static void journal_remove(VsSession *s)
{
	g_autofree char *path = journal_path(s);

	if (unlink(path) < 0 && errno != ENOENT)
		vs_emit(s,
			&(VsEvent){ .kind = VS_EV_NOTE,
				    .message = "cannot remove the journal" });
}

/* ---- sessions ------------------------------------------------------------ */

gboolean vs_session_open(VsSession *s, const VsConfig *c, int lock_fd,
			 VsEventFunc emit, gpointer data, GError **error)
{
	gboolean recovered;

	memset(s, 0, sizeof(*s));
	s->cfg = c;
	s->lock_fd = lock_fd;
	s->emit = emit;
	s->emit_data = data;
	s->vms = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
				       (GDestroyNotify)vs_vm_free);
	s->touched =
		g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	if (!vs_host_load(c, &s->host, error))
		return FALSE;
	s->ledger = vs_store_load(c, &s->host, error);
	if (!s->ledger)
		return FALSE;
	if (lock_fd < 0)
		return TRUE;
	if (!vs_session_recover(s, &recovered, error))
		return FALSE;
	return TRUE;
}

void vs_session_close(VsSession *s)
{
	vs_store_unlock(s->lock_fd);
	s->lock_fd = -1;
	g_clear_pointer(&s->ledger, vs_ledger_free);
	g_clear_pointer(&s->vms, g_hash_table_destroy);
	g_clear_pointer(&s->touched, g_hash_table_destroy);
	vs_host_clear(&s->host);
}

VsVm *vs_session_vm(VsSession *s, const char *name, GError **error)
{
	VsVm *vm = g_hash_table_lookup(s->vms, name);
	VsVmConf *conf;

	if (vm)
		return vm;
	conf = vs_registry_get(s->cfg, name, error);
	if (!conf)
		return NULL;
	vm = vs_vm_open(s->cfg, conf, error);
	if (!vm)
		return NULL;
	g_hash_table_insert(s->vms, g_strdup(name), vm);
	return vm;
}

/* ---- steps --------------------------------------------------------------- */

/* A VM absent from a ledger is unmanaged: all its CPUs, nothing held. */
static VsLedgerVm *entry_or_full(VsSession *s, VsLedger *l, const char *name,
				 VsLedgerVm *tmp)
{
	VsLedgerVm *v = vs_ledger_find(l, name);

	if (v)
		return v;
	memset(tmp, 0, sizeof(*tmp));
	tmp->name = (char *)name;
	tmp->mode = VS_MODE_COOP;
	tmp->pcpus = s->host.all;
	return tmp;
}

static gboolean apply_step(VsSession *s, VsLedger *l, VsLedger *prev,
			   const VsStep *st, VsMode mode, gboolean partial,
			   GError **error)
{
	VsLedgerVm tmp, ptmp;
	VsLedgerVm *want = entry_or_full(s, l, st->vm, &tmp);
	guint64 reached[VS_MAX_NODES];

	if (st->kind == VS_STEP_MEM)
		return vs_apply_mem(s, st->vm, want, partial, reached, error);
	if (st->kind == VS_STEP_TUNE)
		return vs_apply_tune(s, st->vm, want, error);
	return vs_apply_cpus(s, st->vm, want,
			     prev ? entry_or_full(s, prev, st->vm, &ptmp)
				  : NULL,
			     mode, error);
}

static gboolean qemu_gone(VsSession *s, const char *name, const GError *e)
{
	VsVm *vm = g_hash_table_lookup(s->vms, name);

	if (vs_error_is(e, VS_HOST_ERROR_GONE))
		return TRUE;
	return vm && !vs_vm_alive(vm);
}

static const char *step_name(const VsStep *st)
{
	return st->kind == VS_STEP_MEM	  ? "memory"
	       : st->kind == VS_STEP_TUNE ? "weight/nice"
					  : "CPUs";
}

/* Undo steps [0, upto] by re-applying @before, last first. FALSE when a
 * VM that still runs could not be brought back: the journal must stay. */
static gboolean undo(VsSession *s, VsLedger *before, const VsStep *steps,
		     gint upto, gboolean all, GError **error)
{
	gboolean ok = TRUE;

	for (gint i = upto; i >= 0; i--) {
		g_autoptr(GError) local = NULL;
		VsLedgerVm tmp;
		VsMode mode = entry_or_full(s, before, steps[i].vm, &tmp)->mode;

		/* A step that failed before it acted (the VM could not be
		 * opened, or its replies were refused) has nothing to undo.
		 * Recovery from a journal cannot know that: @all. */
		if (!all && !g_hash_table_contains(s->touched, steps[i].vm))
			continue;
		crash_point("undo");
		if (apply_step(s, before, NULL, &steps[i], mode, TRUE, &local))
			continue;
		if (vs_error_is(local, VS_HOST_ERROR_PARTIAL))
			continue; /* memory the guest keeps */
		if (qemu_gone(s, steps[i].vm, local)) {
			vs_emit(s, &(VsEvent){ .kind = VS_EV_UNDO_SKIPPED,
					       .vm = steps[i].vm,
					       .message = local->message });
			continue;
		}
		vs_emit(s, &(VsEvent){ .kind = VS_EV_UNDO_FAILED,
				       .vm = steps[i].vm,
				       .step = steps[i].kind,
				       .message = local->message });
		if (ok)
			g_propagate_prefixed_error(error,
						   g_steal_pointer(&local),
						   "VM %s %s: ", steps[i].vm,
						   step_name(&steps[i]));
		ok = FALSE;
	}
	return ok;
}

/* ---- journal ---------------------------------------------------------------- */

static gboolean journal_write(VsSession *s, VsPlan *p, VsLedger *before,
			      GError **error)
{
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(JsonNode) root = NULL;
	g_autofree char *text = NULL;
	g_autofree char *path = journal_path(s);

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "op");
	json_builder_add_string_value(b, p->op);
	json_builder_set_member_name(b, "pid");
	json_builder_add_int_value(b, getpid());
	json_builder_set_member_name(b, "before");
	json_builder_add_value(b, vs_ledger_to_json(before));
	json_builder_set_member_name(b, "after");
	json_builder_add_value(b, vs_ledger_to_json(p->after));
	json_builder_set_member_name(b, "steps");
	json_builder_begin_array(b);
	for (guint i = 0; i < p->steps->len; i++) {
		VsStep *st = &g_array_index(p->steps, VsStep, i);

		json_builder_begin_object(b);
		json_builder_set_member_name(b, "vm");
		json_builder_add_string_value(b, st->vm);
		json_builder_set_member_name(b, "kind");
		json_builder_add_string_value(b, vs_step_kind_name(st->kind));
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
	json_builder_end_object(b);
	root = json_builder_get_root(b);
	text = json_to_string(root, TRUE);
	return vs_write_private(path, text, error);
}

typedef struct {
	char *op;
	VsLedger *before, *after;
	GArray *steps; /* VsStep */
} Journal;

static void journal_free(Journal *j)
{
	if (!j)
		return;
	g_free(j->op);
	vs_ledger_free(j->before);
	vs_ledger_free(j->after);
	for (guint i = 0; j->steps && i < j->steps->len; i++)
		g_free(g_array_index(j->steps, VsStep, i).vm);
	if (j->steps)
		g_array_free(j->steps, TRUE);
	g_free(j);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Journal, journal_free)

static gboolean parse_step(JsonNode *n, VsStep *st)
{
	JsonObject *o =
		JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
	JsonNode *vm = o ? json_object_get_member(o, "vm") : NULL;
	JsonNode *kind = o ? json_object_get_member(o, "kind") : NULL;
	const char *k;

	if (!vm || !kind || json_node_get_value_type(vm) != G_TYPE_STRING ||
	    json_node_get_value_type(kind) != G_TYPE_STRING ||
	    !vs_name_valid(json_node_get_string(vm), NULL))
		return FALSE;
	k = json_node_get_string(kind);
	if (!vs_step_kind_parse(k, &st->kind))
		return FALSE;
	st->vm = g_strdup(json_node_get_string(vm));
	return TRUE;
}

/* Parse a journal's text; NULL (CORRUPT) when anything is off. */
static Journal *journal_parse(const char *text, GError **error)
{
	g_autoptr(JsonParser) p = json_parser_new();
	g_autoptr(Journal) j = g_new0(Journal, 1);
	JsonObject *o;
	JsonNode *op, *steps;
	JsonArray *a;

	j->steps = g_array_new(FALSE, TRUE, sizeof(VsStep));
	if (!json_parser_load_from_data(p, text, -1, NULL) ||
	    !json_parser_get_root(p) ||
	    !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p)))
		goto corrupt;
	o = json_node_get_object(json_parser_get_root(p));
	op = json_object_get_member(o, "op");
	steps = json_object_get_member(o, "steps");
	if (!op || json_node_get_value_type(op) != G_TYPE_STRING || !steps ||
	    !JSON_NODE_HOLDS_ARRAY(steps))
		goto corrupt;
	j->op = g_strdup(json_node_get_string(op));
	j->before =
		vs_ledger_from_json(json_object_get_member(o, "before"), NULL);
	j->after =
		vs_ledger_from_json(json_object_get_member(o, "after"), NULL);
	a = json_node_get_array(steps);
	if (!j->before || !j->after || json_array_get_length(a) > 64)
		goto corrupt;
	for (guint i = 0; i < json_array_get_length(a); i++) {
		VsStep st;

		if (!parse_step(json_array_get_element(a, i), &st))
			goto corrupt;
		g_array_append_val(j->steps, st);
	}
	return g_steal_pointer(&j);
corrupt:
	g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_CORRUPT,
		    "the journal is damaged");
	return NULL;
}

gboolean vs_journal_check(const char *text, GError **error)
{
	g_autoptr(Journal) j = journal_parse(text, error);

	return j != NULL;
}

/* ---- running a plan --------------------------------------------------------- */

static VsLedger *before_of(VsSession *s, VsPlan *p)
{
	VsLedger *before = vs_ledger_copy(s->ledger);

	/* VMs this change brings under management: undo restores them as
	 * they were (every pCPU, their memory). */
	for (guint i = 0; i < p->imported->vms->len; i++) {
		VsLedgerVm *v = g_ptr_array_index(p->imported->vms, i);
		VsLedgerVm *n = vs_ledger_find(before, v->name);

		if (n && !n->unmanaged)
			continue;
		if (!n) /* a tuned-only entry is kept, with its memory now */
			n = vs_ledger_add_vm(before, v->name);
		n->unmanaged = TRUE;
		n->pcpus = v->pcpus;
		memcpy(n->mem, v->mem, sizeof(n->mem));
	}
	return before;
}

static gboolean run_steps(VsSession *s, VsPlan *p, VsLedger *before,
			  GError **error)
{
	for (guint i = 0; i < p->steps->len; i++) {
		VsStep *st = &g_array_index(p->steps, VsStep, i);
		g_autofree char *point = g_strdup_printf("step%u", i + 1);
		g_autoptr(GError) local = NULL;
		g_autoptr(GError) undo_err = NULL;
		gint64 t0 = g_get_monotonic_time();

		if (apply_step(s, p->after, before, st, p->mode,
			       p->allow_partial, &local)) {
			vs_emit(s, &(VsEvent){ .kind = VS_EV_STEP,
					       .vm = st->vm,
					       .index = i + 1,
					       .step = st->kind,
					       .elapsed_us =
						       g_get_monotonic_time() -
						       t0 });
			crash_point(point);
			continue;
		}
		vs_emit(s, &(VsEvent){ .kind = VS_EV_STEP_FAILED,
				       .vm = st->vm,
				       .index = i + 1,
				       .step = st->kind,
				       .message = local->message });
		if (!undo(s, before, (VsStep *)p->steps->data, i, FALSE,
			  &undo_err)) {
			g_set_error(error, VS_HOST_ERROR,
				    VS_HOST_ERROR_UNREACHABLE,
				    "%s failed (%s) and the undo could not "
				    "finish (%s): the journal is kept; "
				    "`vsharectl recover` (or vshared) retries "
				    "once the VM answers",
				    p->op, local->message, undo_err->message);
			return FALSE;
		}
		journal_remove(s);
		if (vs_error_is(local, VS_HOST_ERROR_PARTIAL))
			local->code =
				VS_HOST_ERROR_FAILED; /* undone: no part */
		g_propagate_prefixed_error(error, g_steal_pointer(&local),
					   "%s undone: ", p->op);
		return FALSE;
	}
	return TRUE;
}

/* A journal an earlier change kept (its undo waits for a slow agent) is
 * finished first: a new intent must never replace it. */
static gboolean no_pending(VsSession *s, GError **error)
{
	g_autofree char *path = journal_path(s);
	gboolean recovered;

	if (!g_file_test(path, G_FILE_TEST_EXISTS))
		return TRUE;
	if (vs_session_recover(s, &recovered, error))
		return TRUE;
	g_prefix_error(error, "an interrupted change must be rolled back "
			      "first: ");
	return FALSE;
}

gboolean vs_txn_run(VsSession *s, VsPlan *p, GError **error)
{
	g_autoptr(VsLedger) before = NULL;

	if (s->lock_fd < 0)
		return vs_fail(error, VS_HOST_ERROR_BUSY,
			       "a change needs the ledger lock");
	if (!no_pending(s, error))
		return FALSE;
	before = before_of(s, p);
	if (!journal_write(s, p, before, error))
		return FALSE;
	g_hash_table_remove_all(s->touched);
	crash_point("intent");
	if (!run_steps(s, p, before, error))
		return FALSE;
	if (!vs_store_save(s->cfg, p->after, error))
		return FALSE; /* journal kept: recover rolls back */
	crash_point("commit");
	journal_remove(s);
	vs_ledger_free(s->ledger);
	s->ledger = vs_ledger_copy(p->after);
	return TRUE;
}

static gboolean import_vm(const char *name, guint64 mem[VS_MAX_NODES],
			  gpointer data, GError **error)
{
	VsSession *s = data;
	VsVm *vm = vs_session_vm(s, name, error);

	if (!vm || !vs_vm_check_shape(vm, &s->host, error))
		return FALSE;
	for (guint i = 0; i < vm->vmems->len; i++) {
		VsVmem *d = g_ptr_array_index(vm->vmems, i);

		if (mem[d->node] > G_MAXINT64 - d->requested)
			return g_set_error(error, VS_HOST_ERROR,
					   VS_HOST_ERROR_HOSTILE,
					   "VM %s: virtio-mem sizes overflow",
					   name),
			       FALSE;
		mem[d->node] += d->requested;
	}
	return TRUE;
}

gboolean vs_session_change(VsSession *s, const VsChangeReq *req, GError **error)
{
	g_autoptr(VsPlan) p =
		vs_plan_make(s->ledger, &s->host, req, import_vm, s, error);

	return p && vs_txn_run(s, p, error);
}

/* ---- recovery ---------------------------------------------------------------- */

static gboolean roll_back(VsSession *s, Journal *j, GError **error)
{
	vs_emit(s, &(VsEvent){ .kind = VS_EV_RECOVER, .op = j->op });
	crash_point("recover");
	if (!undo(s, j->before, (VsStep *)j->steps->data,
		  (gint)j->steps->len - 1, TRUE, error)) {
		g_prefix_error(error, "recover: the journal is kept: ");
		return FALSE;
	}
	journal_remove(s);
	return TRUE;
}

gboolean vs_session_recover(VsSession *s, gboolean *recovered, GError **error)
{
	g_autofree char *path = journal_path(s);
	g_autofree char *text = NULL;
	g_autoptr(Journal) j = NULL;

	*recovered = FALSE;
	if (!g_file_test(path, G_FILE_TEST_EXISTS))
		return TRUE;
	text = vs_read_bounded(path, 64 * 1024 * 1024, error);
	if (!text)
		return FALSE;
	j = journal_parse(text, NULL);
	if (!j)
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_CORRUPT,
				   "%s is damaged: refusing to guess. Check "
				   "the VMs with `vsharectl status`, then "
				   "remove the journal by hand",
				   path),
		       FALSE;
	*recovered = TRUE;
	if (s->ledger->generation == j->after->generation) {
		vs_emit(s, &(VsEvent){ .kind = VS_EV_RECOVER,
				       .op = j->op,
				       .committed = TRUE });
		journal_remove(s);
		return TRUE;
	}
	if (s->ledger->generation != j->before->generation)
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_CORRUPT,
				   "%s belongs to ledger generation "
				   "%" G_GUINT64_FORMAT " but the ledger is at "
				   "%" G_GUINT64_FORMAT ": refusing to guess",
				   path, j->before->generation,
				   s->ledger->generation),
		       FALSE;
	return roll_back(s, j, error);
}
