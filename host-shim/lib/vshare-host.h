/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libvshare-host: the host side of vshare as a library, under vsharectl
 * (cli/) and vshared (daemon/). It never prints, exits, sleeps or parses a
 * command line; errors are VS_HOST_ERROR codes, progress is a stream of
 * VsEvent structures the caller renders.
 *
 * Layers, bottom up (docs/architecture.md has the picture):
 *   parse.c     pure text parsers: sizes, mountinfo, /proc/stat, schedstat
 *   files.c     atomic, private file writes; the state directory
 *   peer.c      a bounded JSON stream over a unix socket (one deadline a
 *               call, bytes/elements/depth capped); QMP and agent clients
 *   layout.c    the host's nodes and pCPUs (sysfs or a declared host.conf)
 *   registry.c  VM names -> driver and its parameters
 *   vm.c        one VM through a driver (vmdrv.h); thread ids verified
 *   vmdrv-qmp.c, cgroup.c   the QMP driver and its cgroup throttling
 *   ledger.c    the model: who owns which pCPU and memory; JSON
 *   store.c     the ledger file (checksum, generation), lock, journal
 *   plan.c      pure: (ledger, layout, request) -> (new ledger, steps)
 *   apply.c     make one VM match a ledger entry (coop/enforce/auto)
 *   txn.c       journalled all-or-nothing changes; undo; recover
 */
#pragma once

#include "vshare-proto.h"

#include <sys/types.h>

#define VS_MAX_NODES 64
/* Replies: the agent's are a few KiB; QMP's grow with vCPUs/devices. */
#define VS_AGENT_MAX_REPLY (256 * 1024)
#define VS_QMP_MAX_REPLY   (4 * 1024 * 1024)
/* vshared's control socket; vsharectl and the libvirt hook take
 * $VSHARE_SOCKET first. */
#define VS_DAEMON_SOCKET "/run/vshare/vshared.sock"
#define VS_MAX_ELEMENTS	 65536

/* ---- errors ------------------------------------------------------------ */

#define VS_HOST_ERROR (vs_host_error_quark())
GQuark vs_host_error_quark(void);

typedef enum {
	VS_HOST_ERROR_FAILED,	   /* operation failed; previous state kept */
	VS_HOST_ERROR_USAGE,	   /* the request itself is malformed */
	VS_HOST_ERROR_REFUSED,	   /* the ledger forbids it */
	VS_HOST_ERROR_PARTIAL,	   /* memory: the guest reached less */
	VS_HOST_ERROR_CORRUPT,	   /* ledger or journal unreadable */
	VS_HOST_ERROR_UNSUPPORTED, /* the host lacks the feature */
	VS_HOST_ERROR_BUSY,	   /* another process holds the lock */
	VS_HOST_ERROR_UNREACHABLE, /* a peer is gone or did not answer */
	VS_HOST_ERROR_HOSTILE,	   /* a peer sent something we refuse */
	VS_HOST_ERROR_GONE,	   /* the peer does not exist any more */
} VsHostError;

const char *vs_host_error_name(int code);
/* Set @error, return FALSE: `return vs_fail(error, CODE, fmt, ...);`
 * (crun's crun_make_error idiom). */
static inline gboolean vs_fail(GError **error, int code, const char *fmt, ...)
	G_GNUC_PRINTF(3, 4);
static inline gboolean vs_fail(GError **error, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	g_propagate_error(error,
			  g_error_new_valist(VS_HOST_ERROR, code, fmt, ap));
	va_end(ap);
	return FALSE;
}
gboolean vs_error_is(const GError *e, VsHostError code);

/* ---- configuration (set by the front end) -------------------------------- */

typedef struct VsVmConf VsVmConf;

typedef struct {
	char *conf_dir;	 /* /etc/vshare */
	char *state_dir; /* /var/lib/vshare */
	char *sysfs;	 /* /sys */
	char *proc;	 /* /proc */
	int agent_timeout_ms;
	int qmp_timeout_ms;
	int mem_timeout_ms;
	VsVmConf *inline_vm; /* a VM given by sockets, not registered */
	GPtrArray *found;    /* VsVmConf: discovered libvirt domains */
} VsConfig;

void vs_config_init(VsConfig *c);
void vs_config_clear(VsConfig *c);

/* ---- parse.c: pure parsers over text ------------------------------------ */

