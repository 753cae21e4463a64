// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The libvirt VM driver: a domain of a libvirtd (qemu:///system by
 * default), through libvirt's C API only for what libvirt tracks.
 *
 *  vCPU threads  libvirt's own per-vCPU cgroups: DOMAIN/vcpuN holds the
 *                thread libvirt placed there at start (from its own
 *                query-cpus-fast, before the guest ran). Not
 *                virDomainQemuMonitorCommand: even a read taints the
 *                domain "custom-monitor" (seen in libvirt 9.0's log).
 *                Nodes from <cpu><numa><cell cpus=>.
 *  QEMU pid      libvirt's pid file (/run/libvirt/qemu/NAME.pid, or the
 *                registry's pidfile= for a private libvirtd), accepted
 *                only if /proc/PID/cmdline carries "-uuid UUID"; when
 *                the file is unreadable (a libvirtd in its own mount
 *                namespace), the one process in /proc with that UUID;
 *                the cgroup is read from /proc/PID/cgroup. Thread ids are
 *                then checked to be tasks of that pid.
 *  pin           virDomainPinVcpuFlags(LIVE).
 *  throttle      cpu.cfs_quota_us (v1) / cpu.max (v2) of DOMAIN/vcpuN,
 *                written directly: libvirt 9.0's vcpu_quota is one value
 *                for all vCPUs (virDomainSetSchedulerParameters writes it
 *                to every vcpuN), and has no per-vCPU form. libvirt keeps
 *                the threads in these cgroups and writes their quota only
 *                when asked (schedinfo --set vcpu_quota, setvcpus) or at
 *                start, so nothing undoes it behind vshare's back.
 *                Unthrottled = the domain's <cputune><quota>, else none.
 *  virtio-mem    live XML; a resize is virDomainUpdateDeviceFlags(LIVE)
 *                with the device's XML where only <requested> differs
 *                (virsh update-memory-device); the guest's progress comes
 *                as VIR_DOMAIN_EVENT_ID_MEMORY_DEVICE_SIZE_CHANGE.
 *  wait          until a domain event (memory size, lifecycle) or the
 *                connection's close, or the deadline: libvirt's events
 *                run on a GMainContext (vmdrv-libvirt-events.c).
 *  agent         the path of <channel type='unix'> org.vshare.agent.0.
 *
 * A dropped connection (libvirtd restarted) is reopened on the next call
 * and the domain found again by UUID.
 */
#include "vmdrv-libvirt.h"

#include <errno.h>
#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_URI  "qemu:///system"
#define PID_DIR	     "/run/libvirt/qemu"
#define MIN_QUOTA_US 1000
#define SMALL_FILE   (64 * 1024)

typedef struct {
	virConnectPtr conn;
	virDomainPtr dom;
	int cb_mem, cb_life;
	gint events; /* domain events and closes seen (atomic) */
	gint seen;   /* events when the caller last looked */
	VsLvDomain xml;
	char *cg_dir; /* the domain's cgroup in the cpu hierarchy */
	int cg_version;
} Priv;

static void quiet(void *data, virErrorPtr e)
{
}

static void lv_init(void)
{
	static gsize once;
	struct sigaction sa;

	if (!g_once_init_enter(&once))
		return;
	virInitialize();
	/* libvirt prints every error to stderr unless told otherwise. */
	virSetErrorFunc(NULL, quiet);
	/* A write to a libvirtd that just died raises SIGPIPE; libvirt leaves
	 * it to the application (virsh ignores it). Unless the program chose
	 * a handler, ignore it: the call then fails as UNREACHABLE. */
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
	vs_libvirt_events_init();
	g_once_init_leave(&once, 1);
}

/* ---- errors ----------------------------------------------------------- */

static int code_of(virErrorPtr e, virDomainPtr dom)
{
	if (!e)
		return VS_HOST_ERROR_FAILED;
	switch (e->code) {
	case VIR_ERR_NO_DOMAIN: /* destroyed and undefined: gone */
		return VS_HOST_ERROR_GONE;
	case VIR_ERR_NO_CONNECT:
	case VIR_ERR_INVALID_CONN:
	case VIR_ERR_INVALID_DOMAIN:
	case VIR_ERR_RPC:
	case VIR_ERR_OPERATION_TIMEOUT:
		return VS_HOST_ERROR_UNREACHABLE;
	case VIR_ERR_NO_SUPPORT:
	case VIR_ERR_OPERATION_UNSUPPORTED:
	case VIR_ERR_ARGUMENT_UNSUPPORTED:
		return VS_HOST_ERROR_UNSUPPORTED;
	case VIR_ERR_OPERATION_INVALID: /* "domain is not running" */
		return dom && virDomainIsActive(dom) == 0
			       ? VS_HOST_ERROR_GONE
			       : VS_HOST_ERROR_FAILED;
	default:
		return e->domain == VIR_FROM_RPC ? VS_HOST_ERROR_UNREACHABLE
						 : VS_HOST_ERROR_FAILED;
	}
}

/* libvirt's last error as a GError: "VM NAME: WHAT: message". */
static gboolean virt_fail(VsVm *vm, const char *what, GError **error)
{
	Priv *p = vm->priv;
	virErrorPtr e = virSaveLastError();
	int code = code_of(e, p ? p->dom : NULL);

	g_set_error(error, VS_HOST_ERROR, code, "VM %s: %s: %s", vm->conf->name,
		    what, e && e->message ? e->message : "libvirt failed");
	virFreeError(e);
	return FALSE;
}

static gboolean sys_fail(VsVm *vm, const char *path, int err, GError **error)
{
	g_set_error(error, VS_HOST_ERROR,
		    err == ENOENT || err == ESRCH ? VS_HOST_ERROR_UNREACHABLE
						  : VS_HOST_ERROR_FAILED,
		    "VM %s: %s: %s", vm->conf->name, path, g_strerror(err));
	return FALSE;
}

/* A /proc or cgroup file; gone (QEMU or its cgroup) is UNREACHABLE. */
static char *read_max(VsVm *vm, const char *path, gsize max, GError **error)
{
	g_autoptr(GError) e = NULL;
	char *text = vs_read_bounded(path, max, &e);

	if (text)
		return text;
	if (e->domain == VS_HOST_ERROR) {
		g_propagate_error(error, g_steal_pointer(&e));
		return NULL;
	}
	g_set_error(error, VS_HOST_ERROR,
		    g_error_matches(e, G_FILE_ERROR, G_FILE_ERROR_NOENT)
			    ? VS_HOST_ERROR_UNREACHABLE
			    : VS_HOST_ERROR_FAILED,
		    "VM %s: %s", vm->conf->name, e->message);
	return NULL;
}

static char *read_small(VsVm *vm, const char *path, GError **error)
{
	return read_max(vm, path, SMALL_FILE, error);
}

/* ---- connection and events --------------------------------------------- */

static void bump(Priv *p)
{
	g_atomic_int_inc(&p->events);
	vs_libvirt_events_kick();
}

static void on_mem(virConnectPtr c, virDomainPtr d, const char *alias,
		   unsigned long long kib, void *opaque)
{
	bump(opaque);
}

static int on_life(virConnectPtr c, virDomainPtr d, int event, int detail,
		   void *opaque)
{
	bump(opaque);
	return 0;
}

static void on_close(virConnectPtr c, int reason, void *opaque)
{
	bump(opaque);
}

static void disconnect(Priv *p)
{
	if (p->cb_mem >= 0)
		virConnectDomainEventDeregisterAny(p->conn, p->cb_mem);
	if (p->cb_life >= 0)
		virConnectDomainEventDeregisterAny(p->conn, p->cb_life);
	p->cb_mem = p->cb_life = -1;
	if (p->conn)
		virConnectUnregisterCloseCallback(p->conn, on_close);
	g_clear_pointer(&p->dom, virDomainFree);
	g_clear_pointer(&p->conn, virConnectClose);
	vs_libvirt_events_drain();
}

static virDomainPtr lookup(virConnectPtr conn, const char *id)
{
	virDomainPtr d = NULL;

	if (g_uuid_string_is_valid(id))
		d = virDomainLookupByUUIDString(conn, id);
	return d ? d : virDomainLookupByName(conn, id);
}

static gboolean events_on(VsVm *vm)
{
	Priv *p = vm->priv;

	p->cb_mem = virConnectDomainEventRegisterAny(
		p->conn, p->dom, VIR_DOMAIN_EVENT_ID_MEMORY_DEVICE_SIZE_CHANGE,
		VIR_DOMAIN_EVENT_CALLBACK(on_mem), p, NULL);
	p->cb_life = virConnectDomainEventRegisterAny(
		p->conn, p->dom, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
		VIR_DOMAIN_EVENT_CALLBACK(on_life), p, NULL);
	return p->cb_mem >= 0 && p->cb_life >= 0 &&
	       virConnectRegisterCloseCallback(p->conn, on_close, p, NULL) == 0;
}

/* Open the connection and the domain (by UUID once known). */
static gboolean connect_dom(VsVm *vm, GError **error)
{
	Priv *p = vm->priv;
	const char *uri = vm->conf->uri ? vm->conf->uri : DEFAULT_URI;
	const char *id = vm->uuid ? vm->uuid : vm->conf->domain;

	if (!id) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
			    "VM %s: no libvirt domain given", vm->conf->name);
		return FALSE;
	}
	/* bounded open; the keepalive bounds calls where a loop runs it */
	p->conn = vs_libvirt_open(uri, error);
	if (!p->conn) {
		g_prefix_error(error, "VM %s: ", vm->conf->name);
		return FALSE;
	}
	p->dom = lookup(p->conn, id);
	if (!p->dom)
		return virt_fail(vm, id, error);
	if (!events_on(vm)) {
		virt_fail(vm, "domain events", error);
		disconnect(p);
		return FALSE;
	}
	return TRUE;
}

