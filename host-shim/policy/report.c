// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * What the engine tells: the act log (every act with its reason and
 * result), the policy list, one policy, a dry run, Prometheus lines.
 */
#include "policy-int.h"

#include <string.h>

static JsonObject *act_object(const VsPolicy *p, const VsPolicyAct *a)
{
	JsonObject *o = json_object_new();

	json_object_set_string_member(o, "policy", p->name);
	json_object_set_string_member(o, "act", vs_act_kind_name(a->kind));
	if (a->vm)
		json_object_set_string_member(o, "vm", a->vm);
	if (a->from)
		json_object_set_string_member(o, "from", a->from);
	if (a->to)
		json_object_set_string_member(o, "to", a->to);
	if (a->cpus)
		json_object_set_string_member(o, "cpus", a->cpus);
	if (a->node >= 0) {
		json_object_set_int_member(o, "node", a->node);
		json_object_set_int_member(o, "bytes", (gint64)a->bytes);
	}
	if (a->mode)
		json_object_set_string_member(o, "mode", a->mode);
	if (a->kind == VS_ACT_WEIGHT || a->kind == VS_ACT_NICE)
		json_object_set_int_member(o, "value", a->value);
	json_object_set_string_member(o, "reason", a->reason);
	return o;
}

static const char *result_of(const GError *err)
{
	if (!err)
		return "ok";
	/* VS_HOST_ERROR_USAGE / REFUSED (1, 2): the planner said no */
	return err->code == 1 || err->code == 2 ? "refused" : "failed";
}

void vs_policy_record(VsPolicy *p, const VsPolicyAct *a, const GError *err)
{
	VsPolicyEngine *e = p->e;
	JsonObject *o = act_object(p, a);
	JsonNode *n = json_node_new(JSON_NODE_OBJECT);
	const char *res = p->dry ? "dry-run" : result_of(err);
	g_autofree char *what = NULL;

	json_object_set_int_member(o, "time-us", e->ops.wall(e->ops.data));
	json_object_set_string_member(o, "result", res);
	if (err)
		json_object_set_string_member(o, "message", err->message);
	json_node_take_object(n, o);
	if (p->dry) {
		if (vs_policy_out(p, strlen(a->reason ? a->reason : "") + 128))
			g_ptr_array_add(p->dry_acts, n);
		else
			json_node_unref(n);
		return;
	}
	if (!err)
		p->acts_ok++;
	else if (!strcmp(res, "refused"))
		p->acts_refused++;
	else
		p->acts_failed++;
	what = a->from ? g_strdup_printf("%s %s -> %s pCPUs %s",
					 vs_act_kind_name(a->kind), a->from,
					 a->to, a->cpus)
		       : g_strdup_printf("%s %s %d", vs_act_kind_name(a->kind),
					 a->vm, a->value);
	vs_policy_say(p, err ? "warning" : "info", "%s (%s): %s%s%s", what,
		      a->reason, res, err ? ": " : "", err ? err->message : "");
	g_queue_push_tail(&e->log, n);
	while (g_queue_get_length(&e->log) > VS_POLICY_LOG_MAX)
		json_node_unref(g_queue_pop_head(&e->log));
}

JsonNode *vs_policy_log(VsPolicyEngine *e, guint n)
{
	JsonObject *o = json_object_new();
	JsonArray *a = json_array_new();
	JsonNode *root = json_node_new(JSON_NODE_OBJECT);
	guint len = g_queue_get_length(&e->log);

	for (guint i = len > n ? len - n : 0; i < len; i++)
		json_array_add_element(
			a, json_node_ref(g_queue_peek_nth(&e->log, i)));
	json_object_set_array_member(o, "entries", a);
	json_node_take_object(root, o);
	return root;
}

