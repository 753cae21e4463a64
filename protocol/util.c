// SPDX-License-Identifier: GPL-2.0-or-later
/* Small file helpers for sysfs, procfs and cgroupfs; task identity. */
#include "vshare-proto.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/syscall.h>
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

/* pid -> a pidfd of the task (pidfd_open, Linux >= 5.3): it becomes
 * readable when the task exits, so "still the same task" is one poll()
 * with no timeout, where reading /proc/PID/stat costs an open, a read of
 * ~50 formatted fields and a close (a sweep checks every kthread of the
 * root cgroup at each request). Where no pidfd can be had (old kernel,
 * out of descriptors) the task's start time (/proc/PID/stat field 22)
 * names it instead. */
typedef struct {
	int fd;	       /* pidfd, or -1 */
	guint64 start; /* with fd == -1 */
} TaskId;

struct VsTaskSet {
	GHashTable *tasks; /* pid -> TaskId* */
};

static gboolean task_start(int pid, guint64 *start)
{
	return vs_task_stat_field(pid, 22, start);
}

static void task_id_free(gpointer p)
{
	TaskId *id = p;

	if (id->fd >= 0)
		close(id->fd);
	g_free(id);
}

VsTaskSet *vs_task_set_new(void)
{
	VsTaskSet *set = g_new0(VsTaskSet, 1);

	set->tasks = g_hash_table_new_full(NULL, NULL, NULL, task_id_free);
	return set;
}

void vs_task_set_free(VsTaskSet *set)
{
	if (!set)
		return;
	g_hash_table_unref(set->tasks);
	g_free(set);
}

/* The pidfd first: if the task behind it exits before its start time is
 * read, it reads as gone at the next check, and the pid is looked at
 * again. */
void vs_task_set_add(VsTaskSet *set, int pid)
{
	TaskId *id = g_new0(TaskId, 1);

	id->fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (!task_start(pid, &id->start)) {
		task_id_free(id);
		return;
	}
	g_hash_table_replace(set->tasks, GINT_TO_POINTER(pid), id);
}

static gboolean task_alive(const TaskId *id, int pid)
{
	struct pollfd pfd = { .fd = id->fd, .events = POLLIN };
	guint64 now;

	if (id->fd < 0)
		return task_start(pid, &now) && now == id->start;
	return poll(&pfd, 1, 0) == 0;
}

gboolean vs_task_set_contains(VsTaskSet *set, int pid)
{
	const TaskId *id =
		g_hash_table_lookup(set->tasks, GINT_TO_POINTER(pid));

	if (!id)
		return FALSE;
	if (task_alive(id, pid))
		return TRUE;
	g_hash_table_remove(set->tasks, GINT_TO_POINTER(pid));
	return FALSE;
}

/* Every pidfd in one poll(): one system call for the whole set. */
static void prune_exited(VsTaskSet *set)
{
	guint n = g_hash_table_size(set->tasks), i = 0;
	g_autofree struct pollfd *pfd = g_new0(struct pollfd, n ? n : 1);
	g_autofree int *pids = g_new0(int, n ? n : 1);
	GHashTableIter it;
	gpointer key, value;

	g_hash_table_iter_init(&it, set->tasks);
	while (g_hash_table_iter_next(&it, &key, &value)) {
		TaskId *id = value;

		if (id->fd < 0) {
			if (!task_alive(id, GPOINTER_TO_INT(key)))
				g_hash_table_iter_remove(&it);
			continue;
		}
		pfd[i] = (struct pollfd){ .fd = id->fd, .events = POLLIN };
		pids[i++] = GPOINTER_TO_INT(key);
	}
	if (i == 0 || poll(pfd, i, 0) <= 0)
		return;
	for (guint j = 0; j < i; j++)
		if (pfd[j].revents)
			g_hash_table_remove(set->tasks,
					    GINT_TO_POINTER(pids[j]));
}

void vs_task_set_prune(VsTaskSet *set, const GArray *pids)
{
	g_autoptr(GHashTable) seen = g_hash_table_new(NULL, NULL);
	GHashTableIter it;
	gpointer pid;

	for (guint i = 0; i < pids->len; i++)
		g_hash_table_add(seen,
				 GINT_TO_POINTER(g_array_index(pids, int, i)));
	g_hash_table_iter_init(&it, set->tasks);
	while (g_hash_table_iter_next(&it, &pid, NULL))
		if (!g_hash_table_contains(seen, pid))
			g_hash_table_iter_remove(&it);
	prune_exited(set);
}

gboolean vs_task_set_has(VsTaskSet *set, int pid)
{
	return g_hash_table_contains(set->tasks, GINT_TO_POINTER(pid));
}

guint vs_task_set_size(VsTaskSet *set)
{
	return g_hash_table_size(set->tasks);
}