/* Reconnect when libvirtd went away since the last call. The pending
 * events run first: an EOF on the socket is how the client learns it. */
static gboolean ensure(VsVm *vm, GError **error)
{
	Priv *p = vm->priv;

	vs_libvirt_events_drain();
	if (p->conn && virConnectIsAlive(p->conn) == 1)
		return TRUE;
	disconnect(p);
	return connect_dom(vm, error);
}

/* ---- what libvirt says ---------------------------------------------------- */

static VsVmem *vmem_copy(const VsVmem *m)
{
	VsVmem *c = g_memdup2(m, sizeof(*m));

	c->id = g_strdup(m->id);
	return c;
}

/* The live XML into p->xml (vm->vmems untouched). */
static gboolean fetch_xml(VsVm *vm, GError **error)
{
	Priv *p = vm->priv;
	g_autofree char *xml = virDomainGetXMLDesc(p->dom, 0);

	if (!xml)
		return virt_fail(vm, "domain XML", error);
	if (!vs_lv_parse_domain(xml, &p->xml, error)) {
		g_prefix_error(error, "VM %s: ", vm->conf->name);
		return FALSE;
	}
	return TRUE;
}

/* The live XML, and vm->vmems from it; events before count as seen. */
static gboolean load_xml(VsVm *vm, GError **error)
{
	Priv *p = vm->priv;

	p->seen = g_atomic_int_get(&p->events);
	if (!fetch_xml(vm, error))
		return FALSE;
	g_ptr_array_set_size(vm->vmems, 0);
	for (guint i = 0; i < p->xml.vmems->len; i++)
		g_ptr_array_add(vm->vmems,
				vmem_copy(g_ptr_array_index(p->xml.vmems, i)));
	return TRUE;
}

