// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsharectl ple simulate: run the model with KEY=VALUE parameters.
 * vsharectl ple advise: the model on this host's overcommit (VMs and
 * their vCPUs from the ledger and the registry, pCPUs from the layout),
 * over a few ple_gap / ple_window settings, stock KVM behaviour; the
 * answer is labelled model-based (docs/ple.md says what it leaves out).
 */
#include "ple-model.h"

#include "plesim.h"

#include <string.h>

static const char model_note[] =
	"model-based: vshare-plesim (docs/ple.md), not a measurement of "
	"this host";

static gboolean set_kv(PsParams *p, const char *arg, GError **error)
{
	g_autofree char *key = g_strdup(arg);
	char *eq = strchr(key, '='), msg[256];

	if (!eq)
		return cli_usage_error(error,
				       "ple simulate: '%s': expected "
				       "KEY=VALUE (vshare-plesim --help)",
				       arg);
	*eq = '\0';
	if (!ps_params_set(p, key, eq + 1, msg, sizeof(msg)) ||
	    !ps_params_check(p, msg, sizeof(msg)))
		return cli_usage_error(error, "ple simulate: %s", msg);
	return TRUE;
}

static void add_summary(JsonBuilder *b, const char *name, const PsSummary *s)
{
	json_builder_set_member_name(b, name);
	json_builder_begin_object(b);
#define NUM(k, v)                                    \
	do {                                         \
		json_builder_set_member_name(b, k);  \
		json_builder_add_double_value(b, v); \
	} while (0)
	NUM("runtime_ms_median", s->runtime_ms_median);
	NUM("runtime_ms_p99", s->runtime_ms_p99);
	NUM("ple_exits_mean", s->exits_mean);
	NUM("corr_runtime_exits", s->corr);
	NUM("slow_fraction", s->slow_frac);
	NUM("lhp_mean", s->lhp_mean);
	NUM("lwp_mean", s->lwp_mean);
#undef NUM
	json_builder_end_object(b);
}

static void print_summary(const char *what, const PsSummary *s)
{
	g_print("  %-22s run time median %.1f ms, p99 %.1f ms; PLE exits "
		"%.0f; slow runs %.1f%%; LHP %.1f, LWP %.1f per run\n",
		what, s->runtime_ms_median, s->runtime_ms_p99, s->exits_mean,
		100 * s->slow_frac, s->lhp_mean, s->lwp_mean);
}

static gboolean summarize(const PsParams *p, guint runs, double slow_ms,
			  PsSummary *s, GError **error)
{
	g_autofree PsResult *r = g_new0(PsResult, runs);

	if (!ps_run_many(p, runs, r))
		return vs_fail(error, VS_HOST_ERROR_FAILED, "out of memory");
	ps_summarize(p, r, runs, slow_ms, s);
	return TRUE;
}

static int simulate(Cli *o, PsParams *p, guint runs)
{
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(JsonNode) root = NULL;
	g_autoptr(GError) error = NULL;
	PsSummary s;

	if (!summarize(p, runs, 0, &s, &error))
		return cli_fail(error);
	if (!o->json) {
		g_print("%s\n%u pCPUs, %u VM(s) x %u vCPUs, %s locks, "
			"policy %s, ple_gap %" G_GUINT64_FORMAT
			", ple_window %" G_GUINT64_FORMAT ", %u runs:\n",
			model_note, p->pcpus, p->vms, p->vcpus,
			ps_lock_name(p->lock), ps_policy_name(p->policy),
			p->ple_gap, p->ple_window, runs);
		print_summary(ps_policy_name(p->policy), &s);
		return VS_EXIT_OK;
	}
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "note");
	json_builder_add_string_value(b, model_note);
	json_builder_set_member_name(b, "policy");
	json_builder_add_string_value(b, ps_policy_name(p->policy));
	add_summary(b, "summary", &s);
	json_builder_end_object(b);
	root = json_builder_get_root(b);
	cli_print_json(root);
	return VS_EXIT_OK;
}

/* vCPUs of a registered VM (QEMU asked), else the pCPUs it owns. */
static guint vcpus_of(Cli *o, const VsLedgerVm *lv)
{
	g_autoptr(VsVmConf) c = vs_registry_get(&o->cfg, lv->name, NULL);
	g_autoptr(VsVm) vm =
		c ? vs_vm_open(&o->cfg, g_steal_pointer(&c), NULL) : NULL;

	return vm && vm->vcpus->len ? vm->vcpus->len
				    : vs_cpuset_count(&lv->pcpus);
}

typedef struct {
	guint vms, vcpus, pcpus; /* vcpus: per VM (the mean, rounded up) */
	gboolean from_ledger;
} Shape;

