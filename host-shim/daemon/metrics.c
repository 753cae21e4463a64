// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Metrics in Prometheus text format, written the way node_exporter's
 * textfile collector wants (a temp file renamed over the old one; by
 * default in Debian's collector directory, VS_METRICS_FILE), from
 * the same observation `vsharectl status` shows: per-pCPU owner, per-vCPU
 * host use and the guest's busy/idle/steal, agent reachability, lends and
 * their latency.
 */
#include "vshared.h"
#include "vshare-prom.h"

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

/* Every family the file has, in its order (HELP and TYPE each). */
static void families(VsProm *p)
{
	static const char *const f[][3] = {
		{ "vshare_build_info", "gauge",
		  "vshared's version (the value is always 1)" },
		{ "vshare_ledger_generation", "gauge",
		  "generation of the ledger (bumped by every change)" },
		{ "vshare_pcpu_owner", "gauge",
		  "1 for the VM owning the pCPU (domain=\"\": free)" },
		{ "vshare_vm_up", "gauge", "1 when the VM's QEMU answers" },
		{ "vshare_vm_agent_up", "gauge",
		  "1 when the vshare agent in the guest answers" },
		{ "vshare_vcpu_host_busy_ratio", "gauge",
		  "share of a host CPU the vCPU thread used last interval" },
		{ "vshare_vcpu_throttled", "gauge",
		  "1 while vshared throttles the vCPU (coop guard)" },
		{ "vshare_vcpu_guest_seconds_total", "counter",
		  "guest time of the vCPU by state, as the agent reports it" },
		{ "vshare_vm_llc_mpki", "gauge",
		  "last-level cache misses per kilo-instruction" },
		{ "vshare_vm_memory_bandwidth_bytes_per_second", "gauge",
		  "memory bandwidth of the VM" },
		{ "vshare_vm_memory_bound", "gauge",
		  "1 when the VM's profile classes it memory-bound" },
		{ "vshare_vm_memory_bytes", "gauge",
		  "guest memory by NUMA node (kind=plugged: virtio-mem)" },
		{ "vshare_changes_total", "counter",
		  "ledger changes by result" },
		{ "vshare_lend_seconds", "summary",
		  "time of a lend, end to end" },
		{ "vshare_coop_violations_total", "counter",
		  "coop VMs switched to enforce for using vCPUs they lent" },
		{ "vshare_vms_gone_total", "counter",
		  "VMs whose QEMU went away under vshared" },
	};

	for (guint i = 0; i < G_N_ELEMENTS(f); i++)
		vs_prom_family(p, f[i][0], f[i][1], f[i][2]);
}

static void pcpu_owners(Daemon *d, VsProm *p)
{
	VsHost *h = &d->session.host;

	for (guint i = 0; i < h->pcpus->len; i++) {
		guint cpu = g_array_index(h->pcpus, guint, i);
		const char *o = vs_ledger_owner(d->session.ledger, cpu);
		char c[16], n[16];

		g_snprintf(c, sizeof(c), "%u", cpu);
		g_snprintf(n, sizeof(n), "%d", vs_host_node_of(h, cpu));
		vs_prom_add(p, "vshare_pcpu_owner", NULL, 1, "cpu", c, "node",
			    n, "domain", o ? o : "", NULL);
	}
}

static gint64 int_of(JsonObject *o, const char *k)
{
	JsonNode *n = json_object_get_member(o, k);

	return n && json_node_get_value_type(n) == G_TYPE_INT64
		       ? json_node_get_int(n)
		       : -1;
}

static void vcpu_lines(VsProm *p, const char *vm, JsonObject *v)
{
	static const char *const st[] = { "busy", "idle", "steal" };
	double pct = json_object_get_double_member(v, "host-cpu-percent");
	char i[24];

	g_snprintf(i, sizeof(i), "%" G_GINT64_FORMAT, int_of(v, "vcpu"));
	if (pct >= 0)
		vs_prom_add(p, "vshare_vcpu_host_busy_ratio", NULL, pct / 100,
			    "domain", vm, "vcpu", i, NULL);
	vs_prom_add(p, "vshare_vcpu_throttled", NULL,
		    json_object_get_boolean_member(v, "throttled"), "domain",
		    vm, "vcpu", i, NULL);
	for (guint k = 0; k < 3; k++) {
		g_autofree char *key = g_strdup_printf("guest-%s-ms", st[k]);
		gint64 ms = int_of(v, key);

		if (ms >= 0)
			vs_prom_add(p, "vshare_vcpu_guest_seconds_total", NULL,
				    ms / 1000.0, "domain", vm, "vcpu", i,
				    "state", st[k], NULL);
	}
}

/* The Monitor's profile (monitor.c), when the VM has one. */
static void profile_lines(VsProm *p, const char *name, JsonObject *vm)
{
	JsonObject *o = json_object_has_member(vm, "profile")
				? json_object_get_object_member(vm, "profile")
				: NULL;
	const char *src, *cls;

	if (!o)
		return;
	src = json_object_get_string_member_with_default(o, "source", "");
	cls = json_object_get_string_member_with_default(o, "class", "");
	if (json_object_has_member(o, "mpki"))
		vs_prom_add(p, "vshare_vm_llc_mpki", NULL,
			    json_object_get_double_member(o, "mpki"), "domain",
			    name, "source", src, NULL);
	if (json_object_has_member(o, "bandwidth-mbps")) /* MB/s */
		vs_prom_add(p, "vshare_vm_memory_bandwidth_bytes_per_second",
			    NULL,
			    json_object_get_double_member(o, "bandwidth-mbps") *
				    1e6,
			    "domain", name, "source", src, NULL);
	vs_prom_add(p, "vshare_vm_memory_bound", NULL, !strcmp(cls, "memory"),
		    "domain", name, "source", src, NULL);
}

static void vm_lines(VsProm *p, JsonObject *vm)
{
	const char *name = json_object_get_string_member(vm, "name");
	gboolean up = json_object_get_boolean_member(vm, "reachable");
	JsonObject *agent;
	JsonArray *a;

	vs_prom_add(p, "vshare_vm_up", NULL, up, "domain", name, NULL);
	if (!up)
		return;
	agent = json_object_get_object_member(vm, "agent");
	vs_prom_add(p, "vshare_vm_agent_up", NULL,
		    json_object_get_boolean_member(agent, "reachable"),
		    "domain", name, NULL);
	a = json_object_get_array_member(vm, "vcpus");
	for (guint i = 0; i < json_array_get_length(a); i++)
		vcpu_lines(p, name, json_array_get_object_element(a, i));
	profile_lines(p, name, vm);
	a = json_object_get_array_member(vm, "memory");
	for (guint i = 0; i < json_array_get_length(a); i++) {
		JsonObject *m = json_array_get_object_element(a, i);
		char n[24];

		g_snprintf(n, sizeof(n), "%" G_GINT64_FORMAT,
			   int_of(m, "node"));
		vs_prom_add(p, "vshare_vm_memory_bytes", NULL,
			    (double)int_of(m, "plugged-bytes"), "domain", name,
			    "node", n, "kind", "plugged", NULL);
	}
}

static void counters(Daemon *d, VsProm *p)
{
	vs_prom_add(p, "vshare_changes_total", NULL, stat_of(d, "changes_ok"),
		    "result", "ok", NULL);
	vs_prom_add(p, "vshare_changes_total", NULL,
		    stat_of(d, "changes_failed"), "result", "failed", NULL);
	vs_prom_add(p, "vshare_lend_seconds", "_sum",
		    stat_of(d, "lend_seconds"), NULL);
	vs_prom_add(p, "vshare_lend_seconds", "_count", stat_of(d, "lends"),
		    NULL);
	vs_prom_add(p, "vshare_coop_violations_total", NULL,
		    stat_of(d, "coop_violations"), NULL);
	vs_prom_add(p, "vshare_vms_gone_total", NULL, stat_of(d, "vms_gone"),
		    NULL);
}

static void write_metrics(Daemon *d)
{
	g_autoptr(VsProm) p = vs_prom_new();
	JsonArray *vms = json_object_get_array_member(
		json_node_get_object(d->last_status), "vms");
	g_autoptr(GError) e = NULL;
	g_autofree char *text = NULL;

	if (!d->metrics_path)
		return;
	families(p);
	vs_prom_add(p, "vshare_build_info", NULL, 1, "version",
		    vs_schema_version, NULL);
	vs_prom_add(p, "vshare_ledger_generation", NULL,
		    (double)d->session.ledger->generation, NULL);
	pcpu_owners(d, p);
	for (guint i = 0; i < json_array_get_length(vms); i++)
		vm_lines(p, json_array_get_object_element(vms, i));
	counters(d, p);
	if (d->policy)
		vs_policy_metrics(d->policy, p);
	text = vs_prom_text(p);
	/* world-readable from the start (node_exporter runs unprivileged),
	 * renamed over the old file: a scrape sees one or the other */
	if (vs_write_file_mode(d->metrics_path, text, 0644, &e)) {
		if (d->metrics_failing)
			g_message("metrics: %s written again", d->metrics_path);
		d->metrics_failing = FALSE;
	} else if (!d->metrics_failing) { /* once, not at every tick */
		g_warning("metrics: %s (not written until this is fixed; "
			  "--metrics-file chooses the file)",
			  e->message);
		d->metrics_failing = TRUE;
	}
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
