// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The planner: (ledger, host layout, request) -> (new ledger, ordered
 * steps), or a refusal that says why. Pure: it reads no file and touches no
 * VM; a VM the ledger does not know yet is described by the caller's
 * import function. The CLI and the daemon (and its policies) plan through
 * here, so every change is refused or allowed by the same rules.
 */
#include "vshare-host.h"

#include <string.h>

void vs_plan_free(VsPlan *p)
{
	if (!p)
		return;
	vs_ledger_free(p->after);
	vs_ledger_free(p->imported);
	for (guint i = 0; p->steps && i < p->steps->len; i++)
		g_free(g_array_index(p->steps, VsStep, i).vm);
	if (p->steps)
		g_array_free(p->steps, TRUE);
	g_free(p);
}

static const char *const step_names[] = {
	[VS_STEP_CPUS] = "cpus",
	[VS_STEP_MEM] = "mem",
	[VS_STEP_TUNE] = "tune",
};

const char *vs_step_kind_name(VsStepKind k)
{
	return k < G_N_ELEMENTS(step_names) ? step_names[k] : "?";
}

gboolean vs_step_kind_parse(const char *s, VsStepKind *k)
{
	for (guint i = 0; i < G_N_ELEMENTS(step_names); i++)
		if (!g_strcmp0(s, step_names[i])) {
			*k = i;
			return TRUE;
		}
	return FALSE;
}

static void add_step(VsPlan *p, const char *vm, VsStepKind kind)
{
	VsStep s = { g_strdup(vm), kind };

	g_array_append_val(p->steps, s);
}

/* Bring a VM into the ledger: it holds what its virtio-mem devices hold;
 * undo gives it back every pCPU. */
static VsLedgerVm *manage(VsPlan *p, const VsHost *host, const char *name,
			  VsImportFunc import, gpointer data, GError **error)
{
	guint64 mem[VS_MAX_NODES] = { 0 };
	VsLedgerVm *v = vs_ledger_find(p->after, name);
	VsLedgerVm *was;

	if (v && !v->unmanaged)
		return v;
	if (!import) {
		vs_fail(error, VS_HOST_ERROR_REFUSED,
			"VM %s is not managed yet", name);
		return NULL;
	}
	if (!import(name, mem, data, error))
		return NULL;
	if (!v) /* a tuned-only entry keeps its weight and nice */
		v = vs_ledger_add_vm(p->after, name);
	v->unmanaged = FALSE;
	v->mode = VS_MODE_COOP;
	vs_cpuset_clear(&v->pcpus);
	memcpy(v->mem, mem, sizeof(mem));
	was = vs_ledger_add_vm(p->imported, name);
	was->unmanaged = TRUE;
	was->pcpus = host->all;
	memcpy(was->mem, mem, sizeof(mem));
	return v;
}

static void set_mode(VsLedgerVm *v, VsMode m)
{
	if (m != VS_MODE_AUTO)
		v->mode = m;
}

static gboolean check_pcpus(const VsHost *host, const VsCpuSet *set,
			    GError **error)
{
	int bad = vs_cpuset_first_outside(set, &host->all);
	g_autofree char *all = NULL;

	if (bad < 0)
		return TRUE;
	all = vs_cpuset_format(&host->all);
	return vs_fail(error, VS_HOST_ERROR_USAGE,
		       "pCPU %d does not exist (host pCPUs: %s)", bad, all);
}

static gboolean plan_cpus(VsPlan *p, const VsHost *host, const VsChangeReq *r,
			  VsImportFunc import, gpointer data, GError **error)
{
	VsLedgerVm *v;

	if (!check_pcpus(host, &r->cpus, error))
		return FALSE;
	for (guint c = 0; c < VS_MAX_CPUS; c++) {
		const char *owner = vs_cpuset_has(&r->cpus, c)
					    ? vs_ledger_owner(p->after, c)
					    : NULL;

		if (owner && strcmp(owner, r->vm))
			return vs_fail(
				error, VS_HOST_ERROR_REFUSED,
				"pCPU %u is owned by VM %s: move it with "
				"`vsharectl lend --from %s --to %s "
				"--cpus %u`",
				c, owner, owner, r->vm, c);
	}
	v = manage(p, host, r->vm, import, data, error);
	if (!v)
		return FALSE;
	v->pcpus = r->cpus;
	set_mode(v, r->mode);
	add_step(p, r->vm, VS_STEP_CPUS);
	return TRUE;
}

