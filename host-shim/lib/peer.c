// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A JSON object stream over a unix socket: the transport of QMP and of the
 * guest agent (QGA framing, 0xFF resynchronisation). Every call has one
 * deadline that nothing extends: not events, not junk, not a peer that
 * keeps sending. A reply is bounded in bytes (the framer drops a bigger
 * frame and the call fails at once), nesting depth and elements.
 */
#include "vshare-host.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct VsPeer {
	int fd;
	char *who;
	VsFramer *framer;
	GQueue frames; /* JsonNode * */
	char *fatal;   /* an oversized or too deep frame */
	guint64 junk;  /* framing errors between objects */
	gint64 next_id;
};

static gboolean fail(GError **error, VsHostError code, VsPeer *p,
		     const char *fmt, ...) G_GNUC_PRINTF(4, 5);

static gboolean fail(GError **error, VsHostError code, VsPeer *p,
		     const char *fmt, ...)
{
	g_autofree char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error(error, VS_HOST_ERROR, code, "%s: %s", p->who, msg);
	return FALSE;
}

static guint count_nodes(JsonNode *n, guint depth, guint budget)
{
	guint used = 1;

	if (depth > VS_MAX_DEPTH || budget == 0)
		return budget + 1;
	if (JSON_NODE_HOLDS_OBJECT(n)) {
		g_autoptr(GList) vals =
			json_object_get_values(json_node_get_object(n));

		for (GList *l = vals; l && used <= budget; l = l->next)
			used += count_nodes(l->data, depth + 1, budget - used);
	} else if (JSON_NODE_HOLDS_ARRAY(n)) {
		JsonArray *a = json_node_get_array(n);

		for (guint i = 0;
		     i < json_array_get_length(a) && used <= budget; i++)
			used += count_nodes(json_array_get_element(a, i),
					    depth + 1, budget - used);
	}
	return used;
}

static void on_frame(const char *frame, gsize len, const GError *error,
		     gpointer user_data)
{
	VsPeer *p = user_data;
	g_autoptr(JsonParser) parser = NULL;
	JsonNode *root;

	if (error) {
		if (g_str_has_prefix(error->message, "JSON frame exceeds") ||
		    g_str_has_prefix(error->message, "JSON nesting")) {
			if (!p->fatal)
				p->fatal = g_strdup(error->message);
		} else {
			p->junk++;
		}
		return;
	}
	parser = json_parser_new();
	if (!json_parser_load_from_data(parser, frame, len, NULL)) {
		p->junk++;
		return;
	}
	root = json_parser_get_root(parser);
	if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
		p->junk++;
		return;
	}
	if (count_nodes(root, 0, VS_MAX_ELEMENTS) > VS_MAX_ELEMENTS) {
		if (!p->fatal)
			p->fatal = g_strdup_printf("JSON reply has more than "
						   "%d elements",
						   VS_MAX_ELEMENTS);
		return;
	}
	g_queue_push_tail(&p->frames, json_node_ref(root));
}

VsPeer *vs_peer_new_fd(int fd, const char *who, gsize max_frame)
{
	VsPeer *p = g_new0(VsPeer, 1);

	p->fd = fd;
	p->who = g_strdup(who);
	p->framer = vs_framer_new(max_frame, on_frame, p);
	g_queue_init(&p->frames);
	p->next_id = g_get_monotonic_time() % 1000000;
	return p;
}

VsPeer *vs_peer_connect(const char *path, const char *who, gsize max_frame,
			GError **error)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, saved;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
			    "%s: socket path too long: %s", who, path);
		return NULL;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return vs_peer_new_fd(fd, who, max_frame);
	saved = errno;
	if (fd >= 0)
		close(fd);
	/* Nobody listens: the process behind the socket is gone. */
	g_set_error(error, VS_HOST_ERROR,
		    saved == ECONNREFUSED || saved == ENOENT
			    ? VS_HOST_ERROR_GONE
			    : VS_HOST_ERROR_UNREACHABLE,
		    "%s: cannot connect to %s: %s", who, path,
		    g_strerror(saved));
	return NULL;
}

