// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Paper 001's QMP Transferer (docs/migration.md, "The QMP Transferer").
 *
 * Source: `vshare-host-migrate` starts a QMP VM's live migration and,
 * once QEMU reports it under way, sends the VM's profile to the
 * destination's vshared, long before its memory has been copied.
 *
 * Destination: `--peer-listen HOST:PORT`, a TCP endpoint on the loop. A
 * connection gets a fresh nonce and has 5 s to send one request with the
 * HMAC of CONF/peer.key over nonce and request (lib/transfer.c); the only
 * request a peer may send is `vshare-peer-profile`. A verified request
 * becomes a job like a control-socket frame; anything else is refused
 * with an error line and a log line, and changes nothing.
 */
#include "vshared.h"

#include <errno.h>
#include <glib-unix.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PEER_DEADLINE_S 5
#define PEER_MAX_CONNS	16

typedef struct {
	Daemon *d;
	int fd;
	GSource *src;
	guint timer;
	VsFramer *framer;
	char *nonce;
	char *who;
	gboolean done; /* answered or handed to a job: free it */
} Conn;

char *daemon_peer_key_path(Daemon *d)
{
	return g_build_filename(d->cfg.conf_dir, "peer.key", NULL);
}

static void conn_free(Conn *c)
{
	if (c->timer)
		g_source_remove(c->timer);
	if (c->src) {
		g_source_destroy(c->src);
		g_source_unref(c->src);
	}
	if (c->fd >= 0)
		close(c->fd);
	vs_framer_free(c->framer);
	c->d->peer_conns--;
	g_free(c->nonce);
	g_free(c->who);
	g_free(c);
}

static void send_line(int fd, const char *text)
{
	g_autofree char *line = g_strconcat(text, "\n", NULL);

	if (send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		g_debug("peer endpoint: reply not delivered: %s",
			g_strerror(errno));
}

static void refuse(Conn *c, const char *why)
{
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(JsonNode) n = NULL;
	g_autofree char *text = NULL;

	g_message("peer endpoint: %s refused: %s", c->who, why);
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "error");
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "class");
	json_builder_add_string_value(b, "GenericError");
	json_builder_set_member_name(b, "desc");
	json_builder_add_string_value(b, why);
	json_builder_end_object(b);
	json_builder_end_object(b);
	n = json_builder_get_root(b);
	text = json_to_string(n, FALSE);
	send_line(c->fd, text);
	c->done = TRUE;
}

/* The envelope {request, mac}: verified, then the request is a job. */
static void on_envelope(Conn *c, const char *frame, gsize len)
{
	g_autoptr(JsonParser) p = json_parser_new();
	const char *req, *mac, *why;
	g_autoptr(VsRequest) r = NULL;
	Client *cl;

	if (!daemon_peer_envelope(p, frame, len, &req, &mac, &why))
		return refuse(c, why);
	if (!vs_transfer_verify(c->d->peer_key, c->d->peer_key_len, c->nonce,
				req, mac))
		return refuse(c, "the MAC does not match (another key, or an "
				 "altered or replayed request)");
	r = vs_request_parse(req, strlen(req), NULL);
	if (!r || g_strcmp0(r->execute, "vshare-peer-profile"))
		return refuse(c, "a peer may only send vshare-peer-profile");
	g_message("peer endpoint: %s: verified request", c->who);
	cl = client_new_oneshot(c->d, c->fd);
	c->fd = -1; /* the client's now: it answers and closes */
	daemon_job(c->d, JOB_REQUEST, cl, req, strlen(req), NULL, NULL);
	client_unref(cl);
	c->done = TRUE;
}

static void on_frame(const char *frame, gsize len, const GError *error,
		     gpointer data)
{
	Conn *c = data;

	if (c->done)
		return;
	if (error)
		return refuse(c, error->message);
	on_envelope(c, frame, len);
}

static gboolean on_readable(gint fd, GIOCondition cond, gpointer data)
{
	Conn *c = data;
	guint8 buf[16384];
	ssize_t n = read(fd, buf, sizeof(buf));

	(void)cond;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return G_SOURCE_CONTINUE;
	if (n > 0)
		vs_framer_feed(c->framer, buf, n);
	if (n > 0 && !c->done)
		return G_SOURCE_CONTINUE;
	g_source_unref(c->src); /* removed by our return */
	c->src = NULL;
	conn_free(c);
	return G_SOURCE_REMOVE;
}

