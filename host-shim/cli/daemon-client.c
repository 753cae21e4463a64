// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsharectl through vshared: when the daemon runs it holds the ledger lock
 * and vsharectl hands it the request over the control socket; the reply
 * carries the same progress events a local change emits, so the output
 * and the exit code are the same either way.
 */
#include "cli.h"

#include <string.h>

static char *socket_path(Cli *c)
{
	const char *env = g_getenv("VSHARE_SOCKET");

	return g_strdup(c->socket ? c->socket : env ? env : VS_DAEMON_SOCKET);
}

/* NULL and no error: no daemon runs. */
static VsPeer *connect_daemon(Cli *c, GError **error)
{
	g_autofree char *path = socket_path(c);
	g_autoptr(GError) local = NULL;
	VsPeer *p = vs_peer_connect(path, "vshared", VS_QMP_MAX_REPLY, &local);

	if (p || vs_error_is(local, VS_HOST_ERROR_GONE))
		return p;
	g_propagate_prefixed_error(error, g_steal_pointer(&local),
				   "vshared runs but cannot be reached "
				   "(root only): ");
	return NULL;
}

static JsonNode *call(Cli *c, VsPeer *p, const char *cmd, JsonObject *args,
		      GError **error)
{
	g_autofree char *line = vs_request_build(cmd, args, 1);
	/* a change may wait on agents and virtio-mem: the daemon bounds
	 * each; this only guards against a hung daemon */
	gint64 deadline = g_get_monotonic_time() +
			  (gint64)(c->cfg.mem_timeout_ms + 600000) * 1000;
	g_autoptr(JsonNode) r = NULL;
	JsonObject *o;

	if (!vs_peer_send(p, line, strlen(line), deadline, error))
		return NULL;
	r = vs_peer_recv(p, deadline, error);
	if (!r)
		return NULL;
	o = json_node_get_object(r);
	if (!json_object_has_member(o, "return")) {
		JsonObject *e =
			json_object_has_member(o, "error")
				? json_object_get_object_member(o, "error")
				: NULL;

		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
			    "vshared: %s",
			    e && json_object_has_member(e, "desc")
				    ? json_object_get_string_member(e, "desc")
				    : "no answer");
		return NULL;
	}
	return json_node_copy(json_object_get_member(o, "return"));
}

static int code_of(const char *name)
{
	for (int i = 0; i <= VS_HOST_ERROR_GONE; i++)
		if (!g_strcmp0(name, vs_host_error_name(i)))
			return i;
	return VS_HOST_ERROR_FAILED;
}

/* Render the events, map the outcome to an exit code. */
static int finish(Cli *c, JsonNode *r, const char *done)
{
	JsonObject *o =
		JSON_NODE_HOLDS_OBJECT(r) ? json_node_get_object(r) : NULL;
	JsonArray *evs = o && json_object_has_member(o, "events")
				 ? json_object_get_array_member(o, "events")
				 : NULL;
	g_autoptr(GError) e = NULL;

	for (guint i = 0; evs && i < json_array_get_length(evs); i++) {
		VsEvent ev;

		if (vs_event_from_json(json_array_get_element(evs, i), &ev))
			cli_render_event(&ev, c);
	}
	if (o && json_object_get_boolean_member(o, "ok")) {
		if (done)
			g_print("%s\n", done);
		return json_object_get_boolean_member(o, "partial")
			       ? VS_EXIT_PARTIAL
			       : VS_EXIT_OK;
	}
	g_set_error_literal(
		&e, VS_HOST_ERROR,
		code_of(o ? json_object_get_string_member(o, "code") : NULL),
		o && json_object_has_member(o, "message")
			? json_object_get_string_member(o, "message")
			: "vshared: malformed reply");
	return cli_fail(e);
}

static JsonObject *change_args(Cli *c, const VsChangeReq *r)
{
	static const char *const ops[] = { "cpus", "mem", "lend", "forget",
					   "tune" };
	JsonObject *a = json_object_new();
	g_autofree char *cpus = vs_cpuset_format(&r->cpus);

	json_object_set_string_member(a, "op", ops[r->kind]);
	if (r->vm)
		json_object_set_string_member(a, "vm", r->vm);
	if (r->from)
		json_object_set_string_member(a, "from", r->from);
	if (r->to)
		json_object_set_string_member(a, "to", r->to);
	if (r->kind == VS_REQ_CPUS || r->kind == VS_REQ_LEND)
		json_object_set_string_member(a, "cpus", cpus);
	if (r->node >= 0) {
		json_object_set_int_member(a, "node", r->node);
		json_object_set_int_member(a, "bytes", (gint64)r->bytes);
	}
	if (r->weight)
		json_object_set_int_member(a, "weight", r->weight);
	if (r->set_nice)
		json_object_set_int_member(a, "nice", r->nice);
	json_object_set_string_member(a, "mode", vs_mode_name(r->mode));
	json_object_set_int_member(a, "agent-timeout-ms",
				   c->cfg.agent_timeout_ms);
	json_object_set_int_member(a, "mem-timeout-ms", c->cfg.mem_timeout_ms);
	return a;
}

int cli_daemon_change(Cli *c, const VsChangeReq *req, const char *done,
		      gboolean *handled)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(VsPeer) p = connect_daemon(c, &error);
	g_autoptr(JsonNode) r = NULL;

	*handled = p || error;
	if (!p)
		return error ? cli_fail(error) : VS_EXIT_OK;
	r = req ? call(c, p, "vshare-host-change", change_args(c, req), &error)
		: call(c, p, "vshare-host-recover", NULL, &error);
	if (!r)
		return cli_fail(error);
	return finish(c, r, done);
}

JsonNode *cli_daemon_call(Cli *c, const char *cmd, JsonObject *args,
			  GError **error)
{
	g_autoptr(GError) local = NULL;
	g_autoptr(VsPeer) p = connect_daemon(c, &local);

	if (!p && !local)
		g_set_error(&local, VS_HOST_ERROR, VS_HOST_ERROR_UNREACHABLE,
			    "vshared does not run (%s is answered by the "
			    "daemon: systemctl start vshared)",
			    cmd);
	if (!p) {
		if (args)
			json_object_unref(args);
		g_propagate_error(error, g_steal_pointer(&local));
		return NULL;
	}
	return call(c, p, cmd, args, error);
}

JsonNode *cli_daemon_status(Cli *c, char **names, gboolean *handled,
			    GError **error)
{
	g_autoptr(VsPeer) p = connect_daemon(c, error);
	JsonObject *a;

	*handled = p || (error && *error);
	if (!p)
		return NULL;
	a = json_object_new();
	if (names && names[0]) {
		g_autofree char *csv = g_strjoinv(",", names);

		json_object_set_string_member(a, "vms", csv);
	}
	return call(c, p, "vshare-host-status", a, error);
}
