// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The `vshare` module a policy sees (docs/policies.md): paper 003's
 * peacemaker in this project's terms.
 *   read      vms(), vm(name), host(), now()
 *   act       lend, reclaim, set_weight, set_nice (each with a reason;
 *             through the caller's act function = the one planner path)
 *   schedule  every(seconds, fn), on(event, fn)   (at load time)
 *   misc      config(defaults), log(...), name, dry_run
 *   layout    place, move_memory (layout.c; only in a layout run)
 * Reads convert the state document to tables afresh on each call, so a
 * policy cannot alter what another call sees.
 */
#include "policy-int.h"

#include <string.h>

#define MAX_DEPTH 16

static gboolean all_digits(const char *s)
{
	if (!*s || strlen(s) > 9)
		return FALSE;
	for (; *s; s++)
		if (!g_ascii_isdigit(*s))
			return FALSE;
	return TRUE;
}

static void push_key(lua_State *L, const char *k)
{
	char u[64];
	gsize n;

	if (g_ascii_isdigit(*k) && all_digits(k)) {
		lua_pushinteger(L, g_ascii_strtoll(k, NULL, 10));
		return;
	}
	if (!strchr(k, '-') || (n = g_strlcpy(u, k, sizeof(u))) >= sizeof(u)) {
		lua_pushstring(L, k);
		return;
	}
	g_strdelimit(u, "-", '_');
	lua_pushlstring(L, u, n);
}

static void push_value(lua_State *L, JsonNode *n)
{
	switch (json_node_get_value_type(n)) {
	case G_TYPE_INT64:
		lua_pushinteger(L, json_node_get_int(n));
		break;
	case G_TYPE_DOUBLE:
		lua_pushnumber(L, json_node_get_double(n));
		break;
	case G_TYPE_BOOLEAN:
		lua_pushboolean(L, json_node_get_boolean(n));
		break;
	case G_TYPE_STRING:
		lua_pushstring(L, json_node_get_string(n));
		break;
	default:
		lua_pushnil(L);
	}
}

/* JSON -> Lua: objects are tables ("-" in keys becomes "_", digit keys
 * are integers: node numbers), arrays are sequences, null is nil. */
void vs_api_push_json(lua_State *L, JsonNode *n, int depth)
{
	luaL_checkstack(L, 4, "state document");
	if (!n || JSON_NODE_HOLDS_NULL(n) || depth > MAX_DEPTH) {
		lua_pushnil(L);
	} else if (JSON_NODE_HOLDS_ARRAY(n)) {
		JsonArray *a = json_node_get_array(n);

		lua_createtable(L, json_array_get_length(a), 0);
		for (guint i = 0; i < json_array_get_length(a); i++) {
			vs_api_push_json(L, json_array_get_element(a, i),
					 depth + 1);
			lua_rawseti(L, -2, i + 1);
		}
	} else if (JSON_NODE_HOLDS_OBJECT(n)) {
		JsonObjectIter it;
		const char *k;
		JsonNode *v;

		lua_newtable(L);
		json_object_iter_init(&it, json_node_get_object(n));
		while (json_object_iter_next(&it, &k, &v)) {
			push_key(L, k);
			vs_api_push_json(L, v, depth + 1);
			lua_rawset(L, -3);
		}
	} else {
		push_value(L, n);
	}
}

JsonNode *vs_api_state(VsPolicyEngine *e)
{
	g_autoptr(GError) err = NULL;

	if (!e->state_tried) {
		e->state_tried = TRUE;
		e->state = e->ops.state(e->ops.data, &err);
		if (!e->state)
			g_debug("policy state: %s",
				err ? err->message : "none");
	}
	return e->state;
}

/* A layout run reads the document it decides for. */
static JsonNode *state_member(lua_State *L, const char *k)
{
	VsPolicy *p = vs_sandbox_policy(L);
	JsonNode *s = p->layout ? p->layout->state : vs_api_state(p->e);
	JsonObject *o =
		s && JSON_NODE_HOLDS_OBJECT(s) ? json_node_get_object(s) : NULL;

	return o ? json_object_get_member(o, k) : NULL;
}

static int l_vms(lua_State *L)
{
	JsonNode *vms = state_member(L, "vms");

	if (!vms)
		lua_newtable(L);
	else
		vs_api_push_json(L, vms, 0);
	return 1;
}

static int l_vm(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	JsonNode *vms = state_member(L, "vms");
	JsonArray *a = vms && JSON_NODE_HOLDS_ARRAY(vms)
			       ? json_node_get_array(vms)
			       : NULL;

	for (guint i = 0; a && i < json_array_get_length(a); i++) {
		JsonNode *v = json_array_get_element(a, i);
		JsonObject *o = JSON_NODE_HOLDS_OBJECT(v)
					? json_node_get_object(v)
					: NULL;

		if (o && !g_strcmp0(json_object_get_string_member_with_default(
					    o, "name", ""),
				    name)) {
			vs_api_push_json(L, v, 0);
			return 1;
		}
	}
	lua_pushnil(L);
	return 1;
}

static int l_host(lua_State *L)
{
	vs_api_push_json(L, state_member(L, "host"), 0);
	return 1;
}

static int l_now(lua_State *L)
{
	VsPolicyEngine *e = vs_sandbox_policy(L)->e;

	lua_pushnumber(L, e->ops.now(e->ops.data) / 1e6);
	return 1;
}

static int l_log(lua_State *L)
{
	lua_getglobal(L, "print");
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 0);
	return 0;
}

