// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Progress events as JSON, so vshared can hand a change's progress to
 * vsharectl, which renders it exactly as it renders a local change.
 */
#include "vshare-host.h"

#include <string.h>

static const char *const kinds[] = {
	[VS_EV_RECOVER] = "recover",
	[VS_EV_STEP] = "step",
	[VS_EV_STEP_FAILED] = "step-failed",
	[VS_EV_CONFINED] = "confined",
	[VS_EV_THROTTLED] = "throttled",
	[VS_EV_PARKED] = "parked",
	[VS_EV_FALLBACK] = "fallback",
	[VS_EV_MEM] = "mem",
	[VS_EV_MEM_PARTIAL] = "mem-partial",
	[VS_EV_NOTE] = "note",
	[VS_EV_UNDO_SKIPPED] = "undo-skipped",
	[VS_EV_UNDO_FAILED] = "undo-failed",
};

static void put_str(JsonObject *o, const char *k, const char *v)
{
	if (v)
		json_object_set_string_member(o, k, v);
}

JsonNode *vs_event_to_json(const VsEvent *e)
{
	JsonObject *o = json_object_new();
	JsonNode *n = json_node_new(JSON_NODE_OBJECT);
	JsonArray *us = json_array_new();

	json_object_set_string_member(o, "kind", kinds[e->kind]);
	put_str(o, "vm", e->vm);
	put_str(o, "op", e->op);
	put_str(o, "cpus", e->cpus);
	put_str(o, "mems", e->mems);
	put_str(o, "message", e->message);
	json_object_set_int_member(o, "index", e->index);
	json_object_set_string_member(o, "step", vs_step_kind_name(e->step));
	json_object_set_int_member(o, "node", e->node);
	json_object_set_int_member(o, "bytes", (gint64)e->bytes);
	json_object_set_int_member(o, "want", (gint64)e->want);
	json_object_set_int_member(o, "elapsed-us", e->elapsed_us);
	for (guint i = 0; i < G_N_ELEMENTS(e->agent_us); i++)
		json_array_add_int_element(us, e->agent_us[i]);
	json_object_set_array_member(o, "agent-us", us);
	json_object_set_boolean_member(o, "committed", e->committed);
	json_node_take_object(n, o);
	return n;
}

static const char *get_str(JsonObject *o, const char *k)
{
	JsonNode *n = json_object_get_member(o, k);

	return n && json_node_get_value_type(n) == G_TYPE_STRING
		       ? json_node_get_string(n)
		       : NULL;
}

static gint64 get_int(JsonObject *o, const char *k)
{
	JsonNode *n = json_object_get_member(o, k);

	return n && json_node_get_value_type(n) == G_TYPE_INT64
		       ? json_node_get_int(n)
		       : 0;
}

static gboolean get_bool(JsonObject *o, const char *k)
{
	JsonNode *n = json_object_get_member(o, k);

	return n && json_node_get_value_type(n) == G_TYPE_BOOLEAN &&
	       json_node_get_boolean(n);
}

static void agent_times(JsonObject *o, VsEvent *e)
{
	JsonNode *n = json_object_get_member(o, "agent-us");
	JsonArray *a =
		n && JSON_NODE_HOLDS_ARRAY(n) ? json_node_get_array(n) : NULL;

	for (guint i = 0;
	     a && i < MIN(json_array_get_length(a), G_N_ELEMENTS(e->agent_us));
	     i++) {
		JsonNode *x = json_array_get_element(a, i);

		if (json_node_get_value_type(x) == G_TYPE_INT64)
			e->agent_us[i] = json_node_get_int(x);
	}
}

/* Strings in @e point into @node, which must outlive @e. */
gboolean vs_event_from_json(JsonNode *node, VsEvent *e)
{
	JsonObject *o = node && JSON_NODE_HOLDS_OBJECT(node)
				? json_node_get_object(node)
				: NULL;
	const char *kind = o ? get_str(o, "kind") : NULL;
	guint k;

	memset(e, 0, sizeof(*e));
	for (k = 0; kind && k < G_N_ELEMENTS(kinds); k++)
		if (!strcmp(kinds[k], kind))
			break;
	if (!kind || k == G_N_ELEMENTS(kinds))
		return FALSE;
	e->kind = k;
	e->vm = get_str(o, "vm");
	e->op = get_str(o, "op");
	e->cpus = get_str(o, "cpus");
	e->mems = get_str(o, "mems");
	e->message = get_str(o, "message");
	e->index = get_int(o, "index");
	if (!vs_step_kind_parse(get_str(o, "step"), &e->step))
		e->step = VS_STEP_CPUS;
	e->node = get_int(o, "node");
	e->bytes = get_int(o, "bytes");
	e->want = get_int(o, "want");
	e->elapsed_us = get_int(o, "elapsed-us");
	agent_times(o, e);
	e->committed = get_bool(o, "committed");
	return TRUE;
}
