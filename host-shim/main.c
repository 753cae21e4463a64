// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsharectl: move vCPUs and memory between full-vNUMA VMs.
 * Subcommands and their options; the work is in change.c.
 */
#include "vsharectl.h"

#include <locale.h>
#include <string.h>

GQuark vsc_error_quark(void)
{
	return g_quark_from_static_string("vsharectl-error");
}

int vsc_exit_code(const GError *error)
{
	if (!error)
		return VS_EXIT_OK;
	if (error->domain == VSC_ERROR)
		return error->code;
	return VS_EXIT_FAILED;
}

int vs_fail(const GError *error)
{
	g_printerr("vsharectl: %s\n", error->message);
	return vsc_exit_code(error);
}

void vs_print_json(JsonNode *node)
{
	g_autofree char *s = json_to_string(node, TRUE);

	printf("%s\n", s);
}

/* ---- options shared by every subcommand ------------------------------- */

static char *opt_conf, *opt_state, *opt_qmp, *opt_agent;
static double opt_timeout = 3.0, opt_mem_timeout = 30.0, opt_wait = 10.0;
static gboolean opt_json;

static GOptionEntry common_entries[] = {
	{ "json", 0, 0, G_OPTION_ARG_NONE, &opt_json, "JSON output", NULL },
	{ "conf-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt_conf,
	  "registry and host.conf (default /etc/vshare)", "DIR" },
	{ "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt_state,
	  "ledger, journal, lock (default /var/lib/vshare)", "DIR" },
	{ "qmp", 0, 0, G_OPTION_ARG_FILENAME, &opt_qmp,
	  "QMP socket of the VM named on the command line (no registry)",
	  "SOCK" },
	{ "agent", 0, 0, G_OPTION_ARG_FILENAME, &opt_agent,
	  "vshare-agent socket of that VM", "SOCK" },
	{ "timeout", 0, 0, G_OPTION_ARG_DOUBLE, &opt_timeout,
	  "seconds to wait for the guest agent (default 3)", "S" },
	{ "wait", 0, 0, G_OPTION_ARG_DOUBLE, &opt_wait,
	  "seconds to wait for another vsharectl's lock (default 10)", "S" },
	{ "mem-timeout", 0, 0, G_OPTION_ARG_DOUBLE, &opt_mem_timeout,
	  "seconds to wait for virtio-mem to reach a size (default 30)", "S" },
	{ NULL }
};

gboolean vs_parse_common(VsOpts *o, int *argc, char ***argv, const char *usage,
			 const char *summary, GOptionEntry *entries,
			 GError **error)
{
	g_autoptr(GOptionContext) ctx = g_option_context_new(usage);

	opt_json = FALSE;
	g_option_context_set_summary(ctx, summary);
	if (entries)
		g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_add_main_entries(ctx, common_entries, NULL);
	if (!g_option_context_parse(ctx, argc, argv, error)) {
		g_prefix_error(error, "%s: ", (*argv)[0]);
		(*error)->domain = VSC_ERROR;
		(*error)->code = VS_EXIT_USAGE;
		return FALSE;
	}
	o->conf_dir = g_strdup(opt_conf ? opt_conf
			       : g_getenv("VSHARE_CONF_DIR")
				       ? g_getenv("VSHARE_CONF_DIR")
				       : "/etc/vshare");
	o->state_dir = g_strdup(opt_state ? opt_state
				: g_getenv("VSHARE_STATE_DIR")
					? g_getenv("VSHARE_STATE_DIR")
					: "/var/lib/vshare");
	o->sysfs = g_strdup(g_getenv("VSHARE_SYSFS") ? g_getenv("VSHARE_SYSFS")
						     : "/sys");
	o->proc = g_strdup("/proc");
	o->json = opt_json;
	o->inline_qmp = g_strdup(opt_qmp);
	o->inline_agent = g_strdup(opt_agent);
	o->agent_timeout_ms = (int)(opt_timeout * 1000);
	o->mem_timeout_ms = (int)(opt_mem_timeout * 1000);
	o->lock_wait_ms = (int)(opt_wait * 1000);
	if (o->agent_timeout_ms <= 0 || o->mem_timeout_ms <= 0) {
		g_set_error(error, VSC_ERROR, VS_EXIT_USAGE,
			    "timeouts must be positive");
		return FALSE;
	}
	return TRUE;
}

