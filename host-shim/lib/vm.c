// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * One VM through its driver. Whatever QEMU, libvirt or the guest says is
 * checked before root acts on it: vCPU thread ids must be distinct,
 * non-zero tasks of the VM's QEMU process; QMP replies are type-checked.
 */
#include "vshare-host.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

void vs_vmem_free(gpointer p)
{
	VsVmem *d = p;

	g_free(d->id);
	g_free(d);
}

VsVm *vs_vm_alloc(VsVmConf *conf, const VsConfig *c)
{
	VsVm *vm = g_new0(VsVm, 1);

	vm->conf = conf;
	vm->cfg = c;
	vm->vcpus = g_array_new(FALSE, TRUE, sizeof(VsVcpu));
	vm->vmems = g_ptr_array_new_with_free_func(vs_vmem_free);
	return vm;
}

void vs_vm_free(VsVm *vm)
{
	if (!vm)
		return;
	if (vm->drv && vm->drv->close)
		vm->drv->close(vm);
	vs_vmconf_free(vm->conf);
	g_array_free(vm->vcpus, TRUE);
	g_ptr_array_free(vm->vmems, TRUE);
	g_free(vm->agent_path);
	g_free(vm->uuid);
	g_free(vm->agent_cpus);
	g_free(vm->agent_mems);
	g_free(vm);
}

static const VsVmDriver *driver_of(VsDriverKind k)
{
	return k == VS_DRIVER_LIBVIRT ? &vs_vmdrv_libvirt : &vs_vmdrv_qmp;
}

VsVm *vs_vm_open(const VsConfig *c, VsVmConf *conf, GError **error)
{
	g_autoptr(VsVm) vm = vs_vm_alloc(conf, c);

	vm->drv = driver_of(conf->driver);
	if (!vm->drv->open) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_UNSUPPORTED,
			    "VM %s: driver %s is not built in", conf->name,
			    vm->drv->name);
		vm->drv = NULL;
		return NULL;
	}
	if (!vm->drv->open(vm, c, error) || !vs_vm_verify_threads(vm, error)) {
		g_prefix_error(error, "VM %s: ", conf->name);
		return NULL;
	}
	return g_steal_pointer(&vm);
}

/* ---- checked QMP replies ------------------------------------------------ */

static gboolean int_member(JsonObject *o, const char *name, gint64 min,
			   gint64 max, gint64 *out)
{
	JsonNode *n = o ? json_object_get_member(o, name) : NULL;

	if (!n || json_node_get_value_type(n) != G_TYPE_INT64)
		return FALSE;
	*out = json_node_get_int(n);
	return *out >= min && *out <= max;
}

static JsonObject *obj_member(JsonObject *o, const char *name)
{
	JsonNode *n = o ? json_object_get_member(o, name) : NULL;

	return n && JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
}

static gboolean hostile(GError **error, const char *what, guint i)
{
	g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_HOSTILE,
		    "QMP %s: element %u is malformed (missing or mistyped "
		    "members, or values out of range): refusing to act on it",
		    what, i);
	return FALSE;
}

/* One element of query-cpus-fast, every member checked; the message
 * names the member a hostile or broken QEMU got wrong. */
static gboolean vcpu_of(JsonNode *e, guint i, guint n, VsVcpu *v,
			GError **error)
{
	JsonObject *c =
		JSON_NODE_HOLDS_OBJECT(e) ? json_node_get_object(e) : NULL;
	gint64 idx, node, tid;
	const char *bad = NULL;

	if (!c)
		bad = "not an object";
	else if (!int_member(c, "cpu-index", 0, n - 1, &idx))
		bad = "cpu-index missing, not an integer or out of range";
	else if (!int_member(c, "thread-id", 1, G_MAXINT32, &tid))
		bad = "thread-id missing, not an integer or not a valid "
		      "thread id";
	else if (!int_member(obj_member(c, "props"), "node-id", 0,
			     VS_MAX_NODES - 1, &node))
		bad = "props.node-id missing or out of range";
	if (bad)
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_HOSTILE,
				   "QMP query-cpus-fast: vCPU element %u: %s: "
				   "refusing to act on its thread",
				   i, bad),
		       FALSE;
	*v = (VsVcpu){ .index = idx, .node = node, .tid = tid };
	return TRUE;
}

