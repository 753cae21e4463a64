// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The worker: one thread runs jobs one at a time, so the ledger has one
 * writer and a slow guest delays only the jobs queued behind it, never the
 * main loop. A job's result returns to the loop (g_main_context_invoke),
 * which replies to the client and, when no job is left, watches the VMs
 * again.
 */
#include "vshared.h"

#include <string.h>

typedef struct {
	Daemon *d;
	JobKind kind;
	Client *client;
	char *frame;
	gsize len;
	GError *frame_error;
	char *vm;
	GBytes *reply;
} Job;

static void job_free(Job *j)
{
	if (j->client)
		client_unref(j->client);
	g_free(j->frame);
	g_clear_error(&j->frame_error);
	g_free(j->vm);
	if (j->reply)
		g_bytes_unref(j->reply);
	g_free(j);
}

/* ---- handlers (worker thread) --------------------------------------------- */

void daemon_collect(const VsEvent *ev, gpointer data)
{
	Daemon *d = data;

	if (d->event_nodes)
		g_ptr_array_add(d->event_nodes, vs_event_to_json(ev));
	if (ev->kind == VS_EV_UNDO_SKIPPED || ev->kind == VS_EV_UNDO_FAILED ||
	    ev->kind == VS_EV_FALLBACK || ev->kind == VS_EV_RECOVER)
		g_message("%s: %s", ev->vm ? ev->vm : "ledger",
			  ev->message ? ev->message : "recovery");
}

static JsonNode *outcome(Daemon *d, gboolean ok, const GError *error)
{
	JsonObject *o = json_object_new();
	JsonArray *evs = json_array_new();
	JsonNode *n = json_node_new(JSON_NODE_OBJECT);

	json_object_set_boolean_member(o, "ok", ok);
	json_object_set_string_member(
		o, "code", ok ? "ok" : vs_host_error_name(error->code));
	if (!ok)
		json_object_set_string_member(o, "message", error->message);
	json_object_set_boolean_member(o, "partial", d->session.partial);
	for (guint i = 0; i < d->event_nodes->len; i++)
		json_array_add_element(evs, json_node_ref(g_ptr_array_index(
						    d->event_nodes, i)));
	g_ptr_array_set_size(d->event_nodes, 0);
	json_object_set_array_member(o, "events", evs);
	json_node_take_object(n, o);
	return n;
}

/* The caller's deadlines for this change (1 ms .. 1 h), then ours again. */
static void deadline_arg(JsonObject *a, const char *k, int *ms, int *saved)
{
	gint64 v = json_object_has_member(a, k)
			   ? json_object_get_int_member(a, k)
			   : -1;

	*saved = *ms;
	if (v >= 1 && v <= 3600000)
		*ms = (int)v;
}

/* The audit trail: every change asked of vshared, who asked (the socket
 * peer's uid and pid), what and how it ended, in the journal. */
static void audit(Daemon *d, JsonObject *a, gboolean ok, const GError *e)
{
	g_autoptr(JsonNode) n = json_node_init_object(json_node_alloc(), a);
	g_autofree char *what = json_to_string(n, FALSE);

	if (strlen(what) > 512)
		strcpy(what + 500, " [cut]");
	g_message("change by %s: %s: %s", d->who ? d->who : "vshared", what,
		  ok  ? "done"
		  : e ? e->message
		      : "failed");
}

