// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Policies as files: found in the directories (later ones override a
 * name), loaded when enabled, run when their timers are due, disabled
 * when they fault (error, instruction budget, memory) with one log line;
 * the others carry on. A reload that does not compile keeps the running
 * version. Every act is kept in a bounded log with its reason.
 */
#include "policy-int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern const char vs_policy_prelude[];

static const char *const act_names[] = {
	[VS_ACT_LEND] = "lend",
	[VS_ACT_RECLAIM] = "reclaim",
	[VS_ACT_WEIGHT] = "set_weight",
	[VS_ACT_NICE] = "set_nice",
};

const char *vs_act_kind_name(VsActKind k)
{
	return k < G_N_ELEMENTS(act_names) ? act_names[k] : "?";
}

char *vs_policy_cut(const char *text)
{
	gsize len = strlen(text);
	const char *end;

	if (len <= VS_POLICY_LINE_MAX + 64) /* a cut text stays as it is */
		return g_strdup(text);
	end = g_utf8_find_prev_char(text, text + VS_POLICY_LINE_MAX + 1);
	if (!end || !g_utf8_validate(text, end - text, NULL))
		end = text + VS_POLICY_LINE_MAX;
	return g_strdup_printf("%.*s [cut: %zu more bytes]", (int)(end - text),
			       text, len - (gsize)(end - text));
}

gboolean vs_policy_out(VsPolicy *p, gsize bytes)
{
	if (p->out_items >= VS_POLICY_OUT_ITEMS ||
	    p->out_bytes + bytes > VS_POLICY_OUT_BYTES) {
		p->out_cut++;
		return FALSE;
	}
	p->out_items++;
	p->out_bytes += bytes;
	return TRUE;
}

char *vs_policy_out_marker(VsPolicy *p)
{
	if (!p->out_cut)
		return NULL;
	return g_strdup_printf("[output cut: %u more entries over the cap of "
			       "%d entries or %d bytes]",
			       p->out_cut, VS_POLICY_OUT_ITEMS,
			       VS_POLICY_OUT_BYTES);
}

void vs_policy_say(VsPolicy *p, const char *level, const char *fmt, ...)
{
	g_autofree char *full = NULL;
	g_autofree char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	full = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	msg = vs_policy_cut(full);
	if (p->dry) {
		g_autoptr(JsonNode) n = NULL;

		if (!vs_policy_out(p, strlen(msg)))
			return;
		n = json_node_new(JSON_NODE_VALUE);
		json_node_set_string(n, msg);
		g_ptr_array_add(p->dry_acts, json_node_ref(n));
		return;
	}
	if (p->L && !p->loading && ++p->said > VS_POLICY_LINES_RUN) {
		p->unsaid++;
		return;
	}
	if (p->e->ops.log)
		p->e->ops.log(p->name, level, msg, p->e->ops.data);
}

/* ---- one policy ----------------------------------------------------------- */

static void unschedule(VsPolicy *p)
{
	for (guint i = 0; p->handlers && i < p->handlers->len; i++)
		g_free(g_array_index(p->handlers, VsHandler, i).event);
	if (p->handlers)
		g_array_set_size(p->handlers, 0);
	if (p->timers)
		g_array_set_size(p->timers, 0);
}

static void policy_unload(VsPolicy *p)
{
	unschedule(p);
	vs_sandbox_close(p);
}

static void policy_free(gpointer data)
{
	VsPolicy *p = data;

	policy_unload(p);
	g_array_free(p->handlers, TRUE);
	g_array_free(p->timers, TRUE);
	g_array_free(p->run_us, TRUE);
	if (p->dry_acts)
		g_ptr_array_free(p->dry_acts, TRUE);
	vs_layout_run_free(p->layout);
	g_free(p->name);
	g_free(p->path);
	g_free(p->origin);
	g_free(p->source);
	g_free(p->error);
	g_free(p);
}

static VsPolicy *policy_new(VsPolicyEngine *e, const char *name,
			    const char *path, const char *origin)
{
	VsPolicy *p = g_new0(VsPolicy, 1);

	p->e = e;
	p->name = g_strdup(name);
	p->path = g_strdup(path);
	p->origin = g_strdup(origin);
	p->timers = g_array_new(FALSE, FALSE, sizeof(VsTimer));
	p->handlers = g_array_new(FALSE, FALSE, sizeof(VsHandler));
	p->run_us = g_array_new(FALSE, FALSE, sizeof(double));
	return p;
}