void vs_peer_free(VsPeer *p)
{
	if (!p)
		return;
	if (p->fd >= 0)
		close(p->fd);
	vs_framer_free(p->framer);
	g_queue_clear_full(&p->frames, (GDestroyNotify)json_node_unref);
	g_free(p->fatal);
	g_free(p->who);
	g_free(p);
}

int vs_peer_fd(VsPeer *p)
{
	return p->fd;
}

const char *vs_peer_who(VsPeer *p)
{
	return p->who;
}

gboolean vs_peer_cred(VsPeer *p, pid_t *pid, uid_t *uid, GError **error)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(p->fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return fail(error, VS_HOST_ERROR_FAILED, p, "SO_PEERCRED: %s",
			    g_strerror(errno));
	*pid = cr.pid;
	*uid = cr.uid;
	return TRUE;
}

static int ms_left(gint64 deadline)
{
	gint64 left = deadline - g_get_monotonic_time();

	return left <= 0 ? 0 : (int)MIN((left + 999) / 1000, G_MAXINT);
}

gboolean vs_peer_send(VsPeer *p, const char *data, gsize len, gint64 deadline,
		      GError **error)
{
	while (len) {
		struct pollfd pf = { .fd = p->fd, .events = POLLOUT };
		ssize_t n = send(p->fd, data, len, MSG_NOSIGNAL);

		if (n > 0) {
			data += n;
			len -= n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return fail(error, VS_HOST_ERROR_UNREACHABLE, p,
				    "write: %s", g_strerror(errno));
		if (g_get_monotonic_time() >= deadline)
			return fail(error, VS_HOST_ERROR_UNREACHABLE, p,
				    "does not read its requests (timed out)");
		poll(&pf, 1, ms_left(deadline));
	}
	return TRUE;
}

gboolean vs_peer_pump(VsPeer *p, GError **error)
{
	guint8 buf[16384];

	/* A bounded number of reads: a peer that never stops sending must
	 * not keep the caller from its deadline. */
	for (int i = 0; i < 16; i++) {
		ssize_t n = read(p->fd, buf, sizeof(buf));

		if (n > 0) {
			vs_framer_feed(p->framer, buf, n);
			if (p->fatal)
				return TRUE; /* the caller reports it */
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return TRUE;
		return fail(error, VS_HOST_ERROR_UNREACHABLE, p,
			    "peer closed the connection%s%s", n < 0 ? ": " : "",
			    n < 0 ? g_strerror(errno) : "");
	}
	return TRUE;
}

JsonNode *vs_peer_recv_queued(VsPeer *p)
{
	return g_queue_pop_head(&p->frames);
}

JsonNode *vs_peer_recv(VsPeer *p, gint64 deadline, GError **error)
{
	for (;;) {
		struct pollfd pf = { .fd = p->fd, .events = POLLIN };
		JsonNode *n = g_queue_pop_head(&p->frames);

		if (n)
			return n;
		if (p->fatal) {
			fail(error, VS_HOST_ERROR_HOSTILE, p,
			     "reply refused: %s", p->fatal);
			return NULL;
		}
		if (g_get_monotonic_time() >= deadline) {
			fail(error, VS_HOST_ERROR_UNREACHABLE, p,
			     "no answer in time%s",
			     p->junk ? " (only junk received)" : "");
			return NULL;
		}
		if (poll(&pf, 1, ms_left(deadline)) > 0 &&
		    !vs_peer_pump(p, error)) {
			/* a peer that answered and closed: its last words
			 * count (a next read meets the end again) */
			n = g_queue_pop_head(&p->frames);
			if (n)
				g_clear_error(error);
			return n;
		}
	}
}