/* "-uuid UUID" in QEMU's command line: the pid file is not stale. */
static gboolean is_qemu_of(gint64 pid, const char *uuid)
{
	g_autofree char *path =
		g_strdup_printf("/proc/%" G_GINT64_FORMAT "/cmdline", pid);
	g_autofree char *argv = NULL;
	gsize len = 0;

	if (!g_file_get_contents(path, &argv, &len, NULL))
		return FALSE;
	for (gsize i = 0; i + 1 < len; i += strlen(argv + i) + 1)
		if (!strcmp(argv + i, "-uuid") && i + 6 < len &&
		    !strcmp(argv + i + 6, uuid))
			return TRUE;
	return FALSE;
}

/* No pid file to read (a libvirtd in another mount namespace, a
 * discovered domain without pidfile=): the one process whose command line
 * has "-uuid UUID". None is UNREACHABLE; several, HOSTILE (one is lying). */
static gboolean scan_pid(VsVm *vm, const char *file, GError **error)
{
	Priv *p = vm->priv;
	g_autoptr(GDir) dir = g_dir_open("/proc", 0, NULL);
	const char *ent;
	guint found = 0;
	guint64 pid;

	while (dir && (ent = g_dir_read_name(dir)))
		if (g_ascii_string_to_unsigned(ent, 10, 1, G_MAXINT, &pid,
					       NULL) &&
		    is_qemu_of((gint64)pid, p->xml.uuid) && found++ == 0)
			vm->qemu_pid = (gint64)pid;
	if (found == 1)
		return TRUE;
	vm->qemu_pid = 0;
	g_set_error(error, VS_HOST_ERROR,
		    found ? VS_HOST_ERROR_HOSTILE : VS_HOST_ERROR_UNREACHABLE,
		    "VM %s: %s unreadable and %u processes in /proc carry "
		    "-uuid %s (want exactly one QEMU)",
		    vm->conf->name, file, found, p->xml.uuid);
	return FALSE;
}

