// SPDX-License-Identifier: GPL-2.0-or-later
/* Table-driven dispatch: schema entry -> validated arguments -> handler. */
#include "vshare-proto.h"

#include <string.h>

typedef struct {
	const VsCommandSpec *spec;
	VsHandler handler;
	gpointer ctx;
	gboolean enabled;
} Binding;

struct VsDispatcher {
	const VsCommandSpec *table;
	GHashTable *bindings; /* name -> Binding */
	char *version;
};

static JsonNode *node_int(gint64 v)
{
	JsonNode *n = json_node_new(JSON_NODE_VALUE);

	json_node_set_int(n, v);
	return n;
}

static JsonNode *cmd_sync(JsonObject *args, gpointer ctx, GError **error)
{
	(void)ctx;
	(void)error;
	return node_int(json_object_get_int_member(args, "id"));
}

static JsonNode *cmd_ping(JsonObject *args, gpointer ctx, GError **error)
{
	JsonNode *n = json_node_new(JSON_NODE_OBJECT);

	(void)args;
	(void)ctx;
	(void)error;
	json_node_take_object(n, json_object_new());
	return n;
}

static JsonNode *cmd_info(JsonObject *args, gpointer ctx, GError **error)
{
	VsDispatcher *d = ctx;
	JsonObject *obj = json_object_new();
	JsonArray *cmds = json_array_new();
	JsonNode *n = json_node_new(JSON_NODE_OBJECT);

	(void)args;
	(void)error;
	for (const VsCommandSpec *c = d->table; c->name; c++) {
		JsonObject *e = json_object_new();

		json_object_set_string_member(e, "name", c->name);
		json_object_set_boolean_member(
			e, "enabled", vs_dispatcher_is_enabled(d, c->name));
		json_object_set_boolean_member(e, "success-response", TRUE);
		json_array_add_object_element(cmds, e);
	}
	json_object_set_string_member(obj, "version", d->version);
	json_object_set_array_member(obj, "supported_commands", cmds);
	json_node_take_object(n, obj);
	return n;
}

VsDispatcher *vs_dispatcher_new(const char *version)
{
	return vs_dispatcher_new_for(vs_schema_commands, version);
}

VsDispatcher *vs_dispatcher_new_for(const VsCommandSpec *table,
				    const char *version)
{
	VsDispatcher *d = g_new0(VsDispatcher, 1);

	d->table = table;
	d->bindings =
		g_hash_table_new_full(g_str_hash, g_str_equal, NULL, g_free);
	d->version = g_strdup(version);
	for (const VsCommandSpec *c = table; c->name; c++) {
		Binding *b = g_new0(Binding, 1);

		b->spec = c;
		b->enabled = TRUE;
		g_hash_table_insert(d->bindings, (gpointer)c->name, b);
	}
	/* Built in where the table declares them. */
	vs_dispatcher_register(d, "guest-sync", cmd_sync, d, NULL);
	vs_dispatcher_register(d, "guest-sync-delimited", cmd_sync, d, NULL);
	vs_dispatcher_register(d, "guest-ping", cmd_ping, d, NULL);
	vs_dispatcher_register(d, "guest-info", cmd_info, d, NULL);
	return d;
}

void vs_dispatcher_free(VsDispatcher *d)
{
	if (!d)
		return;
	g_hash_table_unref(d->bindings);
	g_free(d->version);
	g_free(d);
}

static Binding *binding_get(VsDispatcher *d, const char *name, GError **error)
{
	Binding *b = g_hash_table_lookup(d->bindings, name);

	if (!b)
		g_set_error(error, VS_ERROR, VS_ERROR_COMMAND_NOT_FOUND,
			    "The command %s has not been found", name);
	return b;
}

gboolean vs_dispatcher_register(VsDispatcher *d, const char *name,
				VsHandler handler, gpointer ctx, GError **error)
{
	Binding *b = binding_get(d, name, error);

	if (!b)
		return FALSE;
	b->handler = handler;
	b->ctx = ctx;
	return TRUE;
}

char **vs_dispatcher_unbound(VsDispatcher *d)
{
	GPtrArray *out = g_ptr_array_new();

	for (const VsCommandSpec *c = d->table; c->name; c++) {
		Binding *b = g_hash_table_lookup(d->bindings, c->name);

		if (!b->handler)
			g_ptr_array_add(out, g_strdup(c->name));
	}
	g_ptr_array_add(out, NULL);
	return (char **)g_ptr_array_free(out, FALSE);
}

static gboolean set_enabled_csv(VsDispatcher *d, const char *csv,
				gboolean enabled, GError **error)
{
	g_auto(GStrv) names = g_strsplit(csv, ",", -1);

	/* Check every name first: a typo must not half-apply the list. */
	for (char **n = names; *n; n++)
		if (!binding_get(d, g_strstrip(*n), error))
			return FALSE;
	for (char **n = names; *n; n++) {
		Binding *b = g_hash_table_lookup(d->bindings, *n);

		b->enabled = enabled;
	}
	return TRUE;
}

gboolean vs_dispatcher_allow_only(VsDispatcher *d, const char *csv,
				  GError **error)
{
	GHashTableIter it;
	gpointer value;
	g_auto(GStrv) names = g_strsplit(csv, ",", -1);

	for (char **n = names; *n; n++)
		if (!binding_get(d, g_strstrip(*n), error))
			return FALSE;
	g_hash_table_iter_init(&it, d->bindings);
	while (g_hash_table_iter_next(&it, NULL, &value))
		((Binding *)value)->enabled = FALSE;
	return set_enabled_csv(d, csv, TRUE, error);
}

gboolean vs_dispatcher_block(VsDispatcher *d, const char *csv, GError **error)
{
	return set_enabled_csv(d, csv, FALSE, error);
}

gboolean vs_dispatcher_is_enabled(VsDispatcher *d, const char *name)
{
	Binding *b = g_hash_table_lookup(d->bindings, name);

	return b && b->enabled && b->handler;
}

static GBytes *line_bytes(char *line, gboolean sentinel)
{
	gsize len = strlen(line);

	if (sentinel) {
		char *buf = g_malloc(len + 1);

		buf[0] = (char)VS_SENTINEL;
		memcpy(buf + 1, line, len);
		g_free(line);
		return g_bytes_new_take(buf, len + 1);
	}
	return g_bytes_new_take(line, len);
}

GBytes *vs_dispatcher_handle(VsDispatcher *d, const char *frame, gsize len,
			     const GError *frame_error)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(VsRequest) req = NULL;
	Binding *b;
	JsonNode *ret;

	if (frame_error)
		return line_bytes(vs_reply_error(frame_error, NULL), FALSE);
	req = vs_request_parse(frame, len, &error);
	if (!req)
		return line_bytes(vs_reply_error(error, NULL), FALSE);
	b = binding_get(d, req->execute, &error);
	if (b && !vs_dispatcher_is_enabled(d, req->execute)) {
		g_set_error(&error, VS_ERROR, VS_ERROR_COMMAND_NOT_FOUND,
			    "Command %s has been disabled", req->execute);
		b = NULL;
	}
	if (!b || !vs_args_validate(b->spec, req->arguments, &error))
		return line_bytes(vs_reply_error(error, req->id), FALSE);
	ret = b->handler(req->arguments, b->ctx, &error);
	if (!ret) {
		g_assert(error);
		return line_bytes(vs_reply_error(error, req->id),
				  b->spec->sentinel);
	}
	return line_bytes(vs_reply_return(ret, req->id), b->spec->sentinel);
}