static JsonNode *h_change(JsonObject *a, gpointer ctx, GError **error)
{
	Daemon *d = ctx;
	g_autoptr(GError) local = NULL;
	VsChangeReq r;
	gint64 t0 = g_get_monotonic_time();
	int agent_ms, mem_ms;
	gboolean ok;

	d->session.partial = FALSE;
	deadline_arg(a, "agent-timeout-ms", &d->cfg.agent_timeout_ms,
		     &agent_ms);
	deadline_arg(a, "mem-timeout-ms", &d->cfg.mem_timeout_ms, &mem_ms);
	ok = daemon_change_request(a, &r, &local) &&
	     vs_session_change(&d->session, &r, &local);
	d->cfg.agent_timeout_ms = agent_ms;
	d->cfg.mem_timeout_ms = mem_ms;
	audit(d, a, ok, local);
	daemon_stat_add(d, ok ? "changes_ok" : "changes_failed", 1);
	if (ok) /* the next status re-emits the running observation: no stale owner */
		g_clear_pointer(&d->last_status, json_node_unref);
	if (ok && r.kind == VS_REQ_LEND) {
		daemon_stat_add(d, "lends", 1);
		daemon_stat_add(d, "lend_seconds",
				(g_get_monotonic_time() - t0) / 1e6);
	}
	return outcome(d, ok, local);
}

static JsonNode *h_recover(JsonObject *a, gpointer ctx, GError **error)
{
	Daemon *d = ctx;
	g_autoptr(GError) local = NULL;
	gboolean recovered;
	gboolean ok = vs_session_recover(&d->session, &recovered, &local);

	return outcome(d, ok, local);
}

static JsonNode *h_ledger(JsonObject *a, gpointer ctx, GError **error)
{
	Daemon *d = ctx;

	return vs_ledger_to_json(d->session.ledger);
}

static gboolean wanted(char **names, const char *name)
{
	return !names || g_strv_contains((const char *const *)names, name);
}

/* @doc with only the VMs @csv names; a name it does not have is an
 * unknown VM (USAGE, as for every other command). */
static JsonNode *filter_vms(JsonNode *doc, const char *csv, GError **error)
{
	g_auto(GStrv) names = csv ? g_strsplit(csv, ",", -1) : NULL;
	JsonNode *copy = json_node_copy(doc);
	JsonObject *o = json_node_get_object(copy);
	JsonArray *vms = json_object_get_array_member(o, "vms");
	JsonArray *keep = json_array_new();

	for (guint i = 0; i < json_array_get_length(vms); i++) {
		JsonObject *v = json_array_get_object_element(vms, i);

		if (wanted(names, json_object_get_string_member(v, "name")))
			json_array_add_element(
				keep,
				json_node_copy(json_array_get_element(vms, i)));
	}
	json_object_set_array_member(o, "vms", keep);
	for (guint k = 0; names && names[k]; k++) {
		gboolean found = FALSE;

		for (guint i = 0; i < json_array_get_length(keep) && !found;
		     i++)
			found = !g_strcmp0(
				names[k],
				json_object_get_string_member(
					json_array_get_object_element(keep, i),
					"name"));
		if (!found) {
			g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
				    "unknown VM '%s' (vsharectl list)",
				    names[k]);
			json_node_unref(copy);
			return NULL;
		}
	}
	return copy;
}

/* The last metrics tick's observation: the same data the metrics file
 * has. After a change, the observation running since that tick as it is
 * now: the ledger, the threads' pinning and throttling read again, the
 * guest's allocation as its agent confirmed it to the change (no guest is
 * asked: a busy daemon answers at once). Before the first tick, or when
 * the VMs differ from that tick's, a tick now. */
static JsonNode *h_status(JsonObject *a, gpointer ctx, GError **error)
{
	Daemon *d = ctx;
	JsonNode *doc;

	if (!d->last_status && d->obs) {
		g_auto(GStrv) names = vs_registry_list(&d->cfg, NULL);

		d->last_status = vs_observe_peek(d->obs, names);
	}
	if (!d->last_status)
		daemon_metrics_tick(d);
	doc = filter_vms(d->last_status, daemon_arg_str(a, "vms"), error);
	if (!doc)
		return NULL;
	json_object_set_array_member(json_node_get_object(doc), "reservations",
				     daemon_layout_reservations(d));
	return doc;
}

static void vm_gone(Daemon *d, const char *name);

/* Follow every registered VM: open those not open yet. A VM the ledger
 * holds whose QEMU no longer listens is gone (its exit may have raced the
 * close of its monitor, which the watch saw first). */