static gboolean want_args(int argc, char **argv, int n, const char *what,
			  GError **error)
{
	if (argc - 1 != n) {
		g_set_error(error, VSC_ERROR, VS_EXIT_USAGE,
			    "%s: expected %s (see %s --help)", argv[0], what,
			    argv[0]);
		return FALSE;
	}
	return TRUE;
}

static gboolean parse_pcpus(const VsHost *host, const char *text,
			    gboolean allow_none, VsCpuSet *set, GError **error)
{
	VsCpuSet all;
	int bad;

	vs_cpuset_clear(&all);
	for (guint i = 0; i < host->pcpus->len; i++)
		vs_cpuset_add(&all, g_array_index(host->pcpus, guint, i));
	if (allow_none && !strcmp(text, "none")) {
		vs_cpuset_clear(set); /* parked */
		return TRUE;
	}
	if (!vs_cpuset_parse(text, set, error)) {
		(*error)->domain = VSC_ERROR;
		(*error)->code = VS_EXIT_USAGE;
		return FALSE;
	}
	if (!vs_cpuset_count(set)) {
		g_set_error(error, VSC_ERROR, VS_EXIT_USAGE,
			    "empty CPU list (`none` parks a VM: every vCPU "
			    "throttled)");
		return FALSE;
	}
	bad = vs_cpuset_first_outside(set, &all);
	if (bad >= 0) {
		g_autofree char *a = vs_cpuset_format(&all);

		g_set_error(error, VSC_ERROR, VS_EXIT_USAGE,
			    "pCPU %d does not exist (host pCPUs: %s)", bad, a);
		return FALSE;
	}
	return TRUE;
}

static gboolean check_mode(const char *mode, GError **error)
{
	if (!strcmp(mode, "coop") || !strcmp(mode, "enforce") ||
	    !strcmp(mode, "auto"))
		return TRUE;
	g_set_error(error, VSC_ERROR, VS_EXIT_USAGE,
		    "--mode must be coop, enforce or auto, not '%s'", mode);
	return FALSE;
}

/* Bring a VM into the ledger: it holds what its virtio-mem devices hold. */
static VsLedgerVm *manage(VsCtx *ctx, VsLedger *l, const char *name,
			  GError **error)
{
	VsLedgerVm *v = vs_ledger_find(l, name);
	VsVm *vm;

	if (v)
		return v;
	vm = vs_ctx_vm(ctx, name, error);
	if (!vm || !vs_vm_check_shape(vm, &ctx->host, error))
		return NULL;
	v = vs_ledger_add_vm(l, name);
	for (guint i = 0; i < vm->vmems->len; i++) {
		VsVmem *d = g_ptr_array_index(vm->vmems, i);

		if (d->node >= 0 && d->node < VS_MAX_NODES)
			v->mem[d->node] += d->requested;
	}
	/* Remember it as it was, for undo. */
	if (!ctx->imported)
		ctx->imported = vs_ledger_new(&ctx->host);
	{
		VsLedgerVm *was = vs_ledger_add_vm(ctx->imported, name);

		was->unmanaged = TRUE;
		memcpy(was->mem, v->mem, sizeof(was->mem));
		for (guint i = 0; i < ctx->host.pcpus->len; i++)
			vs_cpuset_add(&was->pcpus,
				      g_array_index(ctx->host.pcpus, guint, i));
	}
	return v;
}

static int finish(VsCtx *ctx, gboolean ok, GError *error, const char *done)
{
	int rc;

	if (ctx->log->len)
		g_print("%s", ctx->log->str);
	if (!ok) {
		rc = vs_fail(error);
	} else {
		if (done)
			g_print("%s\n", done);
		rc = ctx->partial ? VS_EXIT_PARTIAL : VS_EXIT_OK;
	}
	g_clear_error(&error);
	vs_ctx_clear(ctx);
	return rc;
}