/* "256M", "1G", "1073741824"; no sign, no overflow. */
gboolean vs_parse_size(const char *s, guint64 *out, GError **error);
/* Mount point of the cgroup hierarchy holding @controller: v1 first
 * (hybrid hosts), then a v2 mount whose root lists it. *version 0: none.
 * @v2_controllers reads a v2 mount's cgroup.controllers (may be NULL). */
char *vs_mountinfo_cgroup(const char *mountinfo, const char *controller,
			  char *(*v2_controllers)(const char *mount),
			  int *version);
/* /proc/stat: busy and total jiffies of "cpuN" lines (GArray of
 * VsCpuTimes, indexed by CPU number; absent CPUs zero). */
typedef struct {
	guint64 busy, total;
} VsCpuTimes;
GArray *vs_parse_proc_stat(const char *text, GError **error);
/* /proc/PID/task/TID/schedstat: run time in ns, -1 when malformed. */
gint64 vs_parse_schedstat(const char *text);
/* cpu.stat of a cgroup: time throttled in ns ("throttled_time" ns on v1,
 * "throttled_usec" on v2), -1 when absent or malformed. */
gint64 vs_parse_cpu_stat_throttled_ns(const char *text);
/* "Tgid:" of /proc/PID/status, -1 when absent. */
gint64 vs_parse_status_tgid(const char *text);

/* ---- files.c ------------------------------------------------------------- */

/* Create @dir 0700 (or tighten it), owned by us; refuse a symlink. */
gboolean vs_state_dir_ensure(const char *dir, GError **error);
/* Temp file created O_EXCL|O_NOFOLLOW, mode 0600, fsync, rename, fsync of
 * the directory. */
gboolean vs_write_private(const char *path, const char *text, GError **error);
/* The same with @mode (e.g. 0644 for a file others read). */
gboolean vs_write_file_mode(const char *path, const char *text, mode_t mode,
			    GError **error);
/* Read at most @max bytes of a file; larger is an error. */
char *vs_read_bounded(const char *path, gsize max, GError **error);

/* ---- peer.c: bounded JSON peers -------------------------------------------- */

typedef struct VsPeer VsPeer;

/* Connect to a unix socket; @max_frame bounds one reply. */
VsPeer *vs_peer_connect(const char *path, const char *who, gsize max_frame,
			GError **error);
/* Wrap a connected fd (taken). */
VsPeer *vs_peer_new_fd(int fd, const char *who, gsize max_frame);
void vs_peer_free(VsPeer *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VsPeer, vs_peer_free)
int vs_peer_fd(VsPeer *p);
const char *vs_peer_who(VsPeer *p);
/* SO_PEERCRED of the other end. */
gboolean vs_peer_cred(VsPeer *p, pid_t *pid, uid_t *uid, GError **error);
gboolean vs_peer_send(VsPeer *p, const char *data, gsize len, gint64 deadline,
		      GError **error);
/* Next JSON object before @deadline (monotonic us). Bytes, nesting and
 * elements are bounded; junk between objects is skipped but counts
 * against the deadline. */
JsonNode *vs_peer_recv(VsPeer *p, gint64 deadline, GError **error);
/* Frames already received and not yet read (no I/O). */
JsonNode *vs_peer_recv_queued(VsPeer *p);
/* Read what the socket has now (non-blocking); FALSE on EOF/error. */
gboolean vs_peer_pump(VsPeer *p, GError **error);

/* QMP: greeting and qmp_capabilities within @timeout_ms. */
VsPeer *vs_qmp_open(const char *path, int timeout_ms, GError **error);
/* The "return" member; events met meanwhile go to @on_event (may be NULL).
 * One deadline for the whole call. @args consumed. */
typedef void (*VsQmpEventFunc)(JsonObject *event, gpointer data);
JsonNode *vs_qmp_call(VsPeer *p, const char *cmd, JsonObject *args,
		      int timeout_ms, VsQmpEventFunc on_event, gpointer data,
		      GError **error);
/* Agent: connect and guest-sync-delimited within @timeout_ms. */
VsPeer *vs_agent_open(const char *path, int timeout_ms, GError **error);
/* A string member of @o (NULL @o, a missing member or another type:
 * NULL), for replies and files read from peers. */