gboolean vs_qmp_parse_vcpus(JsonNode *reply, GArray *vcpus, GError **error)
{
	JsonArray *a = reply && JSON_NODE_HOLDS_ARRAY(reply)
			       ? json_node_get_array(reply)
			       : NULL;
	guint n = a ? json_array_get_length(a) : 0;

	g_array_set_size(vcpus, 0);
	if (!a || n == 0 || n > VS_MAX_CPUS)
		return hostile(error, "query-cpus-fast", 0);
	g_array_set_size(vcpus, n);
	for (guint i = 0; i < n; i++) {
		VsVcpu v;

		if (!vcpu_of(json_array_get_element(a, i), i, n, &v, error))
			return FALSE;
		if (g_array_index(vcpus, VsVcpu, v.index).tid)
			return g_set_error(error, VS_HOST_ERROR,
					   VS_HOST_ERROR_HOSTILE,
					   "QMP query-cpus-fast: cpu-index %u "
					   "appears twice",
					   v.index),
			       FALSE;
		g_array_index(vcpus, VsVcpu, v.index) = v;
	}
	return TRUE;
}

static gboolean vmem_of(JsonObject *d, VsVmem *m)
{
	JsonNode *id = d ? json_object_get_member(d, "id") : NULL;
	gint64 node, req, size, max, block;

	if (!id || json_node_get_value_type(id) != G_TYPE_STRING ||
	    strlen(json_node_get_string(id)) > 128 ||
	    !int_member(d, "node", 0, VS_MAX_NODES - 1, &node) ||
	    !int_member(d, "requested-size", 0, G_MAXINT64, &req) ||
	    !int_member(d, "size", 0, G_MAXINT64, &size) ||
	    !int_member(d, "max-size", 0, G_MAXINT64, &max) ||
	    !int_member(d, "block-size", 1, max ? max : 1, &block) ||
	    req > max || size > max)
		return FALSE;
	*m = (VsVmem){
		g_strdup(json_node_get_string(id)), node, req, size, max, block
	};
	return TRUE;
}

gboolean vs_qmp_parse_vmems(JsonNode *reply, GPtrArray *vmems, GError **error)
{
	JsonArray *a = reply && JSON_NODE_HOLDS_ARRAY(reply)
			       ? json_node_get_array(reply)
			       : NULL;

	g_ptr_array_set_size(vmems, 0);
	if (!a || json_array_get_length(a) > 4096)
		return hostile(error, "query-memory-devices", 0);
	for (guint i = 0; i < json_array_get_length(a); i++) {
		JsonNode *e = json_array_get_element(a, i);
		JsonObject *o = JSON_NODE_HOLDS_OBJECT(e)
					? json_node_get_object(e)
					: NULL;
		JsonNode *type = o ? json_object_get_member(o, "type") : NULL;
		VsVmem m;

		if (!type || json_node_get_value_type(type) != G_TYPE_STRING)
			return hostile(error, "query-memory-devices", i);
		if (strcmp(json_node_get_string(type), "virtio-mem"))
			continue; /* DIMMs and others: not ours */
		if (!vmem_of(obj_member(o, "data"), &m))
			return vs_fail(error, VS_HOST_ERROR_HOSTILE,
				       "QMP query-memory-devices: virtio-mem "
				       "element %u: data.id, node, "
				       "requested-size, size, max-size or "
				       "block-size missing, mistyped, out of "
				       "range or inconsistent (size > max): "
				       "refusing to act on it",
				       i);
		g_ptr_array_add(vmems, g_memdup2(&m, sizeof(m)));
	}
	return TRUE;
}