static gboolean load_pid(VsVm *vm, GError **error)
{
	Priv *p = vm->priv;
	g_autofree char *def = g_strdup_printf(PID_DIR "/%s.pid", p->xml.name);
	const char *file = vm->conf->pidfile ? vm->conf->pidfile : def;
	g_autofree char *text = vs_read_bounded(file, SMALL_FILE, NULL);
	guint64 pid;

	if (!text)
		return scan_pid(vm, file, error);
	if (!g_ascii_string_to_unsigned(g_strstrip(text), 10, 1, G_MAXINT, &pid,
					NULL) ||
	    !is_qemu_of((gint64)pid, p->xml.uuid)) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_UNREACHABLE,
			    "VM %s: %s does not name the QEMU of domain %s",
			    vm->conf->name, file, p->xml.uuid);
		return FALSE;
	}
	vm->qemu_pid = (gint64)pid;
	return TRUE;
}

static char *v2_controllers(const char *mount)
{
	g_autofree char *f =
		g_build_filename(mount, "cgroup.controllers", NULL);

	return vs_read_bounded(f, SMALL_FILE, NULL);
}

/* libvirt makes DOMAIN/vcpuN only with the cpu controller in qemu.conf's
 * cgroup_controllers (the default has it): say so, not "no such file"
 * at the first vCPU's tasks file. */
static gboolean per_vcpu_cgroups(VsVm *vm, GError **error)
{
	Priv *p = vm->priv;
	g_autofree char *v0 = g_build_filename(p->cg_dir, "vcpu0", NULL);

	if (g_file_test(v0, G_FILE_TEST_IS_DIR))
		return TRUE;
	/* UNREACHABLE, as the file read it replaces: tried again later */
	g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_UNREACHABLE,
		    "VM %s: no per-vCPU cgroup %s (vshare finds and throttles "
		    "vCPU threads there; libvirt makes them when \"cpu\" is in "
		    "cgroup_controllers of /etc/libvirt/qemu.conf, as by "
		    "default)",
		    vm->conf->name, v0);
	return FALSE;
}

/* The domain's cgroup in the cpu hierarchy: QEMU's main thread is in
 * DOMAIN/emulator, its vCPU threads in DOMAIN/vcpuN. */
static gboolean load_cgroup(VsVm *vm, GError **error)
{
	Priv *p = vm->priv;
	g_autofree char *mi =
		read_max(vm, "/proc/self/mountinfo", 4 * 1024 * 1024, error);
	g_autofree char *mount = NULL, *text = NULL, *rel = NULL;
	g_autofree char *f = NULL;

	if (!mi)
		return FALSE;
	mount = vs_mountinfo_cgroup(mi, "cpu", v2_controllers, &p->cg_version);
	f = g_strdup_printf("/proc/%" G_GINT64_FORMAT "/cgroup", vm->qemu_pid);
	text = read_small(vm, f, error);
	if (!text)
		return FALSE;
	rel = mount ? vs_lv_proc_cgroup(text, "cpu", p->cg_version) : NULL;
	if (!rel) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_UNSUPPORTED,
			    "VM %s: QEMU %" G_GINT64_FORMAT
			    " is in no cpu cgroup (libvirt's per-vCPU "
			    "cgroups are needed)",
			    vm->conf->name, vm->qemu_pid);
		return FALSE;
	}
	if (g_str_has_suffix(rel, "/emulator"))
		rel[strlen(rel) - strlen("/emulator")] = '\0';
	p->cg_dir = g_build_filename(mount, rel, NULL);
	return per_vcpu_cgroups(vm, error);
}

