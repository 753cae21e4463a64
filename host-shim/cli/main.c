// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsharectl: move vCPUs and memory between full-vNUMA VMs. The command
 * table, the common options, errors to exit codes. The work is in
 * libvshare-host (host-shim/lib).
 */
#include "cli.h"

#include <errno.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

int cli_exit_code(const GError *error)
{
	static const int map[] = {
		[VS_HOST_ERROR_FAILED] = VS_EXIT_FAILED,
		[VS_HOST_ERROR_USAGE] = VS_EXIT_USAGE,
		[VS_HOST_ERROR_REFUSED] = VS_EXIT_REFUSED,
		[VS_HOST_ERROR_PARTIAL] = VS_EXIT_PARTIAL,
		[VS_HOST_ERROR_CORRUPT] = VS_EXIT_CORRUPT,
		[VS_HOST_ERROR_UNSUPPORTED] = VS_EXIT_UNSUPPORTED,
		[VS_HOST_ERROR_BUSY] = VS_EXIT_BUSY,
		[VS_HOST_ERROR_UNREACHABLE] = VS_EXIT_FAILED,
		[VS_HOST_ERROR_HOSTILE] = VS_EXIT_FAILED,
		[VS_HOST_ERROR_GONE] = VS_EXIT_FAILED,
	};

	if (!error)
		return VS_EXIT_OK;
	if (error->domain != VS_HOST_ERROR || error->code < 0 ||
	    error->code >= (int)G_N_ELEMENTS(map))
		return VS_EXIT_FAILED;
	return map[error->code];
}

int cli_fail(const GError *error)
{
	g_printerr("vsharectl: %s\n", error->message);
	return cli_exit_code(error);
}

void cli_print_json(JsonNode *node)
{
	g_autofree char *s = json_to_string(node, TRUE);

	printf("%s\n", s);
}

gboolean cli_want_args(int argc, char **argv, int n, const char *what,
		       GError **error)
{
	if (argc - 1 == n)
		return TRUE;
	return cli_usage_error(error, "%s: expected %s (see %s --help)",
			       argv[0], what, argv[0]);
}

/* ---- options shared by every subcommand ------------------------------- */

static char *opt_conf, *opt_state, *opt_qmp, *opt_agent, *opt_socket;
static double opt_timeout = 5.0, opt_qmp_timeout = 10.0;
static double opt_mem_timeout = 30.0, opt_wait = 10.0;
static gboolean opt_json;

static gboolean json_ok; /* the command has a JSON output */

static GOptionEntry json_entries[] = { { "json", 0, 0, G_OPTION_ARG_NONE,
					 &opt_json, "JSON output", NULL },
				       { NULL } };

static GOptionEntry common_entries[] = {
	{ "conf-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt_conf,
	  "registry and host.conf (default /etc/vshare)", "DIR" },
	{ "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt_state,
	  "ledger, journal, lock (default /var/lib/vshare)", "DIR" },
	{ "qmp", 0, 0, G_OPTION_ARG_FILENAME, &opt_qmp,
	  "QMP socket of the VM named on the command line (no registry)",
	  "SOCK" },
	{ "agent", 0, 0, G_OPTION_ARG_FILENAME, &opt_agent,
	  "vshare-agent socket of that VM", "SOCK" },
	{ "socket", 0, 0, G_OPTION_ARG_FILENAME, &opt_socket,
	  "vshared's control socket (default /run/vshare/vshared.sock; "
	  "used when the daemon runs)",
	  "PATH" },
	{ "timeout", 0, 0, G_OPTION_ARG_DOUBLE, &opt_timeout,
	  "seconds for each guest agent call (default 5)", "S" },
	{ "qmp-timeout", 0, 0, G_OPTION_ARG_DOUBLE, &opt_qmp_timeout,
	  "seconds for each QMP command (default 10)", "S" },
	{ "wait", 0, 0, G_OPTION_ARG_DOUBLE, &opt_wait,
	  "seconds to wait for another vsharectl's lock (default 10)", "S" },
	{ "mem-timeout", 0, 0, G_OPTION_ARG_DOUBLE, &opt_mem_timeout,
	  "seconds to wait for virtio-mem to reach a size (default 30)", "S" },
	{ NULL }
};

