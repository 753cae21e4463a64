/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vsharectl: the host side of vshare.
 *
 * Layers, bottom up (one file each):
 *   conn.c      JSON stream over a unix socket: QMP and the guest agent
 *   registry.c  VM names -> sockets; the host's (declared) pCPU/node layout
 *   vm.c        one VM's live facts from QMP; pinning; virtio-mem
 *   throttle.c  cgroup quota of vCPU threads (v1 cpu / v2 cpu.max)
 *   ledger.c    who owns which pCPU and memory; lock; intent journal
 *   change.c    apply a ledger change to the VMs, all-or-nothing; recover
 *   status.c, ple.c, hostcheck.c, main.c   the subcommands
 *
 * Errors follow protocol/: GError ** last, FALSE/NULL on failure.
 */
#pragma once

#include "vshare-proto.h"

#include <stdio.h>

#define VS_MAX_NODES 64
/* Deadline of an allocation change once the agent answered its sync. */
#define VS_AGENT_CHANGE_MS 60000

/* Exit codes (documented in vsharectl(8) and docs/vsharectl.md). */
enum {
	VS_EXIT_OK = 0,
	VS_EXIT_FAILED = 1,	 /* operation failed; previous state kept */
	VS_EXIT_USAGE = 2,	 /* bad command line */
	VS_EXIT_REFUSED = 3,	 /* the ledger forbids it (owner, capacity) */
	VS_EXIT_PARTIAL = 4,	 /* memory: the guest reached less */
	VS_EXIT_CORRUPT = 5,	 /* ledger or journal unreadable */
	VS_EXIT_UNSUPPORTED = 6, /* host lacks the feature (PLE, tracefs) */
	VS_EXIT_BUSY = 7,	 /* another vsharectl holds the lock */
};

/* Error domain of vsharectl; the code is the exit code. */
#define VSC_ERROR (vsc_error_quark())
GQuark vsc_error_quark(void);
int vsc_exit_code(const GError *error);

/* ---- conn.c: a JSON object stream over a unix socket ---------------- */

typedef struct VsConn VsConn;

VsConn *vs_conn_open(const char *path, GError **error);
void vs_conn_free(VsConn *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VsConn, vs_conn_free)
gboolean vs_conn_send(VsConn *c, const char *data, gsize len, GError **error);
/* Next JSON object (parsed); G_IO_ERROR_TIMED_OUT after @timeout_ms. */
JsonNode *vs_conn_recv(VsConn *c, int timeout_ms, GError **error);

/* QMP: greeting + qmp_capabilities done by vs_qmp_open. */
VsConn *vs_qmp_open(const char *path, GError **error);
/* Returns the "return" member (new reference). @args consumed. */
JsonNode *vs_qmp_call(VsConn *c, const char *cmd, JsonObject *args,
		      GError **error);

/* Agent: connect and guest-sync-delimited within @timeout_ms. */
VsConn *vs_agent_open(const char *path, int timeout_ms, GError **error);
JsonNode *vs_agent_call(VsConn *c, const char *cmd, JsonObject *args,
			int timeout_ms, GError **error);

/* ---- registry.c ----------------------------------------------------- */

typedef struct {
	char *conf_dir;	 /* /etc/vshare */
	char *state_dir; /* /var/lib/vshare */
	char *sysfs;	 /* "/sys" (tests of PLE point it elsewhere) */
	char *proc;	 /* "/proc" */
	int agent_timeout_ms;
	int mem_timeout_ms;
	int lock_wait_ms;
	gboolean json;
	/* inline VM (--qmp/--agent) */
	char *inline_qmp;
	char *inline_agent;
} VsOpts;

typedef struct {
	guint n_nodes;
	VsCpuSet node_cpus[VS_MAX_NODES];
	guint64 node_mem[VS_MAX_NODES]; /* virtio-mem pool; 0 = unlimited */
	GArray *pcpus;			/* guint, ascending: pCPU of vCPU i */
	gboolean declared;		/* from host.conf, not sysfs */
} VsHost;

typedef struct {
	char *name;
	char *qmp;
	char *agent;
} VsVmConf;

void vs_vmconf_free(VsVmConf *v);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VsVmConf, vs_vmconf_free)

gboolean vs_name_valid(const char *name, GError **error);
VsVmConf *vs_registry_get(const VsOpts *o, const char *name, GError **error);
/* Names of registered VMs, sorted. */
char **vs_registry_list(const VsOpts *o, GError **error);
gboolean vs_registry_add(const VsOpts *o, const char *name, const char *qmp,
			 const char *agent, gboolean force, GError **error);
gboolean vs_registry_remove(const VsOpts *o, const char *name, GError **error);
gboolean vs_host_load(const VsOpts *o, VsHost *host, GError **error);
void vs_host_clear(VsHost *host);
/* "256M", "1G", "1073741824" */
gboolean vs_parse_size(const char *s, guint64 *out, GError **error);
int vs_host_node_of(const VsHost *host, guint pcpu);
char *vs_host_describe(const VsHost *host);

/* ---- vm.c ------------------------------------------------------------ */

typedef struct {
	guint index;
	int node;
	gint64 tid;
} VsVcpu;

typedef struct {
	char *id;
	int node;
	guint64 requested, size, max, block;
} VsVmem;

typedef struct {
	VsVmConf *conf;
	VsConn *qmp;
	GArray *vcpus; /* VsVcpu, by index */
	GPtrArray *vmems;
	gint64 qemu_pid;
} VsVm;

