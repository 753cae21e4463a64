/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * profile.c: a VM's memory profile for the migration-aware layout (paper
 * 001): LLC misses per kilo-instruction, LLC miss ratio, memory bandwidth,
 * a class (memory or CPU bound), the preferred host node, where it came
 * from and when. Sources: perf counters on the vCPU threads ("perf"),
 * resctrl MBM plus perf ("resctrl+perf"), or a file an administrator
 * wrote, CONF/profiles/VM.json ("declared": the documented fake on hosts
 * without a PMU). The profile travels with the domain as libvirt
 * metadata (docs/migration.md).
 *
 * Error codes: VS_PROFILE_ABSENT (= UNSUPPORTED) when there is no profile
 * to read (no file, no metadata element, no PMU), CORRUPT when there is
 * one and it is refused (types, NaN/inf, ranges, size), FAILED for the
 * rest (I/O, malformed domain XML, perf on a thread), GONE when a sampled
 * thread no longer exists.
 */
#pragma once

#include "vshare-host.h"

#define VS_PROFILE_NS	    "urn:vshare:profile:1"
#define VS_PROFILE_KEY	    "vshare" /* virDomainSetMetadata key (prefix) */
#define VS_PROFILE_ABSENT   VS_HOST_ERROR_UNSUPPORTED
#define VS_PROFILE_MAX_FILE (64 * 1024)

/* Classification defaults: memory bound at or above either. */
#define VS_PROFILE_MPKI_MEMORY 3.0    /* LLC misses per 1000 instructions */
#define VS_PROFILE_BW_MEMORY   1000.0 /* MB/s */

/* Accepted ranges; beyond them input is refused. */
#define VS_PROFILE_MAX_MPKI 1000.0
#define VS_PROFILE_MAX_BW   1e7 /* MB/s */

typedef enum {
	VS_PROFILE_UNKNOWN,
	VS_PROFILE_CPU,
	VS_PROFILE_MEMORY,
} VsProfileClass;

typedef struct {
	double mpki;	   /* LLC misses / kilo-instruction; <0 unknown */
	double miss_ratio; /* LLC misses / LLC references, 0..1; <0 unknown */
	double bandwidth_mbps; /* memory bandwidth, MB/s; <0 unknown */
	VsProfileClass klass;
	int node;	 /* preferred host node, 0..63; -1 none */
	char source[16]; /* "perf", "resctrl+perf", "declared" */
	gint64 time;	 /* when sampled or declared, s since the epoch */
} VsProfile;

/* Raw counts of one sample, summed over the threads (scaled when the
 * kernel multiplexed the group). */
typedef struct {
	guint64 llc_misses, llc_refs, instructions, cycles;
	gint64 elapsed_us;
} VsPmuCounts;

/* Every number unknown, class UNKNOWN, node -1, source "", time 0. */
void vs_profile_init(VsProfile *p);
/* "unknown", "cpu", "memory"; parse refuses anything else ("unknown"
 * too: absence says it). */
const char *vs_profile_class_name(VsProfileClass k);
gboolean vs_profile_class_parse(const char *s, VsProfileClass *k,
				GError **error);

/* MEMORY when mpki >= @mpki_threshold or bandwidth >= @bw_threshold;
 * CPU when one of them is known and below; UNKNOWN when neither is known.
 * A threshold <= 0 means its default (VS_PROFILE_MPKI_MEMORY,
 * VS_PROFILE_BW_MEMORY). */
VsProfileClass vs_profile_classify(const VsProfile *p, double mpki_threshold,
				   double bw_threshold);

/* {"mpki": 12.5, "miss-ratio": 0.4, "bandwidth-mbps": 3200, "node": 1,
 *  "class": "memory", "source": "declared", "time": 1700000000}: every
 * member optional but at least one of mpki, bandwidth-mbps, class; unknown
 * members refused. Without "class" it is computed (default thresholds). */
gboolean vs_profile_from_json(JsonNode *node, VsProfile *out, GError **error);
/* Unknown numbers, class and node -1 are left out. */
JsonNode *vs_profile_to_json(const VsProfile *p);
/* CONF/profiles/NAME.json (at most VS_PROFILE_MAX_FILE bytes, not a
 * symlink); source "declared", time the file's unless it gives one.
 * No file: VS_PROFILE_ABSENT. */
gboolean vs_profile_load_declared(const char *conf_dir, const char *vm_name,
				  VsProfile *out, GError **error);

/* <profile mpki=... />: the element alone, without a namespace, as
 * virDomainSetMetadata(VIR_DOMAIN_METADATA_ELEMENT, key VS_PROFILE_KEY,
 * uri VS_PROFILE_NS) takes it; libvirt stores it as
 * <vshare:profile xmlns:vshare="urn:vshare:profile:1" .../>. */
char *vs_profile_to_metadata_xml(const VsProfile *p);
/* The profile element (namespace VS_PROFILE_NS, whatever its prefix)
 * anywhere under the <metadata> of a full domain XML. None:
 * VS_PROFILE_ABSENT; two, or refused values: CORRUPT; malformed XML:
 * FAILED. */
gboolean vs_profile_from_domain_xml(const char *domain_xml, VsProfile *out,
				    GError **error);

/* Can this thread count LLC misses? FALSE (VS_PROFILE_ABSENT) with one
 * line: "no usable PMU: perf_event_open(LLC misses): <errno>; using
 * declared profiles (CONF/profiles/VM.json)". */
gboolean vs_pmu_probe(GError **error);
/* One counter group per thread (LLC misses, LLC references,
 * instructions, cycles; user space only), enabled for @interval_ms
 * (the caller's thread sleeps: call from a worker), read, closed. */
gboolean vs_pmu_sample(const int *tids, guint n, guint interval_ms,
		       VsPmuCounts *out, GError **error);
/* Pure: counts -> mpki, miss ratio, bandwidth estimated as one 64-byte
 * line per LLC miss over the elapsed time; class by the defaults; source
 * "perf", time now, node -1. */
void vs_profile_from_counts(const VsPmuCounts *c, VsProfile *out);
/* vs_pmu_sample + vs_profile_from_counts. */
gboolean vs_profile_sample(const int *tids, guint n, guint interval_ms,
			   VsProfile *out, GError **error);

/* Does SYSFS/fs/resctrl/info/L3_MON/mon_features list mbm_total_bytes?
 * (@sysfs: "/sys", or a fake tree in tests.) */
gboolean vs_resctrl_probe(const char *sysfs);
/* Sum of mbm_total_bytes over GROUP/mon_data/mon_L3_* (a resctrl
 * monitoring group directory). */
gboolean vs_resctrl_mbm_bytes(const char *group_dir, guint64 *bytes,
			      GError **error);
