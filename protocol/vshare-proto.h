/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libvshare-proto: the vshare wire protocol (QEMU Guest Agent framing).
 *
 * Shared by vshare-agent (server) and vsharectl (client). Every command is
 * declared once in protocol/schema.json; gen-schema.py turns it into
 * vs_schema_commands[] and docs/protocol.md.
 *
 * Error convention (as QEMU's error.h): a GError ** is the last argument;
 * functions return FALSE / NULL on failure and set it.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define VS_MAX_FRAME (64 * 1024)
#define VS_MAX_DEPTH 64
#define VS_MAX_CPUS  8192
#define VS_SENTINEL  0xFF

/* ---- errors -------------------------------------------------------- */

#define VS_ERROR (vs_error_quark())
GQuark vs_error_quark(void);

typedef enum {
	VS_ERROR_GENERIC,	    /* "GenericError" */
	VS_ERROR_COMMAND_NOT_FOUND, /* "CommandNotFound" */
} VsErrorCode;

const char *vs_error_class(const GError *error);

/* ---- CPU / node sets ----------------------------------------------- */

typedef struct {
	guint64 bits[VS_MAX_CPUS / 64];
} VsCpuSet;

gboolean vs_cpuset_parse(const char *text, VsCpuSet *set, GError **error);
char *vs_cpuset_format(const VsCpuSet *set);
char *vs_cpuset_format_mask(const VsCpuSet *set);
gboolean vs_cpuset_parse_mask(const char *text, VsCpuSet *set, GError **error);
void vs_cpuset_clear(VsCpuSet *set);
void vs_cpuset_add(VsCpuSet *set, guint cpu);
gboolean vs_cpuset_has(const VsCpuSet *set, guint cpu);
guint vs_cpuset_count(const VsCpuSet *set);
gboolean vs_cpuset_is_subset(const VsCpuSet *sub, const VsCpuSet *super);
gboolean vs_cpuset_equal(const VsCpuSet *a, const VsCpuSet *b);
void vs_cpuset_and(VsCpuSet *dst, const VsCpuSet *a, const VsCpuSet *b);
/* First element of @set not in @super, or -1. */
int vs_cpuset_first_outside(const VsCpuSet *set, const VsCpuSet *super);

/* ---- framing ------------------------------------------------------- */

/*
 * Splits a byte stream into JSON objects by brace matching (strings and
 * escapes aware), as qemu-ga's JSON streamer does, so requests need not be
 * newline terminated. 0xFF resets. Frames over max_frame bytes or deeper
 * than VS_MAX_DEPTH, and stray bytes between objects, are reported once
 * through the callback with @error set; the framer then discards input up to
 * the next newline or 0xFF.
 */
typedef void (*VsFrameFunc)(const char *frame, gsize len, const GError *error,
			    gpointer user_data);
typedef struct VsFramer VsFramer;

VsFramer *vs_framer_new(gsize max_frame, VsFrameFunc func, gpointer user_data);
void vs_framer_free(VsFramer *framer);
void vs_framer_feed(VsFramer *framer, const guint8 *buf, gsize len);
void vs_framer_reset(VsFramer *framer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VsFramer, vs_framer_free)

/* ---- schema -------------------------------------------------------- */

typedef enum {
	VS_TYPE_INT,
	VS_TYPE_STR,
	VS_TYPE_BOOL,
	VS_TYPE_CPULIST,
	VS_TYPE_VCPUS,	/* [{"logical-id": int, "online": bool, ...}] */
	VS_TYPE_OBJECT, /* a JSON object: its handler checks the members */
	VS_TYPE_ARRAY,	/* a JSON array: its handler checks the elements */
} VsArgType;

typedef struct {
	const char *name;
	VsArgType type;
	gboolean optional;
} VsArgSpec;

typedef struct {
	const char *name;
	const VsArgSpec *args;
	gboolean sentinel; /* reply preceded by 0xFF */
} VsCommandSpec;

extern const VsCommandSpec vs_schema_commands[];
extern const char vs_schema_version[];

const VsCommandSpec *vs_schema_lookup(const char *name);

/* Check @arguments (may be NULL) against @spec: unknown, missing and
 * mistyped parameters are GenericError with QEMU's wording. */
gboolean vs_args_validate(const VsCommandSpec *spec, JsonObject *arguments,
			  GError **error);

/* ---- requests and replies ------------------------------------------ */

typedef struct {
	char *execute;
	JsonObject *arguments; /* never NULL after parse */
	JsonNode *id;	       /* NULL when absent */
} VsRequest;

VsRequest *vs_request_parse(const char *frame, gsize len, GError **error);
void vs_request_free(VsRequest *req);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VsRequest, vs_request_free)