static gboolean host_shape(Cli *o, Shape *sh, GError **error)
{
	g_autoptr(VsLedger) l = NULL;
	VsHost host;
	guint total = 0;

	if (!vs_host_load(&o->cfg, &host, error))
		return FALSE;
	if (!sh->pcpus)
		sh->pcpus = vs_cpuset_count(&host.all);
	l = vs_store_load(&o->cfg, &host, error);
	vs_host_clear(&host);
	if (!l)
		return FALSE;
	for (guint i = 0; i < l->vms->len; i++)
		total += vcpus_of(o, g_ptr_array_index(l->vms, i));
	if (!sh->vms && l->vms->len) {
		sh->vms = l->vms->len;
		sh->from_ledger = TRUE;
	}
	if (!sh->vcpus && sh->vms && total)
		sh->vcpus = (total + sh->vms - 1) / sh->vms;
	if (!sh->vms || !sh->vcpus)
		return cli_usage_error(error, "ple advise: the ledger has no "
					      "VMs: give --vms and --vcpus");
	return TRUE;
}

static const struct {
	guint64 gap, window;
} settings[] = { { 0, 4096 },	{ 128, 2048 },	{ 128, 4096 },
		 { 128, 8192 }, { 128, 16384 }, { 128, 65536 } };

static gboolean better(const PsSummary *a, const PsSummary *b)
{
	if (a->runtime_ms_p99 != b->runtime_ms_p99)
		return a->runtime_ms_p99 < b->runtime_ms_p99;
	return a->exits_mean < b->exits_mean;
}

static int advise(Cli *o, const Shape *sh, guint runs)
{
	g_autoptr(GError) error = NULL;
	PsSummary s[G_N_ELEMENTS(settings)];
	guint best = 0;
	PsParams p;

	ps_params_default(&p);
	p.pcpus = MIN(sh->pcpus, 256);
	p.vms = MIN(sh->vms, 64);
	p.vcpus = MIN(sh->vcpus, 4096 / p.vms);
	g_print("%s\nhost: %u pCPUs, %u VM(s) x %u vCPUs%s; %u runs each, "
		"stock KVM directed yield, %s locks\n",
		model_note, p.pcpus, p.vms, p.vcpus,
		sh->from_ledger ? " (from the ledger)" : "", runs,
		ps_lock_name(p.lock));
	for (guint i = 0; i < G_N_ELEMENTS(settings); i++) {
		g_autofree char *what = g_strdup_printf(
			"gap %" G_GUINT64_FORMAT " window %" G_GUINT64_FORMAT,
			settings[i].gap, settings[i].window);

		p.ple_gap = settings[i].gap;
		p.ple_window = settings[i].window;
		p.policy = settings[i].gap ? PS_POL_STOCK : PS_POL_OFF;
		if (!summarize(&p, runs, i ? s[0].slow_ms : 0, &s[i], &error))
			return cli_fail(error);
		print_summary(i ? what : "PLE off (gap 0)", &s[i]);
		if (better(&s[i], &s[best]))
			best = i;
	}
	g_print("\nrecommended (model-based): ple_gap=%" G_GUINT64_FORMAT
		" ple_window=%" G_GUINT64_FORMAT
		"\n  vsharectl ple set --gap %" G_GUINT64_FORMAT
		" --window %" G_GUINT64_FORMAT "\n",
		settings[best].gap, settings[best].window, settings[best].gap,
		settings[best].window);
	return VS_EXIT_OK;
}

int cmd_ple_model(Cli *o, int argc, char **argv)
{
	gint runs = 0, vms = 0, vcpus = 0, pcpus = 0;
	gboolean sim = !strcmp(argv[0], "simulate");
	GOptionEntry e[] = {
		{ "runs", 0, 0, G_OPTION_ARG_INT, &runs,
		  "runs (seeds seed..seed+N-1; simulate 100, advise 50)", "N" },
		{ "vms", 0, 0, G_OPTION_ARG_INT, &vms,
		  "advise: VMs instead of the ledger's", "N" },
		{ "vcpus", 0, 0, G_OPTION_ARG_INT, &vcpus,
		  "advise: vCPUs per VM instead of the ledger's", "N" },
		{ "pcpus", 0, 0, G_OPTION_ARG_INT, &pcpus,
		  "advise: pCPUs instead of the host's", "N" },
		{ NULL }
	};
	g_autoptr(GError) error = NULL;
	PsParams p;
	Shape sh;

	ps_params_default(&p);
	if (!cli_parse(o, &argc, &argv, sim ? "[KEY=VALUE...]" : "",
		       sim ? "Run the PLE model (keys: vshare-plesim --help)."
			   : "Model-based ple_gap / ple_window advice for "
			     "this host's overcommit.",
		       e, &error))
		return cli_fail(error);
	if (runs < 0 || runs > 100000 || vms < 0 || vcpus < 0 || pcpus < 0)
		return cli_usage_error(&error,
				       "ple %s: counts must be "
				       "positive",
				       argv[0]),
		       cli_fail(error);
	for (int i = 1; sim && i < argc; i++)
		if (!set_kv(&p, argv[i], &error))
			return cli_fail(error);
	if (sim)
		return simulate(o, &p, runs ? runs : 100);
	if (argc != 1)
		return cli_usage_error(&error, "ple advise takes no "
					       "arguments"),
		       cli_fail(error);
	sh = (Shape){ vms, vcpus, pcpus, FALSE };
	if (!host_shape(o, &sh, &error))
		return cli_fail(error);
	return advise(o, &sh, runs ? runs : 50);
}