static gboolean plan_mem(VsPlan *p, const VsHost *host, const VsChangeReq *r,
			 GError **error)
{
	VsLedgerVm *v = vs_ledger_find(p->after, r->vm);

	if (r->node < 0 || (guint)r->node >= host->n_nodes ||
	    !vs_cpuset_has(&host->nodes, r->node))
		return vs_fail(error, VS_HOST_ERROR_USAGE,
			       "the host has no node %d", r->node);
	if (!v || v->unmanaged)
		return vs_fail(error, VS_HOST_ERROR_REFUSED,
			       "VM %s is not managed yet: give it pCPUs first "
			       "(`vsharectl cpus %s --set LIST`)",
			       r->vm, r->vm);
	v->mem[r->node] = r->bytes;
	p->allow_partial = TRUE;
	add_step(p, r->vm, VS_STEP_MEM);
	return TRUE;
}

static gboolean lend_check(const VsPlan *p, const VsHost *host,
			   const VsChangeReq *r, GError **error)
{
	VsLedgerVm *a = vs_ledger_find(p->after, r->from);
	g_autofree char *own =
		a && !a->unmanaged ? vs_cpuset_format(&a->pcpus) : NULL;
	g_autofree char *want = vs_cpuset_format(&r->cpus);

	if (!strcmp(r->from, r->to))
		return vs_fail(error, VS_HOST_ERROR_USAGE,
			       "lend: --from and --to name the same VM");
	if (!vs_cpuset_count(&r->cpus))
		return vs_fail(error, VS_HOST_ERROR_USAGE,
			       "lend: no pCPU to move");
	if (!check_pcpus(host, &r->cpus, error))
		return FALSE;
	if (!a || a->unmanaged || !vs_cpuset_is_subset(&r->cpus, &a->pcpus))
		return vs_fail(error, VS_HOST_ERROR_REFUSED,
			       "VM %s does not own pCPUs %s (it owns %s)",
			       r->from, want, own && *own ? own : "none");
	if (r->node < 0)
		return TRUE;
	if ((guint)r->node >= host->n_nodes ||
	    !vs_cpuset_has(&host->nodes, r->node))
		return vs_fail(error, VS_HOST_ERROR_USAGE,
			       "the host has no node %d", r->node);
	if (a->mem[r->node] < r->bytes)
		return vs_fail(error, VS_HOST_ERROR_REFUSED,
			       "VM %s holds %" G_GUINT64_FORMAT
			       " MiB on node %d, cannot lend %" G_GUINT64_FORMAT
			       " MiB",
			       r->from, a->mem[r->node] >> 20, r->node,
			       r->bytes >> 20);
	return TRUE;
}

/* Giver first, receiver second. A guest needs CPUs to give or take
 * memory: the giver shrinks before it loses pCPUs (it may be left
 * parked), the receiver grows after it got them. */
static gboolean plan_lend(VsPlan *p, const VsHost *host, const VsChangeReq *r,
			  VsImportFunc import, gpointer data, GError **error)
{
	VsLedgerVm *a, *b;

	if (!lend_check(p, host, r, error))
		return FALSE;
	b = manage(p, host, r->to, import, data, error);
	a = vs_ledger_find(p->after, r->from); /* the array may have grown */
	if (!b)
		return FALSE;
	for (guint w = 0; w < G_N_ELEMENTS(a->pcpus.bits); w++) {
		a->pcpus.bits[w] &= ~r->cpus.bits[w];
		b->pcpus.bits[w] |= r->cpus.bits[w];
	}
	set_mode(a, r->mode);
	set_mode(b, r->mode);
	if (r->node >= 0) {
		a->mem[r->node] -= r->bytes;
		b->mem[r->node] += r->bytes;
		add_step(p, r->from, VS_STEP_MEM);
	}
	add_step(p, r->from, VS_STEP_CPUS);
	add_step(p, r->to, VS_STEP_CPUS);
	if (r->node >= 0)
		add_step(p, r->to, VS_STEP_MEM);
	return TRUE;
}

