// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for vshared's two wires: the first byte picks one,
 * the rest is a byte stream cut by the same framer the daemon uses.
 *   even  the control socket: each frame through the dispatcher with
 *         vshared's schema (daemon/schema.json), vshare-host-change's
 *         arguments decoded as the daemon does (daemon/decode.c)
 *   odd   the peer endpoint: each frame as a {request, mac} envelope,
 *         the MAC checked, the request parsed
 * Any crash, leak or sanitizer report fails.
 */
#include "vshared.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const guint8 *data, size_t size);

static const guint8 key[32] = { 1, 2, 3 };

static JsonNode *h_change(JsonObject *a, gpointer ctx, GError **error)
{
	VsChangeReq r;

	if (!daemon_change_request(a, &r, error))
		return NULL;
	return json_node_init_int(json_node_alloc(), r.kind);
}

static JsonNode *h_any(JsonObject *a, gpointer ctx, GError **error)
{
	return json_node_init_object(json_node_alloc(), json_object_new());
}

static VsDispatcher *control(void)
{
	static VsDispatcher *d;

	if (!d) {
		d = vs_dispatcher_new_for(vs_host_schema_commands,
					  vs_host_schema_version);
		for (const VsCommandSpec *c = vs_host_schema_commands; c->name;
		     c++)
			vs_dispatcher_register(
				d, c->name,
				strcmp(c->name, "vshare-host-change")
					? h_any
					: h_change,
				NULL, NULL);
	}
	return d;
}

static void on_control(const char *frame, gsize len, const GError *error,
		       gpointer data)
{
	g_autoptr(GBytes) reply =
		vs_dispatcher_handle(control(), frame, len, error);

	(void)reply;
}

static void on_peer(const char *frame, gsize len, const GError *error,
		    gpointer data)
{
	g_autoptr(JsonParser) p = json_parser_new();
	g_autoptr(VsRequest) r = NULL;
	const char *req, *mac, *why;

	if (error || !daemon_peer_envelope(p, frame, len, &req, &mac, &why))
		return;
	if (vs_transfer_verify(key, sizeof(key), "nonce", req, mac))
		abort(); /* nobody can forge the MAC of a random key */
	r = vs_request_parse(req, strlen(req), NULL);
}

int LLVMFuzzerTestOneInput(const guint8 *data, size_t size)
{
	VsFramer *f;

	if (!size || size > 1 << 20)
		return 0;
	f = vs_framer_new(VS_MAX_FRAME, data[0] % 2 ? on_peer : on_control,
			  NULL);
	vs_framer_feed(f, data + 1, size - 1);
	vs_framer_free(f);
	return 0;
}