static void open_all(Daemon *d)
{
	g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func(g_free);
	g_auto(GStrv) names = NULL;
	gboolean listed = daemon_discover(d, gone);

	names = vs_registry_list(&d->cfg, NULL);
	/* with libvirtd answering, a ledger VM no registry entry and no
	 * running domain names (it stopped while vshared was down) is gone */
	for (guint i = 0; listed && i < d->session.ledger->vms->len; i++) {
		VsLedgerVm *v = g_ptr_array_index(d->session.ledger->vms, i);

		if (!g_strv_contains((const char *const *)names, v->name))
			g_ptr_array_add(gone, g_strdup(v->name));
	}
	for (guint i = 0; i < gone->len; i++)
		vm_gone(d, gone->pdata[i]);
	for (guint i = 0; names[i]; i++) {
		g_autoptr(GError) e = NULL;

		if (g_hash_table_contains(d->session.vms, names[i]) ||
		    vs_session_vm(&d->session, names[i], &e)) {
			if (d->known &&
			    !g_hash_table_contains(d->known, names[i])) {
				g_hash_table_add(d->known, g_strdup(names[i]));
				daemon_policy_event(d, "vm-started", names[i]);
			}
			continue;
		}
		g_debug("%s: %s", names[i], e->message);
		if (vs_error_is(e, VS_HOST_ERROR_GONE) &&
		    vs_ledger_find(d->session.ledger, names[i]))
			vm_gone(d, names[i]);
	}
}

static JsonNode *h_reload(JsonObject *a, gpointer ctx, GError **error)
{
	Daemon *d = ctx;
	JsonNode *n = json_node_new(JSON_NODE_OBJECT);
	JsonObject *o = json_object_new();
	JsonArray *vms = json_array_new();
	GHashTableIter it;
	gpointer k;

	g_clear_pointer(&d->obs, vs_observation_free);
	g_hash_table_remove_all(d->session.vms); /* registry may differ */
	open_all(d);
	g_hash_table_iter_init(&it, d->session.vms);
	while (g_hash_table_iter_next(&it, &k, NULL))
		json_array_add_string_element(vms, k);
	json_object_set_array_member(o, "vms", vms);
	json_node_take_object(n, o);
	return n;
}

/* A libvirt event names a domain; registry entries may name it
 * differently (`vsharectl add NAME --libvirt DOMAIN`). */
static void gone_domain(Daemon *d, const char *domain)
{
	g_auto(GStrv) names = vs_registry_list(&d->cfg, NULL);

	for (guint i = 0; names[i]; i++) {
		g_autoptr(VsVmConf) c =
			vs_registry_get(&d->cfg, names[i], NULL);

		if (c && c->driver == VS_DRIVER_LIBVIRT &&
		    !g_strcmp0(c->domain, domain) && strcmp(names[i], domain))
			vm_gone(d, names[i]);
	}
	vm_gone(d, domain);
}

/* A VM's QEMU went away: its pCPUs and memory go back to the pool, as a
 * journalled `forget` (docs/vsharectl.md, "VMs that stop"). */
static void vm_gone(Daemon *d, const char *name)
{
	VsChangeReq r = { .kind = VS_REQ_FORGET, .vm = name, .node = -1 };
	g_autoptr(GError) e = NULL;

	VsVm *vm = g_hash_table_lookup(d->session.vms, name);
	gboolean alive = vm && vs_vm_alive(vm);

	g_clear_pointer(&d->obs, vs_observation_free);
	g_hash_table_remove(d->session.vms, name);
	if (!alive && d->known && g_hash_table_remove(d->known, name))
		daemon_policy_event(d, "vm-stopped", name);
	if (alive) {
		g_message("%s: lost the QMP connection, QEMU still runs: "
			  "reconnecting at the next tick",
			  name);
		return;
	}
	daemon_stat_add(d, "vms_gone", 1);
	if (!vs_ledger_find(d->session.ledger, name)) {
		g_message("%s: QEMU is gone (it held nothing)", name);
		return;
	}
	if (vs_session_change(&d->session, &r, &e))
		g_message("%s: QEMU is gone: its pCPUs and memory are free "
			  "again (ledger generation %" G_GUINT64_FORMAT ")",
			  name, d->session.ledger->generation);
	else
		g_warning("%s: QEMU is gone but the ledger kept it: %s", name,
			  e->message);
	g_ptr_array_set_size(d->event_nodes, 0);
}