static int cmp_double(gconstpointer a, gconstpointer b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median_of(VsPolicy *p)
{
	g_autoptr(GArray) c = NULL;

	if (!p->run_us->len)
		return 0;
	c = g_array_copy(p->run_us);
	g_array_sort(c, cmp_double);
	return g_array_index(c, double, c->len / 2);
}

double vs_policy_run_us_median(VsPolicyEngine *e, const char *name)
{
	for (guint i = 0; i < e->policies->len; i++) {
		VsPolicy *p = e->policies->pdata[i];

		if (!strcmp(p->name, name))
			return median_of(p);
	}
	return 0;
}

static JsonObject *summary(VsPolicy *p)
{
	JsonObject *o = json_object_new();
	JsonArray *t = json_array_new(), *ev = json_array_new();

	json_object_set_string_member(o, "name", p->name);
	json_object_set_string_member(o, "path", p->path);
	json_object_set_string_member(o, "origin", p->origin);
	json_object_set_boolean_member(o, "enabled", p->enabled);
	json_object_set_boolean_member(o, "running", p->L != NULL);
	if (p->error)
		json_object_set_string_member(o, "error", p->error);
	json_object_set_int_member(o, "runs", p->runs);
	json_object_set_int_member(o, "faults", p->faults);
	json_object_set_int_member(o, "skipped", p->skipped);
	json_object_set_int_member(o, "acts-ok", p->acts_ok);
	json_object_set_int_member(o, "acts-refused", p->acts_refused);
	json_object_set_int_member(o, "acts-failed", p->acts_failed);
	json_object_set_int_member(o, "memory-bytes", p->L ? p->mem : 0);
	json_object_set_double_member(o, "run-us-median", median_of(p));
	for (guint i = 0; p->L && i < p->timers->len; i++)
		json_array_add_double_element(
			t, g_array_index(p->timers, VsTimer, i).interval);
	for (guint i = 0; p->L && i < p->handlers->len; i++)
		json_array_add_string_element(
			ev, g_array_index(p->handlers, VsHandler, i).event);
	json_object_set_array_member(o, "every", t);
	json_object_set_array_member(o, "on", ev);
	return o;
}

JsonNode *vs_policy_list(VsPolicyEngine *e)
{
	JsonObject *o = json_object_new();
	JsonArray *a = json_array_new();
	JsonNode *n = json_node_new(JSON_NODE_OBJECT);

	for (guint i = 0; i < e->policies->len; i++)
		json_array_add_object_element(a,
					      summary(e->policies->pdata[i]));
	json_object_set_array_member(o, "policies", a);
	json_node_take_object(n, o);
	return n;
}

JsonNode *vs_policy_show(VsPolicyEngine *e, const char *name, GError **error)
{
	JsonNode *n;
	JsonObject *o;
	g_autofree char *text = NULL;
	gsize len;

	for (guint i = 0; i < e->policies->len; i++) {
		VsPolicy *p = e->policies->pdata[i];

		if (strcmp(p->name, name))
			continue;
		o = summary(p);
		text = vs_policy_read_file(p->path, 1024 * 1024, &len, NULL);
		if (!text)
			text = g_strdup(p->source ? p->source : "");
		json_object_set_string_member(o, "source", text);
		n = json_node_new(JSON_NODE_OBJECT);
		json_node_take_object(n, o);
		return n;
	}
	g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
		    "no policy named '%s' (vsharectl policy list)", name);
	return NULL;
}

void vs_policy_metrics(VsPolicyEngine *e, VsProm *m)
{
	static const char *const r[] = { "ok", "refused", "failed" };

	vs_prom_family(m, "vshare_policy_enabled", "gauge",
		       "1 when the policy runs");
	vs_prom_family(m, "vshare_policy_acts_total", "counter",
		       "acts of the policy by result");
	vs_prom_family(m, "vshare_policy_faults_total", "counter",
		       "policies disabled for an error, the instruction "
		       "budget or the memory limit");
	vs_prom_family(m, "vshare_policy_run_seconds", "summary",
		       "time of one callback run");
	for (guint i = 0; i < e->policies->len; i++) {
		VsPolicy *p = e->policies->pdata[i];
		guint64 v[] = { p->acts_ok, p->acts_refused, p->acts_failed };

		vs_prom_add(m, "vshare_policy_enabled", NULL,
			    p->enabled && p->L, "policy", p->name, NULL);
		for (guint k = 0; k < 3; k++)
			vs_prom_add(m, "vshare_policy_acts_total", NULL,
				    (double)v[k], "policy", p->name, "result",
				    r[k], NULL);
		vs_prom_add(m, "vshare_policy_faults_total", NULL,
			    (double)p->faults, "policy", p->name, NULL);
		vs_prom_add(m, "vshare_policy_run_seconds", "_sum",
			    p->run_us_sum / 1e6, "policy", p->name, NULL);
		vs_prom_add(m, "vshare_policy_run_seconds", "_count",
			    (double)p->runs, "policy", p->name, NULL);
	}
}
