// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of libplesim (TAP): each piece of the model on a machine
 * set up by hand, then a seed-fixed small run checked against bounds
 * derived below.
 */
#include "plesim-int.h"

#include <stdio.h>
#include <string.h>

static int n_test, n_fail;

static void ok(bool cond, const char *what)
{
	n_test++;
	if (!cond)
		n_fail++;
	printf("%sok %d - %s\n", cond ? "" : "not ", n_test, what);
}

/* @pcpus x (@vms x @vcpus), every vCPU in compute, nothing running. */
static PsSim *machine(uint32_t pcpus, uint32_t vms, uint32_t vcpus,
		      PsLockKind lock, PsPolicy pol)
{
	PsParams p;

	ps_params_default(&p);
	p.pcpus = pcpus;
	p.vms = vms;
	p.vcpus = vcpus;
	p.lock = lock;
	p.policy = pol;
	return ps_sim_new(&p, 42);
}

/* Make @v the running vCPU of its queue at s->now. */
static void run_on(PsSim *s, int v)
{
	PsRq *rq = &s->rq[s->v[v].rq];

	rq->curr = v;
	s->v[v].host = H_RUN;
	s->v[v].sync = s->v[v].busy = s->v[v].loop = s->now;
	rq->resched = false;
}

static void test_ticket_order(void)
{
	PsSim *s = machine(3, 1, 3, PS_LOCK_TICKET, PS_POL_STOCK);

	for (int v = 0; v < 3; v++)
		run_on(s, v);
	ps_lock_acquire(s, 0, 0);
	ps_lock_acquire(s, 1, 0);
	ps_lock_acquire(s, 2, 0);
	ok(s->v[0].g == G_CS && s->v[1].g == G_SPIN && s->v[2].g == G_SPIN,
	   "ticket: the first comes in, the others spin");
	ok(!ps_lock_may_take(s, 1) && !ps_lock_may_take(s, 2),
	   "ticket: nobody takes a held lock");
	s->v[1].host = H_QUEUED; /* ticket 1's vCPU preempted */
	ps_lock_release(s, 0);
	ok(!ps_lock_may_take(s, 2),
	   "ticket: a free lock is not taken out of order (LWP)");
	ok(s->r.lwp == 1, "ticket: that release counts one LWP episode");
	s->v[1].host = H_RUN;
	ok(ps_lock_may_take(s, 1) && !ps_lock_may_take(s, 2),
	   "ticket: the next ticket takes it once it runs");
	ps_sim_free(s);
}

static void test_qspin_kick(void)
{
	PsSim *s = machine(2, 1, 2, PS_LOCK_QSPIN, PS_POL_STOCK);

	run_on(s, 0);
	run_on(s, 1);
	ps_lock_acquire(s, 0, 0);
	ps_lock_acquire(s, 1, 0);
	ok(s->lk[0].pending && s->v[1].g == G_SPIN,
	   "qspin: the queue head spins with pending set");
	ps_halt(s, 1);
	ok(s->v[1].g == G_HALT && s->v[1].host == H_BLOCKED &&
		   !s->lk[0].pending,
	   "qspin: past SPIN_THRESHOLD the head halts, pending cleared");
	/* Time passes on pCPU 0 (the holder computes its section). */
	s->v[0].left = 100000;
	for (s->now = 0; s->now < 90000; s->now += 1000)
		ps_rq_step(s, 0);
	ok(s->v[1].host == H_BLOCKED && s->r.kicks == 0,
	   "qspin: a halted waiter stays halted while the lock is held");
	s->now = 100000;
	ps_sync(s, 0);
	ps_lock_release(s, 0);
	ok(s->r.kicks == 1 && s->v[1].host == H_QUEUED && s->v[1].g == G_SPIN,
	   "qspin: the unlock kicks it and only then is it runnable");
	ps_sim_free(s);
}

