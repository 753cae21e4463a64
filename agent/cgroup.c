// SPDX-License-Identifier: GPL-2.0-or-later
/* Backend selection and helpers shared by the confinement backends. */
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/vfs.h>

int vs_cgroup_detect(const char *dir, GError **error)
{
	struct statfs sfs;

	if (statfs(dir, &sfs) < 0) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC, "statfs %s: %s",
			    dir, g_strerror(errno));
		return 0;
	}
	if (sfs.f_type == CGROUP2_SUPER_MAGIC)
		return 2;
	if (sfs.f_type == CGROUP_SUPER_MAGIC)
		return 1;
	g_set_error(error, VS_ERROR, VS_ERROR_GENERIC, "%s is not a cgroupfs",
		    dir);
	return 0;
}

static gboolean v2_has_cpuset(const char *mnt)
{
	g_autofree char *f = g_build_filename(mnt, "cgroup.controllers", NULL);
	g_autofree char *c = vs_read_file(f, NULL);
	g_auto(GStrv) words = c ? g_strsplit(c, " ", -1) : NULL;

	return words && g_strv_contains((const char *const *)words, "cpuset");
}

/* Where the cpuset controller is mounted: a v1 hierarchy with the cpuset
 * option, else a cgroup2 mount that offers cpuset. */
char *vs_cgroup_find_cpuset_root(int *version, GError **error)
{
	g_autofree char *text = vs_read_file("/proc/self/mountinfo", error);
	g_auto(GStrv) lines = NULL;
	g_autofree char *v2 = NULL;

	if (!text)
		return NULL;
	lines = g_strsplit(text, "\n", -1);
	for (char **l = lines; *l; l++) {
		g_auto(GStrv) halves = g_strsplit(*l, " - ", 2);
		g_auto(GStrv) pre = NULL, post = NULL;

		if (g_strv_length(halves) != 2)
			continue;
		pre = g_strsplit(halves[0], " ", -1);
		post = g_strsplit(halves[1], " ", -1);
		if (g_strv_length(pre) < 5 || g_strv_length(post) < 3)
			continue;
		if (strcmp(post[0], "cgroup") == 0) {
			g_auto(GStrv) opts = g_strsplit(post[2], ",", -1);

			if (g_strv_contains((const char *const *)opts,
					    "cpuset")) {
				*version = 1;
				return g_strdup(pre[4]);
			}
		} else if (strcmp(post[0], "cgroup2") == 0 && !v2 &&
			   v2_has_cpuset(pre[4])) {
			v2 = g_strdup(pre[4]);
		}
	}
	if (v2) {
		*version = 2;
		return g_steal_pointer(&v2);
	}
	g_set_error_literal(error, VS_ERROR, VS_ERROR_GENERIC,
			    "no cgroup hierarchy with the cpuset controller is "
			    "mounted");
	return NULL;
}

guint64 vs_task_flags(int pid)
{
	guint64 flags = 0;

	return vs_task_stat_field(pid, 9, &flags) ? flags : 0;
}

GArray *vs_cgroup_read_procs(const char *dir, GError **error)
{
	g_autofree char *f = g_build_filename(dir, "cgroup.procs", NULL);
	g_autofree char *text = vs_read_file(f, error);
	g_auto(GStrv) lines = NULL;
	GArray *pids;

	if (!text)
		return NULL;
	pids = g_array_new(FALSE, FALSE, sizeof(int));
	lines = g_strsplit(text, "\n", -1);
	for (char **l = lines; *l; l++) {
		int pid = atoi(*l);

		if (pid > 0)
			g_array_append_val(pids, pid);
	}
	return pids;
}

gboolean vs_task_is_kthread(int pid)
{
	return (vs_task_flags(pid) & VS_PF_KTHREAD) != 0;
}

void vs_foreign_free(gpointer p)
{
	VsForeign *f = p;

	g_free(f->dir);
	g_free(f->cpus);
	g_free(f->mems);
	g_free(f);
}

/* The names of @dir's subdirectories. A cgroup directory holds dozens of
 * interface files: the entry's type (kernfs fills d_type) spares a stat()
 * of each at every request. */
static GPtrArray *subdirs(const char *dir)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		g_autofree char *path = NULL;

		if (e->d_name[0] == '.' ||
		    (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN))
			continue;
		path = g_build_filename(dir, e->d_name, NULL);
		if (e->d_type == DT_DIR ||
		    g_file_test(path, G_FILE_TEST_IS_DIR))
			g_ptr_array_add(out, g_strdup(e->d_name));
	}
	if (d)
		closedir(d);
	return out;
}

GPtrArray *vs_cgroup_foreign(const char *top, const char *prefix,
			     gboolean (*skip)(const char *name))
{
	GPtrArray *out = g_ptr_array_new_with_free_func(vs_foreign_free);
	g_autoptr(GPtrArray) names = subdirs(top);
	g_autofree char *cpus = g_strconcat(prefix, "cpus", NULL);
	g_autofree char *mems = g_strconcat(prefix, "mems", NULL);

	for (guint i = 0; i < names->len; i++) {
		const char *name = names->pdata[i];
		VsForeign *f;

		if (skip(name))
			continue;
		f = g_new0(VsForeign, 1);
		f->dir = g_build_filename(top, name, NULL);
		f->cpus = g_build_filename(f->dir, cpus, NULL);
		f->mems = g_build_filename(f->dir, mems, NULL);
		g_ptr_array_add(out, f);
	}
	return out;
}

guint vs_cgroup_count_tasks(const char *dir)
{
	g_autoptr(GArray) pids = vs_cgroup_read_procs(dir, NULL);
	g_autoptr(GPtrArray) names = subdirs(dir);
	guint n = pids ? pids->len : 0;

	for (guint i = 0; i < names->len; i++) {
		g_autofree char *sub =
			g_build_filename(dir, names->pdata[i], NULL);

		n += vs_cgroup_count_tasks(sub);
	}
	return n;
}

VsCgroup *vs_cgroup_open(const char *backend, const char *scope, GError **error)
{
	gboolean automatic = !backend || strcmp(backend, "auto") == 0;

	if (automatic)
		backend = !scope && vs_cgroup_systemd_booted() ? "systemd"
							       : "cgroupfs";
	if (strcmp(backend, "cgroupfs") == 0)
		return vs_cgroup_fs_open(scope, error);
	if (strcmp(backend, "systemd") != 0) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "unknown backend '%s' (known: auto, cgroupfs, "
			    "systemd)",
			    backend);
		return NULL;
	}
	if (scope) {
		g_set_error_literal(error, VS_ERROR, VS_ERROR_GENERIC,
				    "--cgroup-root applies to the cgroupfs "
				    "backend only");
		return NULL;
	}
	return vs_cgroup_systemd_open(error);
}

void vs_cgroup_free(VsCgroup *cg)
{
	if (!cg)
		return;
	if (cg->ops && cg->ops->free)
		cg->ops->free(cg);
	g_free(cg->scope);
	g_free(cg->path);
	g_free(cg->top);
	g_free(cg);
}
