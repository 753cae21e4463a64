// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * QMP and guest-agent clients over a VsPeer: one deadline per call.
 */
#include "vshare-host.h"

#include <string.h>

static gint64 deadline_in(int timeout_ms)
{
	return g_get_monotonic_time() + (gint64)MAX(timeout_ms, 0) * 1000;
}

static gboolean send_request(VsPeer *p, const char *cmd, JsonObject *args,
			     gint64 id, gint64 deadline, GError **error)
{
	g_autofree char *line = vs_request_build(cmd, args, id);

	return vs_peer_send(p, line, strlen(line), deadline, error);
}

const char *vs_json_str(JsonObject *o, const char *name)
{
	JsonNode *n = o ? json_object_get_member(o, name) : NULL;

	return n && json_node_get_value_type(n) == G_TYPE_STRING
		       ? json_node_get_string(n)
		       : NULL;
}

static JsonNode *take_return(JsonObject *o, VsPeer *p, const char *cmd,
			     GError **error)
{
	JsonNode *e = json_object_get_member(o, "error");

	if (e) {
		JsonObject *eo = JSON_NODE_HOLDS_OBJECT(e)
					 ? json_node_get_object(e)
					 : NULL;
		const char *desc = vs_json_str(eo, "desc");
		const char *cls = vs_json_str(eo, "class");

		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
			    "%s %s: %s: %.200s", vs_peer_who(p), cmd,
			    cls ? cls : "GenericError",
			    desc ? desc : "(no description)");
		return NULL;
	}
	if (!json_object_has_member(o, "return")) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_HOSTILE,
			    "%s %s: reply has no \"return\"", vs_peer_who(p),
			    cmd);
		return NULL;
	}
	return json_node_copy(json_object_get_member(o, "return"));
}

/* ---- QMP ---------------------------------------------------------------- */

VsPeer *vs_qmp_open(const char *path, int timeout_ms, GError **error)
{
	g_autoptr(VsPeer) p =
		vs_peer_connect(path, "QMP", VS_QMP_MAX_REPLY, error);
	g_autoptr(JsonNode) greeting = NULL;
	g_autoptr(JsonNode) ret = NULL;

	if (!p)
		return NULL;
	greeting = vs_peer_recv(p, deadline_in(timeout_ms), error);
	if (!greeting)
		return NULL;
	if (!json_object_has_member(json_node_get_object(greeting), "QMP")) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_HOSTILE,
			    "%s: not a QMP monitor (no greeting)", path);
		return NULL;
	}
	ret = vs_qmp_call(p, "qmp_capabilities", NULL, timeout_ms, NULL, NULL,
			  error);
	if (!ret)
		return NULL;
	return g_steal_pointer(&p);
}

static gboolean id_is(JsonObject *o, gint64 id)
{
	JsonNode *n = json_object_get_member(o, "id");

	return n && json_node_get_value_type(n) == G_TYPE_INT64 &&
	       json_node_get_int(n) == id;
}

JsonNode *vs_qmp_call(VsPeer *p, const char *cmd, JsonObject *args,
		      int timeout_ms, VsQmpEventFunc on_event, gpointer data,
		      GError **error)
{
	static gint64 next_id;
	gint64 deadline = deadline_in(timeout_ms);
	gint64 id = ++next_id;

	if (!send_request(p, cmd, args, id, deadline, error))
		return NULL;
	for (;;) {
		g_autoptr(JsonNode) r = vs_peer_recv(p, deadline, error);
		JsonObject *o;

		if (!r) {
			g_prefix_error(error, "%s: ", cmd);
			return NULL;
		}
		o = json_node_get_object(r);
		if (json_object_has_member(o, "event")) {
			if (on_event)
				on_event(o, data);
			continue;
		}
		if (!id_is(o, id))
			continue; /* a stale reply: not ours */
		return take_return(o, p, cmd, error);
	}
}

/* ---- agent -------------------------------------------------------------- */

static gboolean sync_reply(JsonObject *o, gint64 id)
{
	JsonNode *r = json_object_get_member(o, "return");

	return r && json_node_get_value_type(r) == G_TYPE_INT64 &&
	       json_node_get_int(r) == id;
}

VsPeer *vs_agent_open(const char *path, int timeout_ms, GError **error)
{
	g_autoptr(VsPeer) p =
		vs_peer_connect(path, "guest agent", VS_AGENT_MAX_REPLY, error);
	g_autoptr(JsonObject) args = json_object_new();
	g_autofree char *line = NULL;
	gint64 deadline = deadline_in(timeout_ms);
	gint64 id = g_random_int_range(1, G_MAXINT32);

	if (!p)
		return NULL;
	json_object_set_int_member(args, "id", id);
	line = vs_request_build("guest-sync-delimited", json_object_ref(args),
				0);
	/* 0xFF first: flush whatever a previous client left in the guest's
	 * parser; the reply's own 0xFF resets our framer. */
	if (!vs_peer_send(p, "\xff", 1, deadline, error) ||
	    !vs_peer_send(p, line, strlen(line), deadline, error))
		return NULL;
	for (;;) {
		g_autoptr(JsonNode) r = vs_peer_recv(p, deadline, error);

		if (!r) {
			g_prefix_error(error, "sync: ");
			return NULL;
		}
		if (sync_reply(json_node_get_object(r), id))
			return g_steal_pointer(&p);
	}
}

JsonNode *vs_agent_call(VsPeer *p, const char *cmd, JsonObject *args,
			int timeout_ms, GError **error)
{
	gint64 deadline = deadline_in(timeout_ms);
	g_autoptr(JsonNode) r = NULL;

	/* The agent ignores "id" in requests; replies come in order. */
	if (!send_request(p, cmd, args, 0, deadline, error))
		return NULL;
	r = vs_peer_recv(p, deadline, error);
	if (!r) {
		g_prefix_error(error, "%s: ", cmd);
		return NULL;
	}
	return take_return(json_node_get_object(r), p, cmd, error);
}