static gboolean on_deadline(gpointer data)
{
	Conn *c = data;

	c->timer = 0;
	refuse(c, "no request within " G_STRINGIFY(PEER_DEADLINE_S) " s");
	conn_free(c);
	return G_SOURCE_REMOVE;
}

static char *address_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[NI_MAXHOST], port[NI_MAXSERV];

	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), port,
			sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV))
		return g_strdup("?");
	return g_strdup_printf("%s:%s", host, port);
}

static gboolean on_accept(gint fd, GIOCondition cond, gpointer data)
{
	Daemon *d = data;
	int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	g_autoptr(GError) error = NULL;
	g_autofree char *hello = NULL;
	Conn *c;

	(void)cond;
	if (cfd < 0)
		return G_SOURCE_CONTINUE;
	if (d->peer_conns >= PEER_MAX_CONNS) {
		g_message("peer endpoint: %d connections open: one refused",
			  PEER_MAX_CONNS);
		close(cfd);
		return G_SOURCE_CONTINUE;
	}
	d->peer_conns++;
	c = g_new0(Conn, 1);
	c->d = d;
	c->fd = cfd;
	c->who = address_of(cfd);
	c->framer = vs_framer_new(VS_MAX_FRAME, on_frame, c);
	c->nonce = vs_transfer_nonce(&error);
	if (!c->nonce) {
		g_warning("peer endpoint: %s", error->message);
		conn_free(c);
		return G_SOURCE_CONTINUE;
	}
	hello = g_strdup_printf("{\"vshare-peer\": 1, \"nonce\": \"%s\"}",
				c->nonce);
	send_line(cfd, hello);
	c->src = g_unix_fd_source_new(cfd, G_IO_IN | G_IO_HUP | G_IO_ERR);
	g_source_set_callback(c->src, (GSourceFunc)(void (*)(void))on_readable,
			      c, NULL);
	g_source_attach(c->src, NULL);
	c->timer = g_timeout_add_seconds(PEER_DEADLINE_S, on_deadline, c);
	return G_SOURCE_CONTINUE;
}

static int bind_tcp(const char *where, GError **error)
{
	g_autofree char *host = NULL, *port = NULL;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE },
			*ai = NULL;
	int fd = -1, one = 1, rc, saved = 0;

	if (!vs_transfer_split(where, &host, &port, error))
		return -1;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc)
		return vs_fail(error, VS_HOST_ERROR_USAGE,
			       "--peer-listen %s: %s", where, gai_strerror(rc)),
		       -1;
	for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family,
			    SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
					   sizeof(one)) < 0 ||
				bind(fd, a->ai_addr, a->ai_addrlen) < 0 ||
				listen(fd, PEER_MAX_CONNS) < 0)) {
			saved = errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(ai);
	if (fd < 0)
		vs_fail(error, VS_HOST_ERROR_FAILED, "--peer-listen %s: %s",
			where, g_strerror(saved ? saved : EADDRNOTAVAIL));
	return fd;
}

gboolean daemon_transfer_start(Daemon *d, GError **error)
{
	g_autofree char *key = daemon_peer_key_path(d);

	if (!d->peer_listen)
		return TRUE;
	d->peer_key = vs_transfer_key_load(key, &d->peer_key_len, error);
	if (!d->peer_key)
		return FALSE;
	d->peer_fd = bind_tcp(d->peer_listen, error);
	if (d->peer_fd < 0)
		return FALSE;
	d->peer_src = g_unix_fd_source_new(d->peer_fd, G_IO_IN);
	g_source_set_callback(d->peer_src,
			      (GSourceFunc)(void (*)(void))on_accept, d, NULL);
	g_source_attach(d->peer_src, NULL);
	g_message("peer endpoint: %s (key %s)", d->peer_listen, key);
	return TRUE;
}