const char *vs_json_str(JsonObject *o, const char *name);
JsonNode *vs_agent_call(VsPeer *p, const char *cmd, JsonObject *args,
			int timeout_ms, GError **error);

/* ---- layout.c ---------------------------------------------------------------- */

typedef struct {
	guint n_nodes; /* highest node number + 1; gaps and CPU-less
			* nodes have an empty set */
	VsCpuSet node_cpus[VS_MAX_NODES];
	guint64 node_mem[VS_MAX_NODES]; /* virtio-mem pool; 0 = unlimited */
	GArray *pcpus;			/* guint, ascending: pCPU of vCPU i */
	VsCpuSet all;			/* every pCPU */
	VsCpuSet nodes;			/* node numbers present */
	gboolean declared;		/* from host.conf, not sysfs */
} VsHost;

gboolean vs_host_load(const VsConfig *c, VsHost *host, GError **error);
/* Parse a declared layout (host.conf text). */
gboolean vs_host_from_keyfile(const char *text, const char *where, VsHost *host,
			      GError **error);
void vs_host_clear(VsHost *host);
int vs_host_node_of(const VsHost *host, guint pcpu);
char *vs_host_describe(const VsHost *host);
/* vCPU indices of a VM whose vCPU i runs on pCPU i, for @pcpus. */
void vs_host_vcpus_of(const VsHost *host, const VsCpuSet *pcpus,
		      VsCpuSet *vcpus);
/* Every node as a set. */
void vs_host_all_nodes(const VsHost *host, VsCpuSet *nodes);

/* ---- memmove.c: paced memory moves (paper 001's neighbours) ----------------- */

typedef struct {
	guint64 start, len;
} VsRange;

typedef struct {
	guint64 bytes;	 /* range bytes walked */
	guint64 present; /* bytes of pages present (moved or there) */
	guint64 on_node; /* pages now on the target node */
	guint64 failed;	 /* pages the kernel could not move */
	gint64 usec;
} VsMoveStats;

/* Mappings below this are not guest RAM worth moving. */
#define VS_RAM_MIN_BYTES (8u << 20)

/* The writable mappings of /proc/PID/maps text of at least @min_bytes. */
gboolean vs_parse_ram_ranges(const char *maps, guint64 min_bytes, GArray *out,
			     GError **error);
/* The kernel has NUMA node @node (a declared layout's may not). */
gboolean vs_node_is_real(int node);
/* Those mappings of process @pid to @node at most @mib_per_s, a chunk
 * at a time; stops when *@cancel becomes non-zero. */
gboolean vs_move_memory(gint64 pid, int node, guint mib_per_s,
			const gint *cancel, VsMoveStats *st, GError **error);

/* ---- transfer.c: the peer endpoint between vshareds (paper 001) ---------- */

/* The shared key (CONF/peer.key): a regular file of ours, mode 0600 or
 * stricter, 32..4096 bytes (trailing whitespace dropped). */
guint8 *vs_transfer_key_load(const char *path, gsize *len, GError **error);
/* 32 random bytes as 64 hex digits. */
char *vs_transfer_nonce(GError **error);
/* Hex HMAC-SHA256(key, nonce "\n" request); verify in constant time. */
char *vs_transfer_mac(const guint8 *key, gsize keylen, const char *nonce,
		      const char *request);
gboolean vs_transfer_verify(const guint8 *key, gsize keylen, const char *nonce,
			    const char *request, const char *mac);
/* "HOST:PORT" or "[V6]:PORT". */
gboolean vs_transfer_split(const char *peer, char **host, char **port,
			   GError **error);
/* One authenticated request to @peer; its "return" member. */
JsonNode *vs_transfer_send(const char *peer, const guint8 *key, gsize keylen,
			   const char *request, int timeout_ms, GError **error);

/* ---- registry.c ------------------------------------------------------------- */

typedef enum {
	VS_DRIVER_QMP,
	VS_DRIVER_LIBVIRT,
} VsDriverKind;

struct VsVmConf {
	char *name;
	VsDriverKind driver;
	char *qmp;     /* qmp: QMP socket */
	char *agent;   /* qmp: agent socket (libvirt: from the XML) */
	char *pidfile; /* qmp: the QEMU pid the QMP peer must be */
	char *domain;  /* libvirt: domain name or UUID */
	char *uri;     /* libvirt: connection URI */
};

