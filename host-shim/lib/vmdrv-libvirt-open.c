// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Connections to libvirtd with deadlines. libvirt gives none of its own:
 * virConnectOpen to a libvirtd that accepts but does not answer (stopped,
 * or its loop stuck) waits forever, and in libvirt 9.0 a call in flight
 * does not look at the keepalive either (virNetClientIOEventLoop computes
 * the keepalive timeout and never uses it). What does bound a call is the
 * keepalive timer on the event loop (vmdrv-libvirt-events.c): when the
 * peer has been silent for VS_LIBVIRT_KEEPALIVE_S x (COUNT + 1) it closes
 * the client, which wakes the thread blocked in the call with an error.
 * So:
 *  - every open runs on a helper thread of its own; its caller waits at
 *    most VS_LIBVIRT_OPEN_MS (or polls, from a loop). An open its caller
 *    gave up on is abandoned: the thread closes what it gets, late;
 *  - while an open to a URI is past its deadline, libvirtd is taken as
 *    stuck: new opens to it fail at once (no pile of blocked threads);
 *  - every connection gets the keepalive before it is handed out, so calls
 *    on it are bounded wherever the event loop runs on another thread
 *    (vshared's main loop; vsharectl has no such loop: only its opens are
 *    bounded).
 */
#include "vmdrv-libvirt.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

struct VsLibvirtOpening {
	char *uri;
	gint64 deadline; /* monotonic us */
	gboolean done;	 /* under lock; then conn, or NULL and err */
	gboolean abandoned;
	virConnectPtr conn;
	char *err;
};

static GMutex lock;
static GCond finished;
static GPtrArray *inflight; /* VsLibvirtOpening not done yet */

static void opening_free(VsLibvirtOpening *o)
{
	if (o->conn)
		virConnectClose(o->conn);
	g_free(o->uri);
	g_free(o->err);
	g_free(o);
}

static gpointer open_thread(gpointer data)
{
	VsLibvirtOpening *o = data;
	virConnectPtr conn = virConnectOpen(o->uri);
	char *err = NULL;
	gboolean orphan;

	if (!conn)
		err = g_strdup(virGetLastErrorMessage());
	else if (virConnectSetKeepAlive(conn, VS_LIBVIRT_KEEPALIVE_S,
					VS_LIBVIRT_KEEPALIVE_COUNT) < 0)
		g_debug("libvirt %s: no keepalive: %s", o->uri,
			virGetLastErrorMessage());
	g_mutex_lock(&lock);
	o->conn = conn;
	o->err = err;
	o->done = TRUE;
	g_ptr_array_remove_fast(inflight, o);
	orphan = o->abandoned;
	g_cond_broadcast(&finished);
	g_mutex_unlock(&lock);
	if (orphan)
		opening_free(o); /* closes the late connection */
	return NULL;
}

/* Under the lock: an open to @uri in flight past its deadline. */
static gboolean stuck(const char *uri)
{
	gint64 now = g_get_monotonic_time();

	for (guint i = 0; inflight && i < inflight->len; i++) {
		VsLibvirtOpening *o = inflight->pdata[i];

		if (!strcmp(o->uri, uri) && now > o->deadline)
			return TRUE;
	}
	return FALSE;
}

static void not_answered(const char *uri, GError **error)
{
	g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_UNREACHABLE,
		    "libvirt %s: libvirtd did not answer within %d s", uri,
		    VS_LIBVIRT_OPEN_MS / 1000);
}

VsLibvirtOpening *vs_libvirt_open_start(const char *uri, GError **error)
{
	VsLibvirtOpening *o;
	GThread *t;

	virInitialize();
	vs_libvirt_events_init();
	g_mutex_lock(&lock);
	if (!inflight)
		inflight = g_ptr_array_new();
	if (stuck(uri)) {
		g_mutex_unlock(&lock);
		not_answered(uri, error);
		return NULL;
	}
	o = g_new0(VsLibvirtOpening, 1);
	o->uri = g_strdup(uri);
	o->deadline = g_get_monotonic_time() + VS_LIBVIRT_OPEN_MS * 1000;
	g_ptr_array_add(inflight, o);
	t = g_thread_try_new("vs-libvirt-open", open_thread, o, error);
	if (!t) {
		g_ptr_array_remove_fast(inflight, o);
		g_mutex_unlock(&lock);
		opening_free(o);
		return NULL;
	}
	g_thread_unref(t); /* detached: it may outlive its caller */
	g_mutex_unlock(&lock);
	return o;
}

gboolean vs_libvirt_open_finish(VsLibvirtOpening *o, gint64 until,
				VsVirConnect *conn, GError **error)
{
	g_mutex_lock(&lock);
	while (!o->done && g_cond_wait_until(&finished, &lock, until))
		;
	if (!o->done) {
		g_mutex_unlock(&lock);
		return FALSE;
	}
	g_mutex_unlock(&lock);
	*conn = g_steal_pointer(&o->conn);
	if (!*conn)
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_UNREACHABLE,
			    "libvirt %s: %s", o->uri,
			    o->err ? o->err : "cannot connect");
	opening_free(o);
	return TRUE;
}

void vs_libvirt_open_abandon(VsLibvirtOpening *o)
{
	gboolean done;

	if (!o)
		return;
	g_mutex_lock(&lock);
	done = o->done;
	o->abandoned = TRUE;
	g_mutex_unlock(&lock);
	if (done)
		opening_free(o);
}

gboolean vs_libvirt_open_overdue(VsLibvirtOpening *o)
{
	return g_get_monotonic_time() > o->deadline;
}

VsVirConnect vs_libvirt_open(const char *uri, GError **error)
{
	VsLibvirtOpening *o = vs_libvirt_open_start(uri, error);
	virConnectPtr conn = NULL;

	if (!o)
		return NULL;
	if (!vs_libvirt_open_finish(o, o->deadline, &conn, error)) {
		vs_libvirt_open_abandon(o);
		not_answered(uri, error);
	}
	return conn;
}
