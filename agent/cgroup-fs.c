// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * cgroupfs backend: our own cpuset cgroup ("vshare") directly below the
 * scope (the hierarchy root in a guest). Every movable task lives there, so
 * a change of allocation is one write of cpuset.cpus and one of
 * cpuset.mems; the kernel re-pins the tasks itself.
 *
 * v1 and v2 differ in four places only: file prefix, empty-set inheritance
 * (v1 children start empty and must be filled from the parent), the
 * effective files, and enabling the controller (v2 subtree_control).
 */
#include "cgroup.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#define VS_CGROUP_NAME "vshare"
#define NO_MIGRATION   (VS_PF_KTHREAD | VS_PF_NO_SETAFFINITY)

typedef struct {
	const char *prefix;   /* "cpuset." or "" (v1 noprefix) */
	VsTaskSet *unmovable; /* kthreads that refused (pidfd / start time) */
	/* What our cgroup's cpuset.cpus / cpuset.mems hold, as last read
	 * (get) or written (set): an unchanged file is not written again
	 * (the kernel takes its locks for every write). */
	gboolean have_cpus, have_mems;
	VsCpuSet cpus, mems;
} FsPriv;

static char *fs_file(VsCgroup *cg, const char *dir, const char *name)
{
	FsPriv *p = cg->priv;
	g_autofree char *file = g_strconcat(p->prefix, name, NULL);

	return g_build_filename(dir, file, NULL);
}

static gboolean fs_read_set(VsCgroup *cg, const char *dir, const char *name,
			    VsCpuSet *set, gboolean *empty, GError **error)
{
	g_autofree char *f = fs_file(cg, dir, name);
	g_autofree char *text = vs_read_file(f, error);

	if (!text)
		return FALSE;
	*empty = text[0] == '\0';
	if (*empty) {
		vs_cpuset_clear(set);
		return TRUE;
	}
	return vs_cpuset_parse(text, set, error);
}

static gboolean fs_write_set(VsCgroup *cg, const char *name,
			     const VsCpuSet *set, GError **error)
{
	g_autofree char *f = fs_file(cg, cg->path, name);
	g_autofree char *text = vs_cpuset_format(set);

	return vs_write_file(f, text, error);
}

/* Write @set into "cpus" or "mems" unless the file is known to hold it. */
static gboolean fs_update(VsCgroup *cg, const char *name, const VsCpuSet *set,
			  gboolean *have, VsCpuSet *cur, GError **error)
{
	if (*have && vs_cpuset_equal(cur, set))
		return TRUE;
	*have = FALSE;
	if (!fs_write_set(cg, name, set, error))
		return FALSE;
	*cur = *set;
	*have = TRUE;
	return TRUE;
}

static gboolean fs_get_effective(VsCgroup *cg, VsCpuSet *cpus, VsCpuSet *mems,
				 GError **error)
{
	const char *c = cg->version == 2 ? "cpus.effective" : "effective_cpus";
	const char *m = cg->version == 2 ? "mems.effective" : "effective_mems";
	gboolean empty;

	return fs_read_set(cg, cg->path, c, cpus, &empty, error) &&
	       fs_read_set(cg, cg->path, m, mems, &empty, error);
}

static gboolean fs_get(VsCgroup *cg, VsCpuSet *cpus, VsCpuSet *mems,
		       GError **error)
{
	FsPriv *p = cg->priv;
	VsCpuSet ec, em;
	gboolean ce, me;

	p->have_cpus = p->have_mems = FALSE;
	if (!fs_read_set(cg, cg->path, "cpus", cpus, &ce, error) ||
	    !fs_read_set(cg, cg->path, "mems", mems, &me, error))
		return FALSE;
	/* v2's empty "inherit" is not a value a write would repeat */
	p->have_cpus = !ce;
	p->have_mems = !me;
	p->cpus = *cpus;
	p->mems = *mems;
	if (!ce && !me)
		return TRUE;
	/* v2: empty means "inherit": report what is in force. */
	if (!fs_get_effective(cg, &ec, &em, error))
		return FALSE;
	if (ce)
		*cpus = ec;
	if (me)
		*mems = em;
	return TRUE;
}

static gboolean fs_set(VsCgroup *cg, const VsCpuSet *cpus, const VsCpuSet *mems,
		       GError **error)
{
	FsPriv *p = cg->priv;

	return fs_update(cg, "cpus", cpus, &p->have_cpus, &p->cpus, error) &&
	       fs_update(cg, "mems", mems, &p->have_mems, &p->mems, error);
}

