// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vshare-plesim: run the PLE / lock-holder preemption model from the
 * command line. Parameters as KEY=VALUE (or --KEY=VALUE, --KEY VALUE) and
 * from a config file; text or JSON out, and a PNG scatter of run time
 * against PLE exits. Exit 0, 1 (could not write), 2 (bad input).
 */
#include "vshare-proto.h" /* vs_schema_version */
#include "plesim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	PsParams p;
	uint32_t runs;
	bool json, compare, per_run;
	const char *png;
	PsPolicy pols[PS_POL_COUNT];
	int np; /* --policies, else --compare, else the policy key */
} Opts;

static int usage_error(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "vshare-plesim: ");
	fprintf(stderr, fmt, a, b);
	fprintf(stderr, "\n(vshare-plesim --help)\n");
	return 2;
}

static void help(void)
{
	char buf[4096];

	ps_params_help(buf, sizeof(buf));
	printf("usage: vshare-plesim [--config FILE] [--runs N] [--compare] "
	       "[--policies P,P] [--json] [--per-run] [--png FILE] "
	       "[KEY=VALUE...]\n\n"
	       "A model of lock-holder / lock-waiter preemption under "
	       "pause-loop exiting\n(docs/ple.md). --compare runs every "
	       "policy on the same seeds.\n\nKEYs (also --KEY VALUE, and "
	       "'KEY = VALUE' lines in a config file):\n%s",
	       buf);
}

static int load_config(Opts *o, const char *path)
{
	char err[256], *text;
	FILE *f = fopen(path, "r");
	long n;

	if (!f)
		return usage_error("config %s: %s", path, strerror(errno));
	text = calloc(1, 65537);
	n = text ? (long)fread(text, 1, 65536, f) : -1;
	if (ferror(f))
		n = -1;
	fclose(f);
	if (n < 0 || n == 65536) {
		free(text);
		return usage_error("config %s: %s", path,
				   n == 65536 ? "larger than 64 KiB"
					      : "cannot read");
	}
	if (!ps_params_parse_text(&o->p, text, err, sizeof(err))) {
		free(text);
		return usage_error("config %s: %s", path, err);
	}
	free(text);
	return 0;
}

static int set_runs(Opts *o, const char *v)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || *end || !*v || *v == '-' || n < 1 || n > 1000000)
		return usage_error("--runs: '%s' is not a count from 1 to "
				   "1000000%s",
				   v, "");
	o->runs = (uint32_t)n;
	return 0;
}

static int set_policies(Opts *o, const char *list)
{
	char buf[128], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", list);
	o->np = 0;
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save))
		if (o->np == PS_POL_COUNT ||
		    !ps_policy_parse(tok, &o->pols[o->np++]))
			return usage_error("--policies: '%s' is not a list of "
					   "off, stock, not-next, penalty%s",
					   list, "");
	return o->np ? 0 : usage_error("--policies: empty%s", "", "");
}

/* --KEY=VALUE, --KEY VALUE, KEY=VALUE; *i is advanced past a VALUE. */
static int key_value(Opts *o, int argc, char **argv, int *i)
{
	char key[64], err[256];
	const char *a = argv[*i], *eq, *val;

	a += strncmp(a, "--", 2) ? 0 : 2;
	eq = strchr(a, '=');
	if (!eq && (*i + 1 >= argc || argv[*i] == a))
		return usage_error("'%s': expected KEY=VALUE%s", argv[*i], "");
	val = eq ? eq + 1 : argv[++*i];
	snprintf(key, sizeof(key), "%.*s", eq ? (int)(eq - a) : 63, a);
	if (!strcmp(key, "runs"))
		return set_runs(o, val);
	if (!strcmp(key, "config"))
		return load_config(o, val);
	if (!strcmp(key, "policies"))
		return set_policies(o, val);
	if (!strcmp(key, "png")) {
		o->png = val;
		return 0;
	}
	if (!ps_params_set(&o->p, key, val, err, sizeof(err)))
		return usage_error("%s%s", err, "");
	return 0;
}

/* 0 ok, 2 usage, -1 --help */
static int parse(Opts *o, int argc, char **argv)
{
	char err[256];
	int rc = 0;

	for (int i = 1; i < argc && !rc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return -1;
		else if (!strcmp(argv[i], "--version"))
			return printf("vshare-plesim %s\n", vs_schema_version),
			       -2;
		else if (!strcmp(argv[i], "--json"))
			o->json = true;
		else if (!strcmp(argv[i], "--compare"))
			o->compare = true;
		else if (!strcmp(argv[i], "--per-run"))
			o->per_run = true;
		else
			rc = key_value(o, argc, argv, &i);
	}
	if (!rc && !ps_params_check(&o->p, err, sizeof(err)))
		rc = usage_error("%s%s", err, "");
	return rc;
}

static void print_text(const Opts *o, const PsSummary *s, PsPolicy pol)
{
	printf("%-9s runs %u  run time ms: median %.1f p99 %.1f max %.1f  "
	       "PLE exits: mean %.0f p99 %.0f  r(time,exits) %.2f  "
	       "slow (> %.1f ms) %.2f%%  LHP %.1f  LWP %.1f  spin %.1f%%"
	       "%s\n",
	       ps_policy_name(pol), s->n, s->runtime_ms_median,
	       s->runtime_ms_p99, s->runtime_ms_max, s->exits_mean,
	       s->exits_p99, s->corr, s->slow_ms, 100 * s->slow_frac,
	       s->lhp_mean, s->lwp_mean, 100 * s->spin_frac,
	       s->timed_out ? "  (some runs timed out)" : "");
}

