// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vshare-agent: the guest side of vshare. One glib main loop, no threads,
 * no timers: it wakes only for requests, for the port coming and going, and
 * for signals.
 */
#include "commands.h"

#include <gio/gio.h>
#include <glib-unix.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define VSHARE_AGENT_VERSION "0.1.0"
#define DEFAULT_PORT	     "org.vshare.agent.0"
#define DEFAULT_STATE_DIR    "/run/vshare-agent"

typedef struct {
	char *port;
	char *device;
	char *listen;
	char *allow_rpcs;
	char *block_rpcs;
	char *state_dir;
	char *cgroup_root;
	char *backend;
	char *test_fault;
	char *test_stop;
	gboolean no_irqs;
	gboolean no_workqueue;
	gboolean guest_vcpus;
	gboolean verbose;
	gboolean version;
} Options;

static void on_frame(const char *frame, gsize len, const GError *error,
		     gpointer user_data)
{
	VsAgent *agent = user_data;
	g_autoptr(GBytes) reply =
		vs_dispatcher_handle(agent->disp, frame, len, error);
	g_autoptr(GError) werr = NULL;
	gsize n;
	const guint8 *data = g_bytes_get_data(reply, &n);

	if (vs_channel_write_all(agent->chan, data, n, &werr))
		return;
	/* A host that hung up leaves its queued requests behind: one line
	 * for all their replies. */
	if (!g_error_matches(werr, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE))
		g_warning("reply dropped: %s", werr->message);
	else if (agent->dropped++ == 0)
		g_message("host hung up: reply dropped (and any others until "
			  "it reconnects)");
}

static void on_data(const guint8 *buf, gsize len, gpointer user_data)
{
	VsAgent *agent = user_data;

	vs_framer_feed(agent->framer, buf, len);
}

static void on_reset(gboolean connected, gpointer user_data)
{
	VsAgent *agent = user_data;

	g_message("host %s", connected ? "connected" : "disconnected");
	if (agent->dropped > 1)
		g_message("%u replies dropped in all", agent->dropped);
	agent->dropped = 0;
	vs_framer_reset(agent->framer);
}

/* SIGTERM/SIGINT through a signalfd: g_unix_signal_add() would start
 * glib's worker thread, and this daemon needs no thread. */
static gboolean on_quit(int fd, GIOCondition cond, gpointer user_data)
{
	VsAgent *agent = user_data;
	struct signalfd_siginfo si;

	(void)cond;
	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return G_SOURCE_CONTINUE;
	g_message("exiting on signal %u", si.ssi_signo);
	g_main_loop_quit(agent->loop);
	return G_SOURCE_REMOVE;
}

static gboolean parse_options(int *argc, char ***argv, Options *o,
			      GError **error)
{
	GOptionEntry entries[] = {
		{ "port", 'p', 0, G_OPTION_ARG_STRING, &o->port,
		  "virtio-serial port name (default " DEFAULT_PORT ")",
		  "NAME" },
		{ "device", 'd', 0, G_OPTION_ARG_FILENAME, &o->device,
		  "character device or unix socket to use instead", "PATH" },
		{ "listen", 'l', 0, G_OPTION_ARG_FILENAME, &o->listen,
		  "listen on a unix socket (tests, debugging)", "PATH" },
		{ "allow-rpcs", 'a', 0, G_OPTION_ARG_STRING, &o->allow_rpcs,
		  "enable only these commands (comma separated)", "LIST" },
		{ "block-rpcs", 'b', 0, G_OPTION_ARG_STRING, &o->block_rpcs,
		  "disable these commands (comma separated)", "LIST" },
		{ "state-dir", 't', 0, G_OPTION_ARG_FILENAME, &o->state_dir,
		  "where the allocation is journalled "
		  "(default " DEFAULT_STATE_DIR ")",
		  "DIR" },
		{ "backend", 0, 0, G_OPTION_ARG_STRING, &o->backend,
		  "confinement backend: auto (systemd if PID 1 is systemd), "
		  "cgroupfs, systemd",
		  "NAME" },
		{ "cgroup-root", 0, 0, G_OPTION_ARG_FILENAME, &o->cgroup_root,
		  "manage the tasks of this cgroup instead of the whole "
		  "hierarchy (tests)",
		  "DIR" },
		{ "no-irqs", 0, 0, G_OPTION_ARG_NONE, &o->no_irqs,
		  "leave IRQ affinities alone", NULL },
		{ "no-workqueue", 0, 0, G_OPTION_ARG_NONE, &o->no_workqueue,
		  "leave the unbound workqueue cpumask alone", NULL },
		{ "guest-vcpus", 0, 0, G_OPTION_ARG_NONE, &o->guest_vcpus,
		  "serve qemu-ga's guest-get-vcpus / guest-set-vcpus by "
		  "confinement (offline = outside the allocation; the kernel "
		  "keeps the vCPUs online)",
		  NULL },
		{ "test-fault", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_STRING,
		  &o->test_fault,
		  "testing: fail set-allocation after STEP "
		  "(cgroup, knobs, journal)",
		  "STEP" },
		{ "test-stop", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_STRING,
		  &o->test_stop,
		  "testing: stop (SIGSTOP) in set-allocation after STEP",
		  "STEP" },
		{ "verbose", 'v', 0, G_OPTION_ARG_NONE, &o->verbose,
		  "debug messages", NULL },
		{ "version", 'V', 0, G_OPTION_ARG_NONE, &o->version,
		  "print the version and exit", NULL },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};
	g_autoptr(GOptionContext) ctx =
		g_option_context_new("- vshare guest agent");

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, argc, argv, error))
		return FALSE;
	if (!!o->device + !!o->listen + !!o->port > 1) {
		g_set_error_literal(error, VS_ERROR, VS_ERROR_GENERIC,
				    "--port, --device and --listen exclude "
				    "each other");
		return FALSE;
	}
	return TRUE;
}

