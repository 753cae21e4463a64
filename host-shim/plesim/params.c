// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Parameters: defaults (Linux 6.1 CFS, kvm_intel, paper 000's shape), one
 * table that names, bounds and documents each, and the parsers of
 * "key=value" arguments and config files built on it.
 */
#include "plesim.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { K_U32, K_CYC, K_US, K_GHZ, K_LOCK, K_POL };

typedef struct {
	const char *name;
	int kind;
	size_t off;
	double min, max;
	const char *help;
} Param;

#define F(x) offsetof(PsParams, x)
static const Param params[] = {
	{ "pcpus", K_U32, F(pcpus), 1, 256, "physical CPUs" },
	{ "vms", K_U32, F(vms), 1, 64, "VMs" },
	{ "vcpus", K_U32, F(vcpus), 1, 1024, "vCPUs per VM" },
	{ "iters", K_U32, F(iters), 1, 1e7, "lock acquisitions per vCPU" },
	{ "locks", K_U32, F(locks), 1, 64, "spinlocks per VM" },
	{ "lock", K_LOCK, F(lock), 0, 0, "ticket | qspin" },
	{ "policy", K_POL, F(policy), 0, 0,
	  "off | stock | not-next | penalty" },
	{ "compute-us", K_US, F(compute), 0.001, 1e6,
	  "mean work between acquisitions" },
	{ "hold", K_CYC, F(hold), 1, 1e9, "mean hold time (cycles)" },
	{ "hold-min", K_CYC, F(hold_min), 0, 1e9, "shortest hold (cycles)" },
	{ "spin-iter", K_CYC, F(spin_iter), 1, 1e6,
	  "cycles from PAUSE to PAUSE in a spin loop" },
	{ "spin-threshold", K_CYC, F(spin_threshold), 1, 1e9,
	  "qspin: loops before halting (SPIN_THRESHOLD)" },
	{ "grab", K_CYC, F(grab), 1, 1e6, "cycles to take a lock seen free" },
	{ "ple-gap", K_CYC, F(ple_gap), 0, 1e9, "kvm_intel ple_gap (0: off)" },
	{ "ple-window", K_CYC, F(ple_window), 1, 4294967295.0,
	  "kvm_intel ple_window" },
	{ "ple-window-grow", K_CYC, F(ple_window_grow), 0, 4294967295.0,
	  "kvm_intel ple_window_grow" },
	{ "ple-window-shrink", K_CYC, F(ple_window_shrink), 0, 4294967295.0,
	  "kvm_intel ple_window_shrink" },
	{ "ple-window-max", K_CYC, F(ple_window_max), 1, 4294967295.0,
	  "kvm_intel ple_window_max" },
	{ "exit-cost", K_CYC, F(exit_cost), 1, 1e9,
	  "cycles of a PAUSE/HLT exit or hypercall" },
	{ "switch-cost", K_CYC, F(switch_cost), 1, 1e9,
	  "cycles of a vCPU context switch" },
	{ "ipi", K_CYC, F(ipi), 1, 1e9,
	  "cycles until a remote reschedule lands" },
	{ "tick-us", K_US, F(tick), 10, 1e6, "host tick (HZ=250: 4000)" },
	{ "latency-us", K_US, F(latency), 1, 1e6,
	  "sched_latency before CPU scaling" },
	{ "min-gran-us", K_US, F(min_gran), 1, 1e6,
	  "sched_min_granularity before scaling" },
	{ "wakeup-gran-us", K_US, F(wakeup_gran), 0, 1e6,
	  "sched_wakeup_granularity before scaling" },
	{ "penalty-us", K_US, F(penalty), 0, 1e6,
	  "policy penalty: vruntime added per exit" },
	{ "ghz", K_GHZ, F(ghz), 0.1, 10, "guest cycles per ns" },
	{ "seed", K_CYC, F(seed), 0, 1.8e19, "first seed" },
	{ "max-ms", K_US, F(max_cycles), 1, 1e7,
	  "a run stops after this (ms)" },
};
#undef F

void ps_params_default(PsParams *p)
{
	memset(p, 0, sizeof(*p));
	p->pcpus = 4;
	p->vms = 1;
	p->vcpus = 32;
	p->iters = 150; /* ~146 ms: the paper's 1.5 s run scaled 1:10 */
	p->locks = 1;
	p->lock = PS_LOCK_TICKET;
	p->policy = PS_POL_STOCK;
	p->ghz = 2.67; /* paper 000's Xeon */
	p->compute = 120000 * 267 / 100;
	p->hold = 550; /* 200 + exp(350): 99.5 % < 2048 cycles */
	p->hold_min = 200;
	p->spin_iter = 40; /* > 32: ple_gap=32 never fires */
	p->spin_threshold = 1 << 15;
	p->grab = 100;
	p->ple_gap = 128;
	p->ple_window = 4096;
	p->ple_window_grow = 2;
	p->ple_window_shrink = 0;
	p->ple_window_max = 4294967295ULL;
	p->exit_cost = 2500;
	p->switch_cost = 3000;
	p->ipi = 2000;
	p->tick = 4000 * 2670; /* HZ=250 */
	p->latency = 6000 * 2670;
	p->min_gran = 750 * 2670;
	p->wakeup_gran = 1000 * 2670;
	p->penalty = 1000 * 2670;
	p->seed = 1;
	p->max_cycles = 20000ULL * 2670000ULL;
}