/* Lock, load, and roll back whatever a killed vsharectl left. */
static gboolean begin(VsCtx *ctx, const VsOpts *o, GError **error)
{
	gboolean recovered;

	if (!vs_ctx_init(ctx, o, TRUE, error) ||
	    !vs_recover(ctx, &recovered, error))
		return FALSE;
	if (recovered) {
		vs_ledger_free(ctx->ledger);
		ctx->ledger = vs_ledger_load(o, &ctx->host, error);
	}
	return ctx->ledger != NULL;
}

/* ---- cpus ------------------------------------------------------------- */

static int cmd_cpus(VsOpts *o, int argc, char **argv)
{
	g_autofree char *set = NULL;
	g_autofree char *mode = NULL;
	GOptionEntry e[] = {
		{ "set", 's', 0, G_OPTION_ARG_STRING, &set,
		  "pCPUs (= vCPU numbers) the VM owns from now on; none "
		  "parks it (every vCPU throttled)",
		  "LIST" },
		{ "mode", 'm', 0, G_OPTION_ARG_STRING, &mode,
		  "coop (the guest agent confines), enforce (host throttles "
		  "the other vCPUs), auto (coop, else enforce; default)",
		  "MODE" },
		{ NULL }
	};
	GError *error = NULL;
	VsCtx ctx = { 0 };
	g_autoptr(VsLedger) after = NULL;
	VsLedgerVm *v;
	VsCpuSet want;
	VsStep step;
	gboolean ok;

	if (!vs_parse_common(o, &argc, &argv,
			     "VM --set LIST [--mode coop|enforce|auto]",
			     "Give VM exactly the pCPUs in LIST (vCPU i runs "
			     "on pCPU i).",
			     e, &error) ||
	    !want_args(argc, argv, 1, "one VM name", &error) ||
	    !check_mode(mode ? mode : "auto", &error))
		return vs_fail(error);
	if (!set) {
		g_set_error(&error, VSC_ERROR, VS_EXIT_USAGE,
			    "cpus: --set LIST is required (status shows the "
			    "current ones)");
		return vs_fail(error);
	}
	if (!vs_name_valid(argv[1], &error))
		return vs_fail(error);
	if (!begin(&ctx, o, &error) ||
	    !parse_pcpus(&ctx.host, set, TRUE, &want, &error))
		return finish(&ctx, FALSE, error, NULL);
	for (guint c = 0; c < VS_MAX_CPUS; c++) {
		const char *owner = vs_cpuset_has(&want, c)
					    ? vs_ledger_owner(ctx.ledger, c)
					    : NULL;

		if (owner && strcmp(owner, argv[1])) {
			g_set_error(&error, VSC_ERROR, VS_EXIT_REFUSED,
				    "pCPU %u is owned by VM %s: move it with "
				    "`vsharectl lend --from %s --to %s --cpus "
				    "%u`",
				    c, owner, owner, argv[1], c);
			return finish(&ctx, FALSE, error, NULL);
		}
	}
	after = vs_ledger_copy(ctx.ledger);
	v = manage(&ctx, after, argv[1], &error);
	if (!v)
		return finish(&ctx, FALSE, error, NULL);
	v->pcpus = want;
	if (mode && strcmp(mode, "auto")) {
		g_free(v->mode);
		v->mode = g_strdup(mode);
	}
	step = (VsStep){ argv[1], VS_STEP_CPUS };
	ok = vs_change(&ctx, "cpus", after, &step, 1, mode ? mode : "auto",
		       &error);
	return finish(&ctx, ok, error, ok ? "done" : NULL);
}

/* ---- mem -------------------------------------------------------------- */

