// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vshared: take the ledger lock for good, roll back what a killed process
 * left, serve the control socket, follow the VMs, write metrics.
 */
#include "vshared.h"

#include <glib-unix.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef VS_POLICY_DIR
#define VS_POLICY_DIR "/usr/share/vshare/policies"
#endif

static char *opt_conf, *opt_state, *opt_socket, *opt_metrics, *opt_libvirt;
static char *opt_policies, *opt_layout, *opt_peer_listen, *opt_config;
static int opt_interval = 10, opt_move_rate = 256;
static double opt_timeout = 5.0, opt_qmp_timeout = 10.0;
static double opt_mem_timeout = 30.0;
static gboolean opt_version;

/* Where the configuration file is: read before the other options. */
static GOptionEntry where[] = {
	{ "config", 0, 0, G_OPTION_ARG_FILENAME, &opt_config,
	  "options from this file (default CONF/vshared.conf when it "
	  "exists; vshare.conf(5)); the command line wins",
	  "FILE" },
	{ "conf-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt_conf,
	  "registry and host.conf (default /etc/vshare)", "DIR" },
	{ NULL }
};

/* Every one of these is also a key of [vshared] in the file. */
static GOptionEntry entries[] = {
	{ "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt_state,
	  "ledger, journal, lock (default /var/lib/vshare)", "DIR" },
	{ "socket", 0, 0, G_OPTION_ARG_FILENAME, &opt_socket,
	  "control socket (default /run/vshare/vshared.sock)", "PATH" },
	{ "metrics-file", 0, 0, G_OPTION_ARG_FILENAME, &opt_metrics,
	  "Prometheus text file, mode 0644 (default " VS_METRICS_FILE
	  ": node_exporter's textfile directory)",
	  "PATH" },
	{ "libvirt-uri", 0, 0, G_OPTION_ARG_STRING, &opt_libvirt,
	  "follow this libvirtd: every domain with the org.vshare.agent.0 "
	  "channel is managed under its name (default " VS_LIBVIRT_AUTO
	  " when " VS_LIBVIRT_SOCK " exists; none: never)",
	  "URI" },
	{ "policies", 0, 0, G_OPTION_ARG_FILENAME, &opt_policies,
	  "shipped Lua policies (default " VS_POLICY_DIR "; CONF/policies "
	  "overrides a name)",
	  "DIR" },
	{ "layout-policy", 0, 0, G_OPTION_ARG_STRING, &opt_layout,
	  "the layout policy that places VMs arriving by live migration "
	  "(default " VS_LAYOUT_POLICY "; docs/migration.md)",
	  "NAME" },
	{ "peer-listen", 0, 0, G_OPTION_ARG_STRING, &opt_peer_listen,
	  "accept migrating VMs' profiles from other hosts' vshared on this "
	  "TCP address, authenticated with CONF/peer.key (docs/migration.md)",
	  "HOST:PORT" },
	{ "move-rate", 0, 0, G_OPTION_ARG_INT, &opt_move_rate,
	  "MiB/s at most when a neighbour's memory follows it to its new "
	  "node (default 256)",
	  "MIB" },
	{ "metrics-interval", 0, 0, G_OPTION_ARG_INT, &opt_interval,
	  "seconds between observations (default 10)", "S" },
	{ "timeout", 0, 0, G_OPTION_ARG_DOUBLE, &opt_timeout,
	  "seconds for each guest agent call (default 5)", "S" },
	{ "qmp-timeout", 0, 0, G_OPTION_ARG_DOUBLE, &opt_qmp_timeout,
	  "seconds for each QMP command (default 10)", "S" },
	{ "mem-timeout", 0, 0, G_OPTION_ARG_DOUBLE, &opt_mem_timeout,
	  "seconds to wait for virtio-mem (default 30)", "S" },
	{ NULL }
};

static GOptionEntry misc[] = { { "version", 0, 0, G_OPTION_ARG_NONE,
				 &opt_version, "print the version and exit",
				 NULL },
			       { NULL } };

