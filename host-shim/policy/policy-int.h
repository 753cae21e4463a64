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
/* Everything a policy can make the daemon hold or send is bounded. */
#define VS_POLICY_LINE_MAX     1024	    /* bytes of one log line, error */
#define VS_POLICY_LINES_RUN    64	    /* log lines of one run */
#define VS_POLICY_OUT_ITEMS    1000	    /* dry-run/layout entries */
#define VS_POLICY_OUT_BYTES    (256 * 1024) /* and their text */
#define VS_POLICY_TIMERS_MAX   16	    /* every() per policy */
#define VS_POLICY_HANDLERS_MAX 16	    /* on() per policy */
/* Across all of a policy's runs: this many per-run budgets per window. */
#define VS_POLICY_WINDOW_US   (10 * G_USEC_PER_SEC)
#define VS_POLICY_WINDOW_RUNS 5
/* A pattern match may cost at most this many steps in its worst case
 * (subject length ^ (backtracking quantifiers + 1)): the count hook does
 * not run inside C functions. */
#define VS_POLICY_MATCH_STEPS 1e8

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
	guint said, unsaid;	  /* log lines this run, and dropped */
	guint out_items, out_cut; /* dry-run/layout entries, and dropped */
	gsize out_bytes;
	guint64 window_used;  /* instructions in this window */
	gint64 window_start;  /* us, the engine's clock */
	gboolean window_said; /* the over-budget line logged */
	guint64 skipped;      /* runs skipped over the window budget */
	char *error;	      /* why it does not run */
	GArray *timers;	      /* VsTimer */
	GArray *handlers;     /* VsHandler */
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
	gint interrupted; /* atomic: vs_policy_engine_interrupt */
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
/* @path's text if it is a regular file of at most @max bytes (no link,
 * no FIFO: opened without blocking), else NULL with @error. */
char *vs_policy_read_file(const char *path, gsize max, gsize *len,
			  GError **error);
/* Room for one more dry-run/layout entry of @bytes: FALSE (and counted
 * as cut) when the caps are reached. */
gboolean vs_policy_out(VsPolicy *p, gsize bytes);
/* The marker that ends a cut output, NULL when nothing was cut. */
char *vs_policy_out_marker(VsPolicy *p);
/* @text cut to VS_POLICY_LINE_MAX bytes (on a UTF-8 boundary) with a
 * marker saying how much was cut. */
char *vs_policy_cut(const char *text);
void vs_policy_record(VsPolicy *p, const VsPolicyAct *a, const GError *err);
void vs_policy_say(VsPolicy *p, const char *level, const char *fmt, ...)
	G_GNUC_PRINTF(3, 4);
