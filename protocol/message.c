// SPDX-License-Identifier: GPL-2.0-or-later
/* Requests, replies and argument validation against the schema. */
#include "vshare-proto.h"

#include <string.h>

GQuark vs_error_quark(void)
{
	return g_quark_from_static_string("vshare-error-quark");
}

const char *vs_error_class(const GError *error)
{
	if (error->domain == VS_ERROR &&
	    error->code == VS_ERROR_COMMAND_NOT_FOUND)
		return "CommandNotFound";
	return "GenericError";
}

const VsCommandSpec *vs_schema_lookup(const char *name)
{
	for (const VsCommandSpec *c = vs_schema_commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static const VsArgSpec *arg_lookup(const VsCommandSpec *spec, const char *name)
{
	for (const VsArgSpec *a = spec->args; a->name; a++)
		if (strcmp(a->name, name) == 0)
			return a;
	return NULL;
}

/* One member of a vCPU entry: present (unless optional) and typed. */
static gboolean vcpu_member(const char *arg, guint i, JsonObject *o,
			    const char *name, GType type, gboolean optional,
			    GError **error)
{
	JsonNode *n = json_object_get_member(o, name);

	if (!n && optional)
		return TRUE;
	if (!n) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "Parameter '%s[%u].%s' is missing", arg, i, name);
		return FALSE;
	}
	if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != type) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "Invalid parameter type for '%s[%u].%s', "
			    "expected: %s",
			    arg, i, name,
			    type == G_TYPE_INT64 ? "integer" : "boolean");
		return FALSE;
	}
	return TRUE;
}

/* qemu-ga's GuestLogicalProcessor list, with QAPI's wording. */
static gboolean vcpus_check(const char *arg, JsonArray *arr, GError **error)
{
	static const char *const known[] = { "logical-id", "online",
					     "can-offline" };

	for (guint i = 0; i < json_array_get_length(arr); i++) {
		JsonNode *e = json_array_get_element(arr, i);
		JsonObject *o = JSON_NODE_HOLDS_OBJECT(e)
					? json_node_get_object(e)
					: NULL;
		g_autoptr(GList) names = NULL;

		if (!o) {
			g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
				    "Invalid parameter type for '%s[%u]', "
				    "expected: object",
				    arg, i);
			return FALSE;
		}
		names = json_object_get_members(o);
		for (GList *l = names; l; l = l->next)
			if (!g_strv_contains(known, l->data)) {
				g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
					    "Parameter '%s[%u].%s' is "
					    "unexpected",
					    arg, i, (const char *)l->data);
				return FALSE;
			}
		if (!vcpu_member(arg, i, o, "logical-id", G_TYPE_INT64, FALSE,
				 error) ||
		    !vcpu_member(arg, i, o, "online", G_TYPE_BOOLEAN, FALSE,
				 error) ||
		    !vcpu_member(arg, i, o, "can-offline", G_TYPE_BOOLEAN, TRUE,
				 error))
			return FALSE;
	}
	return TRUE;
}

static gboolean arg_check_type(const VsArgSpec *a, JsonNode *node,
			       GError **error)
{
	GType vt = JSON_NODE_HOLDS_VALUE(node) ? json_node_get_value_type(node)
					       : G_TYPE_INVALID;
	const char *want = NULL;

	switch (a->type) {
	case VS_TYPE_INT:
		if (vt != G_TYPE_INT64)
			want = "integer";
		break;
	case VS_TYPE_BOOL:
		if (vt != G_TYPE_BOOLEAN)
			want = "boolean";
		break;
	case VS_TYPE_STR:
	case VS_TYPE_CPULIST:
		if (vt != G_TYPE_STRING)
			want = "string";
		break;
	case VS_TYPE_VCPUS:
	case VS_TYPE_ARRAY:
		if (!JSON_NODE_HOLDS_ARRAY(node))
			want = "array";
		break;
	case VS_TYPE_OBJECT:
		if (!JSON_NODE_HOLDS_OBJECT(node))
			want = "object";
		break;
	}
	if (want) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "Invalid parameter type for '%s', expected: %s",
			    a->name, want);
		return FALSE;
	}
	if (a->type == VS_TYPE_VCPUS)
		return vcpus_check(a->name, json_node_get_array(node), error);
	if (a->type == VS_TYPE_CPULIST) {
		VsCpuSet set;
		g_autoptr(GError) local = NULL;

		if (!vs_cpuset_parse(json_node_get_string(node), &set,
				     &local)) {
			g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
				    "Parameter '%s': %s", a->name,
				    local->message);
			return FALSE;
		}
	}
	return TRUE;
}