void vs_vmconf_free(VsVmConf *v);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VsVmConf, vs_vmconf_free)
VsVmConf *vs_vmconf_copy(const VsVmConf *v);
const char *vs_driver_name(VsDriverKind k);

gboolean vs_name_valid(const char *name, GError **error);
VsVmConf *vs_registry_get(const VsConfig *c, const char *name, GError **error);
/* Names of registered VMs, sorted. */
char **vs_registry_list(const VsConfig *c, GError **error);
gboolean vs_registry_add(const VsConfig *c, const VsVmConf *v, gboolean force,
			 GError **error);
gboolean vs_registry_remove(const VsConfig *c, const char *name,
			    GError **error);
/* discover.c: the running domains of @uri that carry the vshare agent's
 * channel, as registry entries named after the domains. */
GPtrArray *vs_libvirt_discover(const char *uri, GError **error);
/* A domain's XML (live when it runs, else its definition), by name or
 * UUID. */
char *vs_libvirt_domain_xml(const char *uri, const char *domain,
			    GError **error);

/* ---- vm.c + drivers ------------------------------------------------------------ */

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

typedef struct VsVm VsVm;

/* A VM driver (the agent's cgroup vtable is the model). Every callback
 * gets an opened VM; optional slots may be NULL. */
typedef struct {
	const char *name;
	/* Fill vm->vcpus, vm->vmems, vm->qemu_pid, vm->agent_path. */
	gboolean (*open)(VsVm *vm, const VsConfig *c, GError **error);
	void (*close)(VsVm *vm);
	gboolean (*refresh_mem)(VsVm *vm, GError **error);
	/* Pin vCPU @vcpu to exactly @pcpu. */
	gboolean (*pin)(VsVm *vm, guint vcpu, guint pcpu, GError **error);
	/* Throttle exactly the vCPUs in @throttled (minimum quota). */
	gboolean (*throttle)(VsVm *vm, const VsCpuSet *throttled,
			     GError **error);
	gboolean (*throttled)(VsVm *vm, VsCpuSet *out, GError **error);
	/* Ask the device for @bytes (no wait). */
	gboolean (*mem_request)(VsVm *vm, VsVmem *d, guint64 bytes,
				GError **error);
	/* Wait until something about the VM may have changed (an event) or
	 * @deadline; no sleeping loop. */
	void (*wait)(VsVm *vm, gint64 deadline);
	/* Is the QEMU process still there? */
	gboolean (*alive)(VsVm *vm);
	const char *(*throttle_backend)(VsVm *vm);
	/* Between calls, a daemon watches this fd (-1: nothing to watch)
	 * and calls watch_read when it is readable: FALSE = QEMU gone. */
	int (*watch_fd)(VsVm *vm);
	gboolean (*watch_read)(VsVm *vm);
	/* ns the vCPU's cgroup was throttled so far, -1 unknown. */
	gint64 (*throttled_ns)(VsVm *vm, guint vcpu);
	/* CPU weight of the whole VM, 1..10000 (cgroup v2 scale). */
	gboolean (*set_weight)(VsVm *vm, guint weight, GError **error);
	/* Keep @xml (one element in namespace @uri, prefix @key) in the
	 * VM's definition, live and persistent: it travels with a live
	 * migration (libvirt's <metadata>). */
	gboolean (*set_metadata)(VsVm *vm, const char *key, const char *uri,
				 const char *xml, GError **error);
	/* Start a live migration to @uri; return once QEMU says it is
	 * under way (MIGRATION setup or active; *@status: which). */
	gboolean (*migrate)(VsVm *vm, const char *uri, char **status,
			    GError **error);
} VsVmDriver;

struct VsVm {
	VsVmConf *conf;
	const VsVmDriver *drv;
	gpointer priv;
	const VsConfig *cfg;
	GArray *vcpus;	  /* VsVcpu, by index, verified */
	GPtrArray *vmems; /* VsVmem */
	gint64 qemu_pid;
	gboolean incoming; /* QEMU waits for or receives a live migration
			    * (QMP "inmigrate"), until its RESUME */
	char *agent_path;
	char *uuid;
	/* The allocation the agent last confirmed to a change (NULL: none
	 * since the VM was opened) and when: status after a change shows it
	 * without asking the guest again. */
	char *agent_cpus, *agent_mems;
	gint64 agent_set_at;
};