/* ---- thread ids ------------------------------------------------------------ */

gboolean vs_vm_verify_threads(VsVm *vm, GError **error)
{
	g_autoptr(GHashTable) seen =
		g_hash_table_new(g_int64_hash, g_int64_equal);

	if (vm->qemu_pid <= 0)
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_HOSTILE,
				   "the QEMU process is unknown: refusing to "
				   "act on thread ids"),
		       FALSE;
	for (guint i = 0; i < vm->vcpus->len; i++) {
		VsVcpu *v = &g_array_index(vm->vcpus, VsVcpu, i);
		g_autofree char *task = g_strdup_printf(
			"%s/%" G_GINT64_FORMAT "/task/%" G_GINT64_FORMAT,
			vm->cfg->proc, vm->qemu_pid, v->tid);
		struct stat st;

		if (v->tid <= 0 || g_hash_table_contains(seen, &v->tid) ||
		    stat(task, &st) < 0)
			return g_set_error(
				       error, VS_HOST_ERROR,
				       VS_HOST_ERROR_HOSTILE,
				       "vCPU %u: thread id %" G_GINT64_FORMAT
				       " is %s of QEMU (pid %" G_GINT64_FORMAT
				       "): refusing to act on it",
				       i, v->tid,
				       v->tid <= 0 ? "not a thread"
				       : g_hash_table_contains(seen, &v->tid)
					       ? "a duplicate thread"
					       : "not a thread",
				       vm->qemu_pid),
			       FALSE;
		g_hash_table_add(seen, &v->tid);
	}
	return TRUE;
}

gboolean vs_vm_alive(VsVm *vm)
{
	g_autofree char *dir = NULL;

	if (vm->drv && vm->drv->alive)
		return vm->drv->alive(vm);
	dir = g_strdup_printf("%s/%" G_GINT64_FORMAT, vm->cfg->proc,
			      vm->qemu_pid);
	return vm->qemu_pid > 0 && g_file_test(dir, G_FILE_TEST_IS_DIR);
}

/* ---- acting -------------------------------------------------------------- */

VsVmem *vs_vm_vmem_on(VsVm *vm, int node)
{
	for (guint i = 0; i < vm->vmems->len; i++) {
		VsVmem *d = g_ptr_array_index(vm->vmems, i);

		if (d->node == node)
			return d;
	}
	return NULL;
}

gboolean vs_vm_refresh_mem(VsVm *vm, GError **error)
{
	return vm->drv->refresh_mem(vm, error);
}

/* The full-vNUMA model: one vCPU per host pCPU, vCPU i on pCPU i, and
 * vCPU i in the host node of pCPU i. */
gboolean vs_vm_check_shape(VsVm *vm, const VsHost *host, GError **error)
{
	if (vm->vcpus->len != host->pcpus->len)
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_REFUSED,
				   "VM %s has %u vCPUs but the host has %u "
				   "pCPUs: vshare needs one vCPU per pCPU "
				   "(full vNUMA)",
				   vm->conf->name, vm->vcpus->len,
				   host->pcpus->len),
		       FALSE;
	for (guint i = 0; i < vm->vcpus->len; i++) {
		VsVcpu *v = &g_array_index(vm->vcpus, VsVcpu, i);
		guint pcpu = g_array_index(host->pcpus, guint, i);
		int node = vs_host_node_of(host, pcpu);

		if (v->node != node)
			return g_set_error(
				       error, VS_HOST_ERROR,
				       VS_HOST_ERROR_REFUSED,
				       "VM %s: vCPU %u is in vNUMA node %d but "
				       "pCPU %u is in host node %d: the "
				       "guest's vNUMA layout must match the "
				       "host's",
				       vm->conf->name, i, v->node, pcpu, node),
			       FALSE;
	}
	return TRUE;
}