/* One key of the file into its option's variable. */
static gboolean load_key(GKeyFile *kf, const GOptionEntry *e, GError **error)
{
	GError *local = NULL;

	switch (e->arg) {
	case G_OPTION_ARG_STRING:
	case G_OPTION_ARG_FILENAME: {
		char *v = g_key_file_get_string(kf, "vshared", e->long_name,
						&local);

		if (v)
			g_free(*(char **)e->arg_data),
				*(char **)e->arg_data = v;
		break;
	}
	case G_OPTION_ARG_INT: {
		int v = g_key_file_get_integer(kf, "vshared", e->long_name,
					       &local);

		if (!local)
			*(int *)e->arg_data = v;
		break;
	}
	case G_OPTION_ARG_DOUBLE: {
		double v = g_key_file_get_double(kf, "vshared", e->long_name,
						 &local);

		if (!local)
			*(double *)e->arg_data = v;
		break;
	}
	default:
		g_assert_not_reached();
	}
	if (local)
		g_propagate_prefixed_error(error, local, "%s: ", e->long_name);
	return !local;
}

/* The file's [vshared] keys become option values; unknown keys and
 * groups are refused (a typo must not silently mean the default). A
 * missing default file is no configuration; a missing --config is an
 * error. */
static gboolean load_config(const char *conf_dir, GError **error)
{
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autofree char *path =
		opt_config ? g_strdup(opt_config)
			   : g_build_filename(conf_dir, "vshared.conf", NULL);
	g_autofree char *text = NULL;
	g_auto(GStrv) groups = NULL, keys = NULL;

	if (!opt_config && !g_file_test(path, G_FILE_TEST_EXISTS))
		return TRUE;
	text = vs_read_bounded(path, 64 * 1024, error);
	if (!text || !g_key_file_load_from_data(kf, text, -1, 0, error))
		goto fail;
	groups = g_key_file_get_groups(kf, NULL);
	for (guint i = 0; groups[i]; i++)
		if (strcmp(groups[i], "vshared")) {
			g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
				    "unknown group [%s] (only [vshared])",
				    groups[i]);
			goto fail;
		}
	keys = g_key_file_get_keys(kf, "vshared", NULL, NULL);
	for (guint i = 0; keys && keys[i]; i++) {
		const GOptionEntry *e = entries;

		while (e->long_name && strcmp(e->long_name, keys[i]))
			e++;
		if (!e->long_name) {
			g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
				    "unknown key %s (vshared --help lists "
				    "them)",
				    keys[i]);
			goto fail;
		}
		if (!load_key(kf, e, error))
			goto fail;
	}
	return TRUE;
fail:
	g_prefix_error(error, "%s: ", path);
	return FALSE;
}

/* --libvirt-uri: "none" is off; unset follows the system libvirtd when
 * its socket is there at start (a later libvirtd needs a restart). */
static char *libvirt_uri(void)
{
	if (opt_libvirt)
		return g_strcmp0(opt_libvirt, "none") ? g_strdup(opt_libvirt)
						      : NULL;
	return g_file_test(VS_LIBVIRT_SOCK, G_FILE_TEST_EXISTS)
		       ? g_strdup(VS_LIBVIRT_AUTO)
		       : NULL;
}

/* GOption replaces a string option's value without freeing it: a value
 * the file gave and the command line replaced is freed here. */
static gboolean parse_over_file(GOptionContext *ctx, int *argc, char ***argv,
				GError **error)
{
	char *old[G_N_ELEMENTS(entries)] = { NULL };
	gboolean ok;

	for (guint i = 0; entries[i].long_name; i++)
		if (entries[i].arg == G_OPTION_ARG_STRING ||
		    entries[i].arg == G_OPTION_ARG_FILENAME)
			old[i] = *(char **)entries[i].arg_data;
	ok = g_option_context_parse(ctx, argc, argv, error);
	for (guint i = 0; entries[i].long_name; i++)
		if (old[i] && old[i] != *(char **)entries[i].arg_data)
			g_free(old[i]);
	return ok;
}

/* Where the file is (first pass, the rest ignored), the file, then the
 * whole command line over it. */