/* ---- schedule --------------------------------------------------------- */

static VsPolicy *loading(lua_State *L, const char *what)
{
	VsPolicy *p = vs_sandbox_policy(L);

	if (!p->loading)
		luaL_error(L, "%s: only at the top level of the policy file",
			   what);
	return p;
}

static int l_every(lua_State *L)
{
	VsPolicy *p = loading(L, "every");
	double s = luaL_checknumber(L, 1);
	VsTimer t = { .interval = s };

	luaL_checktype(L, 2, LUA_TFUNCTION);
	if (p->timers->len >= VS_POLICY_TIMERS_MAX)
		return luaL_error(L, "every: at most %d timers per policy",
				  VS_POLICY_TIMERS_MAX);
	if (!(s >= p->e->lim.min_interval) || s > 86400) {
		char m[128]; /* no heap: lua_error does not return */

		g_snprintf(m, sizeof(m),
			   "every: %g s is not within %g..86400 s", s,
			   p->e->lim.min_interval);
		lua_pushstring(L, m);
		return lua_error(L);
	}
	lua_pushvalue(L, 2);
	t.ref = luaL_ref(L, LUA_REGISTRYINDEX);
	t.next_us = p->e->ops.now(p->e->ops.data) + (gint64)(s * 1e6);
	g_array_append_val(p->timers, t);
	return 0;
}

static int l_on(lua_State *L)
{
	static const char *const events[] = { "vm-started", "vm-stopped",
					      "vm-migrated", "agent-lost",
					      NULL };
	VsPolicy *p = loading(L, "on");
	int k = luaL_checkoption(L, 1, NULL, events);
	VsHandler h = { 0 };

	luaL_checktype(L, 2, LUA_TFUNCTION);
	if (p->handlers->len >= VS_POLICY_HANDLERS_MAX)
		return luaL_error(L, "on: at most %d handlers per policy",
				  VS_POLICY_HANDLERS_MAX);
	lua_pushvalue(L, 2);
	h.ref = luaL_ref(L, LUA_REGISTRYINDEX);
	h.event = g_strdup(events[k]); /* after what may raise an error */
	g_array_append_val(p->handlers, h);
	return 0;
}

/* ---- act -------------------------------------------------------------- */

static const char *reason_arg(lua_State *L, int i)
{
	const char *r = luaL_optstring(L, i, NULL);

	if (!r || !*r)
		luaL_error(L, "an act needs a reason (a string)");
	if (strlen(r) > 512)
		luaL_error(L, "a reason is at most 512 bytes");
	return r;
}

/* cpus = "1-2" or {1, 2}: the list's text, left on the Lua stack (errors
 * raised here must not leak C memory). */
static const char *cpus_of(lua_State *L, int t)
{
	lua_Integer n;
	int list;

	lua_getfield(L, t, "cpus");
	if (lua_type(L, -1) == LUA_TSTRING)
		return lua_tostring(L, -1);
	luaL_argcheck(L, lua_istable(L, -1), 3, "cpus: a list or a string");
	list = lua_absindex(L, -1);
	n = luaL_len(L, list);
	luaL_argcheck(L, n > 0 && n <= 4096, 3, "cpus: 1..4096 pCPUs");
	lua_pushliteral(L, "");
	for (lua_Integer i = 1; i <= n; i++) {
		lua_Integer v;

		lua_rawgeti(L, list, i);
		luaL_argcheck(L, lua_isinteger(L, -1), 3, "cpus: pCPU numbers");
		v = lua_tointeger(L, -1);
		lua_pop(L, 1);
		lua_pushfstring(L, "%s%s%I", lua_tostring(L, -1),
				i > 1 ? "," : "", v);
		lua_remove(L, -2);
	}
	lua_remove(L, list);
	return lua_tostring(L, -1);
}

static int finish(lua_State *L, VsPolicy *p, const VsPolicyAct *a)
{
	g_autoptr(GError) err = NULL;
	gboolean ok;

	if (p->layout)
		return luaL_error(L,
				  "%s: a layout policy only decides, with "
				  "place() and move_memory()",
				  vs_act_kind_name(a->kind));
	if (p->dry) {
		vs_policy_record(p, a, NULL);
		lua_pushboolean(L, TRUE);
		return 1;
	}
	ok = p->e->ops.act(a, p->e->ops.data, &err);
	vs_policy_record(p, a, err);
	/* what the next read sees changed */
	g_clear_pointer(&p->e->state, json_node_unref);
	p->e->state_tried = FALSE;
	if (ok) {
		lua_pushboolean(L, TRUE);
		return 1;
	}
	lua_pushnil(L);
	lua_pushstring(L, err->message);
	return 2;
}