void vs_vm_free(VsVm *vm);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VsVm, vs_vm_free)
VsVm *vs_vm_open(VsVmConf *conf, GError **error); /* takes @conf */
gboolean vs_vm_refresh_mem(VsVm *vm, GError **error);
VsVmem *vs_vm_vmem_on(VsVm *vm, int node);
/* vCPU i -> host pCPU i (sched_setaffinity of its thread). */
gboolean vs_vm_pin(VsVm *vm, const VsHost *host, GError **error);
gboolean vs_vm_check_shape(VsVm *vm, const VsHost *host, GError **error);
/* Set requested-size and wait for the device; *reached = final size. */
gboolean vs_vm_mem_resize(VsVm *vm, VsVmem *d, guint64 bytes, int timeout_ms,
			  guint64 *reached, GError **error);
/* Nanoseconds of CPU the thread has run (/proc/PID/task/TID/schedstat). */
gint64 vs_thread_cputime_ns(const VsOpts *o, gint64 pid, gint64 tid);
VsConn *vs_vm_agent(VsVm *vm, int timeout_ms, GError **error);

/* ---- throttle.c ------------------------------------------------------ */

/* Put each vCPU thread in its own cgroup and set its quota: throttled
 * vCPUs get the minimum quota (1 ms per 100 ms), the others none. */
gboolean vs_throttle_apply(VsVm *vm, const VsCpuSet *throttled, GError **error);
/* Which vCPUs are throttled now (for status and tests). */
gboolean vs_throttle_get(VsVm *vm, VsCpuSet *throttled, GError **error);
const char *vs_throttle_backend(void);

/* ---- ledger.c -------------------------------------------------------- */

typedef struct {
	char *name;
	VsCpuSet pcpus; /* owned */
	char *mode;	/* "coop" or "enforce" */
	guint64 mem[VS_MAX_NODES];
	/* Only in a journal's "before": the VM was not managed; undoing
	 * gives it every pCPU again and the memory it had. */
	gboolean unmanaged;
} VsLedgerVm;

typedef struct {
	guint64 generation;
	char *host; /* vs_host_describe() when written */
	GPtrArray *vms;
} VsLedger;

VsLedger *vs_ledger_new(const VsHost *host);
void vs_ledger_free(VsLedger *l);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VsLedger, vs_ledger_free)
VsLedger *vs_ledger_copy(const VsLedger *l);
VsLedgerVm *vs_ledger_find(VsLedger *l, const char *name);
VsLedgerVm *vs_ledger_add_vm(VsLedger *l, const char *name);
/* Owner of pCPU @cpu, or NULL. */
const char *vs_ledger_owner(VsLedger *l, guint cpu);
/* No pCPU owned twice, memory within capacity. A VM owning no pCPU is
 * parked: all its vCPUs throttled. */
gboolean vs_ledger_validate(VsLedger *l, const VsHost *host, GError **error);
JsonNode *vs_ledger_to_json(const VsLedger *l);
VsLedger *vs_ledger_from_json(JsonNode *node, GError **error);

/* Exclusive lock of the state directory; waits up to @wait_ms. */
int vs_state_lock(const VsOpts *o, int wait_ms, GError **error);
/* Missing ledger: an empty one. Corrupt: VS_EXIT_CORRUPT error. */
VsLedger *vs_ledger_load(const VsOpts *o, const VsHost *host, GError **error);
char *vs_ledger_file_text(const VsLedger *l);
gboolean vs_ledger_save(const VsOpts *o, const VsLedger *l, GError **error);
gboolean vs_write_atomic(const char *path, const char *text, GError **error);

/* ---- change.c -------------------------------------------------------- */

typedef struct {
	const VsOpts *o;
	VsHost host;
	VsLedger *ledger;
	GHashTable *vms; /* name -> VsVm (opened lazily) */
	int lock_fd;
	GString *log;		/* what was done, for the user */
	gboolean allow_partial; /* memory: keep what the guest reached */
	gboolean partial;	/* ... and it was less than asked */
	VsLedger *imported;	/* VMs newly managed by this change */
} VsCtx;

gboolean vs_ctx_init(VsCtx *ctx, const VsOpts *o, gboolean lock,
		     GError **error);
void vs_ctx_clear(VsCtx *ctx);
VsVm *vs_ctx_vm(VsCtx *ctx, const char *name, GError **error);

/* One step of a change: make VM @name look like @want. */
typedef enum {
	VS_STEP_CPUS,
	VS_STEP_MEM,
} VsStepKind;

/* Run a transaction: from ctx->ledger to @after through @steps (name,
 * kind pairs in order). All-or-nothing; journalled. */
typedef struct {
	const char *vm;
	VsStepKind kind;
} VsStep;

gboolean vs_change(VsCtx *ctx, const char *op, VsLedger *after,
		   const VsStep *steps, guint n_steps, const char *auto_mode,
		   GError **error);
/* Roll back an interrupted change (journal present). */
gboolean vs_recover(VsCtx *ctx, gboolean *recovered, GError **error);
/* vCPU indices of the VM that own pCPUs in @pcpus. */
void vs_vcpus_of(const VsHost *host, const VsCpuSet *pcpus, VsCpuSet *vcpus);

/* ---- subcommands ------------------------------------------------------ */

int vs_cmd_status(VsOpts *o, int argc, char **argv);
int vs_cmd_ple(VsOpts *o, int argc, char **argv);
int vs_cmd_host_check(VsOpts *o, int argc, char **argv);

/* Option parsing shared by subcommands (main.c): @entries plus --json,
 * --conf-dir, --state-dir, --qmp, --agent, --timeout, --mem-timeout. */
gboolean vs_parse_common(VsOpts *o, int *argc, char ***argv, const char *usage,
			 const char *summary, GOptionEntry *entries,
			 GError **error);

/* Print helpers (main.c). */
void vs_print_json(JsonNode *node);
int vs_fail(const GError *error);
