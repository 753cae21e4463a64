// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * One VM as QMP describes it: vCPU threads and their vNUMA node
 * (query-cpus-fast), virtio-mem devices (query-memory-devices); pinning of
 * vCPU threads; virtio-mem resizing with a deadline.
 */
#include "vsharectl.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

void vs_vm_free(VsVm *vm)
{
	if (!vm)
		return;
	vs_vmconf_free(vm->conf);
	vs_conn_free(vm->qmp);
	if (vm->vcpus)
		g_array_free(vm->vcpus, TRUE);
	if (vm->vmems)
		g_ptr_array_free(vm->vmems, TRUE);
	g_free(vm);
}

static void vmem_free(gpointer p)
{
	VsVmem *d = p;

	g_free(d->id);
	g_free(d);
}

static gint64 member_int(JsonObject *o, const char *name, gint64 dflt)
{
	JsonNode *n = o ? json_object_get_member(o, name) : NULL;

	return n && JSON_NODE_HOLDS_VALUE(n) ? json_node_get_int(n) : dflt;
}

static gboolean load_vcpus(VsVm *vm, GError **error)
{
	g_autoptr(JsonNode) r =
		vs_qmp_call(vm->qmp, "query-cpus-fast", NULL, error);
	JsonArray *a;

	if (!r)
		return FALSE;
	if (!JSON_NODE_HOLDS_ARRAY(r)) {
		g_set_error(error, VSC_ERROR, VS_EXIT_FAILED,
			    "QMP query-cpus-fast: not an array");
		return FALSE;
	}
	a = json_node_get_array(r);
	for (guint i = 0; i < json_array_get_length(a); i++) {
		JsonObject *c = json_array_get_object_element(a, i);
		JsonObject *props = json_object_get_object_member(c, "props");
		VsVcpu v = {
			.index = member_int(c, "cpu-index", i),
			.node = member_int(props, "node-id", 0),
			.tid = member_int(c, "thread-id", 0),
		};

		g_array_append_val(vm->vcpus, v);
	}
	return TRUE;
}

gboolean vs_vm_refresh_mem(VsVm *vm, GError **error)
{
	g_autoptr(JsonNode) r =
		vs_qmp_call(vm->qmp, "query-memory-devices", NULL, error);
	JsonArray *a;

	if (!r)
		return FALSE;
	g_ptr_array_set_size(vm->vmems, 0);
	a = json_node_get_array(r);
	for (guint i = 0; a && i < json_array_get_length(a); i++) {
		JsonObject *e = json_array_get_object_element(a, i);
		JsonObject *d;
		VsVmem *m;

		if (g_strcmp0(json_object_get_string_member(e, "type"),
			      "virtio-mem"))
			continue;
		d = json_object_get_object_member(e, "data");
		m = g_new0(VsVmem, 1);
		m->id = g_strdup(
			json_object_has_member(d, "id")
				? json_object_get_string_member(d, "id")
				: "");
		m->node = member_int(d, "node", 0);
		m->requested = member_int(d, "requested-size", 0);
		m->size = member_int(d, "size", 0);
		m->max = member_int(d, "max-size", 0);
		m->block = member_int(d, "block-size", 0);
		g_ptr_array_add(vm->vmems, m);
	}
	return TRUE;
}

VsVm *vs_vm_open(VsVmConf *conf, GError **error)
{
	g_autoptr(VsVm) vm = g_new0(VsVm, 1);
	g_autofree char *status = NULL;
	g_autofree char *path = NULL;
	const char *tgid;

	vm->conf = conf;
	vm->vcpus = g_array_new(FALSE, TRUE, sizeof(VsVcpu));
	vm->vmems = g_ptr_array_new_with_free_func(vmem_free);
	vm->qmp = vs_qmp_open(conf->qmp, error);
	if (!vm->qmp) {
		g_prefix_error(error, "VM %s: ", conf->name);
		return NULL;
	}
	if (!load_vcpus(vm, error) || !vs_vm_refresh_mem(vm, error)) {
		g_prefix_error(error, "VM %s: ", conf->name);
		return NULL;
	}
	if (vm->vcpus->len) {
		path = g_strdup_printf("/proc/%" G_GINT64_FORMAT "/status",
				       g_array_index(vm->vcpus, VsVcpu, 0).tid);
		status = vs_read_file(path, NULL);
		tgid = status ? strstr(status, "\nTgid:") : NULL;
		if (tgid)
			vm->qemu_pid = g_ascii_strtoll(tgid + 6, NULL, 10);
	}
	return g_steal_pointer(&vm);
}

VsVmem *vs_vm_vmem_on(VsVm *vm, int node)
{
	for (guint i = 0; i < vm->vmems->len; i++) {
		VsVmem *d = g_ptr_array_index(vm->vmems, i);

		if (d->node == node)
			return d;
	}
	return NULL;
}

/* The full-vNUMA model: one vCPU per host pCPU, vCPU i on pCPU i, and
 * vCPU i in the host node of pCPU i. */
