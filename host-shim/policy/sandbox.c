// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * One lua_State per policy, sandboxed:
 *  - an allocator that refuses to grow the state past the memory limit;
 *  - a count hook that stops a callback after its instruction budget;
 *    once a limit is hit the hook fires on every instruction, so a
 *    policy's own pcall cannot swallow the error and carry on;
 *  - finalizers: Lua runs __gc with hooks off, where no budget can stop
 *    them (and again when a state is closed), so setmetatable refuses a
 *    metatable with __gc (Lua marks an object for finalization only at
 *    setmetatable, and a policy has no other way to set one);
 *  - pattern matching runs in C, out of the hook's reach: find, match,
 *    gmatch and gsub refuse a match whose worst case (subject length to
 *    the power of its backtracking quantifiers + 1) is over
 *    VS_POLICY_MATCH_STEPS;
 *  - only base (without dofile/loadfile; load() takes text only;
 *    collectgarbage("count"/"collect"/"step")), string (without dump),
 *    table, math, utf8, coroutine, and os.time/clock/date/difftime.
 *    No io, package/require, debug. print() is the daemon's log.
 */
#include "policy-int.h"

#include <stdlib.h>
#include <string.h>

VsPolicy *vs_sandbox_policy(lua_State *L)
{
	return *(VsPolicy **)lua_getextraspace(L);
}

static void hook(lua_State *L, lua_Debug *ar);

static void exhaust(VsPolicy *p, const char *why)
{
	if (!p->over)
		p->why = why;
	p->over = TRUE;
	if (p->L)
		lua_sethook(p->L, hook, LUA_MASKCOUNT, 1);
}

static void hook(lua_State *L, lua_Debug *ar)
{
	VsPolicy *p = vs_sandbox_policy(L);

	(void)ar;
	p->used += VS_POLICY_HOOK_STEP;
	if (!p->over && p->used > p->e->lim.instructions)
		exhaust(p, "instruction budget exceeded");
	if (!p->over && g_atomic_int_get(&p->e->interrupted))
		exhaust(p, "interrupted: vshared is stopping");
	if (p->over) {
		lua_sethook(L, hook, LUA_MASKCOUNT, 1);
		luaL_error(L, "%s", p->why);
	}
}

static void *alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	VsPolicy *p = ud;
	size_t old = ptr ? osize : 0;
	void *n;

	if (nsize == 0) {
		free(ptr);
		p->mem -= old;
		return NULL;
	}
	if (nsize > old && p->mem - old + nsize > p->e->lim.memory) {
		exhaust(p, "memory limit exceeded");
		return NULL;
	}
	n = realloc(ptr, nsize);
	if (!n)
		return NULL;
	p->mem = p->mem - old + nsize;
	p->mem_peak = MAX(p->mem_peak, p->mem);
	return n;
}

