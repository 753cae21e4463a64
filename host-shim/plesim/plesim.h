/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libplesim: a deterministic discrete-event model of lock-holder and
 * lock-waiter preemption under pause-loop exiting (paper 000).
 *
 * pCPUs run vCPUs under a CFS-like host scheduler (Linux 6.1: vruntime,
 * slices from sched_latency / min_granularity, wake-up preemption,
 * next/skip buddies, yield_to, tick preemption, wake-up placement on an
 * idle pCPU and newidle pulls). Each vCPU runs one guest thread that
 * computes, then takes a spinlock (ticket, or pv qspinlock: spin, halt
 * after SPIN_THRESHOLD, kick on unlock) for a short critical section.
 * PLE fires as kvm_intel's ple_gap / ple_window / grow / shrink / max
 * say; what the host does after a PAUSE exit is the policy.
 *
 * Time is in guest cycles. The same parameters and seed give the same
 * result. Nothing here prints, exits or allocates global state.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
	PS_LOCK_TICKET,
	PS_LOCK_QSPIN,
} PsLockKind;

typedef enum {
	PS_POL_OFF,	 /* PLE disabled (ple_gap = 0) */
	PS_POL_STOCK,	 /* Linux 6.1: kvm_vcpu_on_spin -> yield_to */
	PS_POL_NOT_NEXT, /* paper 000: the spinner is not the next pick */
	PS_POL_PENALTY,	 /* yielder penalty: vruntime += penalty */
	PS_POL_COUNT
} PsPolicy;

typedef struct {
	/* shape */
	uint32_t pcpus, vms, vcpus; /* vcpus per VM */
	uint32_t iters;		    /* lock acquisitions per guest thread */
	uint32_t locks;		    /* spinlocks shared by a VM's threads */
	PsLockKind lock;
	PsPolicy policy;
	/* guest work (cycles): compute ~ exp(compute); hold = hold_min +
	 * exp(hold - hold_min) */
	uint64_t compute, hold, hold_min;
	uint64_t spin_iter;	 /* cycles from one PAUSE to the next */
	uint64_t spin_threshold; /* qspinlock: iterations before halting */
	uint64_t grab;		 /* cycles to take a lock seen free */
	/* kvm_intel */
	uint64_t ple_gap, ple_window, ple_window_grow, ple_window_shrink;
	uint64_t ple_window_max;
	uint64_t exit_cost;   /* a PAUSE/HLT exit or hypercall, round trip */
	uint64_t switch_cost; /* a vCPU context switch */
	uint64_t ipi;	      /* a reschedule request to another pCPU */
	/* host CFS (cycles) */
	uint64_t tick, latency, min_gran, wakeup_gran;
	uint64_t penalty; /* PS_POL_PENALTY */
	double ghz;	  /* cycles per ns, for reporting */
	uint64_t seed;
	uint64_t max_cycles; /* a run stops (timed_out) after this */
} PsParams;

typedef struct {
	uint64_t runtime; /* cycles until the last thread finished */
	uint64_t ple_exits;
	uint64_t yields;      /* directed yields that happened */
	uint64_t yield_none;  /* PAUSE exits that found no one to yield to */
	uint64_t lhp;	      /* a lock holder descheduled */
	uint64_t lwp;	      /* a free lock whose next taker is off-CPU */
	uint64_t spin_cycles; /* guest cycles spent spinning */
	uint64_t halts, kicks, switches;
	uint64_t max_wait; /* longest lock wait (cycles) */
	uint64_t events;
	bool timed_out;
} PsResult;

/* Linux 6.1 / kvm_intel defaults on the paper's shape: 32 vCPUs of one
 * VM on 4 pCPUs, ticket locks, stock directed yield. */
void ps_params_default(PsParams *p);
/* Set one parameter by name ("pcpus", "ple-window", "lock", "policy",
 * "compute-us", ...). FALSE with a message in @err on a bad name or
 * value. */
bool ps_params_set(PsParams *p, const char *key, const char *value, char *err,
		   size_t errlen);
/* "key = value" lines, '#' comments. */
bool ps_params_parse_text(PsParams *p, const char *text, char *err,
			  size_t errlen);
/* Cross-field checks (nothing above can be nonsense alone). */
bool ps_params_check(const PsParams *p, char *err, size_t errlen);
/* One line per parameter: "name  default  help". */
size_t ps_params_help(char *buf, size_t len);

const char *ps_policy_name(PsPolicy pol);
bool ps_policy_parse(const char *s, PsPolicy *pol);
const char *ps_lock_name(PsLockKind k);

/* One run with @seed. FALSE only on allocation failure. */
bool ps_run(const PsParams *p, uint64_t seed, PsResult *r);

/* ---- many runs (stats.c) ------------------------------------------------ */

typedef struct {
	uint32_t n;
	double runtime_ms_median, runtime_ms_p99, runtime_ms_mean;
	double runtime_ms_min, runtime_ms_max;
	double exits_mean, exits_median, exits_p99, exits_max;
	double corr;	   /* Pearson r of runtime and PLE exits */
	double slow_frac;  /* runs slower than the threshold */
	double slow_ms;	   /* the threshold used */
	double exits_slow; /* mean exits of the slow runs */
	double lhp_mean, lwp_mean, spin_frac, yields_mean, halts_mean;
	uint32_t timed_out;
} PsSummary;

/* Runs seeds p->seed .. p->seed + n - 1 into @out (n entries). */
bool ps_run_many(const PsParams *p, uint32_t n, PsResult *out);
/* @slow_ms <= 0: 1.2 x the median (paper 000: 1.5 s usual, > 1.8 s slow). */
void ps_summarize(const PsParams *p, const PsResult *r, uint32_t n,
		  double slow_ms, PsSummary *s);
double ps_ms(const PsParams *p, uint64_t cycles);

/* ---- plot (plot.c) ---------------------------------------------------- */

typedef struct {
	const PsResult *r;
	uint32_t n;
	uint32_t rgb; /* 0xRRGGBB */
	const char *label;
} PsSeries;

/* Scatter of run time (y, ms) against PLE exits (x) as a PNG file. */
bool ps_plot_png(const char *path, const PsParams *p, const PsSeries *s,
		 uint32_t n_series, char *err, size_t errlen);
