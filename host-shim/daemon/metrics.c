// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Metrics in Prometheus text format, written the way node_exporter's
 * textfile collector wants (a temp file renamed over the old one), from
 * the same observation `vsharectl status` shows: per-pCPU owner, per-vCPU
 * host use and the guest's busy/idle/steal, agent reachability, lends and
 * their latency.
 */
#include "vshared.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <string.h>

void daemon_stat_add(Daemon *d, const char *key, double v)
{
	double *p;

	if (!d->stats)
		d->stats = g_hash_table_new_full(g_str_hash, g_str_equal,
						 g_free, g_free);
	p = g_hash_table_lookup(d->stats, key);
	if (!p) {
		p = g_new0(double, 1);
		g_hash_table_insert(d->stats, g_strdup(key), p);
	}
	*p += v;
}

static double stat_of(Daemon *d, const char *key)
{
	double *p = d->stats ? g_hash_table_lookup(d->stats, key) : NULL;

	return p ? *p : 0;
}

static void help(GString *s, const char *name, const char *type,
		 const char *text)
{
	g_string_append_printf(s, "# HELP %s %s\n# TYPE %s %s\n", name, text,
			       name, type);
}

static void pcpu_owners(Daemon *d, GString *s)
{
	VsHost *h = &d->session.host;

	help(s, "vshare_pcpu_owner", "gauge",
	     "1 for the VM owning the pCPU (vm=\"\": free)");
	for (guint i = 0; i < h->pcpus->len; i++) {
		guint cpu = g_array_index(h->pcpus, guint, i);
		const char *o = vs_ledger_owner(d->session.ledger, cpu);

		g_string_append_printf(
			s,
			"vshare_pcpu_owner{pcpu=\"%u\",node=\"%d\","
			"vm=\"%s\"} 1\n",
			cpu, vs_host_node_of(h, cpu), o ? o : "");
	}
}

static gint64 int_of(JsonObject *o, const char *k)
{
	JsonNode *n = json_object_get_member(o, k);

	return n && json_node_get_value_type(n) == G_TYPE_INT64
		       ? json_node_get_int(n)
		       : -1;
}

static void vcpu_lines(GString *s, const char *vm, JsonObject *v)
{
	static const char *const st[] = { "busy", "idle", "steal" };
	gint64 i = int_of(v, "vcpu");
	double pct = json_object_get_double_member(v, "host-cpu-percent");

	if (pct >= 0)
		g_string_append_printf(s,
				       "vshare_vcpu_host_busy_ratio{vm=\"%s\","
				       "vcpu=\"%" G_GINT64_FORMAT "\"} %.4f\n",
				       vm, i, pct / 100);
	g_string_append_printf(
		s,
		"vshare_vcpu_throttled{vm=\"%s\",vcpu=\"%" G_GINT64_FORMAT
		"\"} %d\n",
		vm, i, json_object_get_boolean_member(v, "throttled"));
	for (guint k = 0; k < 3; k++) {
		g_autofree char *key = g_strdup_printf("guest-%s-ms", st[k]);
		gint64 ms = int_of(v, key);

		if (ms >= 0)
			g_string_append_printf(
				s,
				"vshare_vcpu_guest_seconds_total{vm=\"%s\","
				"vcpu=\"%" G_GINT64_FORMAT "\",state=\"%s\"} "
				"%.3f\n",
				vm, i, st[k], ms / 1000.0);
	}
}

/* The Monitor's profile (monitor.c), when the VM has one. */
static void profile_lines(GString *s, const char *name, JsonObject *vm)
{
	JsonObject *p = json_object_has_member(vm, "profile")
				? json_object_get_object_member(vm, "profile")
				: NULL;
	const char *src, *cls;

	if (!p)
		return;
	src = json_object_get_string_member_with_default(p, "source", "");
	cls = json_object_get_string_member_with_default(p, "class", "");
	if (json_object_has_member(p, "mpki"))
		g_string_append_printf(
			s, "vshare_vm_llc_mpki{vm=\"%s\",source=\"%s\"} %g\n",
			name, src, json_object_get_double_member(p, "mpki"));
	if (json_object_has_member(p, "bandwidth-mbps"))
		g_string_append_printf(
			s,
			"vshare_vm_mem_bandwidth_mbps{vm=\"%s\",source=\"%s\"} "
			"%g\n",
			name, src,
			json_object_get_double_member(p, "bandwidth-mbps"));
	g_string_append_printf(
		s,
		"vshare_vm_memory_bound{vm=\"%s\",source=\"%s\"} "
		"%d\n",
		name, src, !strcmp(cls, "memory"));
}

