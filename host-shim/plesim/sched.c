// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The host scheduler: one CFS run queue per pCPU, equal weights (every
 * vCPU thread nice 0), as kernel/sched/fair.c in Linux 6.1 with
 * CONFIG_FAIR_GROUP_SCHED flattened to one level. A vCPU's vruntime grows
 * with its time on the pCPU; pick_next_entity() takes the leftmost unless
 * the skip buddy can be passed over, or the next buddy taken, within
 * wakeup_gran; ticks end a slice; a woken vCPU is placed at min_vruntime
 * - latency/2 (GENTLE_FAIR_SLEEPERS) on an idle pCPU if there is one and
 * preempts when it is more than wakeup_gran behind; a pCPU that goes idle
 * pulls a waiting vCPU from the busiest queue. Left out: periodic load
 * balancing, last buddies, cgroups' group entities.
 */
#include "plesim-int.h"

#include <string.h>

void ps_resched_remote(PsSim *s, int q)
{
	uint64_t at = s->now + ps_jitter(s, s->p.ipi);

	if (at < s->rq[q].resched_at)
		s->rq[q].resched_at = at;
}

void ps_rq_add(PsSim *s, int q, int v)
{
	PsRq *rq = &s->rq[q];

	rq->mem[rq->nr++] = v;
	s->v[v].rq = q;
	s->v[v].host = H_QUEUED;
}

void ps_rq_remove(PsSim *s, int q, int v)
{
	PsRq *rq = &s->rq[q];

	for (int i = 0; i < rq->nr; i++)
		if (rq->mem[i] == v) {
			rq->mem[i] = rq->mem[--rq->nr];
			break;
		}
	if (rq->curr == v)
		rq->curr = -1;
	if (rq->next == v)
		rq->next = -1;
	if (rq->skip == v)
		rq->skip = -1;
}

/* Smallest vruntime among the members but @except; ties: lowest id. */
int ps_rq_leftmost(const PsSim *s, int q, int except)
{
	const PsRq *rq = &s->rq[q];
	int best = -1;

	for (int i = 0; i < rq->nr; i++) {
		int v = rq->mem[i];

		if (v == except)
			continue;
		if (best < 0 || s->v[v].vruntime < s->v[best].vruntime ||
		    (s->v[v].vruntime == s->v[best].vruntime && v < best))
			best = v;
	}
	return best;
}

void ps_update_min_vr(PsSim *s, int q)
{
	int l = ps_rq_leftmost(s, q, -1);

	if (l >= 0 && s->v[l].vruntime > s->rq[q].min_vr)
		s->rq[q].min_vr = s->v[l].vruntime;
}

/* wakeup_preempt_entity(curr, se): -1, 0, or 1 when curr is more than
 * wakeup_gran ahead of se. */
static int wpe(const PsSim *s, int curr, int se)
{
	int64_t d = s->v[curr].vruntime - s->v[se].vruntime;

	if (d <= 0)
		return -1;
	return d > (int64_t)s->p.wakeup_gran ? 1 : 0;
}

bool ps_wakeup_preempt(const PsSim *s, int curr, int se)
{
	return wpe(s, curr, se) == 1;
}

int ps_pick_next(PsSim *s, int q)
{
	PsRq *rq = &s->rq[q];
	int left = ps_rq_leftmost(s, q, -1), se = left;

	if (left < 0)
		return -1;
	if (rq->skip == se) {
		int second = ps_rq_leftmost(s, q, se);

		if (second >= 0 && wpe(s, second, left) < 1)
			se = second;
	}
	if (rq->next >= 0 && wpe(s, rq->next, left) < 1)
		se = rq->next;
	if (rq->next == se)
		rq->next = -1;
	if (rq->skip == se)
		rq->skip = -1;
	return se;
}

/* Newidle balance: the leftmost waiting vCPU of the busiest queue. */
static int pull(PsSim *s, int q)
{
	int src = -1, v;

	for (int i = 0; i < s->np; i++)
		if (i != q && s->rq[i].nr >= 2 &&
		    (src < 0 || s->rq[i].nr > s->rq[src].nr))
			src = i;
	if (src < 0)
		return -1;
	v = ps_rq_leftmost(s, src, s->rq[src].curr);
	ps_rq_remove(s, src, v);
	s->v[v].vruntime += s->rq[q].min_vr - s->rq[src].min_vr;
	ps_rq_add(s, q, v);
	return v;
}

static void switch_out(PsSim *s, int v)
{
	PsVcpu *x = &s->v[v];

	if (x->g == G_CS)
		s->r.lhp++;
	else if (x->g == G_SPIN && ps_lock_may_take(s, v))
		s->r.lwp++;
	x->host = H_QUEUED;
	x->ready = true; /* kvm_sched_out(): still runnable */
	x->exit_pending = false;
}

