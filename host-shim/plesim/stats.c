// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Many runs and their summary: quantiles of run time and PLE exits, the
 * correlation between the two, the share of slow runs.
 */
#include "plesim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double ps_ms(const PsParams *p, uint64_t cycles)
{
	return (double)cycles / (p->ghz * 1e6);
}

bool ps_run_many(const PsParams *p, uint32_t n, PsResult *out)
{
	for (uint32_t i = 0; i < n; i++)
		if (!ps_run(p, p->seed + i, &out[i]))
			return false;
	return true;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank quantile of a sorted array. */
static double quantile(const double *v, uint32_t n, double q)
{
	uint32_t k = (uint32_t)ceil(q * n);

	return n ? v[k ? k - 1 : 0] : 0;
}

static double pearson(const double *x, const double *y, uint32_t n)
{
	double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;

	for (uint32_t i = 0; i < n; i++) {
		mx += x[i] / n;
		my += y[i] / n;
	}
	for (uint32_t i = 0; i < n; i++) {
		sxy += (x[i] - mx) * (y[i] - my);
		sxx += (x[i] - mx) * (x[i] - mx);
		syy += (y[i] - my) * (y[i] - my);
	}
	return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : 0;
}

static void sums(const PsParams *p, const PsResult *r, uint32_t n, PsSummary *s)
{
	double cpu = 0;

	for (uint32_t i = 0; i < n; i++) {
		s->runtime_ms_mean += ps_ms(p, r[i].runtime) / n;
		s->exits_mean += (double)r[i].ple_exits / n;
		s->lhp_mean += (double)r[i].lhp / n;
		s->lwp_mean += (double)r[i].lwp / n;
		s->yields_mean += (double)r[i].yields / n;
		s->halts_mean += (double)r[i].halts / n;
		s->spin_frac += (double)r[i].spin_cycles;
		cpu += (double)r[i].runtime * p->pcpus;
		s->timed_out += r[i].timed_out;
	}
	s->spin_frac = cpu > 0 ? s->spin_frac / cpu : 0;
}

static void slow(const PsParams *p, const PsResult *r, uint32_t n,
		 double slow_ms, PsSummary *s)
{
	uint32_t k = 0;

	s->slow_ms = slow_ms > 0 ? slow_ms : 1.2 * s->runtime_ms_median;
	for (uint32_t i = 0; i < n; i++)
		if (ps_ms(p, r[i].runtime) > s->slow_ms) {
			k++;
			s->exits_slow += (double)r[i].ple_exits;
		}
	s->slow_frac = n ? (double)k / n : 0;
	s->exits_slow = k ? s->exits_slow / k : 0;
}

void ps_summarize(const PsParams *p, const PsResult *r, uint32_t n,
		  double slow_ms, PsSummary *s)
{
	double *t = calloc(n ? n : 1, sizeof(double));
	double *e = calloc(n ? n : 1, sizeof(double));

	memset(s, 0, sizeof(*s));
	s->n = n;
	if (!t || !e || !n)
		goto out;
	for (uint32_t i = 0; i < n; i++) {
		t[i] = ps_ms(p, r[i].runtime);
		e[i] = (double)r[i].ple_exits;
	}
	s->corr = pearson(t, e, n);
	sums(p, r, n, s);
	qsort(t, n, sizeof(double), cmp_dbl);
	qsort(e, n, sizeof(double), cmp_dbl);
	s->runtime_ms_median = quantile(t, n, 0.5);
	s->runtime_ms_p99 = quantile(t, n, 0.99);
	s->runtime_ms_min = t[0];
	s->runtime_ms_max = t[n - 1];
	s->exits_median = quantile(e, n, 0.5);
	s->exits_p99 = quantile(e, n, 0.99);
	s->exits_max = e[n - 1];
	slow(p, r, n, slow_ms, s);
out:
	free(t);
	free(e);
}
