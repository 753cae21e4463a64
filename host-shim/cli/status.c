// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsharectl status [VM...]: what libvshare-host observes (observe.c),
 * rendered. Read-only: takes no lock and changes nothing.
 */
#include "cli.h"

#include <string.h>

static const char *s_or(JsonObject *o, const char *name, const char *dflt)
{
	JsonNode *n = json_object_get_member(o, name);

	return n && json_node_get_value_type(n) == G_TYPE_STRING
		       ? json_node_get_string(n)
		       : dflt;
}

static double d_or(JsonObject *o, const char *k)
{
	return json_object_has_member(o, k)
		       ? json_object_get_double_member(o, k)
		       : -1;
}

/* vshared's Monitor (docs/migration.md): present when the VM has a profile. */
static void print_profile(JsonObject *vm)
{
	JsonObject *p = json_object_has_member(vm, "profile")
				? json_object_get_object_member(vm, "profile")
				: NULL;
	g_autofree char *mpki = NULL, *bw = NULL;

	if (!p)
		return;
	mpki = d_or(p, "mpki") < 0 ? g_strdup("?")
				   : g_strdup_printf("%.1f", d_or(p, "mpki"));
	bw = d_or(p, "bandwidth-mbps") < 0
		     ? g_strdup("?")
		     : g_strdup_printf("%.0f", d_or(p, "bandwidth-mbps"));
	g_print("  profile %s-bound: LLC mpki %s, bandwidth %s MB/s (%s)\n",
		s_or(p, "class", "unknown"), mpki, bw, s_or(p, "source", "?"));
}

static void print_vm(JsonObject *vm)
{
	JsonObject *agent;
	JsonArray *a;

	g_print("VM %s", json_object_get_string_member(vm, "name"));
	if (!json_object_get_boolean_member(vm, "reachable")) {
		g_print(": QMP unreachable: %s\n\n",
			json_object_get_string_member(vm, "error"));
		return;
	}
	agent = json_object_get_object_member(vm, "agent");
	g_print("  driver %s  mode %s  qemu pid %" G_GINT64_FORMAT
		"  agent %s%s\n",
		s_or(vm, "driver", "?"), s_or(vm, "mode", "?"),
		json_object_get_int_member(vm, "qemu-pid"),
		json_object_get_boolean_member(agent, "reachable")
			? "reachable, guest cpus "
			: "unreachable: ",
		json_object_get_boolean_member(agent, "reachable")
			? s_or(agent, "cpus", "?")
			: s_or(agent, "error", "?"));
	print_profile(vm);
	g_print("  %-5s %-4s %-8s %-7s %-12s %6s %-9s %s\n", "vCPU", "node",
		"thread", "pinned", "pCPU owner", "host%", "throttled",
		"in guest alloc");
	a = json_object_get_array_member(vm, "vcpus");
	for (guint i = 0; i < json_array_get_length(a); i++) {
		JsonObject *v = json_array_get_object_element(a, i);
		JsonNode *in = json_object_get_member(v, "in-allocation");
		const char *owner = s_or(v, "pcpu-owner", NULL);

		g_print("  %-5" G_GINT64_FORMAT " %-4" G_GINT64_FORMAT
			" %-8" G_GINT64_FORMAT " %-7s %-12s %6.1f %-9s %s\n",
			json_object_get_int_member(v, "vcpu"),
			json_object_get_int_member(v, "node"),
			json_object_get_int_member(v, "thread"),
			json_object_get_string_member(v, "pinned"),
			owner ? owner : "-",
			json_object_get_double_member(v, "host-cpu-percent"),
			json_object_get_boolean_member(v, "throttled") ? "yes"
								       : "no",
			JSON_NODE_HOLDS_NULL(in)    ? "?"
			: json_node_get_boolean(in) ? "yes"
						    : "no");
	}
	g_print("  %-4s %-8s %10s %10s %10s %14s\n", "node", "device",
		"plugged", "requested", "ledger", "guest free");
	a = json_object_get_array_member(vm, "memory");
	for (guint i = 0; i < json_array_get_length(a); i++) {
		JsonObject *m = json_array_get_object_element(a, i);
		JsonNode *l = json_object_get_member(m, "ledger-bytes");
		gint64 fk = json_object_get_int_member(m, "guest-free-kib");
		g_autofree char *ls =
			JSON_NODE_HOLDS_NULL(l)
				? g_strdup("-")
				: g_strdup_printf("%" G_GINT64_FORMAT "M",
						  json_node_get_int(l) >> 20);
		g_autofree char *fs =
			fk < 0 ? g_strdup("?")
			       : g_strdup_printf("%" G_GINT64_FORMAT "M",
						 fk >> 10);

		g_print("  %-4" G_GINT64_FORMAT " %-8s %9" G_GINT64_FORMAT
			"M %9" G_GINT64_FORMAT "M %10s %14s\n",
			json_object_get_int_member(m, "node"),
			json_object_get_string_member(m, "device"),
			json_object_get_int_member(m, "plugged-bytes") >> 20,
			json_object_get_int_member(m, "requested-bytes") >> 20,
			ls, fs);
	}
	g_print("\n");
}