static void print_run_json(const Opts *o, const PsResult *r)
{
	printf("{\"runtime_ms\": %.3f, \"ple_exits\": %llu, \"lhp\": %llu, "
	       "\"lwp\": %llu, \"spin_cycles\": %llu, \"yields\": %llu, "
	       "\"halts\": %llu, \"kicks\": %llu, \"timed_out\": %s}",
	       ps_ms(&o->p, r->runtime), (unsigned long long)r->ple_exits,
	       (unsigned long long)r->lhp, (unsigned long long)r->lwp,
	       (unsigned long long)r->spin_cycles,
	       (unsigned long long)r->yields, (unsigned long long)r->halts,
	       (unsigned long long)r->kicks, r->timed_out ? "true" : "false");
}

static void print_json(const Opts *o, const PsSummary *s, PsPolicy pol,
		       const PsResult *r, bool first)
{
	printf("%s\n  {\"policy\": \"%s\", \"runs\": %u, \"runtime_ms\": "
	       "{\"median\": %.3f, \"p99\": %.3f, \"mean\": %.3f, \"min\": "
	       "%.3f, \"max\": %.3f}, \"ple_exits\": {\"mean\": %.1f, "
	       "\"median\": %.0f, \"p99\": %.0f, \"max\": %.0f}, "
	       "\"corr_runtime_exits\": %.4f, \"slow_ms\": %.3f, "
	       "\"slow_fraction\": %.5f, \"lhp_mean\": %.2f, \"lwp_mean\": "
	       "%.2f, \"spin_fraction\": %.5f, \"timed_out\": %u",
	       first ? "" : ",", ps_policy_name(pol), s->n,
	       s->runtime_ms_median, s->runtime_ms_p99, s->runtime_ms_mean,
	       s->runtime_ms_min, s->runtime_ms_max, s->exits_mean,
	       s->exits_median, s->exits_p99, s->exits_max, s->corr, s->slow_ms,
	       s->slow_frac, s->lhp_mean, s->lwp_mean, s->spin_frac,
	       s->timed_out);
	for (uint32_t i = 0; o->per_run && i < s->n; i++) {
		printf(i ? ",\n    " : ", \"per_run\": [\n    ");
		print_run_json(o, &r[i]);
	}
	printf(o->per_run ? "]}" : "}");
}

static void json_head(const Opts *o)
{
	printf("{\"model\": \"vshare-plesim\", \"note\": \"model-based, "
	       "docs/ple.md\", \"pcpus\": %u, \"vms\": %u, \"vcpus\": %u, "
	       "\"lock\": \"%s\", \"ple_gap\": %llu, \"ple_window\": %llu, "
	       "\"seed\": %llu, \"policies\": [",
	       o->p.pcpus, o->p.vms, o->p.vcpus, ps_lock_name(o->p.lock),
	       (unsigned long long)o->p.ple_gap,
	       (unsigned long long)o->p.ple_window,
	       (unsigned long long)o->p.seed);
}

static const uint32_t colours[] = { 0x808080, 0xd62728, 0x1f77b4, 0x2ca02c };

static int run_all(Opts *o, PsResult **res, PsPolicy *pols, int np)
{
	PsSummary s;
	double slow_ms = 0;

	for (int k = 0; k < np; k++) {
		PsParams p = o->p;

		p.policy = pols[k];
		res[k] = calloc(o->runs, sizeof(PsResult));
		if (!res[k] || !ps_run_many(&p, o->runs, res[k])) {
			fprintf(stderr, "vshare-plesim: out of memory\n");
			return 1;
		}
		ps_summarize(&p, res[k], o->runs, slow_ms, &s);
		if (pols[k] == PS_POL_STOCK || !k)
			slow_ms = s.slow_ms; /* the others: stock's bar */
		if (o->json)
			print_json(o, &s, pols[k], res[k], !k);
		else
			print_text(o, &s, pols[k]);
	}
	return 0;
}

static int plot(const Opts *o, PsResult **res, const PsPolicy *pols, int np)
{
	PsSeries ser[PS_POL_COUNT];
	char err[256];

	for (int k = 0; k < np; k++)
		ser[k] = (PsSeries){ res[k], o->runs, colours[pols[k]],
				     ps_policy_name(pols[k]) };
	if (ps_plot_png(o->png, &o->p, ser, (uint32_t)np, err, sizeof(err)))
		return 0;
	fprintf(stderr, "vshare-plesim: %s\n", err);
	return 1;
}

int main(int argc, char **argv)
{
	Opts o = { .runs = 1 };
	PsResult *res[PS_POL_COUNT] = { 0 };
	PsPolicy *pols = o.pols;
	int np, rc;

	ps_params_default(&o.p);
	rc = parse(&o, argc, argv);
	if (rc == -2)
		return 0;
	if (rc < 0)
		help();
	if (rc)
		return rc < 0 ? 0 : rc;
	for (int k = 0; o.compare && !o.np && k < PS_POL_COUNT; k++)
		pols[k] = (PsPolicy)k;
	np = o.np ? o.np : o.compare ? PS_POL_COUNT : 1;
	if (!o.np && !o.compare)
		pols[0] = o.p.policy;
	if (o.json)
		json_head(&o);
	rc = run_all(&o, res, pols, np);
	if (o.json)
		printf("]}\n");
	if (!rc && o.png)
		rc = plot(&o, res, pols, np);
	for (int k = 0; k < np; k++)
		free(res[k]);
	return rc;
}
