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
 *  - every open runs on a helper thread; the caller waits at most
 *    VS_LIBVIRT_OPEN_MS for it; at most one open per URI is in flight:
 *    a caller that finds one past its deadline fails at once (libvirtd is
 *    stuck; no thread pile-up), and a connection that completes late is
 *    handed to the next caller;
 *  - every connection gets the keepalive before it is handed out, so calls
 *    on it are bounded wherever the event loop runs on another thread
 *    (vshared's main loop; vsharectl has no such loop: only its opens are
 *    bounded).
 */
#include "vmdrv-libvirt.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

typedef struct {
	char *uri;
	gint64 deadline; /* monotonic us: the first caller's */
	gboolean done;
	virConnectPtr conn; /* when done: the connection, or NULL and err */
	char *err;
} Opening;

static GMutex lock;
static GCond finished;
static GHashTable *openings; /* uri -> Opening */

static void opening_free(Opening *o)
{
	if (o->conn)
		virConnectClose(o->conn);
	g_free(o->uri);
	g_free(o->err);
	g_free(o);
}

static gpointer open_thread(gpointer data)
{
	Opening *o = data;
	virConnectPtr conn = virConnectOpen(o->uri);
	char *err = NULL;

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
	g_cond_broadcast(&finished);
	g_mutex_unlock(&lock);
	return NULL;
}

/* Under the lock: the open of @uri in flight, or a new one started. */
static Opening *opening_get(const char *uri, GError **error)
{
	Opening *o;
	GThread *t;

	if (!openings)
		openings = g_hash_table_new(g_str_hash, g_str_equal);
	o = g_hash_table_lookup(openings, uri);
	if (o && o->done && !o->conn) { /* an old failure: try again */
		g_hash_table_remove(openings, uri);
		opening_free(o);
		o = NULL;
	}
	if (o)
		return o;
	o = g_new0(Opening, 1);
	o->uri = g_strdup(uri);
	o->deadline = g_get_monotonic_time() + VS_LIBVIRT_OPEN_MS * 1000;
	t = g_thread_try_new("vs-libvirt-open", open_thread, o, error);
	if (!t) {
		opening_free(o);
		return NULL;
	}
	g_thread_unref(t); /* detached: it may outlive every caller */
	g_hash_table_insert(openings, o->uri, o);
	return o;
}

virConnectPtr vs_libvirt_open(const char *uri, gboolean wait, GError **error)
{
	virConnectPtr conn = NULL;
	Opening *o;

	virInitialize();
	vs_libvirt_events_init();
	g_mutex_lock(&lock);
	o = opening_get(uri, error);
	while (o && wait && !o->done &&
	       g_cond_wait_until(&finished, &lock, o->deadline))
		;
	if (o && o->done) {
		g_hash_table_remove(openings, uri);
		conn = g_steal_pointer(&o->conn);
		if (!conn)
			g_set_error(error, VS_HOST_ERROR,
				    VS_HOST_ERROR_UNREACHABLE, "libvirt %s: %s",
				    uri, o->err ? o->err : "cannot connect");
		opening_free(o);
	} else if (o) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_UNREACHABLE,
			    "libvirt %s: libvirtd did not answer within %d s",
			    uri, VS_LIBVIRT_OPEN_MS / 1000);
	}
	g_mutex_unlock(&lock);
	return conn;
}