static int l_print(lua_State *L)
{
	VsPolicy *p = vs_sandbox_policy(L);
	luaL_Buffer b;
	int n = lua_gettop(L);

	luaL_buffinit(L, &b);
	for (int i = 1; i <= n; i++) {
		if (i > 1)
			luaL_addchar(&b, '\t');
		luaL_tolstring(L, i, NULL);
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	vs_policy_say(p, "info", "%s", lua_tostring(L, -1));
	return 0;
}

/* load(chunk [, name [, mode [, env]]]): text chunks only. */
static int l_load(lua_State *L)
{
	int env = !lua_isnone(L, 4);

	lua_settop(L, 4);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushvalue(L, 1);
	lua_pushvalue(L, 2);
	lua_pushliteral(L, "t");
	if (env)
		lua_pushvalue(L, 4);
	lua_call(L, env ? 4 : 3, 2);
	return 2;
}

static int l_collectgarbage(lua_State *L)
{
	static const char *const opts[] = { "collect", "count", "step", NULL };
	int o = luaL_checkoption(L, 1, "collect", opts);

	switch (o) {
	case 1:
		lua_pushnumber(L, lua_gc(L, LUA_GCCOUNT) +
					  lua_gc(L, LUA_GCCOUNTB) / 1024.0);
		return 1;
	case 2:
		lua_pushboolean(L, lua_gc(L, LUA_GCSTEP, 0));
		return 1;
	default:
		lua_gc(L, LUA_GCCOLLECT);
		lua_pushinteger(L, 0);
		return 1;
	}
}

/* setmetatable(t, mt): no __gc (see the top of the file). */
static int l_setmetatable(lua_State *L)
{
	if (lua_type(L, 2) == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L, "setmetatable: __gc finalizers "
					     "are not allowed in a policy");
		lua_pop(L, 1);
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

/* Quantifiers that backtrack in a Lua pattern (*, +, -, ? after a single
 * character class; not inside a set, not escaped). */
static int quantifiers(const char *pat, size_t len)
{
	int q = 0;

	for (size_t i = 0; i < len; i++) {
		if (pat[i] == '%') {
			i++;
		} else if (pat[i] == '[') {
			i++;
			if (i < len && pat[i] == '^')
				i++;
			for (i++; i < len && pat[i] != ']'; i++)
				if (pat[i] == '%')
					i++;
		} else if (i > 0 && strchr("*+-?", pat[i])) {
			q++;
		}
	}
	return q;
}

/* string.find/match/gmatch/gsub with the pattern guard. */
static int l_guarded_match(lua_State *L)
{
	size_t n, plen;
	const char *pat;
	double steps = 1;
	int q;

	luaL_checklstring(L, 1, &n);
	pat = luaL_checklstring(L, 2, &plen);
	if (!(lua_isinteger(L, lua_upvalueindex(2)) &&
	      lua_toboolean(L, 4))) { /* find's plain flag: no pattern */
		q = quantifiers(pat, plen);
		for (int k = 0; k <= q && steps <= VS_POLICY_MATCH_STEPS; k++)
			steps *= (double)n + 1;
		if (steps > VS_POLICY_MATCH_STEPS)
			return luaL_error(
				L,
				"pattern too costly for a %I-byte subject "
				"(%d backtracking quantifiers; a policy may "
				"spend %f steps on a match)",
				(lua_Integer)n, q,
				(lua_Number)VS_POLICY_MATCH_STEPS);
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

static void guard_match(lua_State *L, const char *name, gboolean has_plain)
{
	lua_getglobal(L, "string");
	lua_getfield(L, -1, name);
	if (has_plain)
		lua_pushinteger(L, 1);
	else
		lua_pushnil(L);
	lua_pushcclosure(L, l_guarded_match, 2);
	lua_setfield(L, -2, name);
	lua_pop(L, 1);
}

static void open_lib(lua_State *L, const char *name, lua_CFunction f)
{
	luaL_requiref(L, name, f, 1);
	lua_pop(L, 1);
}

static void set_nil(lua_State *L, const char *table, const char *field)
{
	lua_getglobal(L, table);
	lua_pushnil(L);
	lua_setfield(L, -2, field);
	lua_pop(L, 1);
}

/* os: only the clock and dates. */
static void restricted_os(lua_State *L)
{
	static const char *const keep[] = { "time", "clock", "date",
					    "difftime" };

	luaL_requiref(L, "os", luaopen_os, 0); /* not global */
	lua_newtable(L);
	for (guint i = 0; i < G_N_ELEMENTS(keep); i++) {
		lua_getfield(L, -2, keep[i]);
		lua_setfield(L, -2, keep[i]);
	}
	lua_setglobal(L, "os");
	lua_pop(L, 1);
}

static void restrict_base(lua_State *L)
{
	lua_getglobal(L, "load");
	lua_pushcclosure(L, l_load, 1);
	lua_setglobal(L, "load");
	lua_pushnil(L);
	lua_setglobal(L, "dofile");
	lua_pushnil(L);
	lua_setglobal(L, "loadfile");
	lua_pushcfunction(L, l_print);
	lua_setglobal(L, "print");
	lua_pushcfunction(L, l_collectgarbage);
	lua_setglobal(L, "collectgarbage");
	lua_getglobal(L, "setmetatable");
	lua_pushcclosure(L, l_setmetatable, 1);
	lua_setglobal(L, "setmetatable");
	set_nil(L, "string", "dump");
	guard_match(L, "find", TRUE);
	guard_match(L, "match", FALSE);
	guard_match(L, "gmatch", FALSE);
	guard_match(L, "gsub", FALSE);
}

gboolean vs_sandbox_open(VsPolicy *p, GError **error)
{
	lua_State *L;

	p->mem = 0;
	p->over = FALSE;
	p->L = NULL;
	L = lua_newstate(alloc, p);
	if (!L) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOMEM,
			    "cannot create a Lua state within %zu bytes",
			    p->e->lim.memory);
		return FALSE;
	}
	*(VsPolicy **)lua_getextraspace(L) = p;
	open_lib(L, LUA_GNAME, luaopen_base);
	open_lib(L, LUA_TABLIBNAME, luaopen_table);
	open_lib(L, LUA_STRLIBNAME, luaopen_string);
	open_lib(L, LUA_MATHLIBNAME, luaopen_math);
	open_lib(L, LUA_UTF8LIBNAME, luaopen_utf8);
	open_lib(L, LUA_COLIBNAME, luaopen_coroutine);
	restricted_os(L);
	restrict_base(L);
	p->L = L;
	vs_api_open(L, p);
	return TRUE;
}

void vs_sandbox_close(VsPolicy *p)
{
	if (p->L)
		lua_close(p->L);
	p->L = NULL;
}

gboolean vs_sandbox_call(VsPolicy *p, int nargs, char **msg)
{
	lua_State *L = p->L;
	int base = lua_gettop(L) - nargs;
	int rc;

	p->used = 0;
	p->over = FALSE;
	p->why = NULL;
	lua_sethook(L, hook, LUA_MASKCOUNT, VS_POLICY_HOOK_STEP);
	rc = lua_pcall(L, nargs, 0, 0);
	lua_sethook(L, NULL, 0, 0);
	if (rc == LUA_OK && !p->over)
		return TRUE;
	if (p->over)
		*msg = g_strdup(p->why);
	else if (rc == LUA_ERRMEM)
		*msg = g_strdup("memory limit exceeded");
	else /* a policy's error text may be as long as its memory allows */
		*msg = vs_policy_cut(lua_tostring(L, -1) ? lua_tostring(L, -1)
							 : "error");
	lua_settop(L, base - 1); /* the function and its arguments are gone */
	return FALSE;
}
