/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libplesim internals, shared by sim.c (guest, locks, PLE, policies),
 * sched.c (the host scheduler) and the unit tests.
 */
#pragma once

#include "plesim.h"

#define PS_NEVER UINT64_MAX

enum { G_COMPUTE, G_CS, G_SPIN, G_HALT, G_DONE };
enum { H_RUN, H_QUEUED, H_BLOCKED };

typedef struct {
	int vm, idx;	   /* VM and vCPU index in it */
	int rq;		   /* run queue it is on (or was last on) */
	int host;	   /* H_* */
	int g;		   /* G_* */
	uint64_t left;	   /* cycles left of compute or critical section */
	int lock;	   /* held (G_CS) or wanted (G_SPIN, G_HALT) */
	uint32_t ticket;   /* ticket lock: our ticket */
	uint32_t iters;	   /* acquisitions left */
	int64_t vruntime;  /* host CFS, cycles */
	uint64_t picked;   /* when the host last picked it (slice) */
	uint64_t sync;	   /* guest state is current up to here */
	uint64_t busy;	   /* in the host (exit, switch) until */
	bool exit_pending; /* busy is a PAUSE exit: act when it ends */
	uint64_t loop;	   /* first PAUSE of the current pause loop */
	uint64_t window;   /* current PLE window */
	uint64_t spun;	   /* qspinlock: spin cycles towards the threshold */
	uint64_t wait_from;
	bool ready; /* KVM's vcpu->ready: preempted or kicked */
} PsVcpu;

typedef struct {
	int curr; /* running vCPU or -1 */
	int nr;	  /* members, curr included */
	int *mem; /* member vCPUs */
	int64_t min_vr;
	int next, skip; /* buddies, -1 none */
	uint64_t tick;	/* next tick */
	bool resched;
	uint64_t resched_at; /* a remote request lands (IPI) */
} PsRq;

typedef struct {
	int vm;
	int owner;	     /* vCPU or -1 */
	uint32_t head, tail; /* ticket: now serving, next to hand out */
	int *q;		     /* qspinlock: waiters in order */
	int qlen;
	bool pending; /* qspinlock: the queue head spins on the lock */
	uint64_t free_at;
} PsLock;

typedef struct {
	uint64_t s;
} PsRng;

typedef struct PsSim {
	PsParams p;
	PsRng rng;
	uint64_t now;
	int nv, np, nl;
	PsVcpu *v;
	PsRq *rq;
	PsLock *lk;
	int *last_boosted; /* per VM */
	uint32_t done;
	PsResult r;
} PsSim;

/* sim.c */
PsSim *ps_sim_new(const PsParams *p, uint64_t seed);
void ps_sim_free(PsSim *s);
/* Guest state of running vCPU @v advanced to s->now. */
void ps_sync(PsSim *s, int v);
/* The next event of run queue @q (PS_NEVER: none). */
uint64_t ps_rq_next(PsSim *s, int q);
/* Handle what is due on @q at s->now. */
void ps_rq_step(PsSim *s, int q);
/* Arrive at / release lock @l from vCPU @v. */
void ps_lock_acquire(PsSim *s, int v, int l);
void ps_lock_release(PsSim *s, int v);
/* qspinlock: waiter @v halts (pv_wait) until kicked. */
void ps_halt(PsSim *s, int v);
/* Can spinning vCPU @v take its lock now? */
bool ps_lock_may_take(const PsSim *s, int v);
/* When does running spinner @v exit on PAUSE (PS_NEVER: never)? */
uint64_t ps_ple_at(const PsSim *s, int v);
/* After a PAUSE exit of @v, per policy. */
void ps_on_pause_exit(PsSim *s, int v);
/* kvm_vcpu_on_spin: >0 yielded, 0 no one, <0 only -ESRCH answers. */
int ps_vcpu_on_spin(PsSim *s, int v);

/* sched.c */
void ps_rq_add(PsSim *s, int q, int v);
void ps_rq_remove(PsSim *s, int q, int v);
int ps_rq_leftmost(const PsSim *s, int q, int except);
bool ps_wakeup_preempt(const PsSim *s, int curr, int se);
int ps_pick_next(PsSim *s, int q);
void ps_schedule(PsSim *s, int q);
void ps_tick(PsSim *s, int q);
void ps_wake(PsSim *s, int v);
void ps_block(PsSim *s, int v);
/* yield_to(): 1 yielded, 0 not, -1 -ESRCH */
int ps_yield_to(PsSim *s, int me, int target);
void ps_update_min_vr(PsSim *s, int q);
uint64_t ps_grow_window(const PsParams *p, uint64_t w);
uint64_t ps_shrink_window(const PsParams *p, uint64_t w);

/* A cost with +-50 % jitter, so that runs do not lock into step. */
uint64_t ps_jitter(PsSim *s, uint64_t cost);
/* resched_curr() from another pCPU: lands after an IPI. */
void ps_resched_remote(PsSim *s, int q);

/* rng */
uint64_t ps_rng_next(PsRng *r);
uint64_t ps_rng_exp(PsRng *r, uint64_t mean);
