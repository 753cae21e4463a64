/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vshared: the host daemon over libvshare-host. One glib main loop hears
 * the control socket (api.c), QEMU's QMP connections (watch.c) and timers;
 * everything that touches the ledger or waits on a guest runs as a job on
 * one worker thread (jobs.c), so event intake never waits behind a slow
 * agent and changes stay serial, as the ledger lock requires.
 *
 *   main.c     options, lock, recover at start, signals, readiness
 *   api.c      control socket: root peers only, framing, replies in order
 *   jobs.c     the worker: requests (schema-dispatched), VM gone, metrics
 *   decode.c   a change request's arguments, a peer's envelope (fuzzed)
 *   watch.c    one fd watch per QMP VM between jobs: QEMU gone -> job
 *   metrics.c  Prometheus text (textfile-collector convention)
 *   policy.c   the Lua policy engine: timers, events, acts, commands
 *   sense.c    the state document policies read
 */
#pragma once

#include "vshare-host.h"
#include "vshare-policy.h"
#include "vshare-profile.h"

extern const VsCommandSpec vs_host_schema_commands[];
extern const char vs_host_schema_version[];

typedef struct Client Client;

typedef struct {
	VsConfig cfg;
	VsSession session; /* the worker's, between jobs the loop's */
	GMainLoop *loop;
	GThreadPool *pool;    /* one thread: jobs run one at a time */
	guint pending;	      /* jobs queued or running (loop's count) */
	gboolean tick_queued; /* a metrics job is queued (loop) */
	guint tick_src;	      /* the metrics timer (loop) */
	gboolean stopping;    /* SIGTERM/INT seen: no new job (loop) */
	VsDispatcher *dispatcher;
	GHashTable *watches; /* name -> Watch (loop) */
	char *socket_path;
	char *metrics_path;
	gboolean metrics_failing; /* said once until a write works (worker) */
	const char *who;	  /* the request being handled: its sender */
	int metrics_interval_s;
	VsObservation *obs;    /* metrics: since the last tick (worker) */
	JsonNode *last_status; /* the last tick's status document (worker) */
	GHashTable *stats;     /* counters for metrics (worker) */
	GString *events;       /* events of the running request (worker) */
	GPtrArray *event_nodes;
	int listen_fd;
	GSource *listen_src;
	char *libvirt_uri; /* --libvirt-uri: follow that libvirtd */
	gpointer libvirt;  /* virConnectPtr for lifecycle events (loop) */
	int libvirt_cb;
	guint libvirt_timer;			  /* reconnecting */
	struct VsLibvirtOpening *libvirt_opening; /* its open in flight */
	gboolean libvirt_lost;
	GHashTable *strikes; /* guard.c: VM -> ticks using lent vCPUs */
	/* policies (policy.c, sense.c); the engine lives on the worker */
	VsPolicyEngine *policy;
	char *policy_dir;	  /* shipped policies */
	gint64 policy_next;	  /* next due, monotonic us (atomic) */
	guint policy_timer;	  /* loop */
	gboolean policy_queued;	  /* loop */
	GPtrArray *policy_events; /* "event\nvm" to run after a run */
	GHashTable *samples;	  /* sense.c: VM -> last sample */
	GHashTable *agent_up;	  /* VM -> agent answered last time */
	GHashTable *known;	  /* VMs seen open: vm-started once */
	GArray *stat_prev;	  /* /proc/stat at the last sample */
	/* layout.c: paper 001's placement of arriving VMs */
	char *layout_policy;	  /* --layout-policy */
	GHashTable *reserved;	  /* VM -> pCPUs promised to an arrival */
	gboolean reserved_loaded; /* STATE/reservations.json read */
	GThreadPool *mover;	  /* one thread: paced memory moves */
	gint move_cancel;	  /* set at stop (atomic) */
	guint move_rate;	  /* --move-rate, MiB/s */
	GHashTable *transferred;  /* VM -> Transferred: profiles from peers */
	/* transfer.c: the peer endpoint (--peer-listen) */
	char *peer_listen;
	int peer_fd;
	GSource *peer_src;
	guint8 *peer_key;
	gsize peer_key_len;
	guint peer_conns;
	/* monitor.c: paper 001's Monitor */
	gboolean pmu;		  /* hardware counters usable */
	GHashTable *profiles;	  /* VM -> its last profile (worker) */
	GHashTable *profiles_bad; /* VM -> why its declared one is refused,
				     logged once per change (worker) */
} Daemon;

/* jobs.c */
typedef enum {
	JOB_REQUEST, /* a control-socket frame */
	JOB_VM_GONE, /* a watched VM's QEMU went away */
	JOB_METRICS, /* the periodic tick */
	JOB_RELOAD,  /* SIGHUP: open every registered VM */
	JOB_POLICY,  /* a policy timer is due */
	JOB_EVENT,   /* a VM migrated in: policies' "vm-migrated" */
} JobKind;