static char *vcpu_file(Priv *p, guint vcpu, const char *name)
{
	g_autofree char *sub = g_strdup_printf("vcpu%u", vcpu);

	return g_build_filename(p->cg_dir, sub, name, NULL);
}

static const char *members(Priv *p)
{
	return p->cg_version == 2 ? "cgroup.threads" : "tasks";
}

/* The one thread libvirt keeps in DOMAIN/vcpuN. */
static gboolean vcpu_tid(VsVm *vm, guint i, gint64 *tid, GError **error)
{
	Priv *p = vm->priv;
	g_autofree char *f = vcpu_file(p, i, members(p));
	g_autofree char *text = read_small(vm, f, error);
	g_auto(GStrv) tids = NULL;
	guint64 v;

	if (!text)
		return FALSE;
	tids = g_strsplit(g_strstrip(text), "\n", -1);
	if (g_strv_length(tids) != 1 ||
	    !g_ascii_string_to_unsigned(tids[0], 10, 1, G_MAXINT, &v, NULL)) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
			    "VM %s: %s: want one thread id, got \"%s\"",
			    vm->conf->name, f, text);
		return FALSE;
	}
	*tid = (gint64)v;
	return TRUE;
}

static gboolean load_vcpus(VsVm *vm, GError **error)
{
	Priv *p = vm->priv;

	g_array_set_size(vm->vcpus, 0);
	for (guint i = 0; i < p->xml.n_vcpus; i++) {
		VsVcpu v = {
			.index = i,
			.node = g_array_index(p->xml.vcpu_node, int, i),
		};

		if (!vcpu_tid(vm, i, &v.tid, error))
			return FALSE;
		g_array_append_val(vm->vcpus, v);
	}
	return vs_vm_verify_threads(vm, error);
}

/* ---- the vtable --------------------------------------------------------- */

static void drv_close(VsVm *vm)
{
	Priv *p = vm->priv;

	if (!p)
		return;
	disconnect(p);
	vs_lv_domain_clear(&p->xml);
	g_free(p->cg_dir);
	g_free(p);
	vm->priv = NULL;
}

static gboolean drv_open(VsVm *vm, const VsConfig *c, GError **error)
{
	Priv *p = g_new0(Priv, 1);

	lv_init();
	p->cb_mem = p->cb_life = -1;
	p->xml.quota = -1;
	vm->priv = p;
	if (!connect_dom(vm, error))
		return FALSE;
	if (virDomainIsActive(p->dom) != 1) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_UNREACHABLE,
			    "VM %s: domain %s is not running", vm->conf->name,
			    vm->conf->domain);
		return FALSE;
	}
	if (!load_xml(vm, error))
		return FALSE;
	g_free(vm->uuid);
	vm->uuid = g_strdup(p->xml.uuid);
	g_free(vm->agent_path);
	vm->agent_path = g_strdup(p->xml.agent_path);
	return load_pid(vm, error) && load_cgroup(vm, error) &&
	       load_vcpus(vm, error);
}

static gboolean drv_refresh_mem(VsVm *vm, GError **error)
{
	return ensure(vm, error) && load_xml(vm, error);
}

static gboolean drv_pin(VsVm *vm, guint vcpu, guint pcpu, GError **error)
{
	Priv *p = vm->priv;
	int maplen = VIR_CPU_MAPLEN((int)pcpu + 1);
	g_autofree unsigned char *map = g_malloc0(maplen);
	g_autofree char *what = NULL;

	if (vcpu >= vm->vcpus->len || pcpu >= VS_MAX_CPUS) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
			    "VM %s: no vCPU %u or pCPU %u", vm->conf->name,
			    vcpu, pcpu);
		return FALSE;
	}
	if (!ensure(vm, error))
		return FALSE;
	VIR_USE_CPU(map, pcpu);
	if (virDomainPinVcpuFlags(p->dom, vcpu, map, maplen,
				  VIR_DOMAIN_AFFECT_LIVE) == 0)
		return TRUE;
	what = g_strdup_printf("pin vCPU %u to pCPU %u", vcpu, pcpu);
	return virt_fail(vm, what, error);
}

static gint64 drv_throttled_ns(VsVm *vm, guint vcpu)
{
	Priv *p = vm->priv;
	g_autofree char *f = vcpu_file(p, vcpu, "cpu.stat");
	g_autofree char *text = vs_read_file(f, NULL);

	return text ? vs_parse_cpu_stat_throttled_ns(text) : -1;
}

