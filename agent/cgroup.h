/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Confinement backends behind one interface (as crun's cgroup managers).
 *
 * A backend keeps the guest's movable tasks where one write changes their
 * CPUs and memory nodes. The cgroup version (v1/v2) is a separate axis,
 * detected once. Backends: "cgroupfs" (cgroup-fs.c: our own cpuset cgroup
 * holds the tasks) and "systemd" (cgroup-systemd.c: AllowedCPUs= on the
 * top-level units over D-Bus; no task changes its cgroup).
 */
#pragma once

#include "vshare-proto.h"

typedef struct {
	guint moved;		  /* tasks swept into the confinement */
	guint unmovable_kthreads; /* per-CPU kthreads (EINVAL), expected */
	guint unmovable_other;	  /* anything else that refused */
} VsSweepStats;

typedef struct VsCgroup VsCgroup;

/* A cgroup directly below the root that the backend does not hold: made
 * by a container manager (lxc.payload.*, docker, ...) or anything else.
 * Moving its tasks would break whoever made it, so its own cpuset files
 * are set instead, as knobs of the allocation (alloc.c). */
typedef struct {
	char *dir;
	char *cpus; /* its cpuset.cpus ("cpus" on a v1 noprefix mount) */
	char *mems;
} VsForeign;
void vs_foreign_free(gpointer f);

typedef struct {
	const char *name;
	/* Move tasks that appeared outside the confinement into it. */
	gboolean (*sweep)(VsCgroup *cg, VsSweepStats *stats, GError **error);
	/* The configured (not effective) CPUs and nodes. */
	gboolean (*get)(VsCgroup *cg, VsCpuSet *cpus, VsCpuSet *mems,
			GError **error);
	gboolean (*get_effective)(VsCgroup *cg, VsCpuSet *cpus, VsCpuSet *mems,
				  GError **error);
	/* Write CPUs then nodes. On failure nothing is undone here: the
	 * caller restores the previous values (all-or-nothing lives in one
	 * place, alloc.c). */
	gboolean (*set)(VsCgroup *cg, const VsCpuSet *cpus,
			const VsCpuSet *mems, GError **error);
	/* Tasks still outside the confinement (kthreads included). */
	gint (*count_outside)(VsCgroup *cg, GError **error);
	/* The foreign top-level cgroups now (VsForeign*). */
	GPtrArray *(*foreign)(VsCgroup *cg);
	void (*free)(VsCgroup *cg);
} VsCgroupOps;

struct VsCgroup {
	const VsCgroupOps *ops;
	int version; /* 1 or 2 */
	char *scope; /* the cgroup whose tasks we manage (usually the root) */
	char *path;  /* our cgroup below it */
	char *top;   /* where the top-level cgroups are (foreign ones too) */
	gpointer priv;
};

/* Pick and initialise a backend. @backend: NULL/"auto" (systemd when PID 1
 * is systemd and no @scope is given, else cgroupfs), "cgroupfs", "systemd".
 * @scope: NULL for the cpuset hierarchy's root (a real guest), or a cgroup
 * directory (tests on a host: never the host's own root). */
VsCgroup *vs_cgroup_open(const char *backend, const char *scope,
			 GError **error);
void vs_cgroup_free(VsCgroup *cg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VsCgroup, vs_cgroup_free)

/* Implementations. */
VsCgroup *vs_cgroup_fs_open(const char *scope, GError **error);
VsCgroup *vs_cgroup_systemd_open(GError **error);
gboolean vs_cgroup_systemd_booted(void);

/* Helpers shared by backends (cgroup.c). */
int vs_cgroup_detect(const char *dir, GError **error); /* 1, 2 or 0 */
char *vs_cgroup_find_cpuset_root(int *version, GError **error);
/* The pids in @dir's cgroup.procs. */
GArray *vs_cgroup_read_procs(const char *dir, GError **error);
guint64 vs_task_flags(int pid); /* PF_* from /proc/PID/stat, 0 if gone */
#define VS_PF_KTHREAD	     0x00200000
#define VS_PF_NO_SETAFFINITY 0x04000000
gboolean vs_task_is_kthread(int pid);
/* The top-level directories of @top except those @skip accepts, as
 * VsForeign with the cpuset files named @prefix "cpus" / "mems". */
GPtrArray *vs_cgroup_foreign(const char *top, const char *prefix,
			     gboolean (*skip)(const char *name));
/* Tasks of @dir's cgroup and of all its descendants. */
guint vs_cgroup_count_tasks(const char *dir);