static gboolean parse_options(int *argc, char ***argv, GError **error)
{
	g_autoptr(GOptionContext) pre = g_option_context_new("");
	g_autoptr(GOptionContext) ctx = g_option_context_new("");
	/* the first pass removes what it took from its array (without
	 * freeing): it gets a shallow copy of a copy freed whole after */
	g_auto(GStrv) copy = g_strdupv(*argv);
	g_autofree char **v = g_memdup2(copy, (*argc + 1) * sizeof(char *));
	int n = *argc;
	gboolean ok;

	g_option_context_add_main_entries(pre, where, NULL);
	g_option_context_set_ignore_unknown_options(pre, TRUE);
	g_option_context_set_help_enabled(pre, FALSE);
	if (!g_option_context_parse(pre, &n, &v, error))
		return FALSE;
	ok = load_config(opt_conf ? opt_conf : VS_CONF_DIR, error);
	g_clear_pointer(&opt_conf, g_free); /* the second pass sets them */
	g_clear_pointer(&opt_config, g_free);
	if (!ok)
		return FALSE;
	g_option_context_set_summary(ctx, "The vshare host daemon.");
	g_option_context_add_main_entries(ctx, where, NULL);
	g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_add_main_entries(ctx, misc, NULL);
	return parse_over_file(ctx, argc, argv, error);
}

static gboolean configure(Daemon *d, int *argc, char ***argv, GError **error)
{
	if (!parse_options(argc, argv, error))
		return FALSE;
	if (opt_version)
		return TRUE;
	if (opt_interval < 1 || opt_interval > 3600 || opt_timeout <= 0 ||
	    opt_qmp_timeout <= 0 || opt_mem_timeout <= 0 || opt_move_rate < 1)
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
				   "intervals, timeouts and the move rate must "
				   "be positive"),
		       FALSE;
	vs_config_init(&d->cfg);
	if (opt_conf)
		g_free(d->cfg.conf_dir), d->cfg.conf_dir = g_strdup(opt_conf);
	if (opt_state)
		g_free(d->cfg.state_dir),
			d->cfg.state_dir = g_strdup(opt_state);
	d->cfg.agent_timeout_ms = opt_timeout * 1000;
	d->cfg.qmp_timeout_ms = opt_qmp_timeout * 1000;
	d->cfg.mem_timeout_ms = opt_mem_timeout * 1000;
	d->socket_path = g_strdup(opt_socket ? opt_socket : VS_DAEMON_SOCKET);
	d->metrics_path = g_strdup(opt_metrics ? opt_metrics : VS_METRICS_FILE);
	d->metrics_interval_s = opt_interval;
	d->libvirt_uri = libvirt_uri();
	d->policy_dir = g_strdup(opt_policies ? opt_policies : VS_POLICY_DIR);
	d->layout_policy = g_strdup(opt_layout ? opt_layout : VS_LAYOUT_POLICY);
	d->move_rate = (guint)opt_move_rate;
	d->peer_listen = g_strdup(opt_peer_listen);
	return TRUE;
}

/* Readiness for systemd (Type=notify) without libsystemd. */
static void notify_ready(void)
{
	const char *path = g_getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (!path || !*path || strlen(path) >= sizeof(sa.sun_path))
		return;
	strcpy(sa.sun_path, path);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, "READY=1", 7, MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   sizeof(sa)) < 0)
		g_debug("sd_notify: %s", g_strerror(errno));
	close(fd);
}

/* The last word on stopping: whatever a job or the clean-up waits for (a
 * stuck guest or libvirtd, a policy), vshared is gone VS_STOP_GRACE_S
 * after SIGTERM, and the watchdog says where it was. A change cut short
 * is what a crash leaves: the journal replays it at the next start. */
#define VS_STOP_GRACE_S 10

static GMutex stop_lock;
static GCond stop_cond;
static gboolean stop_done;
static GThread *stop_thread; /* from the first SIGTERM to the exit */
static const char *stop_stage = "the main loop"; /* under stop_lock */

static void stop_at(const char *stage)
{
	g_mutex_lock(&stop_lock);
	stop_stage = stage;
	g_mutex_unlock(&stop_lock);
}

