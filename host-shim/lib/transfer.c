// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Paper 001's Transferer between two vshareds (QMP driver): the source
 * sends a migrating VM's profile to the destination's peer endpoint
 * (docs/migration.md, "The QMP Transferer"). One request per TCP
 * connection, authenticated with a key both hosts hold:
 *
 *   server: {"vshare-peer": 1, "nonce": "<64 hex>"}
 *   client: {"request": "<the request, JSON text>",
 *            "mac": "<hex HMAC-SHA256(key, nonce \n request)>"}
 *   server: {"return": ...} or {"error": {"class", "desc"}}
 *
 * The MAC covers the request's exact bytes and the server's fresh nonce:
 * a request cannot be altered or replayed. Nothing is encrypted (a
 * profile is counters, not secrets); the key never crosses the wire.
 */
#include "vshare-host.h"

#include <errno.h>
#include <glib-unix.h>
#include <netdb.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_MIN	    32
#define KEY_MAX	    4096
#define NONCE_BYTES 32

guint8 *vs_transfer_key_load(const char *path, gsize *len, GError **error)
{
	struct stat st;
	g_autofree char *text = NULL;
	gsize n;

	if (lstat(path, &st) < 0)
		return vs_fail(error, VS_HOST_ERROR_UNSUPPORTED,
			       "peer key %s: %s", path, g_strerror(errno)),
		       NULL;
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077) ||
	    st.st_uid != geteuid())
		return vs_fail(error, VS_HOST_ERROR_REFUSED,
			       "peer key %s: must be a regular file of ours, "
			       "mode 0600 or stricter",
			       path),
		       NULL;
	text = vs_read_bounded(path, KEY_MAX, error);
	if (!text)
		return NULL;
	n = strlen(g_strchomp(text));
	if (n < KEY_MIN)
		return vs_fail(error, VS_HOST_ERROR_REFUSED,
			       "peer key %s: %zu bytes, at least %d "
			       "(e.g. `head -c 32 /dev/urandom | base64`)",
			       path, n, KEY_MIN),
		       NULL;
	*len = n;
	return (guint8 *)g_steal_pointer(&text);
}

char *vs_transfer_nonce(GError **error)
{
	guint8 b[NONCE_BYTES];
	GString *s = g_string_sized_new(2 * NONCE_BYTES + 1);

	if (getrandom(b, sizeof(b), 0) != sizeof(b)) {
		g_string_free(s, TRUE);
		return vs_fail(error, VS_HOST_ERROR_FAILED, "getrandom: %s",
			       g_strerror(errno)),
		       NULL;
	}
	for (guint i = 0; i < sizeof(b); i++)
		g_string_append_printf(s, "%02x", b[i]);
	return g_string_free(s, FALSE);
}

char *vs_transfer_mac(const guint8 *key, gsize keylen, const char *nonce,
		      const char *request)
{
	g_autoptr(GHmac) h = g_hmac_new(G_CHECKSUM_SHA256, key, keylen);

	g_hmac_update(h, (const guchar *)nonce, strlen(nonce));
	g_hmac_update(h, (const guchar *)"\n", 1);
	g_hmac_update(h, (const guchar *)request, strlen(request));
	return g_strdup(g_hmac_get_string(h));
}

gboolean vs_transfer_verify(const guint8 *key, gsize keylen, const char *nonce,
			    const char *request, const char *mac)
{
	g_autofree char *want = vs_transfer_mac(key, keylen, nonce, request);
	gsize n = strlen(want);
	guint8 diff = 0;

	if (!mac || strlen(mac) != n)
		return FALSE;
	for (gsize i = 0; i < n; i++) /* constant time */
		diff |= (guint8)(want[i] ^ mac[i]);
	return diff == 0;
}

gboolean vs_transfer_split(const char *peer, char **host, char **port,
			   GError **error)
{
	const char *colon = peer ? strrchr(peer, ':') : NULL;
	gint64 p;

	if (!colon || colon == peer || !colon[1] ||
	    !g_ascii_string_to_signed(colon + 1, 10, 1, 65535, &p, NULL))
		return vs_fail(error, VS_HOST_ERROR_USAGE,
			       "peer \"%s\": HOST:PORT expected",
			       peer ? peer : "");
	*host = g_strndup(peer, colon - peer);
	if (**host == '[' && (*host)[strlen(*host) - 1] == ']') {
		char *h = g_strndup(*host + 1, strlen(*host) - 2);

		g_free(*host);
		*host = h;
	}
	*port = g_strdup(colon + 1);
	return TRUE;
}