gboolean vs_vm_check_shape(VsVm *vm, const VsHost *host, GError **error)
{
	if (vm->vcpus->len != host->pcpus->len) {
		g_set_error(error, VSC_ERROR, VS_EXIT_REFUSED,
			    "VM %s has %u vCPUs but the host has %u pCPUs: "
			    "vshare needs one vCPU per pCPU (full vNUMA)",
			    vm->conf->name, vm->vcpus->len, host->pcpus->len);
		return FALSE;
	}
	for (guint i = 0; i < vm->vcpus->len; i++) {
		VsVcpu *v = &g_array_index(vm->vcpus, VsVcpu, i);
		guint pcpu = g_array_index(host->pcpus, guint, i);
		int node = vs_host_node_of(host, pcpu);

		if (v->node != node) {
			g_set_error(error, VSC_ERROR, VS_EXIT_REFUSED,
				    "VM %s: vCPU %u is in vNUMA node %d but "
				    "pCPU %u is in host node %d: the guest's "
				    "vNUMA layout must match the host's",
				    vm->conf->name, i, v->node, pcpu, node);
			return FALSE;
		}
	}
	return TRUE;
}

gboolean vs_vm_pin(VsVm *vm, const VsHost *host, GError **error)
{
	for (guint i = 0; i < vm->vcpus->len && i < host->pcpus->len; i++) {
		VsVcpu *v = &g_array_index(vm->vcpus, VsVcpu, i);
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(g_array_index(host->pcpus, guint, i), &set);
		if (sched_setaffinity(v->tid, sizeof(set), &set) < 0) {
			g_set_error(
				error, VSC_ERROR, VS_EXIT_FAILED,
				"VM %s: pin vCPU %u (thread %" G_GINT64_FORMAT
				") to pCPU %u: %s",
				vm->conf->name, i, v->tid,
				g_array_index(host->pcpus, guint, i),
				g_strerror(errno));
			return FALSE;
		}
	}
	return TRUE;
}

static gboolean set_requested(VsVm *vm, VsVmem *d, guint64 bytes,
			      GError **error)
{
	g_autoptr(JsonObject) args = json_object_new();
	g_autoptr(JsonNode) r = NULL;

	json_object_set_string_member(args, "path", d->id);
	json_object_set_string_member(args, "property", "requested-size");
	json_object_set_int_member(args, "value", (gint64)bytes);
	r = vs_qmp_call(vm->qmp, "qom-set", json_object_ref(args), error);
	return r != NULL;
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
	g_set_error(error, VSC_ERROR, VS_EXIT_FAILED,
		    "VM %s: virtio-mem device %s disappeared", vm->conf->name,
		    id);
	return FALSE;
}

gboolean vs_vm_mem_resize(VsVm *vm, VsVmem *d, guint64 bytes, int timeout_ms,
			  guint64 *reached, GError **error)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	if (d->block && bytes % d->block) {
		g_set_error(error, VSC_ERROR, VS_EXIT_USAGE,
			    "VM %s: %s: %" G_GUINT64_FORMAT
			    " is not a multiple of the block size "
			    "%" G_GUINT64_FORMAT,
			    vm->conf->name, d->id, bytes, d->block);
		return FALSE;
	}
	if (bytes > d->max) {
		g_set_error(error, VSC_ERROR, VS_EXIT_REFUSED,
			    "VM %s: %s: %" G_GUINT64_FORMAT
			    " bytes exceeds the device's maximum "
			    "%" G_GUINT64_FORMAT,
			    vm->conf->name, d->id, bytes, d->max);
		return FALSE;
	}
	if (d->requested != bytes && !set_requested(vm, d, bytes, error))
		return FALSE;
	/* QEMU's MEMORY_DEVICE_SIZE_CHANGE comes only on changes; polling
	 * also notices a guest that never moves. */
	for (;;) {
		if (!find_again(vm, &d, error))
			return FALSE;
		*reached = d->size;
		if (d->size == bytes || g_get_monotonic_time() >= deadline)
			return TRUE;
		g_usleep(20000);
	}
}

gint64 vs_thread_cputime_ns(const VsOpts *o, gint64 pid, gint64 tid)
{
	g_autofree char *path = g_strdup_printf(
		"%s/%" G_GINT64_FORMAT "/task/%" G_GINT64_FORMAT "/schedstat",
		o->proc, pid, tid);
	g_autofree char *text = vs_read_file(path, NULL);

	return text ? g_ascii_strtoll(text, NULL, 10) : -1;
}

VsConn *vs_vm_agent(VsVm *vm, int timeout_ms, GError **error)
{
	if (!vm->conf->agent) {
		g_set_error(error, VSC_ERROR, VS_EXIT_FAILED,
			    "VM %s has no agent= socket configured",
			    vm->conf->name);
		return NULL;
	}
	return vs_agent_open(vm->conf->agent, timeout_ms, error);
}