/* ---- plumbing ------------------------------------------------------------------- */

static gboolean job_done(gpointer data)
{
	Job *j = data;
	Daemon *d = j->d;

	if (j->client && j->reply)
		client_reply(j->client, j->reply);
	if (j->client)
		client_done(j->client);
	if (j->kind == JOB_METRICS)
		d->tick_queued = FALSE;
	if (j->kind == JOB_POLICY)
		d->policy_queued = FALSE;
	job_free(j);
	if (--d->pending == 0)
		daemon_watch_all(d);
	daemon_policy_arm(d);
	return G_SOURCE_REMOVE;
}

static void run_job(gpointer data, gpointer user_data)
{
	Job *j = data;
	Daemon *d = j->d;

	switch (j->kind) {
	case JOB_REQUEST:
		d->who = client_who(j->client);
		j->reply = vs_dispatcher_handle(d->dispatcher, j->frame, j->len,
						j->frame_error);
		d->who = NULL;
		break;
	case JOB_VM_GONE:
		gone_domain(d, j->vm);
		break;
	case JOB_METRICS:
		open_all(d);
		daemon_metrics_tick(d);
		break;
	case JOB_RELOAD:
		json_node_unref(h_reload(NULL, d, NULL));
		break;
	case JOB_POLICY:
		daemon_policy_run(d);
		break;
	case JOB_EVENT:
		daemon_policy_event(d, "vm-migrated", j->vm);
		break;
	}
	daemon_policy_after_job(d);
	g_main_context_invoke(NULL, job_done, j);
}

void daemon_job(Daemon *d, JobKind kind, Client *client, const char *frame,
		gsize len, const GError *frame_error, const char *vm)
{
	Job *j;

	if (d->stopping) { /* the worker is going away */
		g_debug("stopping: job %d not queued", kind);
		return;
	}
	j = g_new0(Job, 1);
	j->d = d;
	j->kind = kind;
	j->client = client ? client_ref(client) : NULL;
	j->frame = frame ? g_memdup2(frame, len + 1) : NULL;
	if (j->frame)
		j->frame[len] = '\0';
	j->len = len;
	j->frame_error = frame_error ? g_error_copy(frame_error) : NULL;
	j->vm = g_strdup(vm);
	if (d->pending++ == 0)
		daemon_unwatch_all(d); /* the worker owns the VMs now */
	g_thread_pool_push(d->pool, j, NULL);
}

void daemon_jobs_init(Daemon *d)
{
	d->event_nodes =
		g_ptr_array_new_with_free_func((GDestroyNotify)json_node_unref);
	d->dispatcher = vs_dispatcher_new_for(vs_host_schema_commands,
					      vs_host_schema_version);
	vs_dispatcher_register(d->dispatcher, "vshare-host-change", h_change, d,
			       NULL);
	vs_dispatcher_register(d->dispatcher, "vshare-host-recover", h_recover,
			       d, NULL);
	vs_dispatcher_register(d->dispatcher, "vshare-host-status", h_status, d,
			       NULL);
	vs_dispatcher_register(d->dispatcher, "vshare-host-ledger", h_ledger, d,
			       NULL);
	vs_dispatcher_register(d->dispatcher, "vshare-host-reload", h_reload, d,
			       NULL);
	daemon_policy_register(d);
	daemon_layout_init(d);
	daemon_transfer_register(d);
	d->pool = g_thread_pool_new(run_job, d, 1, TRUE, NULL);
}
