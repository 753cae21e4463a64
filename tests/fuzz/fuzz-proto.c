// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target: bytes -> framer -> request parser -> argument
 * validation -> dispatch (with a handler that echoes its arguments), as
 * the agent runs them. Any crash, leak, sanitizer report or reply that is
 * not one JSON line fails.
 */
#include "vshare-proto.h"

#include <string.h>

static JsonNode *echo(JsonObject *args, gpointer ctx, GError **error)
{
	JsonNode *n = json_node_new(JSON_NODE_OBJECT);

	(void)ctx;
	(void)error;
	json_node_set_object(n, args);
	return n;
}

static void on_frame(const char *frame, gsize len, const GError *error,
		     gpointer user_data)
{
	VsDispatcher *d = user_data;
	g_autoptr(GBytes) rep = vs_dispatcher_handle(d, frame, len, error);
	gsize n;
	const char *data = g_bytes_get_data(rep, &n);

	if (n && (guint8)data[0] == VS_SENTINEL) {
		data++;
		n--;
	}
	/* One line, ending in a newline, nothing else. */
	if (n < 2 || data[n - 1] != '\n' || memchr(data, '\n', n - 1))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const guint8 *data, size_t size);

int LLVMFuzzerTestOneInput(const guint8 *data, size_t size)
{
	static VsDispatcher *d;
	g_autoptr(VsFramer) f = NULL;

	if (!d) {
		d = vs_dispatcher_new("fuzz");
		for (const VsCommandSpec *c = vs_schema_commands; c->name; c++)
			if (g_str_has_prefix(c->name, "vshare-"))
				vs_dispatcher_register(d, c->name, echo, NULL,
						       NULL);
	}
	f = vs_framer_new(VS_MAX_FRAME, on_frame, d);
	/* Two feeds: frames split across reads must behave the same. */
	vs_framer_feed(f, data, size / 2);
	vs_framer_feed(f, data + size / 2, size - size / 2);
	return 0;
}