/* Compile and run @source's top level in a fresh state. */
static gboolean policy_load_source(VsPolicy *p, const char *source,
				   GError **error)
{
	g_autofree char *msg = NULL;
	g_autofree char *chunk = g_strdup_printf("@%s.lua", p->name);

	if (!vs_sandbox_open(p, error))
		return FALSE;
	p->loading = TRUE;
	if (luaL_loadbufferx(p->L, vs_policy_prelude, strlen(vs_policy_prelude),
			     "=prelude", "t") != LUA_OK ||
	    !vs_sandbox_call(p, 0, &msg)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "prelude: %s",
			    msg ? msg : lua_tostring(p->L, -1));
		goto fail;
	}
	if (luaL_loadbufferx(p->L, source, strlen(source), chunk, "t") !=
	    LUA_OK) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s",
			    lua_tostring(p->L, -1));
		goto fail;
	}
	if (!vs_sandbox_call(p, 0, &msg)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s", msg);
		goto fail;
	}
	p->loading = FALSE;
	return TRUE;
fail:
	p->loading = FALSE;
	policy_unload(p);
	return FALSE;
}

/* A regular file of at most @max bytes, not a link (a FIFO or a device in
 * the policy directory must not block the worker). libvshare-host has the
 * same rule (vs_read_bounded); this library may not depend on it. */
char *vs_policy_read_file(const char *path, gsize max, gsize *len,
			  GError **error)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK |
				    O_NOCTTY);
	g_autoptr(GString) s = NULL;
	struct stat st;
	char buf[8192];
	ssize_t n;

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int saved = fd < 0 ? errno : 0;

		if (fd >= 0)
			close(fd);
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "%s: %s", path,
			    saved ? g_strerror(saved) : "not a regular file");
		return NULL;
	}
	s = g_string_new(NULL);
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || s->len + n > max) {
			close(fd);
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
				    "%s: %s", path,
				    n < 0 ? g_strerror(errno) : "too large");
			return NULL;
		}
		g_string_append_len(s, buf, n);
	}
	close(fd);
	*len = s->len;
	return g_string_free(g_steal_pointer(&s), FALSE);
}

static char *read_source(VsPolicy *p, GError **error)
{
	char *text = NULL;
	gsize len;

	text = vs_policy_read_file(p->path, 1024 * 1024, &len, error);
	if (!text)
		return NULL;
	if (strlen(text) != len) {
		g_free(text);
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "%s: not a text file under 1 MiB", p->path);
		return NULL;
	}
	return text;
}

/* Load the file; on failure the previous state (if any) keeps running. */
static gboolean policy_load(VsPolicy *p, GError **error)
{
	g_autofree char *text = read_source(p, error);
	VsPolicy *fresh;

	if (!text)
		return FALSE;
	fresh = policy_new(p->e, p->name, p->path, p->origin);
	if (!policy_load_source(fresh, text, error)) {
		policy_free(fresh);
		return FALSE;
	}
	policy_unload(p);
	/* take the fresh state and schedule */
	p->L = fresh->L;
	*(VsPolicy **)lua_getextraspace(p->L) = p;
	lua_setallocf(p->L, lua_getallocf(p->L, NULL), p);
	p->mem = fresh->mem;
	p->mem_peak = fresh->mem_peak;
	g_array_append_vals(p->timers, fresh->timers->data, fresh->timers->len);
	g_array_append_vals(p->handlers, fresh->handlers->data,
			    fresh->handlers->len);
	g_array_set_size(fresh->handlers, 0); /* events moved, not freed */
	fresh->L = NULL;
	policy_free(fresh);
	g_free(p->source);
	p->source = g_steal_pointer(&text);
	g_clear_pointer(&p->error, g_free);
	return TRUE;
}

static void fault(VsPolicy *p, const char *msg)
{
	p->faults++;
	g_free(p->error);
	p->error = vs_policy_cut(msg);
	p->enabled = FALSE;
	policy_unload(p);
	vs_policy_say(p, "warning", "disabled: %s", msg);
}

