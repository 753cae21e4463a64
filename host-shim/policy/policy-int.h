/* SPDX-License-Identifier: GPL-2.0-or-later */
/* libvshare-policy internals: one Policy per Lua file. */
#pragma once

#include "vshare-policy.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#define VS_POLICY_HOOK_STEP 1000 /* instructions between budget checks */
#define VS_POLICY_LOG_MAX   1000 /* act log entries kept */
#define VS_POLICY_RUNS_KEPT 255	 /* run times kept for the median */

typedef struct {
	double interval; /* seconds */
	gint64 next_us;
	int ref; /* the function, in the registry */
} VsTimer;

typedef struct {
	char *event;
	int ref;
} VsHandler;

typedef struct {
	VsPolicyEngine *e;
	char *name, *path, *origin;
	char *source;
	lua_State *L;
	gsize mem, mem_peak;
	guint64 used;	 /* instructions this run */
	gboolean over;	 /* budget or memory exhausted: unwind */
	const char *why; /* what ran out */
	gboolean enabled, loading, dry;
	char *error;	  /* why it does not run */
	GArray *timers;	  /* VsTimer */
	GArray *handlers; /* VsHandler */
	guint64 runs, faults, acts_ok, acts_refused, acts_failed;
	double run_us_sum;
	GArray *run_us; /* double, last VS_POLICY_RUNS_KEPT */
	guint run_next;
	GPtrArray *dry_acts;	    /* JsonNode, dry-run and layout */
	struct VsLayoutRun *layout; /* a layout run, else NULL */
} VsPolicy;

/* What a layout run decides (vs_policy_layout): recorded, not made. */
typedef struct VsLayoutRun {
	JsonNode *state; /* the caller's, not owned */
	JsonArray *placements, *moves;
	GHashTable *placed; /* vm -> node + 1 */
	char *fault;	    /* the first refused decision: the run fails */
} VsLayoutRun;

struct VsPolicyEngine {
	VsPolicyOps ops;
	VsPolicyLimits lim;
	char **dirs;
	char *config_path;
	GKeyFile *config;
	GPtrArray *policies; /* VsPolicy, by name */
	GQueue log;	     /* JsonNode */
	JsonNode *state;     /* this run's state document */
	gboolean state_tried;
};

/* sandbox.c */
gboolean vs_sandbox_open(VsPolicy *p, GError **error);
void vs_sandbox_close(VsPolicy *p);
/* Arm the budget and call the function on the stack with @nargs; FALSE
 * with the error (or the exhausted limit) in @msg. */
gboolean vs_sandbox_call(VsPolicy *p, int nargs, char **msg);
VsPolicy *vs_sandbox_policy(lua_State *L);

/* api.c */
void vs_api_open(lua_State *L, VsPolicy *p);
void vs_api_push_json(lua_State *L, JsonNode *n, int depth);
JsonNode *vs_api_state(VsPolicyEngine *e);

/* layout.c */
VsLayoutRun *vs_layout_run_new(JsonNode *state);
void vs_layout_run_free(VsLayoutRun *r);
void vs_layout_open(lua_State *L);
/* Call layout(state, incoming) in @p's sandbox; FALSE with @msg. */
gboolean vs_layout_call(VsPolicy *p, const char *incoming, char **msg);
JsonNode *vs_layout_result(VsPolicy *p);

/* engine.c */
void vs_policy_record(VsPolicy *p, const VsPolicyAct *a, const GError *err);
void vs_policy_say(VsPolicy *p, const char *level, const char *fmt, ...)
	G_GNUC_PRINTF(3, 4);
