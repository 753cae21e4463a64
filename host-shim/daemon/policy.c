// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The Lua policy engine in vshared (docs/policies.md). Policies live in
 * the shipped directory (--policies, /usr/share/vshare/policies) and in
 * CONF/policies (the administrator's; a file of the same name wins);
 * CONF/policies.conf holds their settings and default enablement;
 * STATE/policies.json what `vsharectl policy enable|disable` chose.
 *
 * The engine runs on the worker thread only (acts are ledger changes);
 * the loop keeps one timer for the earliest due callback and queues a
 * JOB_POLICY when it fires. VM events queue their handlers the same way.
 */
#include "vshared.h"

#include <string.h>

/* ---- the engine's ops (worker) -------------------------------------- */

static JsonNode *op_state(gpointer data, GError **error)
{
	return daemon_sense(data, error);
}

static gboolean cpus_arg(const char *text, VsCpuSet *set, GError **error)
{
	if (text && vs_cpuset_parse(text, set, NULL) && vs_cpuset_count(set))
		return TRUE;
	return vs_fail(error, VS_HOST_ERROR_USAGE,
		       "cpus '%s' is not a pCPU list", text ? text : "");
}

/* One act = one change through the planner and a journalled transaction,
 * as the CLI makes it. */
static gboolean op_act(const VsPolicyAct *a, gpointer data, GError **error)
{
	Daemon *d = data;
	VsChangeReq r = { .node = -1 };
	gboolean ok;

	switch (a->kind) {
	case VS_ACT_LEND:
	case VS_ACT_RECLAIM:
		r.kind = VS_REQ_LEND;
		r.from = a->from;
		r.to = a->to;
		r.node = a->node;
		r.bytes = a->bytes;
		if (!cpus_arg(a->cpus, &r.cpus, error) ||
		    !vs_mode_parse(a->mode, &r.mode, error))
			return FALSE;
		break;
	case VS_ACT_WEIGHT:
		r.kind = VS_REQ_TUNE;
		r.vm = a->vm;
		r.weight = a->value ? a->value : -1; /* 0 is no weight */
		break;
	case VS_ACT_NICE:
		r.kind = VS_REQ_TUNE;
		r.vm = a->vm;
		r.nice = a->value;
		r.set_nice = TRUE;
		break;
	}
	d->session.partial = FALSE;
	ok = vs_session_change(&d->session, &r, error);
	g_ptr_array_set_size(d->event_nodes, 0);
	daemon_stat_add(d, ok ? "changes_ok" : "changes_failed", 1);
	if (ok)
		g_clear_pointer(&d->last_status, json_node_unref);
	return ok;
}

static void op_log(const char *policy, const char *level, const char *msg,
		   gpointer data)
{
	if (!strcmp(level, "warning"))
		g_warning("policy %s: %s", policy, msg);
	else
		g_message("policy %s: %s", policy, msg);
}

/* ---- enablement on disk ----------------------------------------------- */

static char *choices_path(Daemon *d)
{
	return g_build_filename(d->cfg.state_dir, "policies.json", NULL);
}

static void save_choices(Daemon *d)
{
	g_autoptr(JsonNode) list = vs_policy_list(d->policy);
	JsonArray *a = json_object_get_array_member(json_node_get_object(list),
						    "policies");
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(JsonNode) root = NULL;
	g_autofree char *text = NULL, *path = choices_path(d);
	g_autoptr(GError) e = NULL;

	json_builder_begin_object(b);
	for (guint on = 0; on < 2; on++) {
		json_builder_set_member_name(b, on ? "enabled" : "disabled");
		json_builder_begin_array(b);
		for (guint i = 0; i < json_array_get_length(a); i++) {
			JsonObject *p = json_array_get_object_element(a, i);

			if ((guint)json_object_get_boolean_member(
				    p, "enabled") == on)
				json_builder_add_string_value(
					b, json_object_get_string_member(
						   p, "name"));
		}
		json_builder_end_array(b);
	}
	json_builder_end_object(b);
	root = json_builder_get_root(b);
	text = json_to_string(root, TRUE);
	if (!vs_write_private(path, text, &e))
		g_warning("policies: %s", e->message);
}

static void apply_choices(Daemon *d)
{
	g_autofree char *path = choices_path(d);
	g_autofree char *text = vs_read_bounded(path, 1 << 20, NULL);
	g_autoptr(JsonParser) p = json_parser_new();
	JsonObject *o;

	if (!text || !json_parser_load_from_data(p, text, -1, NULL) ||
	    !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p)))
		return;
	o = json_node_get_object(json_parser_get_root(p));
	for (guint on = 0; on < 2; on++) {
		JsonNode *n =
			json_object_get_member(o, on ? "enabled" : "disabled");
		JsonArray *a = n && JSON_NODE_HOLDS_ARRAY(n)
				       ? json_node_get_array(n)
				       : NULL;

		for (guint i = 0; a && i < json_array_get_length(a); i++) {
			JsonNode *e = json_array_get_element(a, i);
			g_autoptr(GError) err = NULL;

			if (json_node_get_value_type(e) == G_TYPE_STRING &&
			    !vs_policy_enable(d->policy,
					      json_node_get_string(e), on,
					      &err) &&
			    on)
				g_warning("policy %s: %s",
					  json_node_get_string(e),
					  err->message);
		}
	}
}

