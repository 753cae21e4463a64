// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The guest side, the spinlocks, pause-loop exiting and the policies,
 * and the event loop: every pCPU has a next event (the end of a compute
 * phase or a critical section, a spinner seeing its lock free, a PAUSE
 * exit, a qspinlock waiter halting, the end of an exit, a tick, a
 * reschedule); the earliest one is handled, ties by pCPU number.
 */
#include "plesim-int.h"

#include <math.h>
#include <stdlib.h>

uint64_t ps_rng_next(PsRng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint64_t ps_rng_exp(PsRng *r, uint64_t mean)
{
	double u = (double)(ps_rng_next(r) >> 11) / 9007199254740992.0;

	return (uint64_t)(-log(1.0 - u) * (double)mean);
}

uint64_t ps_jitter(PsSim *s, uint64_t cost)
{
	return cost / 2 + ps_rng_next(&s->rng) % (cost + 1);
}

static uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

void ps_sync(PsSim *s, int v)
{
	PsVcpu *x = &s->v[v];
	uint64_t from = max64(x->sync, x->busy), d;

	if (s->now <= x->sync)
		return;
	x->vruntime += (int64_t)(s->now - x->sync);
	if (s->now > from) {
		d = s->now - from;
		if (x->g == G_COMPUTE || x->g == G_CS) {
			x->left -= min64(d, x->left);
		} else if (x->g == G_SPIN) {
			x->spun += d;
			s->r.spin_cycles += d;
		}
	}
	x->sync = s->now;
}

/* ---- locks ---------------------------------------------------------------- */

static bool is_head(const PsLock *l, int v)
{
	return l->qlen && l->q[0] == v;
}

static void set_pending(PsSim *s, PsLock *l)
{
	const PsVcpu *h = l->qlen ? &s->v[l->q[0]] : NULL;

	l->pending = h && h->host == H_RUN && h->g == G_SPIN;
}

bool ps_lock_may_take(const PsSim *s, int v)
{
	const PsVcpu *x = &s->v[v];
	const PsLock *l;

	if (x->g != G_SPIN || x->host != H_RUN || x->lock < 0)
		return false;
	l = &s->lk[x->lock];
	if (l->owner >= 0)
		return false;
	if (s->p.lock == PS_LOCK_TICKET)
		return x->ticket == l->head;
	return is_head(l, v) || !l->pending;
}

static void take(PsSim *s, int v)
{
	PsVcpu *x = &s->v[v];
	PsLock *l = &s->lk[x->lock];
	uint64_t waited = s->now - x->wait_from;

	l->owner = v;
	x->g = G_CS;
	x->left =
		s->p.hold_min + ps_rng_exp(&s->rng, s->p.hold - s->p.hold_min);
	if (waited > s->r.max_wait)
		s->r.max_wait = waited;
	for (int i = 0; i < l->qlen; i++)
		if (l->q[i] == v) {
			for (int k = i + 1; k < l->qlen; k++)
				l->q[k - 1] = l->q[k];
			l->qlen--;
			if (i == 0)
				set_pending(s, l);
			break;
		}
}

void ps_lock_acquire(PsSim *s, int v, int lock)
{
	PsVcpu *x = &s->v[v];
	PsLock *l = &s->lk[lock];

	x->lock = lock;
	x->wait_from = s->now;
	x->g = G_SPIN;
	x->loop = s->now;
	x->spun = 0;
	if (s->p.lock == PS_LOCK_TICKET) {
		x->ticket = l->tail++;
		if (l->owner < 0 && x->ticket == l->head)
			take(s, v);
		return;
	}
	if (l->owner < 0 && !l->pending) {
		take(s, v); /* fast path, or stealing from a halted queue */
		return;
	}
	l->q[l->qlen++] = v;
	if (l->qlen == 1)
		l->pending = true;
}

/* KVM_HC_KICK_CPU: wake the halted vCPU, then yield to it (Linux 5.3+). */
static void kick(PsSim *s, int from, int v)
{
	PsVcpu *x = &s->v[v];

	x->g = G_SPIN;
	x->spun = 0;
	s->r.kicks++;
	ps_wake(s, v);
	s->v[from].busy = s->now + ps_jitter(s, s->p.exit_cost);
	if (ps_yield_to(s, from, v) > 0)
		s->r.yields++;
}

static void lwp_check(PsSim *s, const PsLock *l)
{
	for (int v = 0; s->p.lock == PS_LOCK_TICKET && v < s->nv; v++)
		if (s->v[v].g == G_SPIN && &s->lk[s->v[v].lock] == l &&
		    s->v[v].ticket == l->head && s->v[v].host != H_RUN)
			s->r.lwp++;
	if (s->p.lock == PS_LOCK_QSPIN && l->pending &&
	    s->v[l->q[0]].host != H_RUN)
		s->r.lwp++;
}

void ps_lock_release(PsSim *s, int v)
{
	PsVcpu *x = &s->v[v];
	PsLock *l = &s->lk[x->lock];

	l->owner = -1;
	l->free_at = s->now;
	l->head++;
	lwp_check(s, l);
	x->lock = -1;
	if (s->p.lock == PS_LOCK_QSPIN && l->qlen && s->v[l->q[0]].g == G_HALT)
		kick(s, v, l->q[0]);
	if (--x->iters == 0) {
		x->g = G_DONE;
		s->done++;
		ps_block(s, v); /* the guest idles: HLT for good */
		return;
	}
	x->g = G_COMPUTE;
	x->left = ps_rng_exp(&s->rng, s->p.compute);
}

void ps_halt(PsSim *s, int v)
{
	PsVcpu *x = &s->v[v];
	PsLock *l = &s->lk[x->lock];

	x->g = G_HALT;
	x->spun = 0;
	s->r.halts++;
	if (is_head(l, v))
		l->pending = false; /* pv_wait_head_or_lock() */
	ps_block(s, v);
}

/* ---- pause-loop exiting ----------------------------------------------------- */

/* PAUSEs at loop + k * spin_iter; the exit is at the first one more than
 * ple_window after the first. Loops with PAUSEs further apart than
 * ple_gap are not loops. */
uint64_t ps_ple_at(const PsSim *s, int v)
{
	const PsVcpu *x = &s->v[v];
	uint64_t it = s->p.spin_iter;

	if (s->p.policy == PS_POL_OFF || !s->p.ple_gap || it > s->p.ple_gap)
		return PS_NEVER;
	return x->loop + (x->window / it + 1) * it;
}

static void pause_exit(PsSim *s, int v)
{
	PsVcpu *x = &s->v[v];

	s->r.ple_exits++;
	x->busy = s->now + ps_jitter(s, s->p.exit_cost);
	x->exit_pending = true;
	x->window = ps_grow_window(&s->p, x->window); /* handle_pause() */
}

int ps_vcpu_on_spin(PsSim *s, int me)
{
	int vm = s->v[me].vm, n = (int)s->p.vcpus, base = vm * n;
	int last = s->last_boosted[vm], try = 3, y;

	for (int pass = 0; pass < 2 && try; pass++)
		for (int i = 0; i < n; i++) {
			const PsVcpu *c = &s->v[base + i];

			if (!pass && i <= last)
				continue;
			if (pass && i > last)
				break;
			if (!c->ready || base + i == me || c->host == H_BLOCKED)
				continue;
			y = ps_yield_to(s, me, base + i);
			if (y > 0) {
				s->last_boosted[vm] = i;
				return 1;
			}
			if (y < 0 && !--try)
				break;
		}
	return try < 3 ? -1 : 0;
}

/* The policy's part, before the directed yield of kvm_vcpu_on_spin. */
static void penalize(PsSim *s, int v)
{
	PsVcpu *x = &s->v[v];
	int l = ps_rq_leftmost(s, x->rq, v);

	if (s->p.policy == PS_POL_PENALTY)
		x->vruntime += (int64_t)s->p.penalty;
	else if (s->p.policy == PS_POL_NOT_NEXT && l >= 0 &&
		 x->vruntime <= s->v[l].vruntime)
		x->vruntime = s->v[l].vruntime + 1;
}

void ps_on_pause_exit(PsSim *s, int v)
{
	PsVcpu *x = &s->v[v];

	ps_sync(s, v);
	x->exit_pending = false;
	penalize(s, v);
	if (ps_vcpu_on_spin(s, v) > 0) {
		s->r.yields++;
	} else {
		s->r.yield_none++;
		if (s->p.policy >= PS_POL_NOT_NEXT && s->rq[x->rq].nr > 1)
			s->rq[x->rq].resched = true; /* schedule() anyway */
	}
	x->loop = s->now;
}

/* ---- events ------------------------------------------------------------------ */

/* The lock is seen free at the first load after it was freed or after
 * the guest resumed spinning. */
static uint64_t grab_at(const PsSim *s, int v)
{
	return max64(s->lk[s->v[v].lock].free_at, s->v[v].loop) + s->p.grab;
}

static uint64_t spin_next(const PsSim *s, int v, uint64_t base)
{
	const PsVcpu *x = &s->v[v];
	uint64_t thr = s->p.spin_threshold * s->p.spin_iter;
	uint64_t t = ps_ple_at(s, v);

	if (ps_lock_may_take(s, v))
		return min64(t, grab_at(s, v));
	if (s->p.lock == PS_LOCK_QSPIN)
		t = min64(t, base + (x->spun < thr ? thr - x->spun : 0));
	return t;
}

static uint64_t vcpu_next(const PsSim *s, int v)
{
	const PsVcpu *x = &s->v[v];
	uint64_t base = max64(x->sync, x->busy);

	if (x->busy > s->now || x->exit_pending)
		return max64(x->busy, s->now);
	if (x->g == G_COMPUTE || x->g == G_CS)
		return base + x->left;
	if (x->g == G_SPIN)
		return max64(spin_next(s, v, base), s->now);
	return PS_NEVER;
}

uint64_t ps_rq_next(PsSim *s, int q)
{
	PsRq *rq = &s->rq[q];
	uint64_t t = rq->resched ? s->now : PS_NEVER;

	if (rq->resched_at <= s->now) {
		rq->resched = true;
		t = s->now;
	}
	t = min64(t, rq->resched_at);

	if (rq->tick < s->now)
		rq->tick += (s->now - rq->tick + s->p.tick - 1) / s->p.tick *
			    s->p.tick;
	if (rq->curr >= 0) {
		t = min64(t, vcpu_next(s, rq->curr));
		if (rq->nr >= 2)
			t = min64(t, rq->tick);
	}
	return t;
}

static void spin_step(PsSim *s, int v)
{
	PsVcpu *x = &s->v[v];
	uint64_t thr = s->p.spin_threshold * s->p.spin_iter;

	if (ps_lock_may_take(s, v)) {
		if (grab_at(s, v) <= s->now)
			take(s, v);
		else if (ps_ple_at(s, v) <= s->now)
			pause_exit(s, v);
		return;
	}
	if (s->p.lock == PS_LOCK_QSPIN && x->spun >= thr)
		ps_halt(s, v);
	else if (ps_ple_at(s, v) <= s->now)
		pause_exit(s, v);
}

static void vcpu_step(PsSim *s, int v)
{
	PsVcpu *x = &s->v[v];

	if (x->exit_pending && x->busy <= s->now) {
		ps_on_pause_exit(s, v);
		return;
	}
	if (x->busy > s->now)
		return;
	if (x->g == G_COMPUTE && !x->left)
		ps_lock_acquire(s, v,
				(int)(x->vm * s->p.locks +
				      ps_rng_next(&s->rng) % s->p.locks));
	else if (x->g == G_CS && !x->left)
		ps_lock_release(s, v);
	else if (x->g == G_SPIN)
		spin_step(s, v);
}

void ps_rq_step(PsSim *s, int q)
{
	PsRq *rq = &s->rq[q];
	int c = rq->curr;

	if (c >= 0) {
		ps_sync(s, c);
		if (vcpu_next(s, c) <= s->now)
			vcpu_step(s, c);
	}
	if (rq->resched_at <= s->now)
		rq->resched = true;
	if (rq->tick == s->now) {
		ps_tick(s, q);
		rq->tick += s->p.tick;
	}
	if (rq->resched)
		ps_schedule(s, q);
}