static void set_dir(char **dst, const char *opt, const char *env)
{
	const char *v = opt ? opt : g_getenv(env);

	if (v) {
		g_free(*dst);
		*dst = g_strdup(v);
	}
}

static gboolean ms_of(double s, int *out, GError **error)
{
	if (!(s > 0 && s <= 86400))
		return cli_usage_error(error, "timeouts must be positive "
					      "(and at most a day)");
	*out = (int)(s * 1000);
	return TRUE;
}

static gboolean apply_common(Cli *c, GError **error)
{
	set_dir(&c->cfg.conf_dir, opt_conf, "VSHARE_CONF_DIR");
	set_dir(&c->cfg.state_dir, opt_state, "VSHARE_STATE_DIR");
	set_dir(&c->cfg.sysfs, NULL, "VSHARE_SYSFS");
	c->json = opt_json;
	c->inline_qmp = g_strdup(opt_qmp);
	c->inline_agent = g_strdup(opt_agent);
	c->socket = g_strdup(opt_socket);
	if (!ms_of(opt_timeout, &c->cfg.agent_timeout_ms, error) ||
	    !ms_of(opt_qmp_timeout, &c->cfg.qmp_timeout_ms, error) ||
	    !ms_of(opt_mem_timeout, &c->cfg.mem_timeout_ms, error))
		return FALSE;
	if (!(opt_wait >= 0 && opt_wait <= 86400))
		return cli_usage_error(error, "--wait must be >= 0");
	c->lock_wait_ms = (int)(opt_wait * 1000);
	return TRUE;
}

gboolean cli_parse(Cli *c, int *argc, char ***argv, const char *usage,
		   const char *summary, GOptionEntry *entries, GError **error)
{
	g_autoptr(GOptionContext) ctx = g_option_context_new(usage);

	GOptionGroup *common = g_option_group_new(
		"common", "Options of every command:",
		"Show the options every command takes", NULL, NULL);

	g_option_context_set_summary(ctx, summary);
	if (entries)
		g_option_context_add_main_entries(ctx, entries, NULL);
	if (json_ok)
		g_option_context_add_main_entries(ctx, json_entries, NULL);
	g_option_group_add_entries(common, common_entries);
	g_option_context_add_group(ctx, common);
	if (!g_option_context_parse(ctx, argc, argv, error)) {
		g_prefix_error(error, "%s: ", (*argv)[0]);
		(*error)->domain = VS_HOST_ERROR;
		(*error)->code = VS_HOST_ERROR_USAGE;
		return FALSE;
	}
	return apply_common(c, error);
}

/* ---- progress ------------------------------------------------------------ */

static const char *kind_name(VsStepKind k)
{
	return k == VS_STEP_MEM	   ? "memory"
	       : k == VS_STEP_TUNE ? "weight/nice"
				   : "CPUs";
}

