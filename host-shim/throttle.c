// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Enforce mode: throttle vCPU threads a VM does not own from the host, with
 * no help from the guest (paper 002: a minimal CFS quota on the vCPU's
 * cgroup). Each vCPU thread lives in CPU/vshare/VM/vcpuN:
 *   v1 (cpu controller):  tasks <- tid; cpu.cfs_quota_us 1000 | -1
 *   v2 (threaded subtree): VM is the QEMU process's domain, vcpuN are
 *       threaded children; cgroup.threads <- tid; cpu.max "1000 100000" | max
 * The version is detected once from mountinfo; v1 wins when the cpu
 * controller is mounted there (as on hybrid hosts like this one).
 */
#include "vsharectl.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#define PERIOD_US    100000
#define MIN_QUOTA_US 1000

typedef struct {
	int version; /* 0: none found */
	char *mount;
} CpuCgroup;

static const CpuCgroup *cpu_cgroup(void)
{
	static CpuCgroup cg;
	static gboolean done;
	g_autofree char *text = NULL;
	g_auto(GStrv) lines = NULL;
	char *v2 = NULL;

	if (done)
		return &cg;
	done = TRUE;
	text = vs_read_file("/proc/self/mountinfo", NULL);
	lines = g_strsplit(text ? text : "", "\n", -1);
	for (guint i = 0; lines[i]; i++) {
		g_auto(GStrv) f = g_strsplit(lines[i], " ", -1);
		guint n = g_strv_length(f), sep;

		for (sep = 0; sep < n && strcmp(f[sep], "-"); sep++)
			;
		if (sep + 3 >= n || n < 5)
			continue;
		if (!strcmp(f[sep + 1], "cgroup")) {
			g_auto(GStrv) opts = g_strsplit(f[sep + 3], ",", -1);

			if (g_strv_contains((const char *const *)opts, "cpu")) {
				cg.version = 1;
				cg.mount = g_strdup(f[4]);
				return &cg;
			}
		} else if (!strcmp(f[sep + 1], "cgroup2") && !v2) {
			g_autofree char *ctl = g_build_filename(
				f[4], "cgroup.controllers", NULL);
			g_autofree char *c = vs_read_file(ctl, NULL);
			g_auto(GStrv) cs = g_strsplit(c ? c : "", " ", -1);

			if (g_strv_contains((const char *const *)cs, "cpu"))
				v2 = g_strdup(f[4]);
		}
	}
	if (v2) {
		cg.version = 2;
		cg.mount = v2;
	}
	return &cg;
}

const char *vs_throttle_backend(void)
{
	switch (cpu_cgroup()->version) {
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
	if (g_mkdir_with_parents(dir, 0755) < 0) {
		g_set_error(error, VSC_ERROR, VS_EXIT_FAILED, "mkdir %s: %s",
			    dir, g_strerror(errno));
		return FALSE;
	}
	return TRUE;
}

static gboolean write_at(const char *dir, const char *file, const char *val,
			 GError **error)
{
	g_autofree char *path = g_build_filename(dir, file, NULL);

	return vs_write_file(path, val, error);
}

static char *vm_dir(VsVm *vm)
{
	return g_build_filename(cpu_cgroup()->mount, "vshare", vm->conf->name,
				NULL);
}

/* v2: the QEMU process in VM's domain cgroup, vCPU threads threaded. */
static gboolean v2_prepare(VsVm *vm, const char *dir, GError **error)
{
	g_autofree char *top =
		g_build_filename(cpu_cgroup()->mount, "vshare", NULL);
	g_autofree char *pid =
		g_strdup_printf("%" G_GINT64_FORMAT, vm->qemu_pid);

	if (!mkdir_p(dir, error) ||
	    !write_at(cpu_cgroup()->mount, "cgroup.subtree_control", "+cpu",
		      error) ||
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

gboolean vs_throttle_apply(VsVm *vm, const VsCpuSet *throttled, GError **error)
{
	const CpuCgroup *cg = cpu_cgroup();
	g_autofree char *dir = NULL;

	if (!cg->version) {
		g_set_error(error, VSC_ERROR, VS_EXIT_UNSUPPORTED,
			    "enforce mode needs the cpu cgroup controller "
			    "(v1 or v2); none is mounted");
		return FALSE;
	}
	dir = vm_dir(vm);
	if (cg->version == 2 && !v2_prepare(vm, dir, error))
		return FALSE;
	for (guint i = 0; i < vm->vcpus->len; i++) {
		VsVcpu *v = &g_array_index(vm->vcpus, VsVcpu, i);
		g_autofree char *name = g_strdup_printf("vcpu%u", i);
		g_autofree char *sub = g_build_filename(dir, name, NULL);
		g_autofree char *tid =
			g_strdup_printf("%" G_GINT64_FORMAT, v->tid);
		gboolean thr = vs_cpuset_has(throttled, i);
		g_autofree char *quota = NULL;

		if (!mkdir_p(sub, error))
			return FALSE;
		if (cg->version == 1) {
			quota = g_strdup_printf("%d", thr ? MIN_QUOTA_US : -1);
			if (!write_at(sub, "cpu.cfs_period_us",
				      G_STRINGIFY(PERIOD_US), error) ||
			    !write_at(sub, "cpu.cfs_quota_us", quota, error) ||
			    !write_at(sub, "tasks", tid, error))
				goto fail;
		} else {
			quota = thr ? g_strdup_printf("%d %d", MIN_QUOTA_US,
						      PERIOD_US)
				    : g_strdup_printf("max %d", PERIOD_US);
			if (!write_at(sub, "cpu.max", quota, error) ||
			    !write_at(sub, "cgroup.threads", tid, error))
				goto fail;
		}
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

gboolean vs_throttle_get(VsVm *vm, VsCpuSet *throttled, GError **error)
{
	const CpuCgroup *cg = cpu_cgroup();
	g_autofree char *dir = NULL;

	vs_cpuset_clear(throttled);
	if (!cg->version)
		return TRUE;
	dir = vm_dir(vm);
	for (guint i = 0; i < vm->vcpus->len; i++) {
		VsVcpu *v = &g_array_index(vm->vcpus, VsVcpu, i);
		g_autofree char *name = g_strdup_printf("vcpu%u", i);
		g_autofree char *sub = g_build_filename(dir, name, NULL);
		g_autofree char *members = g_build_filename(
			sub, cg->version == 1 ? "tasks" : "cgroup.threads",
			NULL);
		g_autofree char *qf = g_build_filename(
			sub, cg->version == 1 ? "cpu.cfs_quota_us" : "cpu.max",
			NULL);
		g_autofree char *q = NULL;

		if (!holds(members, v->tid))
			continue;
		q = vs_read_file(qf, NULL);
		if (q && strcmp(q, "-1") && !g_str_has_prefix(q, "max"))
			vs_cpuset_add(throttled, i);
	}
	(void)error;
	return TRUE;
}
