// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libvirt's event loop on a GMainContext (virEventRegisterImpl): each
 * libvirt handle is a g_unix_fd_source, each timer a g_timeout_source.
 * libvirt's client needs an event loop for domain events (and to answer
 * the daemon's keepalives); this one lets a glib program (vshared) run it
 * in its own loop instead of a thread spinning virEventRunDefaultImpl(),
 * which has no timeout of its own either.
 *
 * libvirt calls these from any thread (an RPC in flight adds and updates
 * its socket's watch): the table is locked, sources are attached and
 * destroyed (thread-safe in glib), never modified; callbacks run unlocked.
 * Free callbacks run later, from the context, as libvirt's own loop does:
 * libvirt may hold the locks they take while it removes a handle.
 */
#include "vmdrv-libvirt.h"

#include <glib-unix.h>
#include <libvirt/libvirt.h>

typedef struct {
	int id;
	int fd;	    /* -1: a timer */
	int events; /* handle: VIR_EVENT_HANDLE_*; timer: ms, -1 off */
	virEventHandleCallback hcb;
	virEventTimeoutCallback tcb;
	void *opaque;
	virFreeCallback ff;
	GSource *src;
} Ev;

static GMutex lock;
static GCond kicked;
static GHashTable *evs; /* id -> Ev */
static int next_id = 1;
static GMainContext *ctx;

void vs_libvirt_set_event_context(GMainContext *c)
{
	g_mutex_lock(&lock);
	if (!evs && c) {
		g_clear_pointer(&ctx, g_main_context_unref);
		ctx = g_main_context_ref(c);
	}
	g_mutex_unlock(&lock);
}

GMainContext *vs_libvirt_event_context(void)
{
	GMainContext *c;

	g_mutex_lock(&lock);
	if (!ctx)
		ctx = g_main_context_new();
	c = ctx;
	g_mutex_unlock(&lock);
	return c;
}

static GIOCondition to_cond(int events)
{
	return (events & VIR_EVENT_HANDLE_READABLE ? G_IO_IN : 0) |
	       (events & VIR_EVENT_HANDLE_WRITABLE ? G_IO_OUT : 0) | G_IO_ERR |
	       G_IO_HUP;
}

static int from_cond(GIOCondition c)
{
	return (c & G_IO_IN ? VIR_EVENT_HANDLE_READABLE : 0) |
	       (c & G_IO_OUT ? VIR_EVENT_HANDLE_WRITABLE : 0) |
	       (c & G_IO_ERR ? VIR_EVENT_HANDLE_ERROR : 0) |
	       (c & G_IO_HUP ? VIR_EVENT_HANDLE_HANGUP : 0);
}

static gboolean on_fd(int fd, GIOCondition cond, gpointer data)
{
	virEventHandleCallback cb = NULL;
	void *opaque = NULL;
	Ev *e;

	g_mutex_lock(&lock);
	e = g_hash_table_lookup(evs, data);
	if (e && e->fd >= 0) {
		cb = e->hcb;
		opaque = e->opaque;
	}
	g_mutex_unlock(&lock);
	if (cb)
		cb(GPOINTER_TO_INT(data), fd, from_cond(cond), opaque);
	return G_SOURCE_CONTINUE;
}

static gboolean on_timer(gpointer data)
{
	virEventTimeoutCallback cb = NULL;
	void *opaque = NULL;
	Ev *e;

	g_mutex_lock(&lock);
	e = g_hash_table_lookup(evs, data);
	if (e && e->fd < 0) {
		cb = e->tcb;
		opaque = e->opaque;
	}
	g_mutex_unlock(&lock);
	if (cb)
		cb(GPOINTER_TO_INT(data), opaque);
	return G_SOURCE_CONTINUE;
}

/* (Re)create @e's source for its current settings; lock held. */
static void arm(Ev *e)
{
	if (e->src) {
		g_source_destroy(e->src);
		g_clear_pointer(&e->src, g_source_unref);
	}
	if (e->fd >= 0 && e->events) {
		e->src = g_unix_fd_source_new(e->fd, to_cond(e->events));
		g_source_set_callback(e->src, G_SOURCE_FUNC(on_fd),
				      GINT_TO_POINTER(e->id), NULL);
	} else if (e->fd < 0 && e->events >= 0) {
		e->src = g_timeout_source_new((guint)e->events);
		g_source_set_callback(e->src, on_timer, GINT_TO_POINTER(e->id),
				      NULL);
	}
	if (e->src)
		g_source_attach(e->src, ctx);
}

static int add(Ev *e)
{
	int id;

	g_mutex_lock(&lock);
	id = e->id = next_id++;
	g_hash_table_insert(evs, GINT_TO_POINTER(id), e);
	arm(e);
	g_mutex_unlock(&lock);
	return id;
}

static void update(int id, int events, gboolean timer)
{
	Ev *e;

	g_mutex_lock(&lock);
	e = g_hash_table_lookup(evs, GINT_TO_POINTER(id));
	if (e && (e->fd < 0) == timer && e->events != events) {
		e->events = events;
		arm(e);
	}
	g_mutex_unlock(&lock);
}

static gboolean free_later(gpointer data)
{
	Ev *e = data;

	e->ff(e->opaque);
	g_free(e);
	return G_SOURCE_REMOVE;
}

static int remove_ev(int id, gboolean timer)
{
	Ev *e;

	g_mutex_lock(&lock);
	e = g_hash_table_lookup(evs, GINT_TO_POINTER(id));
	if (!e || (e->fd < 0) != timer) {
		g_mutex_unlock(&lock);
		return -1;
	}
	g_hash_table_remove(evs, GINT_TO_POINTER(id));
	e->events = timer ? -1 : 0;
	arm(e);
	g_mutex_unlock(&lock);
	if (e->ff) {
		g_autoptr(GSource) s = g_idle_source_new();

		g_source_set_callback(s, free_later, e, NULL);
		g_source_attach(s, ctx);
	} else {
		g_free(e);
	}
	return 0;
}

static int add_handle(int fd, int events, virEventHandleCallback cb,
		      void *opaque, virFreeCallback ff)
{
	Ev *e = g_new0(Ev, 1);

	*e = (Ev){ .fd = fd,
		   .events = events,
		   .hcb = cb,
		   .opaque = opaque,
		   .ff = ff };
	return add(e);
}

static void update_handle(int id, int events)
{
	update(id, events, FALSE);
}

static int remove_handle(int id)
{
	return remove_ev(id, FALSE);
}

static int add_timeout(int ms, virEventTimeoutCallback cb, void *opaque,
		       virFreeCallback ff)
{
	Ev *e = g_new0(Ev, 1);

	*e = (Ev){
		.fd = -1, .events = ms, .tcb = cb, .opaque = opaque, .ff = ff
	};
	return add(e);
}

static void update_timeout(int id, int ms)
{
	update(id, ms, TRUE);
}

static int remove_timeout(int id)
{
	return remove_ev(id, TRUE);
}

void vs_libvirt_events_init(void)
{
	static gsize once;

	if (!g_once_init_enter(&once))
		return;
	vs_libvirt_event_context();
	g_mutex_lock(&lock);
	evs = g_hash_table_new(NULL, NULL);
	g_mutex_unlock(&lock);
	virEventRegisterImpl(add_handle, update_handle, remove_handle,
			     add_timeout, update_timeout, remove_timeout);
	g_once_init_leave(&once, 1);
}

void vs_libvirt_events_kick(void)
{
	g_mutex_lock(&lock);
	g_cond_broadcast(&kicked);
	g_mutex_unlock(&lock);
}

static gboolean set_flag(gpointer data)
{
	*(gboolean *)data = TRUE;
	return G_SOURCE_REMOVE;
}

/* We own the context: run it until done, the deadline, or nothing. */
static void run_until(gboolean (*done)(gpointer), gpointer data,
		      gint64 deadline)
{
	gint64 left = deadline - g_get_monotonic_time();
	g_autoptr(GSource) t = NULL;
	gboolean fired = FALSE;

	if (left <= 0)
		return;
	t = g_timeout_source_new((guint)MIN((left + 999) / 1000, G_MAXUINT));
	g_source_set_callback(t, set_flag, &fired, NULL);
	g_source_attach(t, ctx);
	while (!fired && !done(data))
		g_main_context_iteration(ctx, TRUE);
	g_source_destroy(t);
}

void vs_libvirt_events_wait(gboolean (*done)(gpointer data), gpointer data,
			    gint64 deadline)
{
	GMainContext *c = vs_libvirt_event_context();

	if (g_main_context_acquire(c)) {
		run_until(done, data, deadline);
		g_main_context_release(c);
		return;
	}
	/* Another thread runs the context: its callbacks kick us. */
	g_mutex_lock(&lock);
	while (!done(data) && g_cond_wait_until(&kicked, &lock, deadline))
		;
	g_mutex_unlock(&lock);
}

void vs_libvirt_events_drain(void)
{
	GMainContext *c = vs_libvirt_event_context();

	if (!g_main_context_acquire(c))
		return;
	/* Bounded: a 0 ms libvirt timer is re-armed until it is served. */
	for (guint i = 0; i < 64 && g_main_context_iteration(c, FALSE); i++)
		;
	g_main_context_release(c);
}