static gboolean fs_sweep(VsCgroup *cg, VsSweepStats *stats, GError **error)
{
	FsPriv *p = cg->priv;
	g_autofree char *dest =
		g_build_filename(cg->path, "cgroup.procs", NULL);
	g_autoptr(GArray) pids = vs_cgroup_read_procs(cg->scope, error);

	if (!pids)
		return FALSE;
	/* Forget kthreads that exited (their pid may come back as a task
	 * that moves), all in one poll(). */
	vs_task_set_prune(p->unmovable, pids);
	for (guint i = 0; i < pids->len; i++) {
		int pid = g_array_index(pids, int, i);
		char buf[16];

		if (vs_task_set_has(p->unmovable, pid)) {
			stats->unmovable_kthreads++;
			continue;
		}
		/* The kernel refuses per-CPU kthreads (EINVAL), but only after
		 * taking cgroup_threadgroup_rwsem for writing, which waits for
		 * an RCU grace period (a sweep that tried the new kworkers
		 * took up to 42 ms under TCG). Their flags say so first. */
		if ((vs_task_flags(pid) & NO_MIGRATION) == NO_MIGRATION) {
			vs_task_set_add(p->unmovable, pid);
			stats->unmovable_kthreads++;
			continue;
		}
		g_snprintf(buf, sizeof(buf), "%d", pid);
		if (vs_write_file(dest, buf, NULL)) {
			stats->moved++;
		} else if (errno == ESRCH) {
			continue; /* exited meanwhile */
		} else if (vs_task_is_kthread(pid)) {
			vs_task_set_add(p->unmovable, pid);
			stats->unmovable_kthreads++;
		} else {
			g_debug("pid %d refused to move: %s", pid,
				g_strerror(errno));
			stats->unmovable_other++;
		}
	}
	return TRUE;
}

static gint fs_count_outside(VsCgroup *cg, GError **error)
{
	g_autoptr(GArray) pids = vs_cgroup_read_procs(cg->scope, error);

	return pids ? (gint)pids->len : -1;
}

static gboolean fs_is_ours(const char *name)
{
	return strcmp(name, VS_CGROUP_NAME) == 0;
}

/* Every cgroup below the scope but ours. */
static GPtrArray *fs_foreign(VsCgroup *cg)
{
	FsPriv *p = cg->priv;

	return vs_cgroup_foreign(cg->scope, p->prefix, fs_is_ours);
}

static void fs_free(VsCgroup *cg)
{
	FsPriv *p = cg->priv;

	if (p)
		vs_task_set_free(p->unmovable);
	g_free(p);
}

static const VsCgroupOps fs_ops = {
	.name = "cgroupfs",
	.sweep = fs_sweep,
	.get = fs_get,
	.get_effective = fs_get_effective,
	.set = fs_set,
	.count_outside = fs_count_outside,
	.foreign = fs_foreign,
	.free = fs_free,
};

/* v1 children start with empty cpus/mems, and an empty cpuset cannot take
 * tasks: copy the parent's (as crun's initialize_cpuset_subsystem). */
static gboolean fs_v1_setup(VsCgroup *cg, GError **error)
{
	static const char *const names[] = { "cpus", "mems" };
	g_autofree char *migrate = fs_file(cg, cg->path, "memory_migrate");

	for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
		VsCpuSet set;
		gboolean empty;

		if (!fs_read_set(cg, cg->path, names[i], &set, &empty, error))
			return FALSE;
		if (!empty)
			continue;
		if (!fs_read_set(cg, cg->scope, names[i], &set, &empty,
				 error) ||
		    !fs_write_set(cg, names[i], &set, error))
			return FALSE;
	}
	/* Pages follow a change of mems, as they always do on v2. */
	return vs_write_file(migrate, "1", error);
}

static gboolean fs_v2_setup(VsCgroup *cg, VsSweepStats *stats, GError **error)
{
	g_autofree char *ctl =
		g_build_filename(cg->scope, "cgroup.subtree_control", NULL);

	/* A non-root scope must be empty before it can enable a controller
	 * for its children: move the tasks down first. */
	if (!fs_sweep(cg, stats, error))
		return FALSE;
	return vs_write_file(ctl, "+cpuset", error);
}

VsCgroup *vs_cgroup_fs_open(const char *scope, GError **error)
{
	g_autoptr(VsCgroup) cg = g_new0(VsCgroup, 1);
	g_autofree char *probe = NULL;
	FsPriv *p = g_new0(FsPriv, 1);
	VsSweepStats stats = { 0 };

	cg->ops = &fs_ops;
	cg->priv = p;
	p->unmovable = vs_task_set_new();
	p->prefix = "cpuset.";
	if (scope) {
		cg->scope = g_strdup(scope);
		cg->version = vs_cgroup_detect(scope, error);
	} else {
		cg->scope = vs_cgroup_find_cpuset_root(&cg->version, error);
	}
	if (!cg->scope || !cg->version)
		return NULL;
	probe = g_build_filename(cg->scope, "cpuset.mems", NULL);
	if (cg->version == 1 && !g_file_test(probe, G_FILE_TEST_EXISTS))
		p->prefix = ""; /* mounted with noprefix */
	cg->path = g_build_filename(cg->scope, VS_CGROUP_NAME, NULL);
	cg->top = g_strdup(cg->scope);
	if (mkdir(cg->path, 0755) < 0 && errno != EEXIST) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "cannot create %s: %s", cg->path,
			    g_strerror(errno));
		return NULL;
	}
	if (cg->version == 1 ? !fs_v1_setup(cg, error)
			     : !fs_v2_setup(cg, &stats, error))
		return NULL;
	if (cg->version == 1 && !fs_sweep(cg, &stats, error))
		return NULL;
	g_message("cgroup v%d at %s: %u tasks moved in, %u kthreads stay out",
		  cg->version, cg->path, stats.moved, stats.unmovable_kthreads);
	return g_steal_pointer(&cg);
}