static int cmd_mem(VsOpts *o, int argc, char **argv)
{
	int node = -1;
	g_autofree char *size = NULL;
	GOptionEntry e[] = { { "node", 'n', 0, G_OPTION_ARG_INT, &node,
			       "vNUMA/host node", "N" },
			     { "size", 0, 0, G_OPTION_ARG_STRING, &size,
			       "virtio-mem size on that node (e.g. 256M, 1G)",
			       "SIZE" },
			     { NULL } };
	GError *error = NULL;
	VsCtx ctx = { 0 };
	g_autoptr(VsLedger) after = NULL;
	VsLedgerVm *v;
	guint64 bytes;
	VsStep step;
	gboolean ok;

	if (!vs_parse_common(
		    o, &argc, &argv, "VM --node N --size SIZE",
		    "Resize the VM's virtio-mem device on node N; the guest "
		    "moves its pages off first when shrinking.",
		    e, &error) ||
	    !want_args(argc, argv, 1, "one VM name", &error))
		return vs_fail(error);
	if (node < 0 || !size) {
		g_set_error(&error, VSC_ERROR, VS_EXIT_USAGE,
			    "mem: --node N and --size SIZE are required");
		return vs_fail(error);
	}
	if (!vs_parse_size(size, &bytes, &error) ||
	    !vs_name_valid(argv[1], &error))
		return vs_fail(error);
	if (!begin(&ctx, o, &error))
		return finish(&ctx, FALSE, error, NULL);
	if ((guint)node >= ctx.host.n_nodes) {
		g_set_error(&error, VSC_ERROR, VS_EXIT_USAGE,
			    "the host has no node %d (nodes 0-%u)", node,
			    ctx.host.n_nodes - 1);
		return finish(&ctx, FALSE, error, NULL);
	}
	after = vs_ledger_copy(ctx.ledger);
	v = vs_ledger_find(after, argv[1]);
	if (!v) {
		g_set_error(&error, VSC_ERROR, VS_EXIT_REFUSED,
			    "VM %s is not managed yet: give it pCPUs first "
			    "(`vsharectl cpus %s --set LIST`)",
			    argv[1], argv[1]);
		return finish(&ctx, FALSE, error, NULL);
	}
	v->mem[node] = bytes;
	ctx.allow_partial = TRUE;
	step = (VsStep){ argv[1], VS_STEP_MEM };
	ok = vs_change(&ctx, "mem", after, &step, 1, NULL, &error);
	return finish(&ctx, ok, error, ok ? "done" : NULL);
}

/* ---- lend ------------------------------------------------------------- */