/* ---- lifecycle ---------------------------------------------------------- */

void daemon_policy_init(Daemon *d)
{
	VsPolicyOps ops = {
		.state = op_state, .act = op_act, .log = op_log, .data = d
	};
	g_autofree char *local =
		g_build_filename(d->cfg.conf_dir, "policies", NULL);
	g_autofree char *conf =
		g_build_filename(d->cfg.conf_dir, "policies.conf", NULL);
	const char *dirs[] = { d->policy_dir, local, NULL };

	daemon_sense_init(d);
	d->known = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	d->policy_events = g_ptr_array_new_with_free_func(g_free);
	d->policy = vs_policy_engine_new(&ops, NULL);
	vs_policy_engine_set_dirs(d->policy, dirs, conf);
	vs_policy_engine_scan(d->policy);
	apply_choices(d);
	daemon_policy_after_job(d);
}

void daemon_policy_free(Daemon *d)
{
	g_clear_pointer(&d->policy, vs_policy_engine_free);
	g_clear_pointer(&d->samples, g_hash_table_destroy);
	g_clear_pointer(&d->agent_up, g_hash_table_destroy);
	g_clear_pointer(&d->known, g_hash_table_destroy);
	g_clear_pointer(&d->policy_events, g_ptr_array_unref);
	g_clear_pointer(&d->stat_prev, g_array_unref);
	g_free(d->policy_dir);
}

/* Worker: queued events first (they may change what a timer sees), then
 * due timers, then events the run itself noticed (agent-lost). */
void daemon_policy_run(Daemon *d)
{
	for (guint pass = 0; pass < 2; pass++) {
		while (d->policy_events->len) {
			g_autofree char *ev =
				g_ptr_array_steal_index(d->policy_events, 0);
			char *vm = strchr(ev, '\n');

			*vm++ = '\0';
			vs_policy_event(d->policy, ev, vm);
		}
		if (!pass)
			vs_policy_run_due(d->policy);
	}
}

/* Worker, at the end of every job: when the loop should queue the next
 * policy job (handed over with the job's result, so no lock). */
void daemon_policy_after_job(Daemon *d)
{
	if (!d->policy)
		return;
	d->policy_next = d->policy_events->len ? g_get_monotonic_time()
					       : vs_policy_next_due(d->policy);
}

/* Worker: remember an event; the next policy job runs its handlers. */
void daemon_policy_event(Daemon *d, const char *event, const char *vm)
{
	if (d->policy_events)
		g_ptr_array_add(d->policy_events,
				g_strdup_printf("%s\n%s", event, vm));
}

