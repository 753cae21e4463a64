// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A run: build the machine (vCPUs spread round-robin over the pCPUs'
 * queues, ticks staggered), loop over events until every guest thread has
 * done its acquisitions, free it.
 */
#include "plesim-int.h"

#include <stdlib.h>
#include <string.h>

/* sysctl_sched_* scale with 1 + ilog2(min(ncpus, 8)) (TUNABLESCALING_LOG) */
static uint64_t sched_factor(uint32_t pcpus)
{
	uint64_t n = pcpus < 8 ? pcpus : 8, f = 1;

	while (n > 1) {
		n >>= 1;
		f++;
	}
	return f;
}

static bool alloc(PsSim *s)
{
	s->v = calloc(s->nv, sizeof(*s->v));
	s->rq = calloc(s->np, sizeof(*s->rq));
	s->lk = calloc(s->nl, sizeof(*s->lk));
	s->last_boosted = calloc(s->p.vms, sizeof(int));
	if (!s->v || !s->rq || !s->lk || !s->last_boosted)
		return false;
	for (int q = 0; q < s->np; q++)
		if (!(s->rq[q].mem = calloc(s->nv, sizeof(int))))
			return false;
	for (int l = 0; l < s->nl; l++)
		if (!(s->lk[l].q = calloc(s->nv, sizeof(int))))
			return false;
	return true;
}

static void init_vcpu(PsSim *s, int v)
{
	PsVcpu *x = &s->v[v];

	x->vm = v / (int)s->p.vcpus;
	x->idx = v % (int)s->p.vcpus;
	x->g = G_COMPUTE;
	x->lock = -1;
	x->iters = s->p.iters;
	x->left = ps_rng_exp(&s->rng, s->p.compute);
	x->window = s->p.ple_window;
	ps_rq_add(s, v % s->np, v);
}

PsSim *ps_sim_new(const PsParams *p, uint64_t seed)
{
	PsSim *s = calloc(1, sizeof(*s));
	uint64_t f = sched_factor(p->pcpus);

	if (!s)
		return NULL;
	s->p = *p;
	s->p.latency *= f;
	s->p.min_gran *= f;
	s->p.wakeup_gran *= f;
	s->rng.s = seed;
	s->nv = (int)(p->vms * p->vcpus);
	s->np = (int)p->pcpus;
	s->nl = (int)(p->vms * p->locks);
	if (!alloc(s)) {
		ps_sim_free(s);
		return NULL;
	}
	for (int q = 0; q < s->np; q++) {
		s->rq[q] = (PsRq){ .curr = -1,
				   .mem = s->rq[q].mem,
				   .next = -1,
				   .skip = -1,
				   .resched = true,
				   .resched_at = PS_NEVER };
		s->rq[q].tick = p->tick * (uint64_t)(q + 1) / (uint64_t)s->np;
	}
	for (int l = 0; l < s->nl; l++)
		s->lk[l].owner = -1;
	for (int v = 0; v < s->nv; v++)
		init_vcpu(s, v);
	return s;
}

void ps_sim_free(PsSim *s)
{
	if (!s)
		return;
	for (int q = 0; s->rq && q < s->np; q++)
		free(s->rq[q].mem);
	for (int l = 0; s->lk && l < s->nl; l++)
		free(s->lk[l].q);
	free(s->rq);
	free(s->lk);
	free(s->v);
	free(s->last_boosted);
	free(s);
}

static bool step(PsSim *s)
{
	uint64_t t = PS_NEVER;
	int q = -1;

	for (int i = 0; i < s->np; i++) {
		uint64_t n = ps_rq_next(s, i);

		if (n < t) {
			t = n;
			q = i;
		}
	}
	if (q < 0 || t > s->p.max_cycles) {
		s->r.timed_out = true;
		return false;
	}
	s->now = t;
	ps_rq_step(s, q);
	s->r.events++;
	return s->done < (uint32_t)s->nv;
}

bool ps_run(const PsParams *p, uint64_t seed, PsResult *r)
{
	PsSim *s = ps_sim_new(p, seed);

	memset(r, 0, sizeof(*r));
	if (!s)
		return false;
	while (step(s))
		;
	s->r.runtime = s->now;
	*r = s->r;
	ps_sim_free(s);
	return true;
}
