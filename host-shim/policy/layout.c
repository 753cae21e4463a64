// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Layout runs (paper 001's Optimizer, decide-only): a layout policy's
 * layout(state, incoming) calls vshare.place(vm, node, reason) and
 * vshare.move_memory(vm, node, reason); both check the decision against
 * the state document and record it. Nothing is applied here: that is
 * the daemon's job. A refused decision fails the whole run, even when
 * the policy catches the error with pcall.
 */
#include "policy-int.h"

#include <string.h>

VsLayoutRun *vs_layout_run_new(JsonNode *state)
{
	VsLayoutRun *r = g_new0(VsLayoutRun, 1);

	r->state = state;
	r->placements = json_array_new();
	r->moves = json_array_new();
	r->placed =
		g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	return r;
}

void vs_layout_run_free(VsLayoutRun *r)
{
	if (!r)
		return;
	json_array_unref(r->placements);
	json_array_unref(r->moves);
	g_hash_table_destroy(r->placed);
	g_free(r->fault);
	g_free(r);
}

static JsonObject *member_object(JsonObject *o, const char *k)
{
	JsonNode *n = o ? json_object_get_member(o, k) : NULL;

	return n && JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
}

static gboolean has_vm(JsonNode *state, const char *name)
{
	JsonObject *s = JSON_NODE_HOLDS_OBJECT(state)
				? json_node_get_object(state)
				: NULL;
	JsonNode *vms = s ? json_object_get_member(s, "vms") : NULL;
	JsonArray *a = vms && JSON_NODE_HOLDS_ARRAY(vms)
			       ? json_node_get_array(vms)
			       : NULL;

	for (guint i = 0; a && i < json_array_get_length(a); i++) {
		JsonNode *v = json_array_get_element(a, i);

		if (JSON_NODE_HOLDS_OBJECT(v) &&
		    !g_strcmp0(json_object_get_string_member_with_default(
				       json_node_get_object(v), "name", NULL),
			       name))
			return TRUE;
	}
	return FALSE;
}

static gboolean has_node(JsonNode *state, lua_Integer node)
{
	JsonObject *s = JSON_NODE_HOLDS_OBJECT(state)
				? json_node_get_object(state)
				: NULL;
	JsonObject *nodes = member_object(member_object(s, "host"), "nodes");
	char key[24];

	g_snprintf(key, sizeof(key), "%lld", (long long)node);
	return node >= 0 && nodes && json_object_has_member(nodes, key);
}

/* Refuse: remember the first fault (a pcall in the policy cannot hide
 * it), then raise it. The message is built on the Lua stack. */
static int refuse(lua_State *L, VsLayoutRun *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	lua_pushvfstring(L, fmt, ap);
	va_end(ap);
	if (!r->fault)
		r->fault = g_strdup(lua_tostring(L, -1));
	return lua_error(L);
}

typedef struct {
	const char *what, *vm, *reason;
	lua_Integer node;
} Decision;

static VsLayoutRun *decision_args(lua_State *L, const char *what, Decision *d)
{
	VsPolicy *p = vs_sandbox_policy(L);
	VsLayoutRun *r = p->layout;
	int isint = 0;

	if (!r)
		luaL_error(L, "%s: only inside layout(state, incoming)", what);
	d->what = what;
	d->vm = luaL_checkstring(L, 1);
	d->node = lua_tointegerx(L, 2, &isint);
	if (!isint)
		refuse(L, r, "%s(%s): node must be an integer, not %s", what,
		       d->vm, luaL_typename(L, 2));
	d->reason = luaL_optstring(L, 3, NULL);
	if (!d->reason || !*d->reason || strlen(d->reason) > 512)
		refuse(L, r,
		       "%s(%s): a decision needs a reason of 1..512 bytes",
		       what, d->vm);
	if (!has_vm(r->state, d->vm))
		refuse(L, r, "%s: no VM named '%s' in the state", what, d->vm);
	if (!has_node(r->state, d->node))
		refuse(L, r, "%s(%s): the host has no node %I", what, d->vm,
		       d->node);
	return r;
}