static void note_run(VsPolicy *p, gint64 t0)
{
	double us = (double)(g_get_monotonic_time() - t0);

	p->runs++;
	p->run_us_sum += us;
	if (p->run_us->len < VS_POLICY_RUNS_KEPT)
		g_array_append_val(p->run_us, us);
	else
		g_array_index(p->run_us, double, p->run_next) = us;
	p->run_next = (p->run_next + 1) % VS_POLICY_RUNS_KEPT;
}

/* The budget across all of @p's timers and handlers: at most
 * VS_POLICY_WINDOW_RUNS full runs' instructions per window; over it, runs
 * are skipped (one log line per window) until the window ends. */
static gboolean window_allows(VsPolicy *p)
{
	VsPolicyEngine *e = p->e;
	gint64 now = e->ops.now(e->ops.data);
	guint64 cap = e->lim.instructions * VS_POLICY_WINDOW_RUNS;

	if (now - p->window_start >= VS_POLICY_WINDOW_US ||
	    now < p->window_start) {
		p->window_start = now;
		p->window_used = 0;
		p->window_said = FALSE;
	}
	if (p->window_used < cap)
		return TRUE;
	p->skipped++;
	if (!p->window_said)
		vs_policy_say(p, "warning",
			      "over its budget of %" G_GUINT64_FORMAT
			      " instructions in %d s: runs skipped for "
			      "%.1f s",
			      cap, (int)(VS_POLICY_WINDOW_US / G_USEC_PER_SEC),
			      (p->window_start + VS_POLICY_WINDOW_US - now) /
				      1e6);
	p->window_said = TRUE;
	return FALSE;
}

/* Call the registry function @ref with @arg (may be NULL). FALSE: @p was
 * unloaded (a fault). */
static gboolean policy_call(VsPolicy *p, int ref, const char *arg)
{
	g_autofree char *msg = NULL;
	gint64 t0 = g_get_monotonic_time();
	gboolean ok;

	if (g_atomic_int_get(&p->e->interrupted))
		return FALSE;
	if (!window_allows(p))
		return TRUE;
	p->said = p->unsaid = 0;
	lua_rawgeti(p->L, LUA_REGISTRYINDEX, ref);
	if (arg)
		lua_pushstring(p->L, arg);
	ok = vs_sandbox_call(p, arg ? 1 : 0, &msg);
	p->window_used += p->used;
	note_run(p, t0);
	if (p->unsaid) {
		guint n = p->unsaid;

		p->said = 0;
		vs_policy_say(p, "warning",
			      "%u more log lines of this run not logged (at "
			      "most %d per run)",
			      n, VS_POLICY_LINES_RUN);
	}
	if (!ok && !g_atomic_int_get(&p->e->interrupted))
		fault(p, msg);
	return ok;
}

void vs_policy_engine_interrupt(VsPolicyEngine *e)
{
	g_atomic_int_set(&e->interrupted, 1);
}

/* ---- the engine --------------------------------------------------------- */

static gint64 default_now(gpointer data)
{
	return g_get_monotonic_time();
}

static gint64 default_wall(gpointer data)
{
	return g_get_real_time();
}

VsPolicyEngine *vs_policy_engine_new(const VsPolicyOps *ops,
				     const VsPolicyLimits *limits)
{
	VsPolicyEngine *e = g_new0(VsPolicyEngine, 1);

	e->ops = *ops;
	if (!e->ops.now)
		e->ops.now = default_now;
	if (!e->ops.wall)
		e->ops.wall = default_wall;
	e->lim = limits ? *limits
			: (VsPolicyLimits){ VS_POLICY_DEFAULT_INSTRUCTIONS,
					    VS_POLICY_DEFAULT_MEMORY,
					    VS_POLICY_DEFAULT_MIN_INTERVAL };
	e->policies = g_ptr_array_new_with_free_func(policy_free);
	g_queue_init(&e->log);
	return e;
}

void vs_policy_engine_free(VsPolicyEngine *e)
{
	if (!e)
		return;
	g_ptr_array_free(e->policies, TRUE);
	g_queue_clear_full(&e->log, (GDestroyNotify)json_node_unref);
	g_clear_pointer(&e->state, json_node_unref);
	g_strfreev(e->dirs);
	g_free(e->config_path);
	if (e->config)
		g_key_file_free(e->config);
	g_free(e);
}

static VsPolicy *find(VsPolicyEngine *e, const char *name)
{
	for (guint i = 0; i < e->policies->len; i++) {
		VsPolicy *p = e->policies->pdata[i];

		if (!strcmp(p->name, name))
			return p;
	}
	return NULL;
}

