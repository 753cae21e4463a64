// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * What vshared decodes from its two wires beyond the schema's checks
 * (protocol/dispatch.c validates every argument's type first): a change
 * request's arguments, and a peer's {request, mac} envelope. Pure
 * functions, fuzzed by tests/fuzz/fuzz-daemon.c.
 */
#include "vshared.h"

#include <string.h>

const char *daemon_arg_str(JsonObject *a, const char *k)
{
	JsonNode *n = a ? json_object_get_member(a, k) : NULL;

	return n && JSON_NODE_HOLDS_VALUE(n) &&
			       json_node_get_value_type(n) == G_TYPE_STRING
		       ? json_node_get_string(n)
		       : NULL;
}

gboolean daemon_change_request(JsonObject *a, VsChangeReq *r, GError **error)
{
	static const char *const ops[] = { "cpus", "mem", "lend", "forget",
					   "tune" };
	const char *op = daemon_arg_str(a, "op");
	const char *cpus = daemon_arg_str(a, "cpus");
	gint64 node;
	guint k;

	memset(r, 0, sizeof(*r));
	for (k = 0; op && k < G_N_ELEMENTS(ops) && strcmp(op, ops[k]); k++)
		;
	if (!op || k == G_N_ELEMENTS(ops))
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
				   "op must be cpus, mem, lend, forget or "
				   "tune"),
		       FALSE;
	r->kind = k;
	r->vm = daemon_arg_str(a, "vm");
	r->from = daemon_arg_str(a, "from");
	r->to = daemon_arg_str(a, "to");
	node = json_object_has_member(a, "node")
		       ? json_object_get_int_member(a, "node")
		       : -1;
	if (node < -1 || node >= VS_MAX_NODES)
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
				   "node must be 0..%d", VS_MAX_NODES - 1),
		       FALSE;
	r->node = (int)node;
	r->bytes = json_object_has_member(a, "bytes")
			   ? json_object_get_int_member(a, "bytes")
			   : 0;
	if (json_object_has_member(a, "bytes") &&
	    json_object_get_int_member(a, "bytes") < 0)
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
				   "bytes must not be negative"),
		       FALSE;
	if (json_object_has_member(a, "weight"))
		r->weight = CLAMP(json_object_get_int_member(a, "weight"), -1,
				  10001);
	r->set_nice = json_object_has_member(a, "nice");
	if (r->set_nice)
		r->nice =
			CLAMP(json_object_get_int_member(a, "nice"), -100, 100);
	if (cpus && *cpus && !vs_cpuset_parse(cpus, &r->cpus, NULL))
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
				   "cpus is not a CPU list"),
		       FALSE;
	return vs_mode_parse(
		daemon_arg_str(a, "mode") ? daemon_arg_str(a, "mode") : "auto",
		&r->mode, error);
}

gboolean daemon_peer_envelope(JsonParser *p, const char *frame, gsize len,
			      const char **req, const char **mac,
			      const char **why)
{
	JsonNode *root;
	JsonObject *o;

	if (!json_parser_load_from_data(p, frame, (gssize)len, NULL)) {
		*why = "not JSON";
		return FALSE;
	}
	root = json_parser_get_root(p);
	o = root && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root)
						 : NULL;
	*req = daemon_arg_str(o, "request");
	*mac = daemon_arg_str(o, "mac");
	if (!*req || !*mac) {
		*why = "{\"request\": TEXT, \"mac\": HEX} expected";
		return FALSE;
	}
	return TRUE;
}
