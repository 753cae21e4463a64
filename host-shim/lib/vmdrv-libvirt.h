/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The libvirt VM driver's parts that are not the vtable: a pure reader of
 * domain XML and of /proc/PID/cgroup (unit-tested on captured text), and
 * the GMainContext libvirt's events are dispatched on.
 */
#pragma once

#include "vshare-host.h"

#define VS_AGENT_CHANNEL "org.vshare.agent.0"

/* A virtio-mem device's XML as libvirt gave it, cut around <requested>:
 * an update is head + the new <requested> + tail, the rest unchanged
 * (what virsh update-memory-device sends). */
typedef struct {
	char *head, *tail;
} VsLvDevXml;

typedef struct {
	char *name, *uuid;
	char *agent_path;	/* <channel type='unix'> org.vshare.agent.0 */
	gboolean agent_channel; /* that channel, its path maybe not set yet
				 * (libvirt makes one at the start) */
	guint n_cells;		/* <numa><cell>s */
	gboolean live;		/* <domain id=...>: a running domain's */
	guint n_vcpus;		/* online: <vcpu current=N>, else <vcpu> */
	GArray *vcpu_node;   /* int by vCPU id: its <numa><cell>; 0 without */
	GPtrArray *vmems;    /* VsVmem: alias, node, requested, current, ... */
	GPtrArray *vmem_xml; /* VsLvDevXml, parallel to vmems */
	gint64 quota;	     /* <cputune><quota> (us), -1 when unset */
} VsLvDomain;

/* Domain XML text -> @d (cleared first). Malformed XML: FAILED; values
 * that break the device's own invariants (current > size, a node outside
 * the cells): HOSTILE, since they come from the guest through QEMU. */
gboolean vs_lv_parse_domain(const char *xml, VsLvDomain *d, GError **error);
void vs_lv_domain_clear(VsLvDomain *d);
/* What @d lacks to be a full-vNUMA guest vshare can manage on @h (the
 * agent channel, one vCPU per pCPU, vCPU i in pCPU i's node, a virtio-mem
 * device per node): one sentence each, none when it fits. */
GPtrArray *vs_lv_domain_lacks(const VsLvDomain *d, const VsHost *h);
/* The device XML for virDomainUpdateDeviceFlags with <requested> set to
 * @bytes (a multiple of 1 KiB). */
char *vs_lv_vmem_update_xml(const VsLvDevXml *x, guint64 bytes, GError **error);
/* The cgroup path of @controller in /proc/PID/cgroup text (@version 1:
 * the v1 line listing it; 2: the "0::" line); NULL when absent. */
char *vs_lv_proc_cgroup(const char *text, const char *controller, int version);

/* Where libvirt's event callbacks run (before the first open; default: a
 * private context, iterated by the driver's wait()). A daemon passes its
 * own context; wait() then blocks on a condition instead. */
void vs_libvirt_set_event_context(GMainContext *ctx);
GMainContext *vs_libvirt_event_context(void);
/* Register the glib event implementation with libvirt (once; before any
 * virConnectOpen). */
void vs_libvirt_events_init(void);
/* Wake vs_libvirt_events_wait() callers (from an event callback). */
void vs_libvirt_events_kick(void);
/* Until @done(@data) or @deadline (monotonic us): iterate the event
 * context when this thread can own it, else wait for a kick. */
void vs_libvirt_events_wait(gboolean (*done)(gpointer data), gpointer data,
			    gint64 deadline);
/* Connections with deadlines (vmdrv-libvirt-open.c): each open runs on a
 * helper thread; the keepalive is on before a connection is handed out.
 * While an open to a URI is past VS_LIBVIRT_OPEN_MS, new opens to it fail
 * at once (UNREACHABLE, "did not answer within"). */
#define VS_LIBVIRT_OPEN_MS	   10000
#define VS_LIBVIRT_KEEPALIVE_S	   10 /* a silent libvirtd is dropped */
#define VS_LIBVIRT_KEEPALIVE_COUNT 1  /* after S x (COUNT + 1) s */
typedef struct _virConnect *VsVirConnect;
typedef struct VsLibvirtOpening VsLibvirtOpening;
/* Waits at most VS_LIBVIRT_OPEN_MS. */
VsVirConnect vs_libvirt_open(const char *uri, GError **error);
/* For a loop that must not wait: start, then finish (TRUE: done, with
 * *conn or @error; FALSE: still pending at @until, monotonic us; 0 polls)
 * or abandon (the helper closes what it gets). */
VsLibvirtOpening *vs_libvirt_open_start(const char *uri, GError **error);
gboolean vs_libvirt_open_finish(VsLibvirtOpening *o, gint64 until,
				VsVirConnect *conn, GError **error);
void vs_libvirt_open_abandon(VsLibvirtOpening *o);
gboolean vs_libvirt_open_overdue(VsLibvirtOpening *o);
/* Run what is pending (deferred frees) when no one else runs the
 * context; after a connection is closed. */
void vs_libvirt_events_drain(void);
