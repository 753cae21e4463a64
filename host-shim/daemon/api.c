// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The control socket: a unix socket, mode 0600 in a 0700 directory, and
 * SO_PEERCRED on every connection: only root talks to vshared. Frames are
 * cut by protocol/'s framer (64 KiB, depth 64); each frame becomes a job;
 * replies go back in order. A client that disconnects loses its replies,
 * nothing else. Replies are written when the socket is writable (never
 * blocking the loop); a client that holds more than VS_CLIENT_OUT_MAX
 * unsent, reads nothing of it for VS_CLIENT_WRITE_S, or queues more than
 * VS_CLIENT_INFLIGHT requests is closed with one log line.
 */
#include "vshared.h"

#include <errno.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define VS_CLIENT_OUT_MAX  (64u << 20) /* bytes of replies not yet sent */
#define VS_CLIENT_WRITE_S  30	       /* a reply nobody reads */
#define VS_CLIENT_INFLIGHT 64	       /* requests queued per client */

struct Client {
	gint ref;
	Daemon *d;
	int fd;
	GSource *src;	   /* readable; holds the first reference */
	GSource *wsrc;	   /* writable, while output waits (holds one) */
	GSource *deadline; /* and its deadline (holds one) */
	VsFramer *framer;
	GByteArray *out;
	gboolean closed;
	guint inflight; /* requests queued as jobs (loop thread) */
	char *who;	/* "uid U pid P (comm)", for the audit lines */
};

Client *client_ref(Client *c)
{
	g_atomic_int_inc(&c->ref);
	return c;
}

static void drop_source(GSource **src)
{
	GSource *s = *src;

	*src = NULL;
	if (s) {
		g_source_destroy(s); /* its reference goes (destroy notify) */
		g_source_unref(s);
	}
}

static void stop_writing(Client *c)
{
	drop_source(&c->wsrc);
	drop_source(&c->deadline);
}

/* Close and drop the reading side's reference; the caller holds one. */
static void client_close(Client *c)
{
	gboolean reader = c->src != NULL;

	if (c->closed)
		return;
	c->closed = TRUE;
	stop_writing(c);
	drop_source(&c->src);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (reader)
		client_unref(c);
}

void client_unref(Client *c)
{
	if (!g_atomic_int_dec_and_test(&c->ref))
		return;
	c->closed = TRUE; /* no source is left: each held a reference */
	if (c->fd >= 0)
		close(c->fd);
	vs_framer_free(c->framer);
	g_byte_array_unref(c->out);
	g_free(c->who);
	g_free(c);
}

const char *client_who(Client *c)
{
	return c && c->who ? c->who : "a peer host";
}

/* guest-ping/-sync/-info touch no state: answered here, unless the
 * client waits for earlier replies (they come in order). */
static gboolean answer_inline(Client *c, const char *frame, gsize len)
{
	g_autoptr(VsRequest) req = vs_request_parse(frame, len, NULL);
	g_autoptr(GBytes) reply = NULL;

	if (c->inflight || !req || !g_str_has_prefix(req->execute, "guest-"))
		return FALSE;
	reply = vs_dispatcher_handle(c->d->dispatcher, frame, len, NULL);
	client_reply(c, reply);
	return TRUE;
}

static void on_frame(const char *frame, gsize len, const GError *error,
		     gpointer data)
{
	Client *c = data;

	if (c->closed)
		return;
	if (!error && answer_inline(c, frame, len))
		return;
	if (c->inflight >= VS_CLIENT_INFLIGHT) {
		g_message("control socket: a client queued %u requests "
			  "without reading the replies: closed",
			  c->inflight);
		client_close(c);
		return;
	}
	c->inflight++;
	daemon_job(c->d, JOB_REQUEST, c, frame, len, error, NULL);
}

void client_done(Client *c)
{
	c->inflight--;
}