gboolean vs_vm_pin(VsVm *vm, const VsHost *host, GError **error)
{
	for (guint i = 0; i < vm->vcpus->len && i < host->pcpus->len; i++)
		if (!vm->drv->pin(vm, i, g_array_index(host->pcpus, guint, i),
				  error))
			return FALSE;
	return TRUE;
}

/* Affinity of one thread to one CPU, any CPU number (dynamic set). */
gboolean vs_pin_thread(gint64 tid, guint pcpu, GError **error)
{
	cpu_set_t *set = CPU_ALLOC(pcpu + 1);
	gsize size = CPU_ALLOC_SIZE(pcpu + 1);
	int rc, saved;

	CPU_ZERO_S(size, set);
	CPU_SET_S(pcpu, size, set);
	rc = sched_setaffinity(tid, size, set);
	saved = errno;
	CPU_FREE(set);
	if (rc < 0)
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
				   "pin thread %" G_GINT64_FORMAT
				   " to pCPU %u: %s",
				   tid, pcpu, g_strerror(saved)),
		       FALSE;
	return TRUE;
}

gboolean vs_pin_thread_set(gint64 tid, const VsCpuSet *cpus, GError **error)
{
	cpu_set_t *set = CPU_ALLOC(VS_MAX_CPUS);
	gsize size = CPU_ALLOC_SIZE(VS_MAX_CPUS);
	int rc, saved;

	CPU_ZERO_S(size, set);
	for (guint c = 0; c < VS_MAX_CPUS; c++)
		if (vs_cpuset_has(cpus, c))
			CPU_SET_S(c, size, set);
	rc = sched_setaffinity(tid, size, set);
	saved = errno;
	CPU_FREE(set);
	if (rc == 0)
		return TRUE;
	return vs_fail(
		error,
		saved == ESRCH ? VS_HOST_ERROR_GONE : VS_HOST_ERROR_FAILED,
		"pin thread %" G_GINT64_FORMAT ": %s", tid, g_strerror(saved));
}

/* Every thread of the verified QEMU process that is not a vCPU: its main
 * loop (where an incoming migration writes guest RAM: first touch), I/O
 * and migration threads. A thread that exits meanwhile is fine. */
gboolean vs_vm_pin_other_threads(VsVm *vm, const VsCpuSet *cpus, GError **error)
{
	g_autofree char *dir = g_strdup_printf(
		"/proc/%" G_GINT64_FORMAT "/task", vm->qemu_pid);
	g_autoptr(GDir) d = NULL;
	const char *ent;

	if (!vs_vm_verify_threads(vm, error))
		return FALSE;
	d = g_dir_open(dir, 0, NULL);
	if (!d)
		return vs_fail(error, VS_HOST_ERROR_GONE, "VM %s: no %s",
			       vm->conf->name, dir);
	while ((ent = g_dir_read_name(d))) {
		gint64 tid = g_ascii_strtoll(ent, NULL, 10);
		g_autoptr(GError) local = NULL;
		gboolean vcpu = FALSE;

		for (guint i = 0; i < vm->vcpus->len && !vcpu; i++)
			vcpu = g_array_index(vm->vcpus, VsVcpu, i).tid == tid;
		if (tid <= 0 || vcpu || vs_pin_thread_set(tid, cpus, &local) ||
		    vs_error_is(local, VS_HOST_ERROR_GONE))
			continue;
		g_propagate_error(error, g_steal_pointer(&local));
		return FALSE;
	}
	return TRUE;
}

static gboolean find_again(VsVm *vm, VsVmem **d, GError **error)
{
	g_autofree char *id = g_strdup((*d)->id);

	if (!vs_vm_refresh_mem(vm, error))
		return FALSE;
	for (guint i = 0; i < vm->vmems->len; i++) {
		VsVmem *x = g_ptr_array_index(vm->vmems, i);

		if (!strcmp(x->id, id)) {
			*d = x;
			return TRUE;
		}
	}
	return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
			   "VM %s: virtio-mem device %s disappeared",
			   vm->conf->name, id),
	       FALSE;
}