static void test_ple_window(void)
{
	PsSim *s = machine(1, 1, 1, PS_LOCK_TICKET, PS_POL_STOCK);
	PsParams *p = &s->p;

	run_on(s, 0);
	s->v[0].g = G_SPIN;
	s->v[0].lock = 0;
	s->v[0].loop = 1000;
	/* PAUSEs every 40 cycles from 1000: the first one more than 4096
	 * after the first is number 4096 / 40 + 1 = 103, at 1000 + 4120. */
	ok(ps_ple_at(s, 0) == 5120, "PLE: exit at the first PAUSE past "
				    "ple_window (gap 128 >= 40)");
	p->ple_gap = 40;
	ok(ps_ple_at(s, 0) == 5120, "PLE: a gap equal to the loop fires");
	p->ple_gap = 32;
	ok(ps_ple_at(s, 0) == PS_NEVER, "PLE: ple_gap=32 < 40 never fires");
	p->ple_gap = 0;
	ok(ps_ple_at(s, 0) == PS_NEVER, "PLE: ple_gap=0 is off");
	p->ple_gap = 128;
	p->policy = PS_POL_OFF;
	ok(ps_ple_at(s, 0) == PS_NEVER, "PLE: policy off never fires");
	p->policy = PS_POL_STOCK;
	s->v[0].window = 8192;
	ok(ps_ple_at(s, 0) == 1000 + 205 * 40, "PLE: a grown window");
	ok(ps_grow_window(p, 4096) == 8192 && ps_shrink_window(p, 8192) == 4096,
	   "PLE: grow 2 doubles, shrink 0 resets (kvm_intel defaults)");
	p->ple_window_grow = 0;
	p->ple_window_max = 6000;
	ok(ps_grow_window(p, 4096) == 4096, "PLE: grow 0 keeps the base");
	p->ple_window_grow = 2;
	ok(ps_grow_window(p, 4096) == 6000, "PLE: ple_window_max caps");
	ps_sim_free(s);
}

/* One pCPU; VM 0 = vCPUs 0, 1; VM 1 = vCPUs 2, 3. vCPU 0 spins and is
 * 10 x wakeup_gran behind everyone in vruntime (it just woke); @target:
 * vCPU 1 is queued and ready, else it is blocked (VM 0 has no one to
 * yield to). Returns who runs after vCPU 0's PAUSE exit. */
static int after_exit(PsPolicy pol, bool target, int64_t spread)
{
	PsSim *s = machine(1, 2, 2, PS_LOCK_TICKET, pol);
	int who;

	for (int v = 1; v < 4; v++) {
		s->v[v].vruntime = spread + v;
		s->v[v].ready = true;
	}
	run_on(s, 0);
	s->v[0].g = G_SPIN;
	s->v[0].lock = 0;
	s->lk[0].owner = 1; /* held by the (preempted) vCPU 1 */
	if (!target)
		ps_rq_remove(s, 0, 1), s->v[1].host = H_BLOCKED;
	ps_on_pause_exit(s, 0);
	if (s->rq[0].resched)
		ps_schedule(s, 0);
	who = s->rq[0].curr;
	ps_sim_free(s);
	return who;
}

static void test_yield_policies(void)
{
	int64_t far = 10 * 3 * 1000 * 2670, near = 1000;

	ok(after_exit(PS_POL_STOCK, true, near) == 1,
	   "stock: yields to vCPU 1 when that is fair (next buddy)");
	ok(after_exit(PS_POL_STOCK, true, far) == 0,
	   "stock: the spinner runs again when it is far behind");
	ok(after_exit(PS_POL_STOCK, false, near) == 0,
	   "stock: no one to yield to: back into the guest");
	ok(after_exit(PS_POL_NOT_NEXT, true, far) == 1,
	   "not-next: the leftmost other (vCPU 1) runs, not the spinner");
	ok(after_exit(PS_POL_NOT_NEXT, false, far) == 2,
	   "not-next: no target in the VM: another VM's vCPU runs");
	ok(after_exit(PS_POL_PENALTY, true, near) == 1,
	   "penalty: the penalised spinner does not run next");
}