void cli_render_event(const VsEvent *e, gpointer data)
{
	Cli *c = data;

	switch (e->kind) {
	case VS_EV_RECOVER:
		if (c)
			c->recovered = TRUE;
		g_print(e->committed ? "recover: '%s' had committed; journal "
				       "removed\n"
				     : "recover: '%s' was interrupted; "
				       "rolling back\n",
			e->op);
		break;
	case VS_EV_STEP:
		g_print("  step %u (%s %s): %.1f ms\n", e->index, e->vm,
			kind_name(e->step), e->elapsed_us / 1000.0);
		break;
	case VS_EV_STEP_FAILED:
		g_print("  step %u failed: %s; undoing\n", e->index,
			e->message);
		break;
	case VS_EV_CONFINED:
		g_print("  %s: guest confined to vCPUs %s, nodes %s (agent "
			"%.1f ms: prepare %.1f, cgroup %.1f, knobs %.1f, "
			"journal %.1f; %.1f ms with connect and sync)\n",
			e->vm, e->cpus, e->mems, e->agent_us[0] / 1000.0,
			e->agent_us[1] / 1000.0, e->agent_us[2] / 1000.0,
			e->agent_us[3] / 1000.0, e->agent_us[4] / 1000.0,
			e->elapsed_us / 1000.0);
		break;
	case VS_EV_THROTTLED:
		g_print("  %s: vCPUs %s throttled from the host (enforce)\n",
			e->vm, e->cpus && *e->cpus ? e->cpus : "none");
		break;
	case VS_EV_PARKED:
		g_print("  %s: owns no pCPU: parked, every vCPU throttled "
			"from the host\n",
			e->vm);
		break;
	case VS_EV_FALLBACK:
		g_print("  %s: agent did not answer (%s): enforcing from the "
			"host\n",
			e->vm, e->message);
		break;
	case VS_EV_MEM:
		g_print("  %s: node %d virtio-mem now %" G_GUINT64_FORMAT
			" MiB\n",
			e->vm, e->node, e->bytes >> 20);
		break;
	case VS_EV_MEM_PARTIAL:
		g_print("  %s: node %d virtio-mem reached only "
			"%" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
			" MiB in %.0f ms; request "
			"set to what was reached\n",
			e->vm, e->node, e->bytes >> 20, e->want >> 20,
			e->elapsed_us / 1000.0);
		break;
	case VS_EV_NOTE:
		g_print("  %s: %s\n", e->vm ? e->vm : "note", e->message);
		break;
	case VS_EV_UNDO_SKIPPED:
		g_print("  undo %s skipped (its QEMU is gone): %s\n", e->vm,
			e->message);
		break;
	case VS_EV_UNDO_FAILED:
		g_print("  undo %s %s failed: %s\n", e->vm, kind_name(e->step),
			e->message);
		break;
	}
}

/* ---- sessions: the lock wait is bounded by a timer signal ------------------- */

static void on_alarm(int sig)
{
	(void)sig; /* only interrupts flock() */
}

static void arm(int ms)
{
	struct sigaction sa = { .sa_handler = on_alarm }; /* no SA_RESTART */
	struct itimerval it = { .it_value = { ms / 1000, (ms % 1000) * 1000 } };

	sigaction(SIGALRM, &sa, NULL);
	if (!ms)
		it.it_value.tv_usec = 1; /* 0 would disarm: fire at once */
	setitimer(ITIMER_REAL, &it, NULL);
}

static void disarm(void)
{
	struct itimerval it = { 0 };

	setitimer(ITIMER_REAL, &it, NULL);
	signal(SIGALRM, SIG_IGN);
}

static void set_inline(Cli *c)
{
	if (!c->inline_qmp || c->cfg.inline_vm)
		return;
	c->cfg.inline_vm = g_new0(VsVmConf, 1);
	c->cfg.inline_vm->driver = VS_DRIVER_QMP;
	c->cfg.inline_vm->qmp = g_strdup(c->inline_qmp);
	c->cfg.inline_vm->agent = g_strdup(c->inline_agent);
}

gboolean cli_session_open(Cli *c, VsSession *s, gboolean lock, GError **error)
{
	int fd = -1;

	memset(s, 0, sizeof(*s));
	s->lock_fd = -1;
	set_inline(c);
	if (lock) {
		arm(c->lock_wait_ms);
		fd = vs_store_lock(&c->cfg, TRUE, error);
		disarm();
		if (fd < 0)
			return FALSE;
	}
	return vs_session_open(s, &c->cfg, fd, cli_render_event, c, error);
}