gboolean vs_args_validate(const VsCommandSpec *spec, JsonObject *arguments,
			  GError **error)
{
	if (arguments) {
		JsonObjectIter it;
		const char *name;
		JsonNode *node;

		json_object_iter_init(&it, arguments);
		while (json_object_iter_next(&it, &name, &node)) {
			const VsArgSpec *a = arg_lookup(spec, name);

			if (!a) {
				g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
					    "Parameter '%s' is unexpected",
					    name);
				return FALSE;
			}
			if (!arg_check_type(a, node, error))
				return FALSE;
		}
	}
	for (const VsArgSpec *a = spec->args; a->name; a++) {
		if (a->optional ||
		    (arguments && json_object_has_member(arguments, a->name)))
			continue;
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "Parameter '%s' is missing", a->name);
		return FALSE;
	}
	return TRUE;
}

void vs_request_free(VsRequest *req)
{
	if (!req)
		return;
	g_free(req->execute);
	if (req->arguments)
		json_object_unref(req->arguments);
	if (req->id)
		json_node_unref(req->id);
	g_free(req);
}

static gboolean request_member(VsRequest *req, const char *name, JsonNode *node,
			       GError **error)
{
	if (strcmp(name, "execute") == 0) {
		if (!JSON_NODE_HOLDS_VALUE(node) ||
		    json_node_get_value_type(node) != G_TYPE_STRING) {
			g_set_error_literal(error, VS_ERROR, VS_ERROR_GENERIC,
					    "QMP input member 'execute' must "
					    "be a string");
			return FALSE;
		}
		req->execute = g_strdup(json_node_get_string(node));
	} else if (strcmp(name, "arguments") == 0) {
		if (!JSON_NODE_HOLDS_OBJECT(node)) {
			g_set_error_literal(error, VS_ERROR, VS_ERROR_GENERIC,
					    "QMP input member 'arguments' must "
					    "be an object");
			return FALSE;
		}
		req->arguments = json_object_ref(json_node_get_object(node));
	} else if (strcmp(name, "id") == 0) {
		req->id = json_node_copy(node);
	} else {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "QMP input member '%s' is unexpected", name);
		return FALSE;
	}
	return TRUE;
}

VsRequest *vs_request_parse(const char *frame, gsize len, GError **error)
{
	g_autoptr(JsonParser) parser = json_parser_new_immutable();
	g_autoptr(VsRequest) req = g_new0(VsRequest, 1);
	g_autoptr(GError) local = NULL;
	JsonObjectIter it;
	const char *name;
	JsonNode *root, *node;

	if (len > VS_MAX_FRAME) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "JSON frame exceeds %d bytes", VS_MAX_FRAME);
		return NULL;
	}
	if (!g_utf8_validate(frame, (gssize)len, NULL)) {
		g_set_error_literal(error, VS_ERROR, VS_ERROR_GENERIC,
				    "JSON parse error: invalid UTF-8");
		return NULL;
	}
	if (!json_parser_load_from_data(parser, frame, (gssize)len, &local)) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "JSON parse error: %s", local->message);
		return NULL;
	}
	root = json_parser_get_root(parser);
	if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
		g_set_error_literal(error, VS_ERROR, VS_ERROR_GENERIC,
				    "QMP input must be a JSON object");
		return NULL;
	}
	json_object_iter_init(&it, json_node_get_object(root));
	while (json_object_iter_next(&it, &name, &node))
		if (!request_member(req, name, node, error))
			return NULL;
	if (!req->execute) {
		g_set_error_literal(error, VS_ERROR, VS_ERROR_GENERIC,
				    "QMP input lacks member 'execute'");
		return NULL;
	}
	if (!req->arguments)
		req->arguments = json_object_new();
	return g_steal_pointer(&req);
}

static char *reply_to_line(JsonObject *obj, JsonNode *id)
{
	g_autoptr(JsonNode) root = json_node_new(JSON_NODE_OBJECT);
	g_autoptr(JsonGenerator) gen = json_generator_new();
	g_autofree char *text = NULL;

	if (id)
		json_object_set_member(obj, "id", json_node_copy(id));
	json_node_take_object(root, obj);
	json_generator_set_root(gen, root);
	text = json_generator_to_data(gen, NULL);
	return g_strconcat(text, "\n", NULL);
}

char *vs_reply_return(JsonNode *ret, JsonNode *id)
{
	JsonObject *obj = json_object_new();

	if (!ret) {
		ret = json_node_new(JSON_NODE_OBJECT);
		json_node_take_object(ret, json_object_new());
	}
	json_object_set_member(obj, "return", ret);
	return reply_to_line(obj, id);
}

char *vs_reply_error(const GError *error, JsonNode *id)
{
	JsonObject *obj = json_object_new();
	JsonObject *err = json_object_new();

	json_object_set_string_member(err, "class", vs_error_class(error));
	json_object_set_string_member(err, "desc", error->message);
	json_object_set_object_member(obj, "error", err);
	return reply_to_line(obj, id);
}

char *vs_request_build(const char *execute, JsonObject *arguments, gint64 id)
{
	JsonObject *obj = json_object_new();
	g_autoptr(JsonNode) idn = json_node_new(JSON_NODE_VALUE);

	json_object_set_string_member(obj, "execute", execute);
	if (arguments)
		json_object_set_object_member(obj, "arguments", arguments);
	json_node_set_int(idn, id);
	return reply_to_line(obj, idn);
}