/*
 * 2 pCPUs, 4 vCPUs of one VM, 20 acquisitions each, compute ~ exp(50 us)
 * at 2.67 GHz, ticket lock, stock policy, seed 7. Bounds by hand:
 *  - work: 4 x 20 x 50 us = 4 ms of compute (holds add 80 x 550 cycles,
 *    16 us) over 2 pCPUs: 2 ms if balanced. The 80 exponential samples
 *    have a standard deviation of 50 us x sqrt(80) = 0.45 ms on the
 *    total, 3 sd = 1.34 ms, at most 0.67 ms per pCPU: run time >= 1.3 ms.
 *  - upper: 2 + 0.67 ms, plus at most one preempted holder costing a
 *    tick (4 ms) and the switch and exit costs (< 1 ms): <= 8 ms.
 *  - every PAUSE exit needs ple_window + exit_cost / 2 = 4096 + 1250
 *    on-CPU cycles: exits x 5346 <= run time x 2 pCPUs.
 *  - an LHP episode is a switch: lhp <= switches; nothing times out.
 */
static void test_small_scenario(void)
{
	PsParams p;
	PsResult r, r2;
	double ms;

	ps_params_default(&p);
	ps_params_set(&p, "pcpus", "2", NULL, 0);
	ps_params_set(&p, "vcpus", "4", NULL, 0);
	ps_params_set(&p, "iters", "20", NULL, 0);
	ps_params_set(&p, "compute-us", "50", NULL, 0);
	ok(ps_run(&p, 7, &r) && !r.timed_out, "scenario: runs to the end");
	ms = ps_ms(&p, r.runtime);
	printf("# run time %.3f ms, exits %llu, lhp %llu, lwp %llu, "
	       "switches %llu\n",
	       ms, (unsigned long long)r.ple_exits, (unsigned long long)r.lhp,
	       (unsigned long long)r.lwp, (unsigned long long)r.switches);
	ok(ms >= 1.3 && ms <= 8.0, "scenario: 1.3 ms <= run time <= 8 ms");
	ok(r.ple_exits * 5346 <= r.runtime * 2,
	   "scenario: exits bounded by on-CPU time / (window + exit)");
	ok(r.lhp <= r.switches, "scenario: LHP episodes <= switches");
	ps_run(&p, 7, &r2);
	ok(!memcmp(&r, &r2, sizeof(r)), "scenario: same seed, same result");
	ps_run(&p, 8, &r2);
	ok(r2.runtime != r.runtime, "scenario: another seed, another run");
	ps_params_set(&p, "ple-gap", "32", NULL, 0);
	ps_params_set(&p, "iters", "200", NULL, 0);
	ps_run(&p, 7, &r);
	ok(r.ple_exits == 0 && r.spin_cycles > 0,
	   "scenario: ple_gap=32 spins but never exits");
}

static void test_params(void)
{
	PsParams p;
	char err[200];

	ps_params_default(&p);
	ok(!ps_params_set(&p, "pcpus", "0", err, sizeof(err)) &&
		   strstr(err, "pcpus"),
	   "params: zero pCPUs refused");
	ok(!ps_params_set(&p, "vcpus", "-3", err, sizeof(err)) &&
		   !ps_params_set(&p, "iters", "1.5", err, sizeof(err)) &&
		   !ps_params_set(&p, "locks", "x", err, sizeof(err)) &&
		   !ps_params_set(&p, "nonsense", "1", err, sizeof(err)),
	   "params: negative, fractional, garbage, unknown refused");
	ok(!ps_params_parse_text(&p, "pcpus = 2\nvcpus 4\n", err,
				 sizeof(err)) &&
		   strstr(err, "line 2"),
	   "params: a config file's bad line is named");
	ok(ps_params_parse_text(&p, "# c\n lock = qspin # x\n\n", err,
				sizeof(err)) &&
		   p.lock == PS_LOCK_QSPIN,
	   "params: comments and blank lines");
	ps_params_set(&p, "ghz", "2.0", err, sizeof(err));
	ok(p.tick == 4000 * 2000, "params: microseconds follow the clock");
}

int main(void)
{
	test_ticket_order();
	test_qspin_kick();
	test_ple_window();
	test_yield_policies();
	test_small_scenario();
	test_params();
	printf("1..%d\n", n_test);
	return n_fail ? 1 : 0;
}
