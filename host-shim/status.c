// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsharectl status [VM...]: per VM, each vCPU -> thread -> pinned pCPU ->
 * owner in the ledger -> host CPU use over the interval -> in the guest's
 * allocation; memory per node (plugged / requested / guest free); agent.
 * Read-only: takes no lock and changes nothing.
 */
#include "vsharectl.h"

#include <sched.h>
#include <string.h>

typedef struct {
	char *name;
	VsVm *vm;
	GError *error;	     /* QMP unreachable */
	GError *agent_error; /* agent unreachable */
	JsonObject *alloc;   /* vshare-get-allocation */
	JsonObject *topo;    /* vshare-get-topology */
	gint64 *t0, *t1;     /* per vCPU CPU time, ns */
} Row;

static void row_free(gpointer p)
{
	Row *r = p;

	g_free(r->name);
	vs_vm_free(r->vm);
	g_clear_error(&r->error);
	g_clear_error(&r->agent_error);
	if (r->alloc)
		json_object_unref(r->alloc);
	if (r->topo)
		json_object_unref(r->topo);
	g_free(r->t0);
	g_free(r->t1);
	g_free(r);
}

static JsonObject *agent_obj(VsConn *a, const char *cmd, int ms, GError **error)
{
	g_autoptr(JsonNode) n = vs_agent_call(a, cmd, NULL, ms, error);

	if (!n)
		return NULL;
	if (!JSON_NODE_HOLDS_OBJECT(n)) {
		g_set_error(error, VSC_ERROR, VS_EXIT_FAILED,
			    "%s: unexpected reply", cmd);
		return NULL;
	}
	return json_object_ref(json_node_get_object(n));
}

static void probe_agent(const VsOpts *o, Row *r)
{
	g_autoptr(VsConn) a =
		vs_vm_agent(r->vm, o->agent_timeout_ms, &r->agent_error);

	if (!a)
		return;
	r->alloc = agent_obj(a, "vshare-get-allocation", o->agent_timeout_ms,
			     &r->agent_error);
	if (r->alloc)
		r->topo = agent_obj(a, "vshare-get-topology",
				    o->agent_timeout_ms, &r->agent_error);
}

static void sample(const VsOpts *o, Row *r, gint64 *out)
{
	for (guint i = 0; i < r->vm->vcpus->len; i++)
		out[i] = vs_thread_cputime_ns(
			o, r->vm->qemu_pid,
			g_array_index(r->vm->vcpus, VsVcpu, i).tid);
}

static char *pinned_of(gint64 tid)
{
	cpu_set_t set;
	VsCpuSet s;

	if (sched_getaffinity(tid, sizeof(set), &set) < 0)
		return g_strdup("?");
	vs_cpuset_clear(&s);
	for (int c = 0; c < CPU_SETSIZE && c < VS_MAX_CPUS; c++)
		if (CPU_ISSET(c, &set))
			vs_cpuset_add(&s, c);
	return vs_cpuset_format(&s);
}

static gint64 node_free_kib(Row *r, int node)
{
	JsonArray *nodes;

	if (!r->topo || !json_object_has_member(r->topo, "nodes"))
		return -1;
	nodes = json_object_get_array_member(r->topo, "nodes");
	for (guint i = 0; i < json_array_get_length(nodes); i++) {
		JsonObject *n = json_array_get_object_element(nodes, i);

		if (json_object_get_int_member(n, "id") == node)
			return json_object_get_int_member(n, "mem-free-kib");
	}
	return -1;
}