/* A guest's virtio-mem driver that met a busy page while unplugging tries
 * again only after its retry timer, 50 s then doubling to 300 s (Linux
 * 6.1, drivers/virtio/virtio_mem.c), unless the requested size changes:
 * then it retries at once. So a shrink that made no progress for a while
 * asks one block more, then the size wanted again (two changes, each one
 * config interrupt), the pause doubling from NUDGE_US. */
#define NUDGE_US (2 * G_USEC_PER_SEC)

static gboolean nudge(VsVm *vm, VsVmem *d, guint64 bytes, GError **error)
{
	if (!d->block || bytes + d->block > d->max)
		return TRUE;
	return vm->drv->mem_request(vm, d, bytes + d->block, error) &&
	       vm->drv->mem_request(vm, d, bytes, error);
}

static gboolean wait_size(VsVm *vm, VsVmem *d, guint64 bytes, gint64 deadline,
			  guint64 *reached, GError **error)
{
	gint64 gap = NUDGE_US, nudge_at = g_get_monotonic_time() + gap;
	guint64 last = G_MAXUINT64;

	for (;;) {
		gint64 now;

		if (!find_again(vm, &d, error))
			return FALSE;
		*reached = d->size;
		now = g_get_monotonic_time();
		if (d->size == bytes || now >= deadline)
			return TRUE;
		if (d->size != last) { /* progress: the pause starts again */
			last = d->size;
			nudge_at = now + gap;
		} else if (bytes < d->size && now >= nudge_at) {
			if (!nudge(vm, d, bytes, error))
				return FALSE;
			gap *= 2;
			nudge_at = now + gap;
		}
		vm->drv->wait(vm, MIN(deadline, nudge_at));
	}
}

gboolean vs_vm_mem_resize(VsVm *vm, VsVmem *d, guint64 bytes, int timeout_ms,
			  guint64 *reached, GError **error)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	if (d->block && bytes % d->block)
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
				   "VM %s: %s: %" G_GUINT64_FORMAT
				   " is not a multiple of the block size "
				   "%" G_GUINT64_FORMAT,
				   vm->conf->name, d->id, bytes, d->block),
		       FALSE;
	if (bytes > d->max)
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_REFUSED,
				   "VM %s: %s: %" G_GUINT64_FORMAT
				   " bytes exceeds the device's maximum "
				   "%" G_GUINT64_FORMAT,
				   vm->conf->name, d->id, bytes, d->max),
		       FALSE;
	if (d->requested != bytes && !vm->drv->mem_request(vm, d, bytes, error))
		return FALSE;
	return wait_size(vm, d, bytes, deadline, reached, error);
}

gint64 vs_vm_vcpu_cputime_ns(VsVm *vm, guint vcpu)
{
	g_autofree char *path = NULL, *text = NULL;

	if (vcpu >= vm->vcpus->len)
		return -1;
	path = g_strdup_printf("%s/%" G_GINT64_FORMAT "/task/%" G_GINT64_FORMAT
			       "/schedstat",
			       vm->cfg->proc, vm->qemu_pid,
			       g_array_index(vm->vcpus, VsVcpu, vcpu).tid);
	text = vs_read_file(path, NULL);
	return vs_parse_schedstat(text);
}

VsPeer *vs_vm_agent(VsVm *vm, int timeout_ms, GError **error)
{
	if (!vm->agent_path) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_UNREACHABLE,
			    "VM %s has no agent socket configured",
			    vm->conf->name);
		return NULL;
	}
	/* its guest does not run: asking would wait out the timeout, and
	 * QEMU's main loop serves the agent's port only between chunks of
	 * the incoming memory */
	if (vm->incoming) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_UNREACHABLE,
			    "VM %s is receiving a live migration: no guest "
			    "agent to ask yet",
			    vm->conf->name);
		return NULL;
	}
	return vs_agent_open(vm->agent_path, timeout_ms, error);
}

