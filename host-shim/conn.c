// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A JSON object stream over a unix socket, with deadlines: the transport of
 * both QMP and the guest agent (QGA framing, 0xFF resynchronisation).
 * Blocking I/O with poll(): vsharectl is a short-lived client.
 */
#include "vsharectl.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct VsConn {
	int fd;
	char *path;
	VsFramer *framer;
	GQueue frames; /* char *; NULL data marks a framing error */
	gint64 next_id;
};

static void on_frame(const char *frame, gsize len, const GError *error,
		     gpointer user_data)
{
	VsConn *c = user_data;

	g_queue_push_tail(&c->frames,
			  error ? g_strdup("") : g_strndup(frame, len));
}

VsConn *vs_conn_open(const char *path, GError **error)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	VsConn *c;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		g_set_error(error, VSC_ERROR, VS_EXIT_USAGE,
			    "socket path too long: %s", path);
		return NULL;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int saved = errno;

		if (fd >= 0)
			close(fd);
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved),
			    "cannot connect to %s: %s", path,
			    g_strerror(saved));
		return NULL;
	}
	c = g_new0(VsConn, 1);
	c->fd = fd;
	c->path = g_strdup(path);
	c->framer = vs_framer_new(16 * 1024 * 1024, on_frame, c);
	g_queue_init(&c->frames);
	c->next_id = g_get_monotonic_time() % 1000000;
	return c;
}

void vs_conn_free(VsConn *c)
{
	if (!c)
		return;
	close(c->fd);
	vs_framer_free(c->framer);
	g_queue_clear_full(&c->frames, g_free);
	g_free(c->path);
	g_free(c);
}

gboolean vs_conn_send(VsConn *c, const char *data, gsize len, GError **error)
{
	while (len) {
		ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int saved = errno;

			g_set_error(
				error, G_IO_ERROR, g_io_error_from_errno(saved),
				"%s: write: %s", c->path, g_strerror(saved));
			return FALSE;
		}
		data += n;
		len -= n;
	}
	return TRUE;
}

static gboolean fill(VsConn *c, gint64 deadline, GError **error)
{
	guint8 buf[65536];
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	gint64 left = (deadline - g_get_monotonic_time()) / 1000;
	ssize_t n;
	int r;

	if (left < 0)
		left = 0;
	r = poll(&p, 1, (int)left);
	if (r < 0 && errno == EINTR)
		return TRUE;
	if (r == 0) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
			    "%s: no answer in time", c->path);
		return FALSE;
	}
	n = read(c->fd, buf, sizeof(buf));
	if (n <= 0) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
			    "%s: peer closed the connection%s%s", c->path,
			    n < 0 ? ": " : "", n < 0 ? g_strerror(errno) : "");
		return FALSE;
	}
	vs_framer_feed(c->framer, buf, n);
	return TRUE;
}

JsonNode *vs_conn_recv(VsConn *c, int timeout_ms, GError **error)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	for (;;) {
		g_autofree char *frame = g_queue_pop_head(&c->frames);
		g_autoptr(JsonParser) p = NULL;

		if (!frame) {
			if (!fill(c, deadline, error))
				return NULL;
			continue;
		}
		if (!*frame)
			continue; /* junk between objects: skipped */
		p = json_parser_new();
		if (!json_parser_load_from_data(p, frame, -1, NULL) ||
		    !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p)))
			continue;
		return json_node_ref(json_parser_get_root(p));
	}
}

/* ---- QMP ---------------------------------------------------------- */

static gboolean send_request(VsConn *c, const char *cmd, JsonObject *args,
			     gint64 id, GError **error)
{
	g_autofree char *line = vs_request_build(cmd, args, id);

	return vs_conn_send(c, line, strlen(line), error);
}