static VsPolicy *find_or_fail(VsPolicyEngine *e, const char *name,
			      GError **error)
{
	VsPolicy *p = name ? find(e, name) : NULL;

	if (!p)
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
			    "no policy named '%s' (vsharectl policy list)",
			    name ? name : "");
	return p;
}

void vs_policy_engine_set_dirs(VsPolicyEngine *e, const char *const *dirs,
			       const char *config)
{
	g_strfreev(e->dirs);
	e->dirs = g_strdupv((char **)dirs);
	g_free(e->config_path);
	e->config_path = g_strdup(config);
}

static gboolean name_ok(const char *n)
{
	gsize len = strlen(n);

	if (!len || len > 64)
		return FALSE;
	for (; *n; n++)
		if (!g_ascii_isalnum(*n) && !strchr("_-.", *n))
			return FALSE;
	return TRUE;
}

/* name -> path, the last directory winning. */
static GHashTable *discover(VsPolicyEngine *e, GHashTable *origin)
{
	GHashTable *found =
		g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);

	for (guint d = 0; e->dirs && e->dirs[d]; d++) {
		g_autoptr(GDir) dir = g_dir_open(e->dirs[d], 0, NULL);
		const char *f;

		while (dir && (f = g_dir_read_name(dir))) {
			g_autofree char *name = NULL;

			if (!g_str_has_suffix(f, ".lua"))
				continue;
			name = g_strndup(f, strlen(f) - 4);
			if (!name_ok(name))
				continue;
			g_hash_table_insert(origin, g_strdup(name),
					    g_strdup(d ? "local" : "shipped"));
			g_hash_table_insert(
				found, g_steal_pointer(&name),
				g_build_filename(e->dirs[d], f, NULL));
		}
	}
	return found;
}

static void read_config(VsPolicyEngine *e)
{
	g_autoptr(GError) err = NULL;
	g_autofree char *text = NULL;
	GKeyFile *kf = g_key_file_new();
	gsize len = 0;

	if (e->config)
		g_key_file_free(e->config);
	e->config = NULL;
	if (!e->config_path ||
	    !g_file_test(e->config_path, G_FILE_TEST_EXISTS)) {
		g_key_file_free(kf);
		return;
	}
	text = vs_policy_read_file(e->config_path, 1024 * 1024, &len, &err);
	if (!text ||
	    !g_key_file_load_from_data(kf, text, len, G_KEY_FILE_NONE, &err)) {
		if (e->ops.log)
			e->ops.log("-", "warning", err->message, e->ops.data);
		g_key_file_free(kf);
		return;
	}
	e->config = kf;
}

static gint by_name(gconstpointer a, gconstpointer b)
{
	const VsPolicy *x = *(VsPolicy *const *)a;
	const VsPolicy *y = *(VsPolicy *const *)b;

	return strcmp(x->name, y->name);
}

/* Follow the files: new ones appear (enabled if policies.conf says so),
 * removed ones go, moved ones reload. */
void vs_policy_engine_scan(VsPolicyEngine *e)
{
	g_autoptr(GHashTable) origin =
		g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	g_autoptr(GHashTable) found = discover(e, origin);
	GHashTableIter it;
	gpointer k, v;

	read_config(e);
	for (guint i = e->policies->len; i-- > 0;) {
		VsPolicy *p = e->policies->pdata[i];

		if (!g_hash_table_contains(found, p->name))
			g_ptr_array_remove_index(e->policies, i);
	}
	g_hash_table_iter_init(&it, found);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		VsPolicy *p = find(e, k);

		if (p && !strcmp(p->path, v))
			continue;
		if (!p) {
			p = policy_new(e, k, v, g_hash_table_lookup(origin, k));
			p->enabled = e->config &&
				     g_key_file_get_boolean(e->config, k,
							    "enabled", NULL);
			g_ptr_array_add(e->policies, p);
		}
		g_free(p->path);
		p->path = g_strdup(v);
		g_free(p->origin);
		p->origin = g_strdup(g_hash_table_lookup(origin, k));
		policy_unload(p);
	}
	g_ptr_array_sort(e->policies, by_name);
	for (guint i = 0; i < e->policies->len; i++) {
		VsPolicy *p = e->policies->pdata[i];
		g_autoptr(GError) err = NULL;

		if (p->enabled && !p->L && !policy_load(p, &err)) {
			g_free(p->error);
			p->error = g_strdup(err->message);
			vs_policy_say(p, "warning", "not loaded: %s",
				      err->message);
		}
	}
}