static gboolean parse_status(Cli *c, int *argc, char ***argv, double *interval,
			     GError **error)
{
	GOptionEntry e[] = {
		{ "interval", 'i', 0, G_OPTION_ARG_DOUBLE, interval,
		  "seconds over which host CPU use is measured (default 0.5)",
		  "S" },
		{ NULL }
	};

	if (!cli_parse(c, argc, argv, "[VM...]",
		       "Show VMs, their vCPU threads and memory.", e, error))
		return FALSE;
	if (!(*interval > 0 && *interval <= 60))
		return cli_usage_error(error, "--interval must be in (0, 60]");
	return TRUE;
}

/* vshared's pCPUs promised to arriving VMs (docs/migration.md). */
static void print_reservations(JsonObject *o)
{
	JsonArray *a = json_object_has_member(o, "reservations")
			       ? json_object_get_array_member(o, "reservations")
			       : NULL;

	for (guint i = 0; a && i < json_array_get_length(a); i++) {
		JsonObject *r = json_array_get_object_element(a, i);

		if (!i)
			g_print("pCPUs reserved for arriving VMs:\n");
		g_print("  %s: pCPUs %s (node %" G_GINT64_FORMAT "), ",
			s_or(r, "vm", "?"), s_or(r, "cpus", "?"),
			json_object_get_int_member(r, "node"));
		if (json_object_get_boolean_member(r, "followed"))
			g_print("held while vshared follows it\n");
		else
			g_print("%" G_GINT64_FORMAT " s left\n",
				json_object_get_int_member(r, "seconds-left"));
	}
}

static void render_doc(Cli *c, JsonNode *root)
{
	JsonObject *o = json_node_get_object(root);
	JsonArray *vms = json_object_get_array_member(o, "vms");

	if (c->json) {
		cli_print_json(root);
		return;
	}
	g_print("host %s%s, ledger generation %" G_GINT64_FORMAT "\n\n",
		s_or(o, "host", "?"),
		json_object_get_boolean_member(o, "host-declared")
			? " (declared in host.conf)"
			: "",
		json_object_get_int_member(o, "ledger-generation"));
	for (guint i = 0; i < json_array_get_length(vms); i++)
		print_vm(json_array_get_object_element(vms, i));
	print_reservations(o);
}

int cmd_status(Cli *c, int argc, char **argv)
{
	double interval = 0.5;
	g_autoptr(GError) error = NULL;
	g_autoptr(VsObservation) o = NULL;
	g_autoptr(JsonNode) root = NULL;
	g_auto(GStrv) names = NULL;
	VsSession s;
	gboolean handled;

	if (!parse_status(c, &argc, &argv, &interval, &error))
		return cli_fail(error);
	/* vshared observes continuously: its last interval's figures */
	root = cli_daemon_status(c, argv + 1, &handled, &error);
	if (handled) {
		if (!root)
			return cli_fail(error);
		render_doc(c, root);
		return VS_EXIT_OK;
	}
	if (!cli_session_open(c, &s, FALSE, &error)) {
		int rc = cli_fail(error);

		vs_session_close(&s);
		return rc;
	}
	names = argc > 1 ? g_strdupv(argv + 1)
			 : vs_registry_list(&c->cfg, NULL);
	for (guint i = 1; i < (guint)argc; i++) { /* as every command does */
		g_autoptr(VsVmConf) v =
			vs_registry_get(&c->cfg, argv[i], &error);

		if (!v) {
			vs_session_close(&s);
			return cli_fail(error);
		}
	}
	o = vs_observe_begin(&s, names);
	g_usleep((gulong)(interval * 1e6)); /* the front end may wait */
	root = vs_observe_end(o);
	render_doc(c, root);
	g_clear_pointer(&o, vs_observation_free);
	vs_session_close(&s);
	return VS_EXIT_OK;
}
