// SPDX-License-Identifier: GPL-2.0-or-later
/* Small file helpers for sysfs, procfs and cgroupfs; task identity. */
#include "vshare-proto.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

char *vs_read_file(const char *path, GError **error)
{
	g_autofree char *text = NULL;
	gsize len = 0;
	g_autoptr(GError) local = NULL;

	if (!g_file_get_contents(path, &text, &len, &local)) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC, "%s",
			    local->message);
		return NULL;
	}
	if (len && text[len - 1] == '\n')
		text[len - 1] = '\0';
	return g_steal_pointer(&text);
}

gboolean vs_write_file(const char *path, const char *text, GError **error)
{
	gsize len = strlen(text);
	ssize_t n;
	int fd, saved;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		saved = errno;
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "cannot open %s: %s", path, g_strerror(saved));
		errno = saved;
		return FALSE;
	}
	n = write(fd, text, len);
	saved = errno;
	close(fd);
	if (n < 0 || (gsize)n != len) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "cannot write '%s' to %s: %s", text, path,
			    n < 0 ? g_strerror(saved) : "short write");
		errno = n < 0 ? saved : EIO; /* callers triage errno */
		return FALSE;
	}
	return TRUE;
}

gboolean vs_task_stat_field(int pid, guint n, guint64 *value)
{
	g_autofree char *f = g_strdup_printf("/proc/%d/stat", pid);
	g_autofree char *stat = vs_read_file(f, NULL);
	const char *p = stat ? strrchr(stat, ')') : NULL;
	g_auto(GStrv) fields = NULL;

	/* "pid (comm) state ...": comm may hold spaces and parentheses. */
	if (!p || n < 3 || p[1] != ' ')
		return FALSE;
	fields = g_strsplit(p + 2, " ", (gint)n - 1);
	if (g_strv_length(fields) < n - 2)
		return FALSE;
	*value = g_ascii_strtoull(fields[n - 3], NULL, 10);
	return TRUE;
}

/* pid -> start time (clock ticks after boot), the pair naming a task. */
struct VsTaskSet {
	GHashTable *start;
};

static gboolean task_start(int pid, guint64 *start)
{
	return vs_task_stat_field(pid, 22, start);
}

VsTaskSet *vs_task_set_new(void)
{
	VsTaskSet *set = g_new0(VsTaskSet, 1);

	set->start = g_hash_table_new_full(NULL, NULL, NULL, g_free);
	return set;
}

void vs_task_set_free(VsTaskSet *set)
{
	if (!set)
		return;
	g_hash_table_unref(set->start);
	g_free(set);
}

void vs_task_set_add(VsTaskSet *set, int pid)
{
	guint64 start;

	if (task_start(pid, &start))
		g_hash_table_replace(set->start, GINT_TO_POINTER(pid),
				     g_memdup2(&start, sizeof(start)));
}

gboolean vs_task_set_contains(VsTaskSet *set, int pid)
{
	const guint64 *had =
		g_hash_table_lookup(set->start, GINT_TO_POINTER(pid));
	guint64 now;

	if (!had)
		return FALSE;
	if (task_start(pid, &now) && now == *had)
		return TRUE;
	g_hash_table_remove(set->start, GINT_TO_POINTER(pid));
	return FALSE;
}

void vs_task_set_prune(VsTaskSet *set, const GArray *pids)
{
	g_autoptr(GHashTable) seen = g_hash_table_new(NULL, NULL);
	GHashTableIter it;
	gpointer pid;

	for (guint i = 0; i < pids->len; i++)
		g_hash_table_add(seen,
				 GINT_TO_POINTER(g_array_index(pids, int, i)));
	g_hash_table_iter_init(&it, set->start);
	while (g_hash_table_iter_next(&it, &pid, NULL))
		if (!g_hash_table_contains(seen, pid))
			g_hash_table_iter_remove(&it);
}

guint vs_task_set_size(VsTaskSet *set)
{
	return g_hash_table_size(set->start);
}