static gpointer stop_watchdog(gpointer data)
{
	gint64 end = g_get_monotonic_time() + VS_STOP_GRACE_S * G_USEC_PER_SEC;

	g_mutex_lock(&stop_lock);
	while (!stop_done)
		if (!g_cond_wait_until(&stop_cond, &stop_lock, end)) {
			g_warning("stopping: still in %s after %d s; exiting "
				  "without it (the journal recovers an "
				  "unfinished change at the next start)",
				  stop_stage, VS_STOP_GRACE_S);
			_exit(1);
		}
	g_mutex_unlock(&stop_lock);
	return NULL;
}

static void stop_finished(void)
{
	if (!stop_thread)
		return;
	g_mutex_lock(&stop_lock);
	stop_done = TRUE;
	g_cond_signal(&stop_cond);
	g_mutex_unlock(&stop_lock);
	g_thread_join(g_steal_pointer(&stop_thread));
}

static gboolean on_quit(gpointer data)
{
	Daemon *d = data;

	g_message("stopping");
	if (!stop_thread) /* everything from here on is bounded */
		stop_thread =
			g_thread_new("stop-watchdog", stop_watchdog, NULL);
	d->stopping = TRUE;
	if (d->policy) /* a policy run in progress ends at its next check */
		vs_policy_engine_interrupt(d->policy);
	g_main_loop_quit(d->loop);
	return G_SOURCE_CONTINUE;
}

static gboolean on_hup(gpointer data)
{
	Daemon *d = data;

	g_message("SIGHUP: reading the registry again");
	daemon_job(d, JOB_RELOAD, NULL, NULL, 0, NULL, NULL);
	return G_SOURCE_CONTINUE;
}

static gboolean on_tick(gpointer data)
{
	Daemon *d = data;

	if (d->tick_queued)
		return G_SOURCE_CONTINUE; /* slow guests: ticks coalesce */
	d->tick_queued = TRUE;
	daemon_job(d, JOB_METRICS, NULL, NULL, 0, NULL, NULL);
	return G_SOURCE_CONTINUE;
}

/* The lock, waited for as a vsharectl would (its --wait default): one
 * working alone (vshared was down) finishes its change first. */
#define VS_START_LOCK_WAIT_S 30

static int take_lock(Daemon *d, GError **error)
{
	gint64 end =
		g_get_monotonic_time() + VS_START_LOCK_WAIT_S * G_USEC_PER_SEC;
	gboolean said = FALSE;
	int fd;

	for (;;) {
		g_autoptr(GError) local = NULL;

		fd = vs_store_lock(&d->cfg, FALSE, &local);
		if (fd >= 0 || !vs_error_is(local, VS_HOST_ERROR_BUSY) ||
		    g_get_monotonic_time() > end) {
			if (fd < 0)
				g_propagate_error(error,
						  g_steal_pointer(&local));
			return fd;
		}
		if (!said)
			g_message("%s: waiting up to %d s", local->message,
				  VS_START_LOCK_WAIT_S);
		said = TRUE;
		g_usleep(50 * 1000);
	}
}

/* The lock for the daemon's lifetime, then recovery. A journal an agent
 * is too slow to undo stays; the metrics tick retries it. */
static gboolean start_session(Daemon *d, GError **error)
{
	int fd = take_lock(d, error);
	g_autoptr(GError) local = NULL;

	if (fd < 0)
		return FALSE;
	if (vs_session_open(&d->session, &d->cfg, fd, daemon_collect, d,
			    &local))
		return TRUE;
	/* A journal whose undo fails (a VM away, a cgroup file refused) is
	 * retried at every tick by a running vshared: refusing to start
	 * would leave every VM unmanaged, the unit in a restart loop. Only a
	 * ledger or journal that cannot be read stops it. */
	if (!d->session.ledger || vs_error_is(local, VS_HOST_ERROR_CORRUPT)) {
		g_propagate_error(error, g_steal_pointer(&local));
		return FALSE;
	}
	g_warning("%s (retrying at every metrics tick)", local->message);
	return TRUE;
}

/* The metrics file's directory, made 0755 when missing (node_exporter
 * runs unprivileged); an existing one is left as its owner made it. A
 * directory that cannot be made is said by the first write. */
