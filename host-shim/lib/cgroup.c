// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Enforce mode for the QMP driver: throttle vCPU threads a VM does not own
 * from the host, with no help from the guest (paper 002: a minimal CFS
 * quota on the vCPU's cgroup). Each vCPU thread lives in CPU/vshare/VM/vcpuN:
 *   v1 (cpu controller):  tasks <- tid; cpu.cfs_quota_us 1000 | -1
 *   v2 (threaded subtree): VM is the QEMU process's domain, vcpuN are
 *       threaded children; cgroup.threads <- tid; cpu.max "1000 100000" | max
 * v1 wins when the cpu controller is mounted there (hybrid hosts like this
 * one). Thread ids were verified as tasks of the VM's QEMU (vm.c) before
 * anything here runs; on v2 the QEMU process itself moves.
 * (The libvirt driver throttles in libvirt's own cgroups instead.)
 */
#include "vshare-host.h"

#include <errno.h>
#include <string.h>

#define PERIOD_US    100000
#define MIN_QUOTA_US 1000

static char *v2_controllers(const char *mount)
{
	g_autofree char *path =
		g_build_filename(mount, "cgroup.controllers", NULL);

	return vs_read_file(path, NULL);
}

/* Where the cpu controller is, read afresh (mounts change). */
static char *cpu_mount(int *version)
{
	g_autofree char *mi = vs_read_file("/proc/self/mountinfo", NULL);

	return vs_mountinfo_cgroup(mi, "cpu", v2_controllers, version);
}

int vs_cgroup_cpu_version(void)
{
	int version;
	g_autofree char *m = cpu_mount(&version);

	return version;
}

const char *vs_cgroup_cpu_backend(void)
{
	int version;
	g_autofree char *m = cpu_mount(&version);

	switch (version) {
	case 1:
		return "cgroup v1 cpu (cfs_quota_us)";
	case 2:
		return "cgroup v2 cpu.max";
	default:
		return "none (no cpu controller mounted)";
	}
}

static gboolean mkdir_p(const char *dir, GError **error)
{
	if (g_mkdir_with_parents(dir, 0755) < 0)
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
				   "mkdir %s: %s", dir, g_strerror(errno)),
		       FALSE;
	return TRUE;
}

static gboolean write_at(const char *dir, const char *file, const char *val,
			 GError **error)
{
	g_autofree char *path = g_build_filename(dir, file, NULL);

	return vs_write_file(path, val, error);
}

/* v2: the QEMU process in VM's domain cgroup, vCPU threads threaded. */
static gboolean v2_prepare(VsVm *vm, const char *mount, const char *dir,
			   GError **error)
{
	g_autofree char *top = g_build_filename(mount, "vshare", NULL);
	g_autofree char *pid =
		g_strdup_printf("%" G_GINT64_FORMAT, vm->qemu_pid);

	if (!mkdir_p(dir, error) ||
	    !write_at(mount, "cgroup.subtree_control", "+cpu", error) ||
	    !write_at(top, "cgroup.subtree_control", "+cpu", error) ||
	    !write_at(dir, "cgroup.procs", pid, error))
		return FALSE;
	for (guint i = 0; i < vm->vcpus->len; i++) {
		g_autofree char *name = g_strdup_printf("vcpu%u", i);
		g_autofree char *sub = g_build_filename(dir, name, NULL);

		if (!mkdir_p(sub, error) ||
		    !write_at(sub, "cgroup.type", "threaded", error))
			return FALSE;
	}
	return write_at(dir, "cgroup.subtree_control", "+cpu", error);
}

static gboolean throttle_one(int version, const char *sub, gint64 tid,
			     gboolean thr, GError **error)
{
	g_autofree char *t = g_strdup_printf("%" G_GINT64_FORMAT, tid);
	g_autofree char *quota = NULL;

	if (!mkdir_p(sub, error))
		return FALSE;
	if (version == 1) {
		quota = g_strdup_printf("%d", thr ? MIN_QUOTA_US : -1);
		return write_at(sub, "cpu.cfs_period_us",
				G_STRINGIFY(PERIOD_US), error) &&
		       write_at(sub, "cpu.cfs_quota_us", quota, error) &&
		       write_at(sub, "tasks", t, error);
	}
	quota = thr ? g_strdup_printf("%d %d", MIN_QUOTA_US, PERIOD_US)
		    : g_strdup_printf("max %d", PERIOD_US);
	return write_at(sub, "cpu.max", quota, error) &&
	       write_at(sub, "cgroup.threads", t, error);
}

gboolean vs_cgroup_throttle(VsVm *vm, const VsCpuSet *throttled, GError **error)
{
	int version;
	g_autofree char *mount = cpu_mount(&version);
	g_autofree char *dir = NULL;

	if (!version)
		return g_set_error(error, VS_HOST_ERROR,
				   VS_HOST_ERROR_UNSUPPORTED,
				   "enforce mode needs the cpu cgroup "
				   "controller (v1 or v2); none is mounted"),
		       FALSE;
	dir = g_build_filename(mount, "vshare", vm->conf->name, NULL);
	if (version == 2 && !v2_prepare(vm, mount, dir, error))
		goto fail;
	for (guint i = 0; i < vm->vcpus->len; i++) {
		VsVcpu *v = &g_array_index(vm->vcpus, VsVcpu, i);
		g_autofree char *name = g_strdup_printf("vcpu%u", i);
		g_autofree char *sub = g_build_filename(dir, name, NULL);

		if (!throttle_one(version, sub, v->tid,
				  vs_cpuset_has(throttled, i), error))
			goto fail;
	}
	return TRUE;
fail:
	g_prefix_error(error, "VM %s: throttle: ", vm->conf->name);
	return FALSE;
}

static gboolean holds(const char *file, gint64 tid)
{
	g_autofree char *text = vs_read_file(file, NULL);
	g_auto(GStrv) lines = g_strsplit(text ? text : "", "\n", -1);

	for (guint i = 0; lines[i]; i++)
		if (*lines[i] && g_ascii_strtoll(lines[i], NULL, 10) == tid)
			return TRUE;
	return FALSE;
}

gboolean vs_cgroup_throttled(VsVm *vm, VsCpuSet *out, GError **error)
{
	int version;
	g_autofree char *mount = cpu_mount(&version);
	g_autofree char *dir = NULL;

	vs_cpuset_clear(out);
	if (!version)
		return TRUE;
	dir = g_build_filename(mount, "vshare", vm->conf->name, NULL);
	for (guint i = 0; i < vm->vcpus->len; i++) {
		VsVcpu *v = &g_array_index(vm->vcpus, VsVcpu, i);
		g_autofree char *name = g_strdup_printf("vcpu%u", i);
		g_autofree char *sub = g_build_filename(dir, name, NULL);
		g_autofree char *members = g_build_filename(
			sub, version == 1 ? "tasks" : "cgroup.threads", NULL);
		g_autofree char *qf = g_build_filename(
			sub, version == 1 ? "cpu.cfs_quota_us" : "cpu.max",
			NULL);
		g_autofree char *q = NULL;

		if (!holds(members, v->tid))
			continue;
		q = vs_read_file(qf, NULL);
		if (q && strcmp(q, "-1") && !g_str_has_prefix(q, "max"))
			vs_cpuset_add(out, i);
	}
	(void)error;
	return TRUE;
}

/* The VM's weight against other VMs: v1 puts every vCPU thread in
 * vshare/VM/vcpuN (where throttling finds them too) and weighs vshare/VM;
 * v2 weighs the QEMU process's domain cgroup. */
gboolean vs_cgroup_weight(VsVm *vm, guint weight, GError **error)
{
	int version;
	g_autofree char *mount = cpu_mount(&version);
	g_autofree char *dir = NULL;
	g_autofree char *val = NULL;

	if (weight < 1 || weight > 10000)
		return vs_fail(error, VS_HOST_ERROR_USAGE,
			       "weight must be 1..10000, not %u", weight);
	if (!version)
		return vs_fail(error, VS_HOST_ERROR_UNSUPPORTED,
			       "a CPU weight needs the cpu cgroup controller "
			       "(v1 or v2); none is mounted");
	dir = g_build_filename(mount, "vshare", vm->conf->name, NULL);
	if (version == 2) {
		val = g_strdup_printf("%u", weight);
		if (!v2_prepare(vm, mount, dir, error) ||
		    !write_at(dir, "cpu.weight", val, error))
			goto fail;
		return TRUE;
	}
	val = g_strdup_printf("%u", MAX(2u, weight * 1024 / 100));
	if (!mkdir_p(dir, error) || !write_at(dir, "cpu.shares", val, error))
		goto fail;
	for (guint i = 0; i < vm->vcpus->len; i++) {
		VsVcpu *v = &g_array_index(vm->vcpus, VsVcpu, i);
		g_autofree char *name = g_strdup_printf("vcpu%u", i);
		g_autofree char *sub = g_build_filename(dir, name, NULL);
		g_autofree char *t =
			g_strdup_printf("%" G_GINT64_FORMAT, v->tid);

		if (!mkdir_p(sub, error) || !write_at(sub, "tasks", t, error))
			goto fail;
	}
	return TRUE;
fail:
	g_prefix_error(error, "VM %s: weight: ", vm->conf->name);
	return FALSE;
}

gint64 vs_cgroup_throttled_ns(VsVm *vm, guint vcpu)
{
	int version;
	g_autofree char *mount = cpu_mount(&version);
	g_autofree char *name = g_strdup_printf("vcpu%u", vcpu);
	g_autofree char *path = NULL, *text = NULL;

	if (!version)
		return -1;
	path = g_build_filename(mount, "vshare", vm->conf->name, name,
				"cpu.stat", NULL);
	text = vs_read_file(path, NULL);
	return text ? vs_parse_cpu_stat_throttled_ns(text) : -1;
}