static void record(VsPolicy *p, JsonArray *to, const Decision *d)
{
	JsonObject *o;

	if (!vs_policy_out(p, strlen(d->vm) + strlen(d->reason) + 32))
		return;
	o = json_object_new();

	json_object_set_string_member(o, "vm", d->vm);
	json_object_set_int_member(o, "node", d->node);
	json_object_set_string_member(o, "reason", d->reason);
	json_array_add_object_element(to, o);
}

/* vshare.place(vm, node, reason): every vCPU and the memory on node. */
static int l_place(lua_State *L)
{
	Decision d;
	VsLayoutRun *r = decision_args(L, "place", &d);
	gpointer was = g_hash_table_lookup(r->placed, d.vm);

	if (was && GPOINTER_TO_INT(was) - 1 != d.node)
		return refuse(L, r,
			      "place(%s): already placed on node %d, "
			      "now node %I",
			      d.vm, GPOINTER_TO_INT(was) - 1, d.node);
	if (!was) {
		g_hash_table_insert(r->placed, g_strdup(d.vm),
				    GINT_TO_POINTER((int)d.node + 1));
		record(vs_sandbox_policy(L), r->placements, &d);
	}
	lua_pushboolean(L, TRUE);
	return 1;
}

/* vshare.move_memory(vm, node, reason): its memory, vCPUs stay. */
static int l_move_memory(lua_State *L)
{
	Decision d;
	VsLayoutRun *r = decision_args(L, "move_memory", &d);

	record(vs_sandbox_policy(L), r->moves, &d);
	lua_pushboolean(L, TRUE);
	return 1;
}

void vs_layout_open(lua_State *L)
{
	lua_pushcfunction(L, l_place);
	lua_setfield(L, -2, "place");
	lua_pushcfunction(L, l_move_memory);
	lua_setfield(L, -2, "move_memory");
}

/* In protected mode: the state's tables count against the memory cap. */
static int run_layout(lua_State *L)
{
	VsPolicy *p = vs_sandbox_policy(L);

	if (lua_getglobal(L, "layout") != LUA_TFUNCTION)
		return luaL_error(L,
				  "%s.lua defines no function "
				  "layout(state, incoming)",
				  p->name);
	vs_api_push_json(L, p->layout->state, 0);
	lua_pushvalue(L, 1);
	lua_call(L, 2, 0);
	return 0;
}

gboolean vs_layout_call(VsPolicy *p, const char *incoming, char **msg)
{
	gboolean ok;

	lua_pushcfunction(p->L, run_layout);
	if (incoming)
		lua_pushstring(p->L, incoming);
	else
		lua_pushnil(p->L);
	ok = vs_sandbox_call(p, 1, msg);
	if (ok && p->layout->fault)
		*msg = g_strdup(p->layout->fault);
	else if (!ok && p->layout->fault) {
		g_free(*msg);
		*msg = g_strdup(p->layout->fault);
	}
	return ok && !p->layout->fault;
}

JsonNode *vs_layout_result(VsPolicy *p)
{
	g_autofree char *marker = vs_policy_out_marker(p);
	JsonObject *o = json_object_new();
	JsonArray *log = json_array_new();
	JsonNode *n = json_node_new(JSON_NODE_OBJECT);

	for (guint i = 0; i < p->dry_acts->len; i++)
		json_array_add_element(log,
				       json_node_ref(p->dry_acts->pdata[i]));
	if (marker)
		json_array_add_string_element(log, marker);
	json_object_set_string_member(o, "policy", p->name);
	json_object_set_array_member(o, "placements",
				     json_array_ref(p->layout->placements));
	json_object_set_array_member(o, "moves",
				     json_array_ref(p->layout->moves));
	json_object_set_array_member(o, "log", log);
	json_node_take_object(n, o);
	return n;
}