/* FALSE: the peer is gone. */
static gboolean flush_out(Client *c)
{
	while (c->out->len) {
		ssize_t n = send(c->fd, c->out->data, c->out->len,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return TRUE; /* the rest when writable */
		if (n <= 0)
			return FALSE;
		g_byte_array_remove_range(c->out, 0, n);
	}
	return TRUE;
}

static gboolean on_write_deadline(gpointer data);
static GSource *attach(GSource *src, GSourceFunc fn, Client *c);

/* The client read something: its 30 s start again. */
static void progress(Client *c)
{
	if (!c->deadline)
		return;
	drop_source(&c->deadline);
	c->deadline = attach(g_timeout_source_new_seconds(VS_CLIENT_WRITE_S),
			     on_write_deadline, c);
}

static gboolean on_writable(gint fd, GIOCondition cond, gpointer data)
{
	Client *c = data;
	guint before = c->out->len;

	if (c->closed)
		return G_SOURCE_REMOVE;
	if (!flush_out(c))
		client_close(c);
	else if (!c->out->len)
		stop_writing(c);
	else if (c->out->len < before)
		progress(c);
	return c->wsrc ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static gboolean on_write_deadline(gpointer data)
{
	Client *c = data;

	g_message("control socket: a client read nothing of %u bytes of "
		  "replies for %d s: closed",
		  c->out->len, VS_CLIENT_WRITE_S);
	client_close(c);
	return G_SOURCE_REMOVE;
}

static GSource *attach(GSource *src, GSourceFunc fn, Client *c)
{
	g_source_set_callback(src, fn, client_ref(c),
			      (GDestroyNotify)client_unref);
	g_source_attach(src, NULL);
	return src;
}

/* Output waits: write it when the socket can take it, within a deadline
 * (a reader that makes progress keeps its connection). */
static void want_write(Client *c)
{
	if (c->wsrc)
		return;
	c->wsrc = attach(g_unix_fd_source_new(c->fd, G_IO_OUT),
			 (GSourceFunc)(void (*)(void))on_writable, c);
	c->deadline = attach(g_timeout_source_new_seconds(VS_CLIENT_WRITE_S),
			     on_write_deadline, c);
}

void client_reply(Client *c, GBytes *bytes)
{
	gsize len, before;
	const guint8 *p = g_bytes_get_data(bytes, &len);

	if (c->closed)
		return;
	if (c->out->len + len > VS_CLIENT_OUT_MAX) {
		g_message("control socket: a client left %u bytes of replies "
			  "unread (at most %u): closed",
			  c->out->len, VS_CLIENT_OUT_MAX);
		client_close(c);
		return;
	}
	before = c->out->len;
	g_byte_array_append(c->out, p, len);
	if (!flush_out(c)) {
		client_close(c);
		return;
	}
	if (c->out->len && c->out->len < before + len)
		progress(c);
	if (c->out->len)
		want_write(c);
}

static gboolean on_client(gint fd, GIOCondition cond, gpointer data)
{
	Client *c = data;
	guint8 buf[16384];
	ssize_t n;

	if (c->closed)
		return G_SOURCE_REMOVE;
	if (!(cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)))
		return G_SOURCE_CONTINUE;
	n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return G_SOURCE_CONTINUE;
	client_ref(c); /* a frame may close it */
	if (n <= 0)
		client_close(c);
	else
		vs_framer_feed(c->framer, buf, n);
	n = c->closed;
	client_unref(c);
	return n ? G_SOURCE_REMOVE : G_SOURCE_CONTINUE;
}

/* A connection that brought one request (transfer.c: a verified peer):
 * its reply goes back on @fd, which closes with the last reference. */
Client *client_new_oneshot(Daemon *d, int fd)
{
	Client *c = g_new0(Client, 1);

	c->ref = 1;
	c->d = d;
	c->fd = fd;
	c->out = g_byte_array_new();
	c->framer = vs_framer_new(VS_MAX_FRAME, on_frame, c);
	c->inflight = 1; /* the job queued for it */
	return c;
}

/* The peer's credentials as the kernel gives them (SO_PEERCRED), with
 * its command name for the log; NULL unless it is root. */
static char *root_peer(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	g_autofree char *path = NULL, *comm = NULL;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 ||
	    cr.uid != 0)
		return NULL;
	path = g_strdup_printf("/proc/%d/comm", (int)cr.pid);
	comm = vs_read_bounded(path, 64, NULL);
	if (comm)
		g_strdelimit(g_strchomp(comm), "\n\"", '?');
	return g_strdup_printf("uid %u pid %d (%s)", (unsigned)cr.uid,
			       (int)cr.pid, comm ? comm : "?");
}