extern const VsVmDriver vs_vmdrv_qmp;
extern const VsVmDriver vs_vmdrv_libvirt; /* NULL-ish when not built */

VsVm *vs_vm_open(const VsConfig *c, VsVmConf *conf, GError **error);
void vs_vm_free(VsVm *vm);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VsVm, vs_vm_free)
VsVm *vs_vm_alloc(VsVmConf *conf, const VsConfig *c);
gboolean vs_vm_refresh_mem(VsVm *vm, GError **error);
VsVmem *vs_vm_vmem_on(VsVm *vm, int node);
void vs_vmem_free(gpointer p);
/* Thread ids are tasks of the QEMU process, unique and non-zero. */
gboolean vs_vm_verify_threads(VsVm *vm, GError **error);
gboolean vs_vm_check_shape(VsVm *vm, const VsHost *host, GError **error);
/* vCPU i -> host pCPU i. */
gboolean vs_vm_pin(VsVm *vm, const VsHost *host, GError **error);
/* Set requested size and wait for the device (events, deadline). */
gboolean vs_vm_mem_resize(VsVm *vm, VsVmem *d, guint64 bytes, int timeout_ms,
			  guint64 *reached, GError **error);
gboolean vs_vm_alive(VsVm *vm);
/* Affinity of thread @tid to exactly @pcpu (any CPU number). */
gboolean vs_pin_thread(gint64 tid, guint pcpu, GError **error);
/* Affinity of thread @tid to exactly the pCPUs of @cpus. */
gboolean vs_pin_thread_set(gint64 tid, const VsCpuSet *cpus, GError **error);
/* Every non-vCPU thread of the VM's QEMU to @cpus. */
gboolean vs_vm_pin_other_threads(VsVm *vm, const VsCpuSet *cpus,
				 GError **error);
/* Nanoseconds of CPU the vCPU thread has run, -1 if unknown. */
gint64 vs_vm_vcpu_cputime_ns(VsVm *vm, guint vcpu);
VsPeer *vs_vm_agent(VsVm *vm, int timeout_ms, GError **error);
gboolean vs_vm_throttle(VsVm *vm, const VsCpuSet *throttled, GError **error);
gboolean vs_vm_throttled(VsVm *vm, VsCpuSet *out, GError **error);
const char *vs_vm_throttle_backend(VsVm *vm);
/* ns vCPU @vcpu's thread waited throttled (enforce), -1 unknown. */
gint64 vs_vm_vcpu_throttled_ns(VsVm *vm, guint vcpu);
/* Weight 0 means the default (100). */
gboolean vs_vm_set_weight(VsVm *vm, guint weight, GError **error);
/* The driver's set_metadata; UNSUPPORTED where the VM has no definition
 * that travels (QMP). */
gboolean vs_vm_set_metadata(VsVm *vm, const char *key, const char *uri,
			    const char *xml, GError **error);
/* The driver's migrate; UNSUPPORTED where another tool migrates (libvirt). */
gboolean vs_vm_migrate(VsVm *vm, const char *uri, char **status,
		       GError **error);
/* setpriority() on every thread of the verified QEMU process. */
gboolean vs_vm_set_nice(VsVm *vm, int nice, GError **error);

/* QMP vCPU/memory replies, checked (shared by the QMP and libvirt
 * drivers and the fuzzer). */
gboolean vs_qmp_parse_vcpus(JsonNode *reply, GArray *vcpus, GError **error);
gboolean vs_qmp_parse_vmems(JsonNode *reply, GPtrArray *vmems, GError **error);

/* cgroup.c: per-vCPU cpu cgroups under vshare's own directory (QMP). */
const char *vs_cgroup_cpu_backend(void);
int vs_cgroup_cpu_version(void); /* 1, 2, or 0: no cpu controller */
gboolean vs_cgroup_throttle(VsVm *vm, const VsCpuSet *throttled,
			    GError **error);
gboolean vs_cgroup_throttled(VsVm *vm, VsCpuSet *out, GError **error);
/* cpu.weight (v2) or cpu.shares (v1, weight * 1024 / 100) of the VM's
 * cgroup, its vCPU threads placed in it. */
gboolean vs_cgroup_weight(VsVm *vm, guint weight, GError **error);
gint64 vs_cgroup_throttled_ns(VsVm *vm, guint vcpu);

