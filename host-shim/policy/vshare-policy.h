/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libvshare-policy: administrator-written Lua 5.4 policies (paper 003's
 * "policy" over its "peacemaker"), one sandboxed lua_State each.
 *
 * The engine neither senses nor acts by itself: its caller (vshared, or a
 * test with a controlled clock and a fake host) gives it a state document
 * (JSON: {vms: [...], host: {...}}, docs/policies.md), an act function
 * that runs a change through the one planner/transaction path, and a
 * clock. It never prints, sleeps or exits.
 *
 *   engine.c   policies: files, load/reload, enable, schedule, run, log
 *   sandbox.c  the lua_State: allocator cap, instruction budget, the
 *              libraries a policy may use
 *   api.c      the `vshare` module: read, act, schedule, config
 *   prelude.lua (embedded) the paper's helpers written over the API
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "vshare-prom.h"

typedef enum {
	VS_ACT_LEND,
	VS_ACT_RECLAIM, /* a lend back to the pCPUs' owner */
	VS_ACT_WEIGHT,
	VS_ACT_NICE,
} VsActKind;

const char *vs_act_kind_name(VsActKind k);

typedef struct {
	const char *policy;
	VsActKind kind;
	const char *vm;	       /* weight, nice */
	const char *from, *to; /* lend, reclaim */
	const char *cpus;      /* lend, reclaim: pCPU list */
	int node;	       /* lend, reclaim: memory's node, -1 none */
	guint64 bytes;	       /* memory moved */
	const char *mode;      /* coop, enforce, auto */
	int value;	       /* weight or nice */
	const char *reason;    /* the policy's words */
} VsPolicyAct;

typedef struct {
	/* The state document, built once per run (and again after an act
	 * changed something). NULL + error: the run sees nil. */
	JsonNode *(*state)(gpointer data, GError **error);
	/* Run an act through the planner; FALSE with a VS_HOST_ERROR code
	 * (refused, failed, ...) as @error. */
	gboolean (*act)(const VsPolicyAct *act, gpointer data, GError **error);
	/* One line for the operator (level: "info", "warning"). */
	void (*log)(const char *policy, const char *level, const char *msg,
		    gpointer data);
	gint64 (*now)(gpointer data);  /* monotonic, us: timers */
	gint64 (*wall)(gpointer data); /* real time, us: os.time, log */
	gpointer data;
} VsPolicyOps;

typedef struct {
	guint64 instructions; /* per callback run */
	gsize memory;	      /* bytes a policy's state may hold */
	double min_interval;  /* seconds: every() below this is refused */
} VsPolicyLimits;

#define VS_POLICY_DEFAULT_INSTRUCTIONS (20 * 1000 * 1000)
#define VS_POLICY_DEFAULT_MEMORY       (16 * 1024 * 1024)
#define VS_POLICY_DEFAULT_MIN_INTERVAL 0.05

typedef struct VsPolicyEngine VsPolicyEngine;

/* @limits NULL: the defaults above. */
VsPolicyEngine *vs_policy_engine_new(const VsPolicyOps *ops,
				     const VsPolicyLimits *limits);
void vs_policy_engine_free(VsPolicyEngine *e);
/* From any thread: the running callback stops at its next budget check
 * and no further one starts (the daemon is stopping). Not a fault: the
 * policies keep their state and stay enabled. */
void vs_policy_engine_interrupt(VsPolicyEngine *e);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VsPolicyEngine, vs_policy_engine_free)

/* Where policies live, lowest precedence first (shipped, then the
 * administrator's: a file of the same name overrides). @config: the
 * policies.conf key file (may be NULL): [NAME] enabled=, settings. */
void vs_policy_engine_set_dirs(VsPolicyEngine *e, const char *const *dirs,
			       const char *config);
/* Scan the directories and (re)load every enabled policy; a policy that
 * fails to load is reported in list() and the log, the others load. */
void vs_policy_engine_scan(VsPolicyEngine *e);
/* Reload one policy (NULL: all). A file that does not compile keeps the
 * previous version running; @error says why. */
gboolean vs_policy_reload(VsPolicyEngine *e, const char *name, GError **error);
/* Enable (load and schedule) or disable a known policy. The caller
 * persists the choice. */
gboolean vs_policy_enable(VsPolicyEngine *e, const char *name, gboolean on,
			  GError **error);
/* Names of enabled policies (for the caller to persist). */
char **vs_policy_enabled_names(VsPolicyEngine *e);

/* Earliest due time of an enabled policy's timer (monotonic us), -1. */
gint64 vs_policy_next_due(VsPolicyEngine *e);
/* Run every callback due at ops->now(). */
void vs_policy_run_due(VsPolicyEngine *e);
/* Run the handlers of @event ("vm-started", "vm-stopped", "vm-migrated",
 * "agent-lost") for @vm. */
void vs_policy_event(VsPolicyEngine *e, const char *event, const char *vm);

/* {policies: [{name, path, origin, enabled, loaded, error, runs, acts,
 * errors, timers: [seconds], events: [..]}]} */
JsonNode *vs_policy_list(VsPolicyEngine *e);
/* {name, path, source, ...as list} */
JsonNode *vs_policy_show(VsPolicyEngine *e, const char *name, GError **error);
/* The acts the policy would take now: a fresh state of the same file,
 * `vshare.dry_run` true, each every() callback run once, acts recorded.
 * {acts: [...], log: [...]} */
JsonNode *vs_policy_dry_run(VsPolicyEngine *e, const char *name,
			    GError **error);
/* Decide a layout (paper 001's Optimizer), make nothing: run layout
 * policy @name (a file in the policy directories, enabled or not) in a
 * fresh sandbox and call its layout(state, incoming). @state: the layout
 * state document (docs/migration.md); @incoming: the VM arriving by
 * migration, NULL for a re-layout. The policy decides with
 * vshare.place(vm, node, reason) and vshare.move_memory(vm, node,
 * reason). {policy, incoming, placements: [{vm, node, reason}],
 * moves: [{vm, node, reason}], log: [..]}; NULL + @error when the policy
 * is missing, has no layout(), fails, overruns a limit or decides
 * something invalid (unknown VM or node, a VM placed on two nodes). */
JsonNode *vs_policy_layout(VsPolicyEngine *e, const char *name, JsonNode *state,
			   const char *incoming, GError **error);
/* The last @n acts (all policies): {entries: [{time, policy, act, vm,
 * from, to, cpus, value, reason, result, message}]} */
JsonNode *vs_policy_log(VsPolicyEngine *e, guint n);
/* Its families (vshare_policy_*) and samples. */
void vs_policy_metrics(VsPolicyEngine *e, VsProm *out);
/* Median wall time of one callback run, us (benchmarks). */
double vs_policy_run_us_median(VsPolicyEngine *e, const char *name);