static int move(lua_State *L, VsActKind kind)
{
	VsPolicy *p = vs_sandbox_policy(L);
	VsPolicyAct a = { .policy = p->name, .kind = kind, .node = -1 };
	lua_Integer mem;

	a.from = luaL_checkstring(L, 1);
	a.to = luaL_checkstring(L, 2);
	luaL_checktype(L, 3, LUA_TTABLE);
	a.reason = reason_arg(L, 4);
	lua_settop(L, 4);
	a.cpus = cpus_of(L, 3); /* stack 5 */
	lua_getfield(L, 3, "node");
	a.node = (int)luaL_optinteger(L, -1, -1);
	lua_getfield(L, 3, "mem");
	mem = luaL_optinteger(L, -1, 0);
	luaL_argcheck(L, mem >= 0, 3, "mem must not be negative");
	luaL_argcheck(L, (mem > 0) == (a.node >= 0), 3,
		      "node and mem go together");
	a.bytes = (guint64)mem;
	lua_getfield(L, 3, "mode");
	a.mode = luaL_optstring(L, -1, "auto");
	return finish(L, p, &a); /* strings stay on the stack meanwhile */
}

static int l_lend(lua_State *L)
{
	return move(L, VS_ACT_LEND);
}

static int l_reclaim(lua_State *L)
{
	return move(L, VS_ACT_RECLAIM);
}

static int tune(lua_State *L, VsActKind kind)
{
	VsPolicy *p = vs_sandbox_policy(L);
	VsPolicyAct a = { .policy = p->name, .kind = kind, .node = -1 };

	a.vm = luaL_checkstring(L, 1);
	a.value = (int)luaL_checkinteger(L, 2);
	a.reason = reason_arg(L, 3);
	return finish(L, p, &a);
}

static int l_set_weight(lua_State *L)
{
	return tune(L, VS_ACT_WEIGHT);
}

static int l_set_nice(lua_State *L)
{
	return tune(L, VS_ACT_NICE);
}

/* ---- config ------------------------------------------------------------ */

/* config(defaults): the defaults, overridden by policies.conf [NAME]
 * keys, each read as the default's type. Unknown keys are an error (a
 * typo must not pass silently). */
static int l_config(lua_State *L)
{
	VsPolicy *p = vs_sandbox_policy(L);
	GKeyFile *kf = p->e->config;
	char **keys;
	char bad[256] = "";

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	keys = kf && g_key_file_has_group(kf, p->name)
		       ? g_key_file_get_keys(kf, p->name, NULL, NULL)
		       : NULL;
	for (guint i = 0; keys && keys[i] && !*bad; i++) {
		char *v;
		int t;

		if (!strcmp(keys[i], "enabled"))
			continue;
		lua_getfield(L, 1, keys[i]);
		t = lua_type(L, -1);
		lua_pop(L, 1);
		v = g_key_file_get_string(kf, p->name, keys[i], NULL);
		if (t == LUA_TNUMBER && v && lua_stringtonumber(L, v))
			lua_setfield(L, 1, keys[i]);
		else if (t == LUA_TBOOLEAN && v &&
			 (!strcmp(v, "true") || !strcmp(v, "false"))) {
			lua_pushboolean(L, !strcmp(v, "true"));
			lua_setfield(L, 1, keys[i]);
		} else if (t == LUA_TSTRING && v) {
			lua_pushstring(L, v);
			lua_setfield(L, 1, keys[i]);
		} else {
			g_snprintf(bad, sizeof(bad),
				   "policies.conf [%s] %s=%s: not a setting "
				   "of this policy, or not a %s",
				   p->name, keys[i], v ? v : "",
				   lua_typename(L, t));
		}
		g_free(v);
	}
	g_strfreev(keys);
	if (*bad)
		return luaL_error(L, "%s", bad);
	return 1;
}

void vs_api_open(lua_State *L, VsPolicy *p)
{
	static const luaL_Reg fns[] = {
		{ "vms", l_vms },
		{ "vm", l_vm },
		{ "host", l_host },
		{ "now", l_now },
		{ "log", l_log },
		{ "every", l_every },
		{ "on", l_on },
		{ "lend", l_lend },
		{ "reclaim", l_reclaim },
		{ "set_weight", l_set_weight },
		{ "set_nice", l_set_nice },
		{ "config", l_config },
		{ NULL, NULL },
	};

	luaL_newlib(L, fns);
	vs_layout_open(L);
	lua_pushstring(L, p->name);
	lua_setfield(L, -2, "name");
	lua_pushboolean(L, p->dry);
	lua_setfield(L, -2, "dry_run");
	lua_setglobal(L, "vshare");
}
