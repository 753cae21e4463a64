// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Between jobs the loop watches each open VM's driver fd (QMP: the
 * monitor connection). QEMU closes it when it exits, crashes or is
 * killed: then a JOB_VM_GONE frees what the VM owned. While a job runs the
 * worker owns the VMs and the watches are off (jobs.c turns them on and
 * off), so a connection is never read by two threads.
 */
#include "vshared.h"

#include <glib-unix.h>

typedef struct {
	Daemon *d;
	char *name;
	VsVm *vm; /* the session's */
	GSource *src;
} Watch;

static void watch_free(gpointer p)
{
	Watch *w = p;

	if (w->src) {
		g_source_destroy(w->src);
		g_source_unref(w->src);
	}
	g_free(w->name);
	g_free(w);
}

static gboolean on_readable(gint fd, GIOCondition cond, gpointer data)
{
	Watch *w = data;

	if (w->vm->drv->watch_read(w->vm))
		return G_SOURCE_CONTINUE;
	/* gone: the job removes the VM; no more watching */
	daemon_job(w->d, JOB_VM_GONE, NULL, NULL, 0, NULL, w->name);
	return G_SOURCE_CONTINUE; /* daemon_job() destroyed the source */
}

void daemon_watch_all(Daemon *d)
{
	GHashTableIter it;
	gpointer k, v;

	if (!d->watches)
		d->watches = g_hash_table_new_full(g_str_hash, g_str_equal,
						   NULL, watch_free);
	g_hash_table_iter_init(&it, d->session.vms);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		VsVm *vm = v;
		int fd = vm->drv->watch_fd ? vm->drv->watch_fd(vm) : -1;
		Watch *w;

		if (fd < 0 || g_hash_table_contains(d->watches, k))
			continue;
		w = g_new0(Watch, 1);
		w->d = d;
		w->name = g_strdup(k);
		w->vm = vm;
		w->src =
			g_unix_fd_source_new(fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
		g_source_set_callback(w->src,
				      (GSourceFunc)(void (*)(void))on_readable,
				      w, NULL);
		g_source_attach(w->src, NULL);
		g_hash_table_insert(d->watches, w->name, w);
	}
}

void daemon_unwatch_all(Daemon *d)
{
	if (d->watches)
		g_hash_table_remove_all(d->watches);
}