static void switch_in(PsSim *s, int q, int v)
{
	PsVcpu *x = &s->v[v];
	PsLock *l = x->lock >= 0 ? &s->lk[x->lock] : NULL;

	s->rq[q].curr = v;
	x->host = H_RUN;
	x->ready = false;
	x->picked = x->sync = s->now;
	x->busy = s->now + ps_jitter(s, s->p.switch_cost);
	x->loop = x->busy;
	x->window = ps_shrink_window(&s->p, x->window); /* vmx_sched_in */
	if (x->g == G_SPIN && l && l->qlen && l->q[0] == v)
		l->pending = true;
	s->r.switches++;
}

void ps_schedule(PsSim *s, int q)
{
	PsRq *rq = &s->rq[q];
	int prev = rq->curr, se;

	rq->resched = false;
	rq->resched_at = PS_NEVER;
	if (prev >= 0)
		ps_sync(s, prev);
	ps_update_min_vr(s, q);
	se = ps_pick_next(s, q);
	if (se < 0)
		se = pull(s, q);
	if (se == prev)
		return;
	if (prev >= 0)
		switch_out(s, prev);
	rq->curr = -1;
	if (se >= 0)
		switch_in(s, q, se);
}

/* check_preempt_tick() */
void ps_tick(PsSim *s, int q)
{
	PsRq *rq = &s->rq[q];
	int c = rq->curr, l;
	uint64_t period, ideal, ran;

	if (c < 0 || rq->nr < 2)
		return;
	ps_sync(s, c);
	period = s->p.latency;
	if ((uint64_t)rq->nr * s->p.min_gran > period)
		period = (uint64_t)rq->nr * s->p.min_gran;
	ideal = period / rq->nr;
	ran = s->now - s->v[c].picked;
	if (ran > ideal) {
		rq->resched = true;
		return;
	}
	if (ran < s->p.min_gran)
		return;
	l = ps_rq_leftmost(s, q, c);
	if (l >= 0 && s->v[c].vruntime - s->v[l].vruntime > (int64_t)ideal)
		rq->resched = true;
}

/* select_idle_sibling(): prev if idle, else any idle pCPU, else prev. */
static int wake_target(const PsSim *s, int prev)
{
	for (int i = 0; i < s->np; i++) {
		int q = (prev + i) % s->np;

		if (s->rq[q].curr < 0 && s->rq[q].nr == 0)
			return q;
	}
	return prev;
}

void ps_wake(PsSim *s, int v)
{
	PsVcpu *x = &s->v[v];
	int q = wake_target(s, x->rq);
	PsRq *rq = &s->rq[q];
	int64_t floor = rq->min_vr - (int64_t)(s->p.latency / 2);

	x->vruntime += rq->min_vr - s->rq[x->rq].min_vr;
	if (x->vruntime < floor)
		x->vruntime = floor;
	ps_rq_add(s, q, v);
	x->ready = true; /* kvm_vcpu_wake_up() */
	if (rq->curr < 0) {
		rq->resched = true;
		return;
	}
	ps_sync(s, rq->curr);
	if (wpe(s, rq->curr, v) == 1)
		rq->resched = true;
}

void ps_block(PsSim *s, int v)
{
	int q = s->v[v].rq;

	ps_sync(s, v);
	ps_rq_remove(s, q, v);
	s->v[v].host = H_BLOCKED;
	s->v[v].ready = false;
	s->v[v].exit_pending = false;
	s->rq[q].resched = true;
}

/* yield_to() + yield_to_task_fair(): the target becomes the next buddy
 * of its queue (which is told to reschedule), the yielder the skip
 * buddy of its own. */
int ps_yield_to(PsSim *s, int me, int target)
{
	int q = s->v[me].rq, tq = s->v[target].rq;

	if (s->rq[q].nr == 1 && s->rq[tq].nr == 1)
		return -1;
	if (s->v[target].host != H_QUEUED)
		return 0;
	ps_sync(s, me);
	s->rq[tq].next = target;
	if (s->rq[q].nr > 1) {
		if (s->rq[q].next == me)
			s->rq[q].next = -1;
		s->rq[q].skip = me;
	}
	if (tq != q)
		ps_resched_remote(s, tq);
	s->rq[q].resched = true;
	return 1;
}

uint64_t ps_grow_window(const PsParams *p, uint64_t w)
{
	uint64_t g = p->ple_window_grow, base = p->ple_window;

	if (g < 1)
		return base;
	w = g < base ? w * g : w + g;
	return w < p->ple_window_max ? w : p->ple_window_max;
}

uint64_t ps_shrink_window(const PsParams *p, uint64_t w)
{
	uint64_t m = p->ple_window_shrink, base = p->ple_window;

	if (m < 1)
		return base;
	w = m < base ? w / m : (w > m ? w - m : 0);
	return w > base ? w : base;
}