/* libvirt's cpu_shares: cpu.shares on v1 (1024 = default), cpu.weight on
 * v2 (100 = default); vshare's weight is on the v2 scale. */
static gboolean drv_set_weight(VsVm *vm, guint weight, GError **error)
{
	Priv *p = vm->priv;
	virTypedParameter par = { .type = VIR_TYPED_PARAM_ULLONG };
	guint64 shares = vs_cgroup_cpu_version() == 1
				 ? MAX(2u, weight * 1024 / 100)
				 : weight;

	if (!ensure(vm, error))
		return FALSE;
	g_strlcpy(par.field, VIR_DOMAIN_SCHEDULER_CPU_SHARES,
		  sizeof(par.field));
	par.value.ul = shares;
	if (virDomainSetSchedulerParametersFlags(p->dom, &par, 1,
						 VIR_DOMAIN_AFFECT_LIVE) == 0)
		return TRUE;
	return virt_fail(vm, "set cpu_shares", error);
}

/* <metadata>: live, and in the persistent definition when there is one,
 * so a live migration carries it (the destination's hook reads it). */
static gboolean drv_set_metadata(VsVm *vm, const char *key, const char *uri,
				 const char *xml, GError **error)
{
	Priv *p = vm->priv;
	unsigned int flags = VIR_DOMAIN_AFFECT_LIVE;

	if (!ensure(vm, error))
		return FALSE;
	if (virDomainIsPersistent(p->dom) == 1)
		flags |= VIR_DOMAIN_AFFECT_CONFIG;
	if (virDomainSetMetadata(p->dom, VIR_DOMAIN_METADATA_ELEMENT, xml, key,
				 uri, flags) == 0)
		return TRUE;
	return virt_fail(vm, "set metadata", error);
}

/* ---- throttling in libvirt's vcpuN cgroups -------------------------------- */

static gboolean write_file(VsVm *vm, const char *path, const char *val,
			   GError **error)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	gssize n;
	int err;

	if (fd < 0)
		return sys_fail(vm, path, errno, error);
	n = write(fd, val, strlen(val));
	err = errno;
	close(fd);
	if (n != (gssize)strlen(val))
		return sys_fail(vm, path, n < 0 ? err : EIO, error);
	return TRUE;
}

/* v1: "1000" / "-1" (libvirt's period stays); v2: "1000" / "max". */
static char *quota_text(Priv *p, gboolean thr)
{
	if (thr)
		return g_strdup_printf("%d", MIN_QUOTA_US);
	if (p->xml.quota > 0)
		return g_strdup_printf("%" G_GINT64_FORMAT, p->xml.quota);
	return g_strdup(p->cg_version == 2 ? "max" : "-1");
}

static const char *quota_file(Priv *p)
{
	return p->cg_version == 2 ? "cpu.max" : "cpu.cfs_quota_us";
}

static gboolean drv_throttle(VsVm *vm, const VsCpuSet *throttled,
			     GError **error)
{
	Priv *p = vm->priv;

	/* The live <cputune><quota> is what unthrottled means. */
	if (!ensure(vm, error) || !fetch_xml(vm, error))
		return FALSE;
	for (guint i = 0; i < vm->vcpus->len; i++) {
		g_autofree char *f = vcpu_file(p, i, quota_file(p));
		g_autofree char *q = quota_text(p, vs_cpuset_has(throttled, i));

		if (!write_file(vm, f, q, error))
			return FALSE;
	}
	return TRUE;
}

static gboolean holds(const char *text, gint64 tid)
{
	g_auto(GStrv) lines = g_strsplit(text, "\n", -1);

	for (guint i = 0; lines[i]; i++)
		if (*lines[i] && g_ascii_strtoll(lines[i], NULL, 10) == tid)
			return TRUE;
	return FALSE;
}