static void options_clear(Options *o)
{
	g_free(o->port);
	g_free(o->device);
	g_free(o->listen);
	g_free(o->allow_rpcs);
	g_free(o->block_rpcs);
	g_free(o->state_dir);
	g_free(o->cgroup_root);
	g_free(o->backend);
	g_free(o->test_fault);
	g_free(o->test_stop);
}

static gboolean agent_init(VsAgent *agent, Options *o, GError **error)
{
	VsAllocConfig cfg = {
		.state_dir = o->state_dir ? o->state_dir : DEFAULT_STATE_DIR,
		.irqs = !o->no_irqs,
		.workqueue = !o->no_workqueue,
		.test_fault = o->test_fault,
		.test_stop = o->test_stop,
	};
	VsChannelKind kind = VS_CHANNEL_PORT;
	const char *where = o->port ? o->port : DEFAULT_PORT;

	agent->disp = vs_dispatcher_new(VSHARE_AGENT_VERSION);
	if (!vs_commands_register(agent, error) ||
	    (o->allow_rpcs &&
	     !vs_dispatcher_allow_only(agent->disp, o->allow_rpcs, error)) ||
	    (o->block_rpcs &&
	     !vs_dispatcher_block(agent->disp, o->block_rpcs, error)))
		return FALSE;
	/* qemu-ga's meaning stays the default: these two only on request,
	 * whatever --allow-rpcs says */
	if (!o->guest_vcpus &&
	    !vs_dispatcher_block(agent->disp, "guest-get-vcpus,guest-set-vcpus",
				 error))
		return FALSE;
	agent->cg = vs_cgroup_open(o->backend, o->cgroup_root, error);
	if (!agent->cg)
		return FALSE;
	agent->alloc = vs_alloc_new(agent->cg, &cfg, error);
	if (!agent->alloc)
		return FALSE;
	agent->framer = vs_framer_new(VS_MAX_FRAME, on_frame, agent);
	if (o->device) {
		kind = VS_CHANNEL_DEVICE;
		where = o->device;
	} else if (o->listen) {
		kind = VS_CHANNEL_UNIX_LISTEN;
		where = o->listen;
	}
	agent->chan =
		vs_channel_new(kind, where, on_data, on_reset, agent, error);
	return agent->chan != NULL;
}

static void agent_cleanup(VsAgent *agent)
{
	vs_channel_free(agent->chan);
	vs_framer_free(agent->framer);
	vs_alloc_free(agent->alloc);
	vs_cgroup_free(agent->cg);
	vs_dispatcher_free(agent->disp);
	if (agent->loop)
		g_main_loop_unref(agent->loop);
}

int main(int argc, char **argv)
{
	Options o = { 0 };
	VsAgent agent = { 0 };
	g_autoptr(GError) error = NULL;
	sigset_t mask;
	int rc = EXIT_SUCCESS;
	int quit_fd = -1;

	/* SIGIO, SIGTERM and SIGINT are read through signalfds: block them
	 * before anything else (glib included) can start a thread. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGIO);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sigdelset(&mask, SIGIO);
	/* A peer that hangs up mid-reply is an EPIPE, not a death. */
	signal(SIGPIPE, SIG_IGN);

	if (!parse_options(&argc, &argv, &o, &error)) {
		g_printerr("vshare-agent: %s\n", error->message);
		options_clear(&o);
		return 2;
	}
	if (o.version) {
		g_print("vshare-agent %s (protocol %s)\n", VSHARE_AGENT_VERSION,
			vs_schema_version);
		options_clear(&o);
		return 0;
	}
	if (o.verbose)
		g_setenv("G_MESSAGES_DEBUG", "all", TRUE);
	if (!agent_init(&agent, &o, &error)) {
		g_printerr("vshare-agent: %s\n", error->message);
		rc = EXIT_FAILURE;
	} else {
		quit_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
		agent.loop = g_main_loop_new(NULL, FALSE);
		if (quit_fd >= 0)
			g_unix_fd_add(quit_fd, G_IO_IN, on_quit, &agent);
		g_message("vshare-agent %s ready", VSHARE_AGENT_VERSION);
		g_main_loop_run(agent.loop);
	}
	agent_cleanup(&agent);
	options_clear(&o);
	if (quit_fd >= 0)
		close(quit_fd);
	return rc;
}
