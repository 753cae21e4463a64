// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vshared and libvirtd (--libvirt-uri): the loop keeps one connection for
 * domain lifecycle events (libvirt's events run on the main context,
 * lib/vmdrv-libvirt-events.c): a domain started or migrated in makes the
 * worker discover again; one stopped, crashed, destroyed or migrated away
 * is gone (jobs.c frees what it owned). When libvirtd goes away the close
 * callback starts a reconnect timer; nothing in the ledger changes while
 * it is down. Discovery itself runs on the worker (daemon_discover).
 */
#include "vshared.h"
#include "vmdrv-libvirt.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

static gboolean reconnect(gpointer data);

static int on_lifecycle(virConnectPtr c, virDomainPtr dom, int event,
			int detail, void *opaque)
{
	Daemon *d = opaque;
	const char *name = virDomainGetName(dom);

	switch (event) {
	case VIR_DOMAIN_EVENT_STARTED:
	case VIR_DOMAIN_EVENT_RESUMED:
		daemon_job(d, JOB_RELOAD, NULL, NULL, 0, NULL, NULL);
		if (name && ((event == VIR_DOMAIN_EVENT_STARTED &&
			      detail == VIR_DOMAIN_EVENT_STARTED_MIGRATED) ||
			     (event == VIR_DOMAIN_EVENT_RESUMED &&
			      detail == VIR_DOMAIN_EVENT_RESUMED_MIGRATED)))
			daemon_job(d, JOB_EVENT, NULL, NULL, 0, NULL, name);
		break;
	case VIR_DOMAIN_EVENT_STOPPED:
	case VIR_DOMAIN_EVENT_UNDEFINED:
	case VIR_DOMAIN_EVENT_CRASHED:
		if (name)
			daemon_job(d, JOB_VM_GONE, NULL, NULL, 0, NULL, name);
		break;
	default:
		break;
	}
	return 0;
}

static void on_close(virConnectPtr c, int reason, void *opaque)
{
	Daemon *d = opaque;

	g_message("libvirt: connection to %s lost: reconnecting",
		  d->libvirt_uri);
	d->libvirt_lost = TRUE;
	if (!d->libvirt_timer)
		d->libvirt_timer = g_timeout_add_seconds(1, reconnect, d);
}

static void drop(Daemon *d)
{
	virConnectPtr conn = d->libvirt;

	if (!conn)
		return;
	d->libvirt = NULL;
	if (d->libvirt_cb >= 0)
		virConnectDomainEventDeregisterAny(conn, d->libvirt_cb);
	virConnectUnregisterCloseCallback(conn, on_close);
	d->libvirt_cb = -1;
	virConnectClose(conn);
}

/* At start, waits for libvirtd for at most VS_LIBVIRT_OPEN_MS; later
 * never blocks the loop: the open runs on a helper thread of its own, and
 * a later tick takes the connection it made. */
static gboolean connect_libvirt(Daemon *d, gboolean wait)
{
	g_autoptr(GError) e = NULL;
	virConnectPtr conn = NULL;

	if (!d->libvirt_opening)
		d->libvirt_opening = vs_libvirt_open_start(d->libvirt_uri, &e);
	if (!d->libvirt_opening) {
		g_debug("%s", e->message);
		return FALSE;
	}
	if (!vs_libvirt_open_finish(d->libvirt_opening,
				    wait ? g_get_monotonic_time() +
						    VS_LIBVIRT_OPEN_MS * 1000
					 : 0,
				    &conn, &e)) {
		if (wait || vs_libvirt_open_overdue(d->libvirt_opening)) {
			/* stuck: later ticks fail at once until it returns */
			vs_libvirt_open_abandon(d->libvirt_opening);
			d->libvirt_opening = NULL;
		}
		return FALSE;
	}
	d->libvirt_opening = NULL;
	if (!conn) {
		g_debug("%s", e->message);
		return FALSE;
	}
	d->libvirt = conn;
	d->libvirt_cb = virConnectDomainEventRegisterAny(
		conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
		VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), d, NULL);
	/* A libvirtd that exits closes the socket, one that hangs is closed
	 * by the keepalive: both end in on_close. */
	virConnectRegisterCloseCallback(conn, on_close, d, NULL);
	return TRUE;
}

static gboolean reconnect(gpointer data)
{
	Daemon *d = data;

	drop(d);
	if (!connect_libvirt(d, FALSE))
		return G_SOURCE_CONTINUE; /* libvirtd still down */
	g_message("libvirt: reconnected to %s", d->libvirt_uri);
	d->libvirt_lost = FALSE;
	d->libvirt_timer = 0;
	daemon_job(d, JOB_RELOAD, NULL, NULL, 0, NULL, NULL);
	return G_SOURCE_REMOVE;
}

/* libvirt's callbacks on our loop, registered before any open; the
 * domains discovered before recovery, which may name them. */
void daemon_libvirt_prepare(Daemon *d)
{
	g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func(g_free);

	d->libvirt_cb = -1;
	if (!d->libvirt_uri)
		return;
	vs_libvirt_set_event_context(g_main_context_default());
	vs_libvirt_events_init();
	daemon_discover(d, gone);
}

void daemon_libvirt_start(Daemon *d)
{
	if (!d->libvirt_uri)
		return;
	if (!connect_libvirt(d, TRUE)) {
		g_message("libvirt: %s not reachable yet: retrying",
			  d->libvirt_uri);
		d->libvirt_timer = g_timeout_add_seconds(1, reconnect, d);
	}
}

void daemon_libvirt_stop(Daemon *d)
{
	if (d->libvirt_timer)
		g_source_remove(d->libvirt_timer);
	d->libvirt_timer = 0;
	vs_libvirt_open_abandon(g_steal_pointer(&d->libvirt_opening));
	drop(d);
}

/* Worker: the domains to follow now. A domain found before and missing
 * now (while libvirtd answered) is gone. */
gboolean daemon_discover(Daemon *d, GPtrArray *gone)
{
	g_autoptr(GError) e = NULL;
	GPtrArray *found;

	if (!d->libvirt_uri)
		return FALSE;
	found = vs_libvirt_discover(d->libvirt_uri, &e);
	if (!found) {
		g_debug("discovery: %s", e->message);
		return FALSE; /* libvirtd down: nothing is concluded */
	}
	for (guint i = 0; d->cfg.found && i < d->cfg.found->len; i++) {
		VsVmConf *old = d->cfg.found->pdata[i];
		gboolean still = FALSE;

		for (guint k = 0; k < found->len && !still; k++)
			still = !g_strcmp0(old->name,
					   ((VsVmConf *)found->pdata[k])->name);
		if (!still)
			g_ptr_array_add(gone, g_strdup(old->name));
	}
	if (d->cfg.found)
		g_ptr_array_unref(d->cfg.found);
	d->cfg.found = found;
	return TRUE;
}