void daemon_transfer_stop(Daemon *d)
{
	if (d->peer_src) {
		g_source_destroy(d->peer_src);
		g_clear_pointer(&d->peer_src, g_source_unref);
	}
	if (d->peer_fd >= 0)
		close(d->peer_fd);
	d->peer_fd = -1;
	if (d->peer_key)
		memset(d->peer_key, 0, d->peer_key_len);
	g_clear_pointer(&d->peer_key, g_free);
	g_clear_pointer(&d->peer_listen, g_free);
}

/* ---- the source: vshare-host-migrate (worker) ------------------------- */

static char *profile_request(const char *vm, const VsProfile *p)
{
	JsonObject *args = json_object_new(), *o = json_object_new();
	g_autoptr(JsonNode) n = json_node_new(JSON_NODE_OBJECT);

	json_object_set_string_member(args, "vm", vm);
	json_object_set_member(args, "profile", vs_profile_to_json(p));
	json_object_set_string_member(args, "from", g_get_host_name());
	json_object_set_string_member(o, "execute", "vshare-peer-profile");
	json_object_set_object_member(o, "arguments", args);
	json_node_take_object(n, o);
	return json_to_string(n, FALSE);
}

/* The profile to @peer; the migration goes on whatever happens here. */
static void send_profile(Daemon *d, const char *vm, const char *peer,
			 const guint8 *key, gsize keylen, JsonObject *out)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) reply = NULL;
	g_autofree char *req = NULL;
	VsProfile p;

	if (!daemon_monitor_profile(d, vm, &p) &&
	    !vs_profile_load_declared(d->cfg.conf_dir, vm, &p, &error)) {
		json_object_set_string_member(out, "error",
					      error ? error->message
						    : "no profile to send");
		return;
	}
	json_object_set_member(out, "profile", vs_profile_to_json(&p));
	req = profile_request(vm, &p);
	reply = vs_transfer_send(peer, key, keylen, req, d->cfg.qmp_timeout_ms,
				 &error);
	json_object_set_boolean_member(out, "sent", reply != NULL);
	if (reply) {
		g_message("migrate: %s: profile sent to %s", vm, peer);
		json_object_set_member(out, "answer", g_steal_pointer(&reply));
	} else {
		g_warning("migrate: %s: profile not sent to %s: %s", vm, peer,
			  error->message);
		json_object_set_string_member(out, "error", error->message);
	}
}

static JsonNode *h_migrate(JsonObject *a, gpointer ctx, GError **error)
{
	Daemon *d = ctx;
	const char *vm = json_object_get_string_member(a, "vm");
	const char *uri = json_object_get_string_member(a, "uri");
	const char *peer =
		json_object_get_string_member_with_default(a, "peer", NULL);
	g_autofree char *keypath = daemon_peer_key_path(d), *status = NULL;
	g_autofree guint8 *key = NULL;
	g_autofree char *host = NULL, *port = NULL;
	gsize keylen = 0;
	JsonObject *out;
	JsonNode *n;
	VsVm *v;

	if (!vs_name_valid(vm, error))
		return NULL;
	v = vs_session_vm(&d->session, vm, error);
	/* a peer that cannot be reached is found after the migration
	 * started; a key or an address that cannot work, before */
	if (!v ||
	    (peer && (!vs_transfer_split(peer, &host, &port, error) ||
		      !(key = vs_transfer_key_load(keypath, &keylen, error)))))
		return NULL;
	if (!vs_vm_migrate(v, uri, &status, error))
		return NULL;
	g_message("migrate: %s to %s: %s", vm, uri, status);
	out = json_object_new();
	json_object_set_string_member(out, "vm", vm);
	json_object_set_string_member(out, "uri", uri);
	json_object_set_string_member(out, "status", status);
	json_object_set_boolean_member(out, "sent", FALSE);
	if (peer) {
		json_object_set_string_member(out, "peer", peer);
		send_profile(d, vm, peer, key, keylen, out);
		memset(key, 0, keylen);
	}
	n = json_node_new(JSON_NODE_OBJECT);
	json_node_take_object(n, out);
	return n;
}

void daemon_transfer_register(Daemon *d)
{
	vs_dispatcher_register(d->dispatcher, "vshare-host-migrate", h_migrate,
			       d, NULL);
}