/* ---- ledger.c ---------------------------------------------------------------------- */

typedef enum {
	VS_MODE_COOP,
	VS_MODE_ENFORCE,
	VS_MODE_AUTO, /* requests only: coop, else enforce */
} VsMode;

const char *vs_mode_name(VsMode m);
gboolean vs_mode_parse(const char *s, VsMode *m, GError **error);

typedef struct {
	char *name;
	VsCpuSet pcpus; /* owned */
	VsMode mode;	/* coop or enforce */
	guint64 mem[VS_MAX_NODES];
	int weight; /* CPU weight 1..10000 (cgroup v2 scale); 0: never set */
	int nice;   /* nice of every QEMU thread, -20..19 */
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
VsLedgerVm *vs_ledger_find(const VsLedger *l, const char *name);
VsLedgerVm *vs_ledger_add_vm(VsLedger *l, const char *name);
gboolean vs_ledger_remove_vm(VsLedger *l, const char *name);
const char *vs_ledger_owner(const VsLedger *l, guint cpu);
/* No pCPU owned twice or absent, memory within capacity, no overflow. */
gboolean vs_ledger_validate(const VsLedger *l, const VsHost *host,
			    GError **error);
JsonNode *vs_ledger_to_json(const VsLedger *l);
VsLedger *vs_ledger_from_json(JsonNode *node, GError **error);

/* ---- store.c ------------------------------------------------------------------------- */

/* Exclusive lock of the state directory, without waiting: BUSY names the
 * holder (and says when it is not root). */
int vs_store_lock(const VsConfig *c, gboolean wait, GError **error);
void vs_store_unlock(int fd);
/* Missing ledger: an empty one. Corrupt: VS_HOST_ERROR_CORRUPT. */
VsLedger *vs_store_load(const VsConfig *c, const VsHost *host, GError **error);
VsLedger *vs_store_parse(const char *text, const char *where,
			 const VsHost *host, GError **error);
char *vs_store_text(const VsLedger *l);
gboolean vs_store_save(const VsConfig *c, const VsLedger *l, GError **error);
gboolean vs_store_reset(const VsConfig *c, const VsHost *host, GError **error);

/* ---- plan.c: pure ------------------------------------------------------------------------ */

typedef enum {
	VS_STEP_CPUS,
	VS_STEP_MEM,
	VS_STEP_TUNE, /* weight and nice */
} VsStepKind;

typedef struct {
	char *vm;
	VsStepKind kind;
} VsStep;

/* "cpus", "mem", "tune" (journal, events); parse: FALSE when unknown. */
const char *vs_step_kind_name(VsStepKind k);
gboolean vs_step_kind_parse(const char *s, VsStepKind *k);

typedef enum {
	VS_REQ_CPUS,
	VS_REQ_MEM,
	VS_REQ_LEND,
	VS_REQ_FORGET,
	VS_REQ_TUNE,
} VsReqKind;

typedef struct {
	VsReqKind kind;
	const char *vm;	  /* cpus, mem, forget */
	const char *from; /* lend */
	const char *to;
	VsCpuSet cpus; /* cpus: the new set (empty: parked); lend: moved */
	int node;      /* mem, lend with memory; -1 none */
	guint64 bytes; /* mem: new size; lend: moved */
	VsMode mode;
	int weight; /* tune: 1..10000; 0 keeps it */
	int nice;   /* tune: -20..19 when set_nice */
	gboolean set_nice;
} VsChangeReq;

/* What a VM not yet in the ledger holds (its virtio-mem per node); the
 * caller opens the VM. FALSE with @error when it cannot. */
typedef gboolean (*VsImportFunc)(const char *vm, guint64 mem[VS_MAX_NODES],
				 gpointer data, GError **error);

typedef struct {
	const char *op;
	VsLedger *after;
	VsLedger *imported; /* VMs newly managed, as they were */
	GArray *steps;	    /* VsStep */
	VsMode mode;	    /* for CPU steps */
	gboolean allow_partial;
} VsPlan;

VsPlan *vs_plan_make(const VsLedger *now, const VsHost *host,
		     const VsChangeReq *req, VsImportFunc import,
		     gpointer import_data, GError **error);
void vs_plan_free(VsPlan *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VsPlan, vs_plan_free)

/* ---- events: structured progress ------------------------------------------------------------ */

typedef enum {
	VS_EV_RECOVER,	    /* detail: op; ok: rolled back / committed */
	VS_EV_STEP,	    /* step done: index, kind, elapsed_us */
	VS_EV_STEP_FAILED,  /* index, message; undo follows */
	VS_EV_CONFINED,	    /* coop: cpus, mems, agent timings */
	VS_EV_THROTTLED,    /* enforce: cpus = throttled vCPUs */
	VS_EV_PARKED,	    /* owns no pCPU */
	VS_EV_FALLBACK,	    /* auto: agent failed, enforcing; message */
	VS_EV_MEM,	    /* node, bytes reached */
	VS_EV_MEM_PARTIAL,  /* node, bytes reached of want */
	VS_EV_NOTE,	    /* message: a non-fatal problem */
	VS_EV_UNDO_SKIPPED, /* QEMU gone: message */
	VS_EV_UNDO_FAILED,  /* message */
} VsEventKind;

typedef struct {
	VsEventKind kind;
	const char *vm;
	const char *op;
	guint index;
	VsStepKind step;
	int node;
	const char *cpus, *mems;
	guint64 bytes, want;
	gint64 elapsed_us;
	gint64 agent_us[5]; /* elapsed, prepare, cgroup, knobs, journal */
	const char *message;
	gboolean committed;
} VsEvent;

typedef void (*VsEventFunc)(const VsEvent *ev, gpointer data);

/* event.c: events over the control socket. */
JsonNode *vs_event_to_json(const VsEvent *e);
/* Strings in @e point into @node, which must outlive @e. */
gboolean vs_event_from_json(JsonNode *node, VsEvent *e);

/* ---- txn.c: sessions and transactions -------------------------------------------------------- */

typedef struct {
	const VsConfig *cfg;
	VsHost host;
	VsLedger *ledger;
	GHashTable *vms; /* name -> VsVm (opened lazily) */
	int lock_fd;
	VsEventFunc emit;
	gpointer emit_data;
	gboolean partial;    /* memory: a change reached less than asked */
	GHashTable *touched; /* VMs a step of this process acted on */
} VsSession;

/* Load layout and ledger. @lock_fd: a lock from vs_store_lock (the
 * session owns it and rolls back whatever a killed process left), or -1
 * for a read-only session. */
gboolean vs_session_open(VsSession *s, const VsConfig *c, int lock_fd,
			 VsEventFunc emit, gpointer data, GError **error);
void vs_session_close(VsSession *s);
VsVm *vs_session_vm(VsSession *s, const char *name, GError **error);
/* Plan and run one change. */
gboolean vs_session_change(VsSession *s, const VsChangeReq *req,
			   GError **error);
/* Roll back an interrupted change (journal present). */
gboolean vs_session_recover(VsSession *s, gboolean *recovered, GError **error);
/* Is this journal text well formed (fuzzing, tests)? */
gboolean vs_journal_check(const char *text, GError **error);
/* Run a plan: journalled, all-or-nothing. */
gboolean vs_txn_run(VsSession *s, VsPlan *plan, GError **error);

/* apply.c */
/* @prev: the entry before the change (NULL in undo). */
gboolean vs_apply_cpus(VsSession *s, const char *name, VsLedgerVm *want,
		       const VsLedgerVm *prev, VsMode mode, GError **error);
gboolean vs_apply_mem(VsSession *s, const char *name, VsLedgerVm *want,
		      gboolean allow_partial, guint64 reached[VS_MAX_NODES],
		      GError **error);
gboolean vs_apply_tune(VsSession *s, const char *name, VsLedgerVm *want,
		       GError **error);
void vs_emit(VsSession *s, const VsEvent *ev);

/* observe.c: `status` and metrics. Begin opens the VMs, asks the agents
 * and samples vCPU run time; the caller waits; end samples again and
 * returns the JSON document (docs/vsharectl.md). */
typedef struct VsObservation VsObservation;
VsObservation *vs_observe_begin(VsSession *s, char **names);
JsonNode *vs_observe_end(VsObservation *o);
/* The observation so far, as vs_observe_end would give it now, without
 * ending it; NULL when it does not cover exactly @names or one of them
 * was not reachable at its begin (take a new one). */
JsonNode *vs_observe_peek(VsObservation *o, char **names);
void vs_observation_free(VsObservation *o);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VsObservation, vs_observation_free)