/* ---- the timer (loop) --------------------------------------------------- */

static gboolean on_due(gpointer data)
{
	Daemon *d = data;

	d->policy_timer = 0;
	if (!d->policy_queued) {
		d->policy_queued = TRUE;
		daemon_job(d, JOB_POLICY, NULL, NULL, 0, NULL, NULL);
	}
	return G_SOURCE_REMOVE;
}

/* After every job: one timer for the earliest due callback, or a job at
 * once when events wait. */
void daemon_policy_arm(Daemon *d)
{
	gint64 next = d->policy_next;
	gint64 ms;

	if (d->policy_timer)
		g_source_remove(d->policy_timer);
	d->policy_timer = 0;
	if (d->policy_queued || !d->policy || d->stopping)
		return;
	if (next < 0)
		return;
	ms = MAX(0, (next - g_get_monotonic_time() + 999) / 1000);
	d->policy_timer = g_timeout_add((guint)MIN(ms, 3600000), on_due, d);
}

/* ---- control-socket commands (worker) ---------------------------------- */

static const char *name_arg(JsonObject *a)
{
	return a && json_object_has_member(a, "name")
		       ? json_object_get_string_member(a, "name")
		       : NULL;
}

static JsonNode *h_list(JsonObject *a, gpointer ctx, GError **error)
{
	Daemon *d = ctx;

	return vs_policy_list(d->policy);
}

static JsonNode *h_show(JsonObject *a, gpointer ctx, GError **error)
{
	Daemon *d = ctx;

	return vs_policy_show(d->policy, name_arg(a), error);
}

static JsonNode *enable(Daemon *d, JsonObject *a, gboolean on, GError **error)
{
	if (!vs_policy_enable(d->policy, name_arg(a), on, error))
		return NULL;
	save_choices(d);
	g_message("policy %s: %s", name_arg(a), on ? "enabled" : "disabled");
	return vs_policy_show(d->policy, name_arg(a), error);
}

static JsonNode *h_enable(JsonObject *a, gpointer ctx, GError **error)
{
	return enable(ctx, a, TRUE, error);
}

static JsonNode *h_disable(JsonObject *a, gpointer ctx, GError **error)
{
	return enable(ctx, a, FALSE, error);
}

/* Reload: new and removed files, then the code of @name (or every
 * enabled policy); a file that does not compile keeps its running
 * version and the reply says why. */
static JsonNode *h_reload(JsonObject *a, gpointer ctx, GError **error)
{
	Daemon *d = ctx;

	vs_policy_engine_scan(d->policy);
	if (!vs_policy_reload(d->policy, name_arg(a), error))
		return NULL;
	save_choices(d);
	return vs_policy_list(d->policy);
}

static JsonNode *h_dry_run(JsonObject *a, gpointer ctx, GError **error)
{
	Daemon *d = ctx;

	return vs_policy_dry_run(d->policy, name_arg(a), error);
}

static JsonNode *h_log(JsonObject *a, gpointer ctx, GError **error)
{
	Daemon *d = ctx;
	gint64 n = a && json_object_has_member(a, "count")
			   ? json_object_get_int_member(a, "count")
			   : 50;

	return vs_policy_log(d->policy, (guint)CLAMP(n, 1, 1000));
}

void daemon_policy_register(Daemon *d)
{
	static const struct {
		const char *name;
		VsHandler fn;
	} cmds[] = {
		{ "vshare-host-policy-list", h_list },
		{ "vshare-host-policy-show", h_show },
		{ "vshare-host-policy-enable", h_enable },
		{ "vshare-host-policy-disable", h_disable },
		{ "vshare-host-policy-reload", h_reload },
		{ "vshare-host-policy-dry-run", h_dry_run },
		{ "vshare-host-policy-log", h_log },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cmds); i++)
		vs_dispatcher_register(d->dispatcher, cmds[i].name, cmds[i].fn,
				       d, NULL);
}