static int cmd_lend(VsOpts *o, int argc, char **argv)
{
	g_autofree char *from = NULL, *to = NULL, *cpus = NULL;
	g_autofree char *mem = NULL, *mode = NULL;
	int node = -1;
	GOptionEntry e[] = {
		{ "from", 0, 0, G_OPTION_ARG_STRING, &from, "giver", "VM" },
		{ "to", 0, 0, G_OPTION_ARG_STRING, &to, "receiver", "VM" },
		{ "cpus", 0, 0, G_OPTION_ARG_STRING, &cpus,
		  "pCPUs to move (owned by the giver)", "LIST" },
		{ "node", 'n', 0, G_OPTION_ARG_INT, &node,
		  "node whose virtio-mem memory moves", "N" },
		{ "mem", 0, 0, G_OPTION_ARG_STRING, &mem,
		  "how much memory moves on that node", "SIZE" },
		{ "mode", 'm', 0, G_OPTION_ARG_STRING, &mode,
		  "coop, enforce or auto (default)", "MODE" },
		{ NULL }
	};
	GError *error = NULL;
	VsCtx ctx = { 0 };
	g_autoptr(VsLedger) after = NULL;
	VsLedgerVm *a, *b;
	VsCpuSet move;
	guint64 bytes = 0;
	VsStep steps[4];
	guint n = 0;
	gboolean ok;

	if (!vs_parse_common(
		    o, &argc, &argv,
		    "--from A --to B --cpus LIST [--node N --mem SIZE]",
		    "Move pCPUs (and memory of a node) from VM A to VM B: A "
		    "lets go first, then B takes them; all or nothing.",
		    e, &error) ||
	    !want_args(argc, argv, 0, "no positional arguments", &error) ||
	    !check_mode(mode ? mode : "auto", &error))
		return vs_fail(error);
	if (!from || !to || !cpus || (mem && node < 0) || (!mem && node >= 0)) {
		g_set_error(&error, VSC_ERROR, VS_EXIT_USAGE,
			    "lend: --from, --to and --cpus are required; "
			    "--node and --mem go together");
		return vs_fail(error);
	}
	if (!vs_name_valid(from, &error) || !vs_name_valid(to, &error) ||
	    (mem && !vs_parse_size(mem, &bytes, &error)))
		return vs_fail(error);
	if (!strcmp(from, to)) {
		g_set_error(&error, VSC_ERROR, VS_EXIT_USAGE,
			    "lend: --from and --to name the same VM");
		return vs_fail(error);
	}
	if (!begin(&ctx, o, &error) ||
	    !parse_pcpus(&ctx.host, cpus, FALSE, &move, &error))
		return finish(&ctx, FALSE, error, NULL);
	after = vs_ledger_copy(ctx.ledger);
	a = vs_ledger_find(after, from);
	if (!a || !vs_cpuset_is_subset(&move, &a->pcpus)) {
		g_autofree char *own =
			a ? vs_cpuset_format(&a->pcpus) : g_strdup("none");

		g_set_error(&error, VSC_ERROR, VS_EXIT_REFUSED,
			    "VM %s does not own pCPUs %s (it owns %s)", from,
			    cpus, *own ? own : "none");
		return finish(&ctx, FALSE, error, NULL);
	}
	if (mem && ((guint)node >= ctx.host.n_nodes || a->mem[node] < bytes)) {
		g_set_error(&error, VSC_ERROR, VS_EXIT_REFUSED,
			    "VM %s holds %" G_GUINT64_FORMAT
			    " MiB on node %d, cannot lend %s",
			    from,
			    (guint)node < ctx.host.n_nodes ? a->mem[node] >> 20
							   : 0,
			    node, mem);
		return finish(&ctx, FALSE, error, NULL);
	}
	b = manage(&ctx, after, to, &error);
	a = vs_ledger_find(after, from); /* manage() may grow the array */
	if (!b)
		return finish(&ctx, FALSE, error, NULL);
	for (guint c = 0; c < VS_MAX_CPUS; c++)
		if (vs_cpuset_has(&move, c)) {
			a->pcpus.bits[c / 64] &= ~(1ULL << (c % 64));
			vs_cpuset_add(&b->pcpus, c);
		}
	if (mode && strcmp(mode, "auto")) {
		g_free(a->mode);
		a->mode = g_strdup(mode);
		g_free(b->mode);
		b->mode = g_strdup(mode);
	}
	/* Giver first, receiver second. A guest needs CPUs to give or take
	 * memory: the giver shrinks before it loses pCPUs (it may be left
	 * parked), the receiver grows after it got them. */
	if (mem) {
		a->mem[node] -= bytes;
		b->mem[node] += bytes;
		steps[n++] = (VsStep){ from, VS_STEP_MEM };
	}
	steps[n++] = (VsStep){ from, VS_STEP_CPUS };
	steps[n++] = (VsStep){ to, VS_STEP_CPUS };
	if (mem)
		steps[n++] = (VsStep){ to, VS_STEP_MEM };
	ok = vs_change(&ctx, "lend", after, steps, n, mode ? mode : "auto",
		       &error);
	return finish(&ctx, ok, error, ok ? "done" : NULL);
}

/* ---- ledger maintenance ------------------------------------------------- */

static int cmd_recover(VsOpts *o, int argc, char **argv)
{
	GError *error = NULL;
	VsCtx ctx = { 0 };
	gboolean recovered = FALSE;
	gboolean ok;

	if (!vs_parse_common(
		    o, &argc, &argv, "",
		    "Roll back a change a killed vsharectl left half done "
		    "(every locking command does this first).",
		    NULL, &error) ||
	    !want_args(argc, argv, 0, "no arguments", &error))
		return vs_fail(error);
	ok = vs_ctx_init(&ctx, o, TRUE, &error) &&
	     vs_recover(&ctx, &recovered, &error);
	return finish(&ctx, ok, error,
		      ok && !recovered ? "nothing to recover" : NULL);
}

static int cmd_forget(VsOpts *o, int argc, char **argv)
{
	GError *error = NULL;
	VsCtx ctx = { 0 };
	g_autoptr(VsLedger) after = NULL;
	gboolean ok;

	if (!vs_parse_common(
		    o, &argc, &argv, "VM",
		    "Drop VM from the ledger (it is gone, or leaves vshare); "
		    "its pCPUs and memory become free. Touches no VM.",
		    NULL, &error) ||
	    !want_args(argc, argv, 1, "one VM name", &error))
		return vs_fail(error);
	if (!begin(&ctx, o, &error))
		return finish(&ctx, FALSE, error, NULL);
	after = vs_ledger_copy(ctx.ledger);
	if (!vs_ledger_find(after, argv[1])) {
		g_set_error(&error, VSC_ERROR, VS_EXIT_USAGE,
			    "VM %s is not in the ledger", argv[1]);
		return finish(&ctx, FALSE, error, NULL);
	}
	g_ptr_array_remove(after->vms, vs_ledger_find(after, argv[1]));
	ok = vs_change(&ctx, "forget", after, NULL, 0, NULL, &error);
	return finish(&ctx, ok, error, ok ? "forgotten" : NULL);
}