/* Weight and nice. A VM the ledger does not manage may be tuned too (VMs
 * sharing pCPUs under CFS, paper 003's setting): it gets an entry marked
 * unmanaged that owns nothing (undo: every pCPU, as for any unmanaged VM)
 * and holds only the knobs. */
static gboolean plan_tune(VsPlan *p, const VsHost *host, const VsChangeReq *r,
			  VsImportFunc import, gpointer data, GError **error)
{
	VsLedgerVm *v = vs_ledger_find(p->after, r->vm);
	guint64 mem[VS_MAX_NODES];

	if (r->weight < 0 || r->weight > 10000)
		return vs_fail(error, VS_HOST_ERROR_USAGE,
			       "weight must be 1..10000, not %d", r->weight);
	if (r->set_nice && (r->nice < -20 || r->nice > 19))
		return vs_fail(error, VS_HOST_ERROR_USAGE,
			       "nice must be -20..19, not %d", r->nice);
	if (!r->weight && !r->set_nice)
		return vs_fail(error, VS_HOST_ERROR_USAGE,
			       "tune: give a weight or a nice value");
	if (!v && !import)
		return vs_fail(error, VS_HOST_ERROR_REFUSED,
			       "VM %s is not known to the ledger", r->vm);
	if (!v && !import(r->vm, mem, data, error)) /* it must exist */
		return FALSE;
	if (!v) {
		v = vs_ledger_add_vm(p->after, r->vm);
		v->unmanaged = TRUE;
		v->pcpus = host->all;
	}
	if (r->weight)
		v->weight = r->weight;
	if (r->set_nice)
		v->nice = r->nice;
	add_step(p, r->vm, VS_STEP_TUNE);
	return TRUE;
}

static gboolean plan_forget(VsPlan *p, const VsChangeReq *r, GError **error)
{
	if (!vs_ledger_remove_vm(p->after, r->vm))
		return vs_fail(error, VS_HOST_ERROR_USAGE,
			       "VM %s is not in the ledger", r->vm);
	return TRUE;
}

static const char *const op_names[] = {
	[VS_REQ_CPUS] = "cpus", [VS_REQ_MEM] = "mem",
	[VS_REQ_LEND] = "lend", [VS_REQ_FORGET] = "forget",
	[VS_REQ_TUNE] = "tune",
};

static gboolean names_valid(const VsChangeReq *r, GError **error)
{
	if (r->kind == VS_REQ_LEND)
		return vs_name_valid(r->from, error) &&
		       vs_name_valid(r->to, error);
	return vs_name_valid(r->vm, error);
}

VsPlan *vs_plan_make(const VsLedger *now, const VsHost *host,
		     const VsChangeReq *r, VsImportFunc import,
		     gpointer import_data, GError **error)
{
	g_autoptr(VsPlan) p = g_new0(VsPlan, 1);
	gboolean ok = FALSE;

	if (r->kind > VS_REQ_TUNE || !names_valid(r, error))
		return NULL;
	p->op = op_names[r->kind];
	p->mode = r->mode;
	p->after = vs_ledger_copy(now);
	p->imported = vs_ledger_new(NULL);
	p->steps = g_array_new(FALSE, FALSE, sizeof(VsStep));
	switch (r->kind) {
	case VS_REQ_CPUS:
		ok = plan_cpus(p, host, r, import, import_data, error);
		break;
	case VS_REQ_MEM:
		ok = plan_mem(p, host, r, error);
		break;
	case VS_REQ_LEND:
		ok = plan_lend(p, host, r, import, import_data, error);
		break;
	case VS_REQ_FORGET:
		ok = plan_forget(p, r, error);
		break;
	case VS_REQ_TUNE:
		ok = plan_tune(p, host, r, import, import_data, error);
		break;
	}
	if (!ok)
		return NULL;
	p->after->generation = now->generation + 1;
	if (!vs_ledger_validate(p->after, host, error))
		return NULL;
	return g_steal_pointer(&p);
}