static const char refused_line[] =
	"{\"error\": {\"class\": \"GenericError\", \"desc\": \"vshared: only "
	"root may use this socket\"}}\n";

static gboolean on_accept(gint fd, GIOCondition cond, gpointer data)
{
	Daemon *d = data;
	int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	Client *c;
	char *who;

	if (cfd < 0)
		return G_SOURCE_CONTINUE;
	who = root_peer(cfd);
	if (!who) {
		g_message("control socket: refused a non-root peer");
		if (send(cfd, refused_line, strlen(refused_line),
			 MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			g_debug("refusal not delivered");
		close(cfd);
		return G_SOURCE_CONTINUE;
	}
	c = g_new0(Client, 1);
	c->ref = 1;
	c->d = d;
	c->fd = cfd;
	c->who = who;
	c->out = g_byte_array_new();
	c->framer = vs_framer_new(VS_MAX_FRAME, on_frame, c);
	c->src = g_unix_fd_source_new(cfd, G_IO_IN | G_IO_HUP | G_IO_ERR);
	g_source_set_callback(c->src, (GSourceFunc)(void (*)(void))on_client, c,
			      NULL);
	g_source_attach(c->src, NULL);
	return G_SOURCE_CONTINUE;
}

/* Does a process accept on @sa (a running vshared)? */
static gboolean serving(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	gboolean yes = fd >= 0 && connect(fd, (const struct sockaddr *)sa,
					  sizeof(*sa)) == 0;

	if (fd >= 0)
		close(fd);
	return yes;
}

static gboolean bind_socket(const char *path, int *out, GError **error)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	g_autofree char *dir = g_path_get_dirname(path);
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
				   "socket path too long: %s", path),
		       FALSE;
	if (!vs_state_dir_ensure(dir, error))
		return FALSE;
	strcpy(sa.sun_path, path);
	if (serving(&sa))
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_BUSY,
				   "another vshared serves %s", path),
		       FALSE;
	unlink(path); /* a stale socket: nobody accepts on it */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(path, 0600) < 0 || listen(fd, 16) < 0) {
		int saved = errno;

		if (fd >= 0)
			close(fd);
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
				   "control socket %s: %s", path,
				   g_strerror(saved)),
		       FALSE;
	}
	*out = fd;
	return TRUE;
}

/* Listen before the ledger lock is ours: from now on a vsharectl queues
 * its request here (answered once vshared runs) instead of working alone
 * and taking the lock vshared waits for. */
gboolean daemon_api_bind(Daemon *d, GError **error)
{
	return bind_socket(d->socket_path, &d->listen_fd, error);
}

void daemon_api_start(Daemon *d)
{
	d->listen_src = g_unix_fd_source_new(d->listen_fd, G_IO_IN);
	g_source_set_callback(d->listen_src,
			      (GSourceFunc)(void (*)(void))on_accept, d, NULL);
	g_source_attach(d->listen_src, NULL);
}

void daemon_api_stop(Daemon *d)
{
	if (d->listen_src) {
		g_source_destroy(d->listen_src);
		g_source_unref(d->listen_src);
		d->listen_src = NULL;
	}
	if (d->listen_fd >= 0) {
		close(d->listen_fd);
		unlink(d->socket_path);
		d->listen_fd = -1;
	}
}