/* Quota and period of DOMAIN/vcpuN; quota -1 when unlimited. */
static gboolean read_quota(VsVm *vm, guint i, gint64 *quota, gint64 *period,
			   GError **error)
{
	Priv *p = vm->priv;
	g_autofree char *q = NULL, *per = NULL, *f = NULL;

	f = vcpu_file(p, i, quota_file(p));
	if (!(q = read_small(vm, f, error)))
		return FALSE;
	if (p->cg_version == 2) {
		*quota = g_str_has_prefix(q, "max")
				 ? -1
				 : g_ascii_strtoll(q, NULL, 10);
		*period = g_ascii_strtoll(strchr(q, ' ') ? strchr(q, ' ') : "",
					  NULL, 10);
		return TRUE;
	}
	g_free(f);
	f = vcpu_file(p, i, "cpu.cfs_period_us");
	if (!(per = read_small(vm, f, error)))
		return FALSE;
	*quota = g_ascii_strtoll(q, NULL, 10);
	*period = g_ascii_strtoll(per, NULL, 10);
	return TRUE;
}

/* Throttled: the vCPU's thread is in its cgroup and that cgroup's quota
 * is at most vshare's minimum (1 % of the period). */
static gboolean drv_throttled(VsVm *vm, VsCpuSet *out, GError **error)
{
	Priv *p = vm->priv;

	vs_cpuset_clear(out);
	for (guint i = 0; i < vm->vcpus->len; i++) {
		VsVcpu *v = &g_array_index(vm->vcpus, VsVcpu, i);
		g_autofree char *f = vcpu_file(p, i, members(p));
		g_autofree char *tids = read_small(vm, f, error);
		gint64 quota, period;

		if (!tids || !read_quota(vm, i, &quota, &period, error))
			return FALSE;
		if (holds(tids, v->tid) && quota > 0 && period > 0 &&
		    quota * 100 <= period)
			vs_cpuset_add(out, i);
	}
	return TRUE;
}

static const char *drv_throttle_backend(VsVm *vm)
{
	Priv *p = vm->priv;

	return p && p->cg_version == 2
		       ? "libvirt vcpuN cgroups, v2 cpu.max"
		       : "libvirt vcpuN cgroups, v1 cpu.cfs_quota_us";
}

/* ---- virtio-mem ------------------------------------------------------------ */

static gboolean drv_mem_request(VsVm *vm, VsVmem *d, guint64 bytes,
				GError **error)
{
	Priv *p = vm->priv;
	g_autofree char *xml = NULL;

	for (guint i = 0; i < p->xml.vmems->len; i++) {
		VsVmem *m = g_ptr_array_index(p->xml.vmems, i);

		if (!g_strcmp0(m->id, d->id)) {
			xml = vs_lv_vmem_update_xml(
				g_ptr_array_index(p->xml.vmem_xml, i), bytes,
				error);
			break;
		}
	}
	if (!xml) {
		if (error && !*error)
			g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
				    "VM %s: no virtio-mem device %s",
				    vm->conf->name, d->id);
		return FALSE;
	}
	if (!ensure(vm, error))
		return FALSE;
	if (virDomainUpdateDeviceFlags(p->dom, xml, VIR_DOMAIN_AFFECT_LIVE))
		return virt_fail(vm, "virtio-mem <requested>", error);
	d->requested = bytes;
	return TRUE;
}

static gboolean changed(gpointer data)
{
	Priv *p = data;

	return g_atomic_int_get(&p->events) != p->seen;
}

/* Until an event for this domain since the caller last looked (open,
 * refresh_mem, or the previous wait), or @deadline. */
static void drv_wait(VsVm *vm, gint64 deadline)
{
	Priv *p = vm->priv;

	vs_libvirt_events_wait(changed, p, deadline);
	p->seen = g_atomic_int_get(&p->events);
}

/* libvirt's word; without libvirtd, QEMU's own pid (it outlives
 * libvirtd by design). */
static gboolean drv_alive(VsVm *vm)
{
	Priv *p = vm->priv;
	int r = p && p->dom ? virDomainIsActive(p->dom) : -1;

	if (r >= 0)
		return r == 1;
	return vm->qemu_pid > 0 && vm->uuid &&
	       is_qemu_of(vm->qemu_pid, vm->uuid);
}

const VsVmDriver vs_vmdrv_libvirt = {
	.name = "libvirt",
	.open = drv_open,
	.close = drv_close,
	.refresh_mem = drv_refresh_mem,
	.pin = drv_pin,
	.throttle = drv_throttle,
	.throttled = drv_throttled,
	.mem_request = drv_mem_request,
	.wait = drv_wait,
	.alive = drv_alive,
	.throttle_backend = drv_throttle_backend,
	.set_weight = drv_set_weight,
	.set_metadata = drv_set_metadata,
	.throttled_ns = drv_throttled_ns,
};