static void vm_lines(GString *s, JsonObject *vm)
{
	const char *name = json_object_get_string_member(vm, "name");
	gboolean up = json_object_get_boolean_member(vm, "reachable");
	JsonObject *agent;
	JsonArray *a;

	g_string_append_printf(s, "vshare_vm_up{vm=\"%s\"} %d\n", name, up);
	if (!up)
		return;
	agent = json_object_get_object_member(vm, "agent");
	g_string_append_printf(
		s, "vshare_agent_reachable{vm=\"%s\"} %d\n", name,
		json_object_get_boolean_member(agent, "reachable"));
	a = json_object_get_array_member(vm, "vcpus");
	for (guint i = 0; i < json_array_get_length(a); i++)
		vcpu_lines(s, name, json_array_get_object_element(a, i));
	profile_lines(s, name, vm);
	a = json_object_get_array_member(vm, "memory");
	for (guint i = 0; i < json_array_get_length(a); i++) {
		JsonObject *m = json_array_get_object_element(a, i);

		g_string_append_printf(
			s,
			"vshare_vm_mem_bytes{vm=\"%s\",node=\"%" G_GINT64_FORMAT
			"\",kind=\"plugged\"} %" G_GINT64_FORMAT "\n",
			name, int_of(m, "node"), int_of(m, "plugged-bytes"));
	}
}

static void counters(Daemon *d, GString *s)
{
	help(s, "vshare_changes_total", "counter", "ledger changes by result");
	g_string_append_printf(s, "vshare_changes_total{result=\"ok\"} %.0f\n",
			       stat_of(d, "changes_ok"));
	g_string_append_printf(s,
			       "vshare_changes_total{result=\"failed\"} %.0f\n",
			       stat_of(d, "changes_failed"));
	help(s, "vshare_lend_seconds", "summary", "time of a lend, end to end");
	g_string_append_printf(s, "vshare_lend_seconds_sum %.6f\n",
			       stat_of(d, "lend_seconds"));
	g_string_append_printf(s, "vshare_lend_seconds_count %.0f\n",
			       stat_of(d, "lends"));
	help(s, "vshare_coop_violations_total", "counter",
	     "coop VMs switched to enforce for using vCPUs they lent");
	g_string_append_printf(s, "vshare_coop_violations_total %.0f\n",
			       stat_of(d, "coop_violations"));
	help(s, "vshare_vms_gone_total", "counter",
	     "VMs whose QEMU went away under vshared");
	g_string_append_printf(s, "vshare_vms_gone_total %.0f\n",
			       stat_of(d, "vms_gone"));
}

static void write_metrics(Daemon *d)
{
	g_autoptr(GString) s = g_string_new(NULL);
	JsonArray *vms = json_object_get_array_member(
		json_node_get_object(d->last_status), "vms");
	g_autoptr(GError) e = NULL;

	if (!d->metrics_path)
		return;
	help(s, "vshare_ledger_generation", "gauge", "ledger generation");
	g_string_append_printf(
		s, "vshare_ledger_generation %" G_GUINT64_FORMAT "\n",
		d->session.ledger->generation);
	pcpu_owners(d, s);
	help(s, "vshare_vm_up", "gauge", "QEMU reachable");
	for (guint i = 0; i < json_array_get_length(vms); i++)
		vm_lines(s, json_array_get_object_element(vms, i));
	counters(d, s);
	if (d->policy)
		vs_policy_metrics(d->policy, s);
	/* readable by the collector (node_exporter runs unprivileged) */
	if (!vs_write_private(d->metrics_path, s->str, &e) ||
	    chmod(d->metrics_path, 0644) < 0)
		g_warning("metrics: %s", e ? e->message : g_strerror(errno));
}

void daemon_metrics_tick(Daemon *d)
{
	g_auto(GStrv) names = vs_registry_list(&d->cfg, NULL);
	g_autofree char *journal =
		g_build_filename(d->cfg.state_dir, "journal.json", NULL);

	if (g_file_test(journal, G_FILE_TEST_EXISTS)) {
		/* a change an agent was too slow to undo: try again */
		g_autoptr(GError) e = NULL;
		gboolean rec;

		if (!vs_session_recover(&d->session, &rec, &e))
			g_message("recover: %s", e->message);
		g_ptr_array_set_size(d->event_nodes, 0);
	}
	if (!d->obs)
		d->obs = vs_observe_begin(&d->session, names);
	g_clear_pointer(&d->last_status, json_node_unref);
	d->last_status = vs_observe_end(d->obs);
	g_clear_pointer(&d->obs, vs_observation_free);
	daemon_monitor_tick(d, d->last_status);
	write_metrics(d);
	daemon_guard(d, d->last_status);
	d->obs = vs_observe_begin(&d->session, names);
}
