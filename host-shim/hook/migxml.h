/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The incoming domain XML of a live migration, as libvirt's qemu hook gets
 * it on the destination (`qemu NAME migrate begin -`, XML on stdin): read
 * what the placement needs (vCPUs per guest NUMA cell, memory per cell)
 * and rewrite the host side of the layout (<cputune> vcpupin/emulatorpin,
 * <numatune> memory/memnode), as Nova's _update_numa_xml does. The guest
 * visible part (<cpu><numa>, <vcpu> count) is never touched: libvirt's ABI
 * check would refuse the migration.
 *
 * libxml2 (as libvirt itself); never prints or exits.
 */
#pragma once

#include "vshare-proto.h"

#include <glib.h>

#define VS_MIG_MAX_XML	 (16u << 20) /* a domain XML larger is refused */
#define VS_MIG_MAX_CELLS 64

typedef struct {
	guint id;
	VsCpuSet vcpus;
	guint64 mem_kib;
} VsMigCell;

typedef struct {
	char *name;
	guint nvcpus;
	guint ncells;
	VsMigCell cells[VS_MIG_MAX_CELLS];
} VsMigDomain;

void vs_mig_domain_clear(VsMigDomain *d);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(VsMigDomain, vs_mig_domain_clear)

/* Parse @xml (@len bytes, not necessarily NUL-terminated). A domain
 * without guest NUMA cells is one cell 0 holding every vCPU and all
 * memory. */
gboolean vs_mig_read(const char *xml, gsize len, VsMigDomain *d,
		     GError **error);

/* Where each guest cell goes on this host. */
typedef struct {
	guint cell;
	int node;      /* host node for the cell's memory */
	VsCpuSet cpus; /* host pCPUs for the cell's vCPUs */
} VsMigPlace;

/* @xml with <cputune> pins and <numatune> replaced by @places (one per
 * cell of @d, every cell once). Other cputune children (shares, period,
 * quota, iothreadpin) are kept. A place with node -1 binds no memory:
 * then <numatune> stays as it was. A new allocated string, or NULL +
 * error. */
char *vs_mig_rewrite(const char *xml, gsize len, const VsMigDomain *d,
		     const VsMigPlace *places, guint nplaces, GError **error);