static int cmd_ledger(VsOpts *o, int argc, char **argv)
{
	gboolean force = FALSE;
	GOptionEntry e[] = { { "force", 0, 0, G_OPTION_ARG_NONE, &force,
			       "reset: really discard the ledger", NULL },
			     { NULL } };
	GError *error = NULL;
	VsCtx ctx = { 0 };
	VsHost host;
	g_autoptr(VsLedger) fresh = NULL;
	g_autofree char *path = NULL;
	gboolean ok;

	if (!vs_parse_common(
		    o, &argc, &argv, "show | reset --force",
		    "Show the ownership ledger, or start a new empty one.", e,
		    &error) ||
	    !want_args(argc, argv, 1, "show or reset", &error))
		return vs_fail(error);
	if (!strcmp(argv[1], "show")) {
		g_autoptr(JsonNode) j = NULL;

		if (!vs_ctx_init(&ctx, o, FALSE, &error))
			return finish(&ctx, FALSE, error, NULL);
		j = vs_ledger_to_json(ctx.ledger);
		if (o->json) {
			vs_print_json(j);
		} else {
			g_print("generation %" G_GUINT64_FORMAT ", host %s\n",
				ctx.ledger->generation, ctx.ledger->host);
			for (guint i = 0; i < ctx.ledger->vms->len; i++) {
				VsLedgerVm *v =
					g_ptr_array_index(ctx.ledger->vms, i);
				g_autofree char *c =
					vs_cpuset_format(&v->pcpus);

				g_print("%-16s pCPUs %-12s %-8s", v->name, c,
					v->mode);
				for (guint n = 0; n < ctx.host.n_nodes; n++)
					g_print(" node%u %" G_GUINT64_FORMAT
						"M",
						n, v->mem[n] >> 20);
				g_print("\n");
			}
		}
		return finish(&ctx, TRUE, NULL, NULL);
	}
	if (strcmp(argv[1], "reset") || !force) {
		g_set_error(&error, VSC_ERROR, VS_EXIT_USAGE,
			    "ledger: `show`, or `reset --force` (forgets who "
			    "owns what; the VMs are not touched)");
		return vs_fail(error);
	}
	if (!vs_host_load(o, &host, &error))
		return vs_fail(error);
	ctx.lock_fd = vs_state_lock(o, o->lock_wait_ms, &error);
	if (ctx.lock_fd < 0) {
		vs_host_clear(&host);
		return vs_fail(error);
	}
	fresh = vs_ledger_new(&host);
	path = g_build_filename(o->state_dir, "journal.json", NULL);
	unlink(path);
	ok = vs_ledger_save(o, fresh, &error);
	vs_host_clear(&host);
	close(ctx.lock_fd);
	if (!ok)
		return vs_fail(error);
	g_print("ledger reset: no VM owns anything\n");
	return VS_EXIT_OK;
}

/* ---- registry ------------------------------------------------------------ */

static int cmd_add(VsOpts *o, int argc, char **argv)
{
	gboolean force = FALSE;
	GOptionEntry e[] = { { "force", 0, 0, G_OPTION_ARG_NONE, &force,
			       "replace an existing entry", NULL },
			     { NULL } };
	GError *error = NULL;

	if (!vs_parse_common(o, &argc, &argv, "VM --qmp SOCK [--agent SOCK]",
			     "Register a VM by its QMP and agent sockets.", e,
			     &error) ||
	    !want_args(argc, argv, 1, "one VM name", &error))
		return vs_fail(error);
	if (!o->inline_qmp) {
		g_set_error(&error, VSC_ERROR, VS_EXIT_USAGE,
			    "add: --qmp SOCK is required");
		return vs_fail(error);
	}
	if (!vs_registry_add(o, argv[1], o->inline_qmp, o->inline_agent, force,
			     &error))
		return vs_fail(error);
	return VS_EXIT_OK;
}