/* Serialise a reply line (terminated by '\n'). @ret is consumed. */
char *vs_reply_return(JsonNode *ret, JsonNode *id);
char *vs_reply_error(const GError *error, JsonNode *id);
/* Request line for a client. @arguments may be NULL; consumed. */
char *vs_request_build(const char *execute, JsonObject *arguments, gint64 id);

/* ---- dispatch ------------------------------------------------------ */

/* A handler gets validated arguments; returns the "return" value (a new
 * node; NULL with @error set on failure). */
typedef JsonNode *(*VsHandler)(JsonObject *args, gpointer ctx, GError **error);

typedef struct VsDispatcher VsDispatcher;

VsDispatcher *vs_dispatcher_new(const char *version);
/* A dispatcher over another schema's table (vshared's control socket). */
VsDispatcher *vs_dispatcher_new_for(const VsCommandSpec *table,
				    const char *version);
void vs_dispatcher_free(VsDispatcher *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VsDispatcher, vs_dispatcher_free)

/* Bind a handler to a schema command. FALSE if the name is not in the
 * schema. guest-sync, guest-sync-delimited, guest-ping and guest-info are
 * built in. */
gboolean vs_dispatcher_register(VsDispatcher *d, const char *name,
				VsHandler handler, gpointer ctx,
				GError **error);
/* Names of schema commands with no handler (NULL-terminated; free with
 * g_strfreev). */
char **vs_dispatcher_unbound(VsDispatcher *d);
/* --allow-rpcs / --block-rpcs: comma separated lists. Unknown names are an
 * error. */
gboolean vs_dispatcher_allow_only(VsDispatcher *d, const char *csv,
				  GError **error);
gboolean vs_dispatcher_block(VsDispatcher *d, const char *csv, GError **error);
gboolean vs_dispatcher_is_enabled(VsDispatcher *d, const char *name);

/* Handle one frame (or a framing error) and return the bytes to send. */
GBytes *vs_dispatcher_handle(VsDispatcher *d, const char *frame, gsize len,
			     const GError *frame_error);

/* ---- small helpers shared by agent and shim ------------------------ */

/* Read a whole (small) file; strips one trailing newline. */
char *vs_read_file(const char *path, GError **error);
/* Write @text to an existing file in one write(2). */
gboolean vs_write_file(const char *path, const char *text, GError **error);

/* Field @n of /proc/@pid/stat, numbered as in proc(5) (3 = state, 9 =
 * flags, 22 = starttime); FALSE when the task is gone. */
gboolean vs_task_stat_field(int pid, guint n, guint64 *value);

/* A set of tasks, not of pids: each pid is kept with a pidfd (or, where
 * none can be had, its start time), so a pid the kernel gives to a new
 * task is not taken for the old one. */
typedef struct VsTaskSet VsTaskSet;
VsTaskSet *vs_task_set_new(void);
void vs_task_set_free(VsTaskSet *set);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VsTaskSet, vs_task_set_free)
void vs_task_set_add(VsTaskSet *set, int pid);
/* TRUE if @pid is still the task that was added; a pid whose task exited
 * or was reused is forgotten. */
gboolean vs_task_set_contains(VsTaskSet *set, int pid);
/* Forget every pid that is not in @pids (an array of int) and every task
 * that exited (one poll() for all the pidfds). */
void vs_task_set_prune(VsTaskSet *set, const GArray *pids);
/* @pid as of the last prune, without looking at the task again: for a
 * loop over the pids just listed and pruned with. */
gboolean vs_task_set_has(VsTaskSet *set, int pid);
guint vs_task_set_size(VsTaskSet *set);

G_END_DECLS