static int connect_tcp(const char *peer, int timeout_ms, GError **error)
{
	g_autofree char *host = NULL, *port = NULL;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	int fd = -1, rc, saved = 0;

	if (!vs_transfer_split(peer, &host, &port, error))
		return -1;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc)
		return vs_fail(error, VS_HOST_ERROR_UNREACHABLE, "peer %s: %s",
			       peer, gai_strerror(rc)),
		       -1;
	for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		/* SO_SNDTIMEO bounds connect() on Linux */
		if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv,
					   sizeof(tv)) < 0 ||
				connect(fd, a->ai_addr, a->ai_addrlen) < 0)) {
			saved = errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(ai);
	if (fd < 0)
		vs_fail(error, VS_HOST_ERROR_UNREACHABLE,
			"peer %s: cannot connect: %s", peer,
			g_strerror(saved ? saved : EHOSTUNREACH));
	return fd;
}

static char *envelope(const guint8 *key, gsize keylen, const char *nonce,
		      const char *request)
{
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(JsonNode) root = NULL;
	g_autofree char *mac = vs_transfer_mac(key, keylen, nonce, request);
	char *text;

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "request");
	json_builder_add_string_value(b, request);
	json_builder_set_member_name(b, "mac");
	json_builder_add_string_value(b, mac);
	json_builder_end_object(b);
	root = json_builder_get_root(b);
	text = json_to_string(root, FALSE);
	return text;
}

static const char *hello_nonce(JsonNode *hello)
{
	JsonObject *o = JSON_NODE_HOLDS_OBJECT(hello)
				? json_node_get_object(hello)
				: NULL;
	JsonNode *v = o ? json_object_get_member(o, "vshare-peer") : NULL;
	const char *nonce = vs_json_str(o, "nonce");

	if (!v || !JSON_NODE_HOLDS_VALUE(v) ||
	    json_node_get_value_type(v) != G_TYPE_INT64 ||
	    json_node_get_int(v) != 1 || !nonce ||
	    strlen(nonce) != 2 * NONCE_BYTES)
		return NULL;
	return nonce;
}

JsonNode *vs_transfer_send(const char *peer, const guint8 *key, gsize keylen,
			   const char *request, int timeout_ms, GError **error)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
	int fd = connect_tcp(peer, timeout_ms, error);
	g_autoptr(VsPeer) p = NULL;
	g_autoptr(JsonNode) hello = NULL, reply = NULL;
	g_autofree char *env = NULL, *who = NULL;
	const char *nonce;
	JsonObject *r;

	if (fd < 0)
		return NULL;
	who = g_strdup_printf("peer %s", peer);
	g_unix_set_fd_nonblocking(fd, TRUE, NULL);
	p = vs_peer_new_fd(fd, who, VS_MAX_FRAME);
	hello = vs_peer_recv(p, deadline, error);
	if (!hello)
		return NULL;
	nonce = hello_nonce(hello);
	if (!nonce)
		return vs_fail(error, VS_HOST_ERROR_HOSTILE,
			       "%s: not a vshare peer endpoint (no "
			       "{\"vshare-peer\": 1, \"nonce\"} greeting)",
			       who),
		       NULL;
	env = envelope(key, keylen, nonce, request);
	if (!vs_peer_send(p, env, strlen(env), deadline, error) ||
	    !vs_peer_send(p, "\n", 1, deadline, error))
		return NULL;
	reply = vs_peer_recv(p, deadline, error);
	if (!reply)
		return NULL;
	r = JSON_NODE_HOLDS_OBJECT(reply) ? json_node_get_object(reply) : NULL;
	if (r && json_object_has_member(r, "return"))
		return json_node_copy(json_object_get_member(r, "return"));
	if (r && json_object_has_member(r, "error")) {
		JsonNode *e = json_object_get_member(r, "error");
		const char *desc = vs_json_str(JSON_NODE_HOLDS_OBJECT(e)
						       ? json_node_get_object(e)
						       : NULL,
					       "desc");

		return vs_fail(error, VS_HOST_ERROR_REFUSED, "%s: %s", who,
			       desc ? desc : "?"),
		       NULL;
	}
	return vs_fail(error, VS_HOST_ERROR_HOSTILE,
		       "%s: neither return nor error in its answer", who),
	       NULL;
}