static void emit_vm(VsCtx *ctx, Row *r, double secs, JsonBuilder *b)
{
	VsLedgerVm *lv = vs_ledger_find(ctx->ledger, r->name);
	VsCpuSet alloc, throttled;
	gboolean have_alloc = FALSE;

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "name");
	json_builder_add_string_value(b, r->name);
	json_builder_set_member_name(b, "reachable");
	json_builder_add_boolean_value(b, r->vm != NULL);
	if (!r->vm) {
		json_builder_set_member_name(b, "error");
		json_builder_add_string_value(b, r->error->message);
		json_builder_end_object(b);
		return;
	}
	json_builder_set_member_name(b, "managed");
	json_builder_add_boolean_value(b, lv != NULL);
	json_builder_set_member_name(b, "mode");
	json_builder_add_string_value(b, lv ? lv->mode : "unmanaged");
	json_builder_set_member_name(b, "qemu-pid");
	json_builder_add_int_value(b, r->vm->qemu_pid);
	json_builder_set_member_name(b, "agent");
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "reachable");
	json_builder_add_boolean_value(b, r->agent_error == NULL);
	if (r->agent_error) {
		json_builder_set_member_name(b, "error");
		json_builder_add_string_value(b, r->agent_error->message);
	} else {
		have_alloc = vs_cpuset_parse(
			json_object_get_string_member(r->alloc, "cpus"), &alloc,
			NULL);
		json_builder_set_member_name(b, "cpus");
		json_builder_add_string_value(
			b, json_object_get_string_member(r->alloc, "cpus"));
		json_builder_set_member_name(b, "mems");
		json_builder_add_string_value(
			b, json_object_get_string_member(r->alloc, "mems"));
	}
	json_builder_end_object(b);
	vs_throttle_get(r->vm, &throttled, NULL);
	json_builder_set_member_name(b, "vcpus");
	json_builder_begin_array(b);
	for (guint i = 0; i < r->vm->vcpus->len; i++) {
		VsVcpu *v = &g_array_index(r->vm->vcpus, VsVcpu, i);
		g_autofree char *pin = pinned_of(v->tid);
		guint pcpu = i < ctx->host.pcpus->len
				     ? g_array_index(ctx->host.pcpus, guint, i)
				     : G_MAXUINT;
		const char *owner = pcpu != G_MAXUINT
					    ? vs_ledger_owner(ctx->ledger, pcpu)
					    : NULL;
		double pct = r->t0[i] >= 0 && r->t1[i] >= 0
				     ? (r->t1[i] - r->t0[i]) / (secs * 1e7)
				     : -1;

		json_builder_begin_object(b);
		json_builder_set_member_name(b, "vcpu");
		json_builder_add_int_value(b, i);
		json_builder_set_member_name(b, "node");
		json_builder_add_int_value(b, v->node);
		json_builder_set_member_name(b, "thread");
		json_builder_add_int_value(b, v->tid);
		json_builder_set_member_name(b, "pinned");
		json_builder_add_string_value(b, pin);
		json_builder_set_member_name(b, "pcpu-owner");
		json_builder_add_string_value(b, owner);
		json_builder_set_member_name(b, "host-cpu-percent");
		json_builder_add_double_value(b, pct);
		json_builder_set_member_name(b, "throttled");
		json_builder_add_boolean_value(b, vs_cpuset_has(&throttled, i));
		json_builder_set_member_name(b, "in-allocation");
		if (have_alloc)
			json_builder_add_boolean_value(
				b, vs_cpuset_has(&alloc, i));
		else
			json_builder_add_null_value(b);
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
	json_builder_set_member_name(b, "memory");
	json_builder_begin_array(b);
	for (guint i = 0; i < r->vm->vmems->len; i++) {
		VsVmem *d = g_ptr_array_index(r->vm->vmems, i);

		json_builder_begin_object(b);
		json_builder_set_member_name(b, "node");
		json_builder_add_int_value(b, d->node);
		json_builder_set_member_name(b, "device");
		json_builder_add_string_value(b, d->id);
		json_builder_set_member_name(b, "plugged-bytes");
		json_builder_add_int_value(b, d->size);
		json_builder_set_member_name(b, "requested-bytes");
		json_builder_add_int_value(b, d->requested);
		json_builder_set_member_name(b, "max-bytes");
		json_builder_add_int_value(b, d->max);
		json_builder_set_member_name(b, "ledger-bytes");
		if (lv && d->node >= 0 && d->node < VS_MAX_NODES)
			json_builder_add_int_value(b, lv->mem[d->node]);
		else
			json_builder_add_null_value(b);
		json_builder_set_member_name(b, "guest-free-kib");
		json_builder_add_int_value(b, node_free_kib(r, d->node));
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
	json_builder_end_object(b);
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
	g_print("  mode %s  qemu pid %" G_GINT64_FORMAT "  agent %s%s\n",
		json_object_get_string_member(vm, "mode"),
		json_object_get_int_member(vm, "qemu-pid"),
		json_object_get_boolean_member(agent, "reachable")
			? "reachable, guest cpus "
			: "unreachable: ",
		json_object_get_boolean_member(agent, "reachable")
			? json_object_get_string_member(agent, "cpus")
			: json_object_get_string_member(agent, "error"));
	g_print("  %-5s %-4s %-8s %-7s %-12s %6s %-9s %s\n", "vCPU", "node",
		"thread", "pinned", "pCPU owner", "host%", "throttled",
		"in guest alloc");
	a = json_object_get_array_member(vm, "vcpus");
	for (guint i = 0; i < json_array_get_length(a); i++) {
		JsonObject *v = json_array_get_object_element(a, i);
		JsonNode *in = json_object_get_member(v, "in-allocation");
		const char *owner =
			json_object_get_string_member(v, "pcpu-owner");

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

int vs_cmd_status(VsOpts *o, int argc, char **argv)
{
	double interval = 0.5;
	GOptionEntry e[] = {
		{ "interval", 'i', 0, G_OPTION_ARG_DOUBLE, &interval,
		  "seconds over which host CPU use is measured (default 0.5)",
		  "S" },
		{ NULL }
	};
	g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func(row_free);
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(JsonNode) root = NULL;
	g_auto(GStrv) names = NULL;
	GError *error = NULL;
	VsCtx ctx = { 0 };
	if (!vs_parse_common(o, &argc, &argv, "[VM...]",
			     "Show VMs, their vCPU threads and memory.", e,
			     &error))
		return vs_fail(error);
	if (interval <= 0 || interval > 60) {
		g_set_error(&error, VSC_ERROR, VS_EXIT_USAGE,
			    "--interval must be in (0, 60]");
		return vs_fail(error);
	}
	if (!vs_ctx_init(&ctx, o, FALSE, &error)) {
		int rc = vs_fail(error);

		g_clear_error(&error);
		vs_ctx_clear(&ctx);
		return rc;
	}
	names = argc > 1 ? g_strdupv(argv + 1) : vs_registry_list(o, NULL);
	for (guint i = 0; names[i]; i++) {
		Row *r = g_new0(Row, 1);
		VsVmConf *conf;

		r->name = g_strdup(names[i]);
		g_ptr_array_add(rows, r);
		conf = vs_registry_get(o, names[i], &r->error);
		if (conf)
			r->vm = vs_vm_open(conf, &r->error);
		if (!r->vm)
			continue;
		probe_agent(o, r);
		r->t0 = g_new0(gint64, r->vm->vcpus->len + 1);
		r->t1 = g_new0(gint64, r->vm->vcpus->len + 1);
	}
	for (guint i = 0; i < rows->len; i++)
		if (((Row *)rows->pdata[i])->vm)
			sample(o, rows->pdata[i], ((Row *)rows->pdata[i])->t0);
	g_usleep((gulong)(interval * 1e6));
	for (guint i = 0; i < rows->len; i++)
		if (((Row *)rows->pdata[i])->vm)
			sample(o, rows->pdata[i], ((Row *)rows->pdata[i])->t1);
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "host");
	json_builder_add_string_value(b, ctx.ledger->host);
	json_builder_set_member_name(b, "host-declared");
	json_builder_add_boolean_value(b, ctx.host.declared);
	json_builder_set_member_name(b, "ledger-generation");
	json_builder_add_int_value(b, ctx.ledger->generation);
	json_builder_set_member_name(b, "vms");
	json_builder_begin_array(b);
	for (guint i = 0; i < rows->len; i++)
		emit_vm(&ctx, rows->pdata[i], interval, b);
	json_builder_end_array(b);
	json_builder_end_object(b);
	root = json_builder_get_root(b);
	if (o->json) {
		vs_print_json(root);
	} else {
		JsonArray *vms = json_object_get_array_member(
			json_node_get_object(root), "vms");

		g_print("host %s%s, ledger generation %" G_GUINT64_FORMAT
			"\n\n",
			ctx.ledger->host,
			ctx.host.declared ? " (declared in host.conf)" : "",
			ctx.ledger->generation);
		for (guint i = 0; i < json_array_get_length(vms); i++)
			print_vm(json_array_get_object_element(vms, i));
	}
	vs_ctx_clear(&ctx);
	return VS_EXIT_OK;
}
