/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The allocation: which CPUs and memory nodes the guest's tasks, unbound
 * workqueues and IRQs may use. Changes are all-or-nothing and journalled
 * under the state directory, so a restarted (or crashed) agent comes back
 * to the last committed allocation.
 */
#pragma once

#include "cgroup.h"

typedef struct VsAlloc VsAlloc;

typedef struct {
	const char *state_dir;	/* /run/vshare-agent */
	gboolean irqs;		/* manage /proc/irq/N/smp_affinity_list */
	gboolean workqueue;	/* manage the unbound workqueue cpumask */
	const char *test_fault; /* test hook: fail after this step */
	const char *test_stop;	/* test hook: SIGSTOP itself after it */
} VsAllocConfig;

/* Loads the journal and re-applies the committed allocation. */
VsAlloc *vs_alloc_new(VsCgroup *cg, const VsAllocConfig *cfg, GError **error);
void vs_alloc_free(VsAlloc *a);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VsAlloc, vs_alloc_free)

/* @mems may be NULL (unchanged). Returns the report object. */
JsonObject *vs_alloc_set(VsAlloc *a, const char *cpus, const char *mems,
			 GError **error);
JsonObject *vs_alloc_get(VsAlloc *a, GError **error);