gboolean vs_policy_reload(VsPolicyEngine *e, const char *name, GError **error)
{
	gboolean ok = TRUE;

	read_config(e);
	for (guint i = 0; i < e->policies->len; i++) {
		VsPolicy *p = e->policies->pdata[i];
		g_autoptr(GError) err = NULL;

		if (name && strcmp(p->name, name))
			continue;
		if (!name && !p->enabled)
			continue;
		if (policy_load(p, &err)) {
			p->enabled = TRUE;
			continue;
		}
		vs_policy_say(p, "warning", "reload failed, %s: %s",
			      p->L ? "the previous version keeps running"
				   : "not running",
			      err->message);
		if (ok)
			g_propagate_prefixed_error(
				error, g_steal_pointer(&err),
				"%s: %s: ", p->name,
				p->L ? "kept the running version"
				     : "not loaded");
		ok = FALSE;
	}
	if (name && !find(e, name))
		return find_or_fail(e, name, error) != NULL;
	return ok;
}

gboolean vs_policy_enable(VsPolicyEngine *e, const char *name, gboolean on,
			  GError **error)
{
	VsPolicy *p = find_or_fail(e, name, error);

	if (!p)
		return FALSE;
	if (!on) {
		p->enabled = FALSE;
		policy_unload(p);
		return TRUE;
	}
	if (!p->L && !policy_load(p, error)) {
		g_free(p->error);
		p->error = g_strdup((*error)->message);
		return FALSE;
	}
	p->enabled = TRUE;
	return TRUE;
}

char **vs_policy_enabled_names(VsPolicyEngine *e)
{
	GPtrArray *a = g_ptr_array_new();

	for (guint i = 0; i < e->policies->len; i++) {
		VsPolicy *p = e->policies->pdata[i];

		if (p->enabled)
			g_ptr_array_add(a, g_strdup(p->name));
	}
	g_ptr_array_add(a, NULL);
	return (char **)g_ptr_array_free(a, FALSE);
}

/* ---- running ------------------------------------------------------------ */

gint64 vs_policy_next_due(VsPolicyEngine *e)
{
	gint64 next = -1;

	for (guint i = 0; i < e->policies->len; i++) {
		VsPolicy *p = e->policies->pdata[i];

		for (guint t = 0; p->L && t < p->timers->len; t++) {
			gint64 n = g_array_index(p->timers, VsTimer, t).next_us;

			if (next < 0 || n < next)
				next = n;
		}
	}
	return next;
}

static void end_run(VsPolicyEngine *e)
{
	g_clear_pointer(&e->state, json_node_unref);
	e->state_tried = FALSE;
}

void vs_policy_run_due(VsPolicyEngine *e)
{
	gint64 now = e->ops.now(e->ops.data);

	for (guint i = 0; i < e->policies->len; i++) {
		VsPolicy *p = e->policies->pdata[i];

		for (guint t = 0; p->L && t < p->timers->len; t++) {
			VsTimer *tm = &g_array_index(p->timers, VsTimer, t);
			gint64 step = (gint64)(tm->interval * 1e6);

			if (tm->next_us > now)
				continue;
			tm->next_us += step;
			if (tm->next_us <= now) /* late: no burst */
				tm->next_us = now + step;
			if (!policy_call(p, tm->ref, NULL))
				break; /* p unloaded, or interrupted */
		}
	}
	end_run(e);
}

void vs_policy_event(VsPolicyEngine *e, const char *event, const char *vm)
{
	for (guint i = 0; i < e->policies->len; i++) {
		VsPolicy *p = e->policies->pdata[i];

		for (guint h = 0; p->L && h < p->handlers->len; h++) {
			VsHandler *hd =
				&g_array_index(p->handlers, VsHandler, h);

			if (!strcmp(hd->event, event) &&
			    !policy_call(p, hd->ref, vm))
				break;
		}
	}
	end_run(e);
}

/* ---- dry run ---------------------------------------------------------- */