static void metrics_dir(Daemon *d)
{
	g_autofree char *dir = g_path_get_dirname(d->metrics_path);

	if (!g_file_test(dir, G_FILE_TEST_IS_DIR))
		g_mkdir_with_parents(dir, 0755);
}

static int run(Daemon *d)
{
	g_autoptr(GError) error = NULL;

	daemon_jobs_init(d);
	metrics_dir(d);
	daemon_libvirt_prepare(d);
	if (!daemon_api_bind(d, &error) || !start_session(d, &error) ||
	    !daemon_transfer_start(d, &error)) {
		g_printerr("vshared: %s\n", error->message);
		daemon_api_stop(d);
		g_thread_pool_free(d->pool, TRUE, TRUE);
		return 1;
	}
	daemon_api_start(d);
	daemon_policy_init(d);
	daemon_monitor_init(d);
	d->loop = g_main_loop_new(NULL, FALSE);
	daemon_libvirt_start(d);
	g_unix_signal_add(SIGTERM, on_quit, d);
	g_unix_signal_add(SIGINT, on_quit, d);
	g_unix_signal_add(SIGHUP, on_hup, d);
	d->tick_src = g_timeout_add_seconds(d->metrics_interval_s, on_tick, d);
	daemon_job(d, JOB_RELOAD, NULL, NULL, 0, NULL, NULL);
	on_tick(d);
	g_message("ready: %s (ledger generation %" G_GUINT64_FORMAT ")",
		  d->socket_path, d->session.ledger->generation);
	notify_ready();
	g_main_loop_run(d->loop);
	stop_at("the drain of jobs");
	/* the drain below dispatches what is due: no timer may queue a job
	 * on the pool being freed (measured: a tick due during the drain
	 * pushed onto the freed pool and leaked its job) */
	d->stopping = TRUE;
	g_source_remove(d->tick_src);
	daemon_api_stop(d);
	daemon_transfer_stop(d);
	daemon_libvirt_stop(d);
	g_thread_pool_free(d->pool, FALSE, TRUE);
	stop_at("the layout's mover");
	daemon_layout_stop(d);
	while (g_main_context_iteration(NULL, FALSE)) /* job_done callbacks */
		;
	return 0;
}

static void cleanup(Daemon *d)
{
	daemon_unwatch_all(d);
	g_clear_pointer(&d->watches, g_hash_table_destroy);
	g_clear_pointer(&d->obs, vs_observation_free);
	g_clear_pointer(&d->last_status, json_node_unref);
	g_clear_pointer(&d->stats, g_hash_table_destroy);
	g_clear_pointer(&d->strikes, g_hash_table_destroy);
	daemon_policy_free(d);
	daemon_layout_free(d);
	daemon_transfer_stop(d);
	daemon_monitor_free(d);
	g_clear_pointer(&d->event_nodes, g_ptr_array_unref);
	g_clear_pointer(&d->dispatcher, vs_dispatcher_free);
	g_clear_pointer(&d->loop, g_main_loop_unref);
	vs_session_close(&d->session);
	vs_config_clear(&d->cfg);
	g_free(d->socket_path);
	g_free(d->metrics_path);
	g_free(d->libvirt_uri);
}

int main(int argc, char **argv)
{
	Daemon d = { .listen_fd = -1, .peer_fd = -1 };
	g_autoptr(GError) error = NULL;
	int rc;

	setlocale(LC_ALL, "");
	signal(SIGPIPE, SIG_IGN);
	if (!configure(&d, &argc, &argv, &error)) {
		g_printerr("vshared: %s\n", error->message);
		return 2;
	}
	if (opt_version) {
		g_print("vshared %s\n", vs_schema_version);
		return 0;
	}
	rc = run(&d);
	stop_at("the clean-up (VMs, policies, libvirt)");
	cleanup(&d);
	stop_finished();
	g_free(opt_conf);
	g_free(opt_state);
	g_free(opt_socket);
	g_free(opt_metrics);
	g_free(opt_libvirt);
	g_free(opt_peer_listen);
	g_free(opt_config);
	return rc;
}