void daemon_jobs_init(Daemon *d);
/* The session's event sink: progress for the current request, a log line
 * for what an operator must know. */
void daemon_collect(const VsEvent *ev, gpointer data);
/* Queue a job; @client/@frame for JOB_REQUEST, @vm for JOB_VM_GONE. */
/* decode.c: a string member, NULL when absent or not a string */
const char *daemon_arg_str(JsonObject *a, const char *k);
/* vshare-host-change's (schema-checked) arguments as a change. */
gboolean daemon_change_request(JsonObject *a, VsChangeReq *r, GError **error);
/* A peer's frame {request: TEXT, mac: HEX}, parsed by @p (which owns the
 * strings); FALSE with @why. */
gboolean daemon_peer_envelope(JsonParser *p, const char *frame, gsize len,
			      const char **req, const char **mac,
			      const char **why);

void daemon_job(Daemon *d, JobKind kind, Client *client, const char *frame,
		gsize len, const GError *frame_error, const char *vm);

/* api.c */
gboolean daemon_api_bind(Daemon *d, GError **error);
void daemon_api_start(Daemon *d);
void daemon_api_stop(Daemon *d);
void client_reply(Client *c, GBytes *bytes); /* loop thread */
Client *client_ref(Client *c);
void client_unref(Client *c);
void client_done(Client *c); /* a queued request was answered */
/* Who sent the client's requests ("uid 0 pid 123 (vsharectl)"). */
const char *client_who(Client *c);
Client *client_new_oneshot(Daemon *d, int fd);

/* watch.c (loop thread) */
void daemon_watch_all(Daemon *d);
void daemon_unwatch_all(Daemon *d);

/* libvirt.c: lifecycle events and reconnects (loop); discovery (worker)
 * adds names that disappeared to @gone; FALSE when it could not list. */
void daemon_libvirt_prepare(Daemon *d); /* before recovery */
void daemon_libvirt_start(Daemon *d);
void daemon_libvirt_stop(Daemon *d);
gboolean daemon_discover(Daemon *d, GPtrArray *gone);

/* guard.c (worker): coop VMs that keep using lent vCPUs -> enforce */
void daemon_guard(Daemon *d, JsonNode *status);

/* policy.c: the engine (worker), its timer (loop) */
void daemon_policy_init(Daemon *d);
void daemon_policy_free(Daemon *d);
void daemon_policy_register(Daemon *d); /* control-socket commands */
void daemon_policy_run(Daemon *d);	/* worker: due timers, events */
void daemon_policy_event(Daemon *d, const char *event, const char *vm);
void daemon_policy_after_job(Daemon *d); /* worker: next due time */
void daemon_policy_arm(Daemon *d);	 /* loop: timer for it */

/* sense.c (worker) */
void daemon_sense_init(Daemon *d);
JsonNode *daemon_sense(Daemon *d, GError **error);
JsonNode *daemon_sense_quick(Daemon *d); /* no agent asked, no sample kept */

/* layout.c (worker): vshare-host-place, paper 001's Optimizer */
#define VS_LAYOUT_POLICY "layout-simple"
void daemon_layout_init(Daemon *d);
void daemon_layout_free(Daemon *d);
void daemon_layout_stop(Daemon *d); /* cancel and join memory moves */
/* [{vm, cpus, node, followed, seconds-left}] for the status (worker) */
JsonArray *daemon_layout_reservations(Daemon *d);

/* transfer.c: paper 001's QMP Transferer, vshared to vshared */
gboolean daemon_transfer_start(Daemon *d, GError **error); /* loop */
void daemon_transfer_stop(Daemon *d);
void daemon_transfer_register(Daemon *d); /* vshare-host-migrate */
char *daemon_peer_key_path(Daemon *d);

/* monitor.c (worker): per-VM profiles at each tick, kept in libvirt's
 * <metadata>; "profile" added to each VM of the status document */
void daemon_monitor_init(Daemon *d);
void daemon_monitor_free(Daemon *d);
void daemon_monitor_tick(Daemon *d, JsonNode *status);
gboolean daemon_monitor_profile(Daemon *d, const char *vm, VsProfile *out);

/* main.c: the configuration (vshare.conf(5)) */
#define VS_CONF_DIR	"/etc/vshare"
#define VS_LIBVIRT_SOCK "/run/libvirt/libvirt-sock"
#define VS_LIBVIRT_AUTO "qemu:///system"

/* metrics.c (worker) */
/* Where Debian's prometheus-node-exporter reads text files by default
 * (--collector.textfile.directory). */
#define VS_METRICS_FILE "/var/lib/prometheus/node-exporter/vshare.prom"
void daemon_metrics_tick(Daemon *d);
void daemon_stat_add(Daemon *d, const char *key, double v);