gboolean vs_vm_throttle(VsVm *vm, const VsCpuSet *throttled, GError **error)
{
	return vm->drv->throttle(vm, throttled, error);
}

gboolean vs_vm_throttled(VsVm *vm, VsCpuSet *out, GError **error)
{
	return vm->drv->throttled(vm, out, error);
}

const char *vs_vm_throttle_backend(VsVm *vm)
{
	return vm->drv->throttle_backend ? vm->drv->throttle_backend(vm)
					 : "unknown";
}

gboolean vs_vm_set_weight(VsVm *vm, guint weight, GError **error)
{
	if (!vm->drv->set_weight)
		return vs_fail(error, VS_HOST_ERROR_UNSUPPORTED,
			       "VM %s: the %s driver cannot set a CPU weight",
			       vm->conf->name, vm->drv->name);
	return vm->drv->set_weight(vm, weight ? weight : 100, error);
}

gboolean vs_vm_set_metadata(VsVm *vm, const char *key, const char *uri,
			    const char *xml, GError **error)
{
	if (!vm->drv->set_metadata)
		return vs_fail(error, VS_HOST_ERROR_UNSUPPORTED,
			       "VM %s: the %s driver keeps no metadata",
			       vm->conf->name, vm->drv->name);
	return vm->drv->set_metadata(vm, key, uri, xml, error);
}

gboolean vs_vm_migrate(VsVm *vm, const char *uri, char **status, GError **error)
{
	if (!vm->drv->migrate)
		return vs_fail(
			error, VS_HOST_ERROR_UNSUPPORTED,
			"VM %s: the %s driver does not migrate (libvirt: "
			"virsh migrate; the profile travels in the "
			"domain's <metadata>)",
			vm->conf->name, vm->drv->name);
	return vm->drv->migrate(vm, uri, status, error);
}

/* Every thread of the QEMU process (its vCPUs, I/O threads, main loop):
 * the paper's "nice of the VM". Threads that exit meanwhile are fine. */
gboolean vs_vm_set_nice(VsVm *vm, int nice, GError **error)
{
	g_autofree char *dir = g_strdup_printf(
		"%s/%" G_GINT64_FORMAT "/task",
		vm->cfg && vm->cfg->proc ? vm->cfg->proc : "/proc",
		vm->qemu_pid);
	g_autoptr(GDir) d = NULL;
	const char *ent;
	guint done = 0;

	if (nice < -20 || nice > 19)
		return vs_fail(error, VS_HOST_ERROR_USAGE,
			       "nice must be -20..19, not %d", nice);
	d = g_dir_open(dir, 0, NULL);
	if (!d)
		return vs_fail(error, VS_HOST_ERROR_GONE,
			       "VM %s: QEMU %" G_GINT64_FORMAT " is gone",
			       vm->conf->name, vm->qemu_pid);
	while ((ent = g_dir_read_name(d))) {
		gint64 tid = g_ascii_strtoll(ent, NULL, 10);

		if (tid <= 0)
			continue;
		if (setpriority(PRIO_PROCESS, (id_t)tid, nice) == 0)
			done++;
		else if (errno != ESRCH)
			return vs_fail(error, VS_HOST_ERROR_FAILED,
				       "VM %s: nice of thread %" G_GINT64_FORMAT
				       ": %s",
				       vm->conf->name, tid, g_strerror(errno));
	}
	if (!done)
		return vs_fail(error, VS_HOST_ERROR_GONE,
			       "VM %s: QEMU has no thread left",
			       vm->conf->name);
	return TRUE;
}

gint64 vs_vm_vcpu_throttled_ns(VsVm *vm, guint vcpu)
{
	if (vcpu >= vm->vcpus->len || !vm->drv->throttled_ns)
		return -1;
	return vm->drv->throttled_ns(vm, vcpu);
}
