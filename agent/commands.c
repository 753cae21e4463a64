// SPDX-License-Identifier: GPL-2.0-or-later
/* Handlers of the vshare-* commands: typed arguments in, a JSON value out.
 * The protocol layer has validated the arguments against the schema. */
#include "commands.h"

#include "sysinfo.h"

static JsonNode *obj_node(JsonObject *o)
{
	JsonNode *n;

	if (!o)
		return NULL;
	n = json_node_new(JSON_NODE_OBJECT);
	json_node_take_object(n, o);
	return n;
}

static JsonNode *cmd_get_topology(JsonObject *args, gpointer ctx,
				  GError **error)
{
	VsAgent *agent = ctx;
	JsonObject *topo = vs_sys_topology(error);
	JsonObject *cg;

	(void)args;
	if (!topo)
		return NULL;
	cg = json_object_new();
	json_object_set_int_member(cg, "version", agent->cg->version);
	json_object_set_string_member(cg, "backend", agent->cg->ops->name);
	json_object_set_string_member(cg, "path", agent->cg->path);
	json_object_set_object_member(topo, "cgroup", cg);
	return obj_node(topo);
}

static JsonNode *cmd_set_allocation(JsonObject *args, gpointer ctx,
				    GError **error)
{
	VsAgent *agent = ctx;
	const char *mems = json_object_has_member(args, "mems")
				   ? json_object_get_string_member(args, "mems")
				   : NULL;

	return obj_node(vs_alloc_set(
		agent->alloc, json_object_get_string_member(args, "cpus"), mems,
		error));
}

static JsonNode *cmd_get_allocation(JsonObject *args, gpointer ctx,
				    GError **error)
{
	VsAgent *agent = ctx;

	(void)args;
	return obj_node(vs_alloc_get(agent->alloc, error));
}

static JsonNode *cmd_get_cpu_stats(JsonObject *args, gpointer ctx,
				   GError **error)
{
	JsonArray *arr = vs_sys_cpu_stats(error);
	JsonNode *n;

	(void)args;
	(void)ctx;
	if (!arr)
		return NULL;
	n = json_node_new(JSON_NODE_ARRAY);
	json_node_take_array(n, arr);
	return n;
}

static const struct {
	const char *name;
	VsHandler handler;
} handlers[] = {
	{ "vshare-get-topology", cmd_get_topology },
	{ "vshare-set-allocation", cmd_set_allocation },
	{ "vshare-get-allocation", cmd_get_allocation },
	{ "vshare-get-cpu-stats", cmd_get_cpu_stats },
};

gboolean vs_commands_register(VsAgent *agent, GError **error)
{
	g_auto(GStrv) unbound = NULL;

	for (gsize i = 0; i < G_N_ELEMENTS(handlers); i++)
		if (!vs_dispatcher_register(agent->disp, handlers[i].name,
					    handlers[i].handler, agent, error))
			return FALSE;
	unbound = vs_dispatcher_unbound(agent->disp);
	if (unbound[0]) {
		g_autofree char *list = g_strjoinv(", ", unbound);

		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "schema commands without a handler: %s", list);
		return FALSE;
	}
	return TRUE;
}
