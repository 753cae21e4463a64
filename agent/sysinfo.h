/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Sensing: what the guest kernel reports (sysfs, procfs). Read-only. */
#pragma once

#include "vshare-proto.h"

gboolean vs_sys_online_cpus(VsCpuSet *set, GError **error);
gboolean vs_sys_memory_nodes(VsCpuSet *set, GError **error);

/* vshare-get-topology's reply, except the cgroup part. */
JsonObject *vs_sys_topology(GError **error);
/* vshare-get-cpu-stats' reply. */
JsonArray *vs_sys_cpu_stats(GError **error);

/* IRQ numbers that have /proc/irq/N/smp_affinity_list. */
GArray *vs_sys_irqs(void);

#define VS_WQ_CPUMASK "/sys/devices/virtual/workqueue/cpumask"