int cli_change(Cli *c, const VsChangeReq *req, const char *done)
{
	g_autoptr(GError) error = NULL;
	VsSession s;
	gboolean ok, handled;
	int rc;

	/* an ad-hoc VM (--qmp) is not the daemon's business */
	rc = c->inline_qmp ? 0 : cli_daemon_change(c, req, done, &handled);
	if (!c->inline_qmp && handled)
		return rc;
	ok = cli_session_open(c, &s, TRUE, &error) &&
	     vs_session_change(&s, req, &error);
	if (ok && done)
		g_print("%s\n", done);
	rc = ok ? (s.partial ? VS_EXIT_PARTIAL : VS_EXIT_OK) : cli_fail(error);
	vs_session_close(&s);
	return rc;
}

/* ---- main ------------------------------------------------------------------ */

static const struct {
	const char *name;
	int (*fn)(Cli *c, int argc, char **argv);
	gboolean json; /* takes --json (refused by the others) */
	const char *help;
} commands[] = {
	{ "status", cmd_status, TRUE, "VMs, vCPU threads, pinning, memory" },
	{ "cpus", cmd_cpus, FALSE,
	  "give a VM a set of pCPUs (coop/enforce/auto)" },
	{ "mem", cmd_mem, FALSE, "resize a VM's virtio-mem on one node" },
	{ "lend", cmd_lend, FALSE,
	  "move pCPUs and memory from one VM to another" },
	{ "ple", cmd_ple, TRUE, "pause-loop exiting: show | set | watch" },
	{ "host-check", cmd_host_check, TRUE, "KVM and kernel facts, advice" },
	{ "recover", cmd_recover, FALSE, "roll back an interrupted change" },
	{ "forget", cmd_forget, FALSE, "drop a VM from the ledger" },
	{ "tune", cmd_tune, FALSE, "set a VM's CPU weight and nice" },
	{ "policy", cmd_policy, TRUE,
	  "vshared's Lua policies: list | show | enable | disable | reload | "
	  "dry-run | log" },
	{ "place", cmd_place, TRUE,
	  "where the layout policy puts a VM (migration-aware layout)" },
	{ "migrate", cmd_migrate, TRUE,
	  "live-migrate a QMP VM, its profile sent to the destination" },
	{ "ledger", cmd_ledger, TRUE, "show | reset --force" },
	{ "add", cmd_add, FALSE,
	  "register a VM (QMP sockets or a libvirt domain)" },
	{ "remove", cmd_remove, FALSE, "unregister a VM" },
	{ "list", cmd_list, TRUE, "registered VMs" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: vsharectl COMMAND [OPTIONS] [ARGS]\n\n");
	for (guint i = 0; i < G_N_ELEMENTS(commands); i++)
		fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\n`vsharectl COMMAND --help` for a command's options; "
		   "exit codes in vsharectl(8).\n");
}

static int run(const char *name, int argc, char **argv)
{
	Cli c = { 0 };
	int rc = -1;

	vs_config_init(&c.cfg);
	for (guint i = 0; i < G_N_ELEMENTS(commands); i++)
		if (!strcmp(name, commands[i].name)) {
			json_ok = commands[i].json; /* --json unknown if not */
			rc = commands[i].fn(&c, argc, argv);
		}
	vs_config_clear(&c.cfg);
	g_free(c.inline_qmp);
	g_free(c.inline_agent);
	g_free(c.socket);
	g_free(opt_socket);
	g_free(opt_conf);
	g_free(opt_state);
	g_free(opt_qmp);
	g_free(opt_agent);
	fflush(stdout);
	return rc;
}

int main(int argc, char **argv)
{
	int rc;

	setlocale(LC_ALL, "");
	signal(SIGPIPE, SIG_IGN);
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
	if (geteuid() != 0) {
		fprintf(stderr, "vsharectl: needs root: it acts on QEMU's "
				"threads and cgroups and keeps its state in a "
				"root-only directory\n");
		return VS_EXIT_FAILED;
	}
	rc = run(argv[1], argc - 1, argv + 1);
	if (rc >= 0)
		return rc;
	fprintf(stderr, "vsharectl: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return VS_EXIT_USAGE;
}