static bool fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (err && len)
		vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return false;
}

static bool parse_num(const char *s, double *out)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	if (!*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	*out = strtod(s, &end);
	while (isspace((unsigned char)*end))
		end++;
	return !errno && !*end && isfinite(*out);
}

/* Keep every microsecond-valued field when the clock changes. */
static void set_ghz(PsParams *p, double ghz)
{
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
		if (params[i].kind == K_US) {
			uint64_t *f = (uint64_t *)((char *)p + params[i].off);

			*f = (uint64_t)llround((double)*f * ghz / p->ghz);
		}
	p->ghz = ghz;
}

static bool set_enum(PsParams *p, const Param *d, const char *v, char *err,
		     size_t len)
{
	if (d->kind == K_POL && ps_policy_parse(v, &p->policy))
		return true;
	if (d->kind == K_LOCK &&
	    (!strcmp(v, "ticket") || !strcmp(v, "qspin"))) {
		p->lock = !strcmp(v, "ticket") ? PS_LOCK_TICKET : PS_LOCK_QSPIN;
		return true;
	}
	return fail(err, len, "%s: '%s' is not one of %s", d->name, v, d->help);
}

static bool set_value(PsParams *p, const Param *d, const char *v, char *err,
		      size_t len)
{
	char *f = (char *)p + d->off;
	double x;

	if (d->kind == K_LOCK || d->kind == K_POL)
		return set_enum(p, d, v, err, len);
	if (!parse_num(v, &x) || x < d->min || x > d->max ||
	    ((d->kind == K_U32 || d->kind == K_CYC) && x != floor(x)))
		return fail(err, len, "%s: '%s' is not a number from %g to %g",
			    d->name, v, d->min, d->max);
	if (d->kind == K_U32)
		*(uint32_t *)f = (uint32_t)x;
	else if (d->kind == K_CYC)
		*(uint64_t *)f = (uint64_t)x;
	else if (d->kind == K_GHZ)
		set_ghz(p, x);
	else if (d->off == offsetof(PsParams, max_cycles))
		*(uint64_t *)f = (uint64_t)llround(x * 1e6 * p->ghz);
	else
		*(uint64_t *)f = (uint64_t)llround(x * 1e3 * p->ghz);
	return true;
}

bool ps_params_set(PsParams *p, const char *key, const char *value, char *err,
		   size_t errlen)
{
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
		if (!strcmp(key, params[i].name))
			return set_value(p, &params[i], value, err, errlen);
	return fail(err, errlen, "unknown parameter '%s'", key);
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static bool parse_line(PsParams *p, char *line, int n, char *err, size_t len)
{
	char *eq, *hash = strchr(line, '#'), msg[200];

	if (hash)
		*hash = '\0';
	line = trim(line);
	if (!*line)
		return true;
	eq = strchr(line, '=');
	if (!eq)
		return fail(err, len, "line %d: expected key = value", n);
	*eq = '\0';
	if (!ps_params_set(p, trim(line), trim(eq + 1), msg, sizeof(msg)))
		return fail(err, len, "line %d: %s", n, msg);
	return true;
}

bool ps_params_parse_text(PsParams *p, const char *text, char *err,
			  size_t errlen)
{
	char *copy = strdup(text), *save = NULL, *line;
	bool ok = copy != NULL;
	int n = 0;

	for (line = copy ? strtok_r(copy, "\n", &save) : NULL; ok && line;
	     line = strtok_r(NULL, "\n", &save))
		ok = parse_line(p, line, ++n, err, errlen);
	free(copy);
	return ok;
}

bool ps_params_check(const PsParams *p, char *err, size_t errlen)
{
	if ((uint64_t)p->vms * p->vcpus > 4096)
		return fail(err, errlen, "vms x vcpus must be at most 4096");
	if (p->hold < p->hold_min)
		return fail(err, errlen, "hold must be at least hold-min");
	if (p->ple_window_max < p->ple_window)
		return fail(err, errlen, "ple-window-max below ple-window");
	if (p->tick < 1000)
		return fail(err, errlen, "tick-us too short for this clock");
	return true;
}

size_t ps_params_help(char *buf, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		int w = snprintf(buf + n, len > n ? len - n : 0, "  %-18s %s\n",
				 params[i].name, params[i].help);
		n += w > 0 ? (size_t)w : 0;
	}
	return n;
}

static const char *const pol_names[] = { "off", "stock", "not-next",
					 "penalty" };

const char *ps_policy_name(PsPolicy pol)
{
	return pol < PS_POL_COUNT ? pol_names[pol] : "?";
}

bool ps_policy_parse(const char *s, PsPolicy *pol)
{
	for (int i = 0; i < PS_POL_COUNT; i++)
		if (!strcmp(s, pol_names[i])) {
			*pol = (PsPolicy)i;
			return true;
		}
	return false;
}

const char *ps_lock_name(PsLockKind k)
{
	return k == PS_LOCK_TICKET ? "ticket" : "qspin";
}