/* A fresh state of the same file (the running one keeps its counters),
 * `vshare.dry_run` true, each every() callback once; acts are recorded,
 * not made; log lines are kept with them, in order. */
JsonNode *vs_policy_dry_run(VsPolicyEngine *e, const char *name, GError **error)
{
	VsPolicy *live = find_or_fail(e, name, error);
	g_autofree char *text = NULL;
	g_autofree char *msg = NULL;
	g_autofree char *marker = NULL;
	g_autofree char *cut = NULL;
	VsPolicy *p;
	JsonArray *out;
	JsonNode *n;

	if (!live)
		return NULL;
	p = policy_new(e, live->name, live->path, live->origin);
	p->dry = TRUE;
	p->dry_acts =
		g_ptr_array_new_with_free_func((GDestroyNotify)json_node_unref);
	text = read_source(p, error);
	if (!text || !policy_load_source(p, text, error)) {
		policy_free(p);
		return NULL;
	}
	for (guint t = 0; t < p->timers->len && !msg; t++) {
		lua_rawgeti(p->L, LUA_REGISTRYINDEX,
			    g_array_index(p->timers, VsTimer, t).ref);
		vs_sandbox_call(p, 0, &msg);
	}
	end_run(e);
	out = json_array_new();
	for (guint i = 0; i < p->dry_acts->len; i++)
		json_array_add_element(out,
				       json_node_ref(p->dry_acts->pdata[i]));
	marker = vs_policy_out_marker(p);
	if (marker)
		json_array_add_string_element(out, marker);
	n = json_node_new(JSON_NODE_OBJECT);
	json_node_take_object(n, json_object_new());
	json_object_set_array_member(json_node_get_object(n), "acts", out);
	if (msg)
		json_object_set_string_member(json_node_get_object(n), "error",
					      cut = vs_policy_cut(msg));
	policy_free(p);
	return n;
}

/* ---- layout ------------------------------------------------------------ */

/* NAME's file: the known policy's, else the last directory holding it
 * (a layout policy need not be enabled, nor scanned yet). */
static char *layout_path(VsPolicyEngine *e, const char *name, GError **error)
{
	VsPolicy *known = name ? find(e, name) : NULL;
	guint n = e->dirs ? g_strv_length(e->dirs) : 0;

	if (known)
		return g_strdup(known->path);
	for (guint d = n; name && name_ok(name) && d-- > 0;) {
		g_autofree char *f = g_strdup_printf("%s.lua", name);
		g_autofree char *path = g_build_filename(e->dirs[d], f, NULL);

		if (g_file_test(path, G_FILE_TEST_IS_REGULAR))
			return g_steal_pointer(&path);
	}
	g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
		    "no layout policy named '%s' in the policy directories",
		    name ? name : "");
	return NULL;
}

static VsPolicy *layout_policy(VsPolicyEngine *e, const char *name,
			       JsonNode *state, GError **error)
{
	g_autofree char *path = layout_path(e, name, error);
	g_autofree char *text = NULL;
	VsPolicy *p;

	if (!path)
		return NULL;
	p = policy_new(e, name, path, "layout");
	p->dry = TRUE; /* log lines are kept for the result */
	p->dry_acts =
		g_ptr_array_new_with_free_func((GDestroyNotify)json_node_unref);
	text = read_source(p, error);
	if (!text || !policy_load_source(p, text, error)) {
		g_prefix_error(error, "layout policy %s: ", name);
		policy_free(p);
		return NULL;
	}
	p->layout = vs_layout_run_new(state);
	return p;
}

JsonNode *vs_policy_layout(VsPolicyEngine *e, const char *name, JsonNode *state,
			   const char *incoming, GError **error)
{
	g_autofree char *msg = NULL;
	VsPolicy *p;
	JsonNode *n;

	if (!state || !JSON_NODE_HOLDS_OBJECT(state)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "layout: the state document is not an object");
		return NULL;
	}
	p = layout_policy(e, name, state, error);
	if (!p)
		return NULL;
	if (!vs_layout_call(p, incoming, &msg)) {
		g_autofree char *cut = vs_policy_cut(msg);

		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
			    "layout policy %s: %s", name, cut);
		policy_free(p);
		return NULL;
	}
	n = vs_layout_result(p);
	if (incoming)
		json_object_set_string_member(json_node_get_object(n),
					      "incoming", incoming);
	policy_free(p);
	return n;
}