static int cmd_remove(VsOpts *o, int argc, char **argv)
{
	GError *error = NULL;

	if (!vs_parse_common(o, &argc, &argv, "VM", "Unregister a VM.", NULL,
			     &error) ||
	    !want_args(argc, argv, 1, "one VM name", &error) ||
	    !vs_registry_remove(o, argv[1], &error))
		return vs_fail(error);
	return VS_EXIT_OK;
}

static int cmd_list(VsOpts *o, int argc, char **argv)
{
	GError *error = NULL;
	g_auto(GStrv) names = NULL;

	if (!vs_parse_common(o, &argc, &argv, "", "Registered VMs.", NULL,
			     &error) ||
	    !want_args(argc, argv, 0, "no arguments", &error))
		return vs_fail(error);
	names = vs_registry_list(o, &error);
	if (o->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		g_autoptr(JsonNode) root = NULL;

		json_builder_begin_array(b);
		for (guint i = 0; names[i]; i++) {
			g_autoptr(VsVmConf) c =
				vs_registry_get(o, names[i], NULL);

			json_builder_begin_object(b);
			json_builder_set_member_name(b, "name");
			json_builder_add_string_value(b, names[i]);
			json_builder_set_member_name(b, "qmp");
			json_builder_add_string_value(b, c ? c->qmp : NULL);
			json_builder_set_member_name(b, "agent");
			json_builder_add_string_value(b, c ? c->agent : NULL);
			json_builder_end_object(b);
		}
		json_builder_end_array(b);
		root = json_builder_get_root(b);
		vs_print_json(root);
	} else {
		for (guint i = 0; names[i]; i++)
			g_print("%s\n", names[i]);
	}
	return VS_EXIT_OK;
}

/* ---- main ------------------------------------------------------------------ */

static const struct {
	const char *name;
	int (*fn)(VsOpts *o, int argc, char **argv);
	const char *help;
} commands[] = {
	{ "status", vs_cmd_status, "VMs, vCPU threads, pinning, memory" },
	{ "cpus", cmd_cpus, "give a VM a set of pCPUs (coop/enforce/auto)" },
	{ "mem", cmd_mem, "resize a VM's virtio-mem on one node" },
	{ "lend", cmd_lend, "move pCPUs and memory from one VM to another" },
	{ "ple", vs_cmd_ple, "pause-loop exiting: show | set | watch" },
	{ "host-check", vs_cmd_host_check, "KVM and kernel facts, advice" },
	{ "recover", cmd_recover, "roll back an interrupted change" },
	{ "forget", cmd_forget, "drop a VM from the ledger" },
	{ "ledger", cmd_ledger, "show | reset --force" },
	{ "add", cmd_add, "register a VM" },
	{ "remove", cmd_remove, "unregister a VM" },
	{ "list", cmd_list, "registered VMs" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: vsharectl COMMAND [OPTIONS] [ARGS]\n\n");
	for (guint i = 0; i < G_N_ELEMENTS(commands); i++)
		fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\n`vsharectl COMMAND --help` for a command's options; "
		   "exit codes in vsharectl(8).\n");
}

int main(int argc, char **argv)
{
	VsOpts o = { 0 };
	int rc;

	setlocale(LC_ALL, "");
	if (argc < 2) {
		usage(stderr);
		return VS_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return VS_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("vsharectl %s\n", vs_schema_version);
		return VS_EXIT_OK;
	}
	for (guint i = 0; i < G_N_ELEMENTS(commands); i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		rc = commands[i].fn(&o, argc - 1, argv + 1);
		g_free(o.conf_dir);
		g_free(o.state_dir);
		g_free(o.sysfs);
		g_free(o.proc);
		g_free(o.inline_qmp);
		g_free(o.inline_agent);
		g_free(opt_conf);
		g_free(opt_state);
		g_free(opt_qmp);
		g_free(opt_agent);
		fflush(stdout);
		return rc;
	}
	fprintf(stderr, "vsharectl: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return VS_EXIT_USAGE;
}