static JsonNode *take_return(JsonNode *reply, const char *who, const char *cmd,
			     GError **error)
{
	JsonObject *o = json_node_get_object(reply);

	if (json_object_has_member(o, "error")) {
		JsonObject *e = json_object_get_object_member(o, "error");
		const char *desc =
			e && json_object_has_member(e, "desc")
				? json_object_get_string_member(e, "desc")
				: "(no description)";
		const char *cls =
			e && json_object_has_member(e, "class")
				? json_object_get_string_member(e, "class")
				: "GenericError";

		g_set_error(error, VSC_ERROR, VS_EXIT_FAILED, "%s %s: %s: %s",
			    who, cmd, cls, desc);
		return NULL;
	}
	if (!json_object_has_member(o, "return")) {
		g_set_error(error, VSC_ERROR, VS_EXIT_FAILED,
			    "%s %s: reply has no \"return\"", who, cmd);
		return NULL;
	}
	return json_node_copy(json_object_get_member(o, "return"));
}

VsConn *vs_qmp_open(const char *path, GError **error)
{
	g_autoptr(VsConn) c = vs_conn_open(path, error);
	g_autoptr(JsonNode) greeting = NULL;
	g_autoptr(JsonNode) ret = NULL;

	if (!c)
		return NULL;
	greeting = vs_conn_recv(c, 5000, error);
	if (!greeting)
		return NULL;
	if (!json_object_has_member(json_node_get_object(greeting), "QMP")) {
		g_set_error(error, VSC_ERROR, VS_EXIT_FAILED,
			    "%s: not a QMP monitor (no greeting)", path);
		return NULL;
	}
	ret = vs_qmp_call(c, "qmp_capabilities", NULL, error);
	if (!ret)
		return NULL;
	return g_steal_pointer(&c);
}

JsonNode *vs_qmp_call(VsConn *c, const char *cmd, JsonObject *args,
		      GError **error)
{
	gint64 id = ++c->next_id;

	if (!send_request(c, cmd, args, id, error))
		return NULL;
	for (;;) {
		g_autoptr(JsonNode) r = vs_conn_recv(c, 30000, error);
		JsonObject *o;

		if (!r)
			return NULL;
		o = json_node_get_object(r);
		if (json_object_has_member(o, "event"))
			continue; /* events are not used: we poll */
		if (json_object_has_member(o, "id") &&
		    json_object_get_int_member(o, "id") != id)
			continue;
		return take_return(r, "QMP", cmd, error);
	}
}

/* ---- agent ---------------------------------------------------------- */

VsConn *vs_agent_open(const char *path, int timeout_ms, GError **error)
{
	g_autoptr(VsConn) c = vs_conn_open(path, error);
	g_autoptr(JsonObject) args = json_object_new();
	g_autofree char *line = NULL;
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
	gint64 id;

	if (!c)
		return NULL;
	id = ++c->next_id;
	json_object_set_int_member(args, "id", id);
	line = vs_request_build("guest-sync-delimited", json_object_ref(args),
				0);
	/* 0xFF first: flush whatever a previous client left in the guest's
	 * parser; the reply's own 0xFF resets our framer. */
	if (!vs_conn_send(c, "\xff", 1, error) ||
	    !vs_conn_send(c, line, strlen(line), error))
		return NULL;
	for (;;) {
		gint64 left = (deadline - g_get_monotonic_time()) / 1000;
		g_autoptr(JsonNode) r =
			vs_conn_recv(c, left > 0 ? left : 0, error);
		JsonObject *o;

		if (!r) {
			g_prefix_error(error, "guest agent: ");
			return NULL;
		}
		o = json_node_get_object(r);
		if (json_object_has_member(o, "return") &&
		    JSON_NODE_HOLDS_VALUE(
			    json_object_get_member(o, "return")) &&
		    json_object_get_int_member(o, "return") == id)
			return g_steal_pointer(&c);
	}
}

JsonNode *vs_agent_call(VsConn *c, const char *cmd, JsonObject *args,
			int timeout_ms, GError **error)
{
	g_autoptr(JsonNode) r = NULL;

	/* The agent ignores "id" in requests; replies come in order. */
	if (!send_request(c, cmd, args, 0, error))
		return NULL;
	r = vs_conn_recv(c, timeout_ms, error);
	if (!r) {
		g_prefix_error(error, "guest agent %s: ", cmd);
		return NULL;
	}
	return take_return(r, "guest agent", cmd, error);
}
