// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Paced memory moves (paper 001: a neighbour's memory follows it to its
 * new node while it keeps running). The pages of a process's large
 * writable mappings (in a QEMU: guest RAM) go to one NUMA node with
 * move_pages(2), a chunk at a time, sleeping between chunks so the rate
 * stays at or below the one asked: the VM's own memory traffic keeps the
 * rest of the bandwidth. Only a node the kernel has can be a target; a
 * declared (fake) layout's nodes are refused before any page moves.
 */
#include "vshare-host.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CHUNK_PAGES 2048
#define MF_MOVE	    (1 << 1) /* MPOL_MF_MOVE, <numaif.h>: no libnuma needed */

gboolean vs_parse_ram_ranges(const char *maps, guint64 min_bytes, GArray *out,
			     GError **error)
{
	g_auto(GStrv) lines = g_strsplit(maps, "\n", -1);

	for (guint i = 0; lines[i]; i++) {
		unsigned long long a, b;
		char perms[5];
		int used = 0;
		VsRange r;

		if (!*lines[i])
			continue;
		if (sscanf(lines[i], "%llx-%llx %4s %n", &a, &b, perms,
			   &used) != 3 ||
		    !used || b <= a || strlen(perms) != 4)
			return vs_fail(error, VS_HOST_ERROR_FAILED,
				       "maps line %u: \"%.60s\" is not "
				       "\"start-end perms ...\"",
				       i + 1, lines[i]);
		if (perms[0] != 'r' || perms[1] != 'w' || b - a < min_bytes)
			continue;
		r = (VsRange){ .start = a, .len = b - a };
		g_array_append_val(out, r);
	}
	return TRUE;
}

gboolean vs_node_is_real(int node)
{
	g_autofree char *p =
		g_strdup_printf("/sys/devices/system/node/node%d", node);

	return node >= 0 && node < VS_MAX_NODES &&
	       g_file_test(p, G_FILE_TEST_IS_DIR);
}

/* One chunk: the pages present go to @node; counts what ended there. */
static gboolean move_chunk(gint64 pid, guint64 addr, guint n, gsize page,
			   int node, VsMoveStats *st, GError **error)
{
	void *pages[CHUNK_PAGES];
	int nodes[CHUNK_PAGES], status[CHUNK_PAGES];

	for (guint i = 0; i < n; i++) {
		pages[i] = (void *)(uintptr_t)(addr + (guint64)i * page);
		nodes[i] = node;
	}
	if (syscall(SYS_move_pages, (int)pid, (unsigned long)n, pages, nodes,
		    status, MF_MOVE) < 0) {
		int e = errno;

		/* a mapping that went away meanwhile: nothing to move */
		if (e == EFAULT || e == ENOENT)
			return TRUE;
		return vs_fail(error, VS_HOST_ERROR_FAILED,
			       "move_pages(pid %" G_GINT64_FORMAT
			       ", node %d): %s",
			       pid, node, g_strerror(e));
	}
	for (guint i = 0; i < n; i++) {
		if (status[i] == -ENOENT || status[i] == -EFAULT)
			continue; /* never touched: nothing to move */
		st->present += page;
		if (status[i] == node)
			st->on_node++;
		else
			st->failed++;
	}
	return TRUE;
}

gboolean vs_move_memory(gint64 pid, int node, guint mib_per_s,
			const gint *cancel, VsMoveStats *st, GError **error)
{
	g_autofree char *path =
		g_strdup_printf("/proc/%" G_GINT64_FORMAT "/maps", pid);
	g_autofree char *maps = NULL;
	g_autoptr(GArray) ranges = g_array_new(FALSE, FALSE, sizeof(VsRange));
	gsize page = (gsize)sysconf(_SC_PAGESIZE);
	gint64 t0 = g_get_monotonic_time();

	memset(st, 0, sizeof(*st));
	if (!vs_node_is_real(node))
		return vs_fail(error, VS_HOST_ERROR_REFUSED,
			       "node %d is not a NUMA node of this kernel",
			       node);
	if (!mib_per_s)
		return vs_fail(error, VS_HOST_ERROR_USAGE,
			       "memory move: a rate of 0 MiB/s");
	if (!g_file_get_contents(path, &maps, NULL, NULL))
		return vs_fail(error, VS_HOST_ERROR_GONE,
			       "process %" G_GINT64_FORMAT " is gone", pid);
	if (!vs_parse_ram_ranges(maps, VS_RAM_MIN_BYTES, ranges, error))
		return FALSE;
	for (guint r = 0; r < ranges->len; r++) {
		VsRange *rg = &g_array_index(ranges, VsRange, r);

		for (guint64 off = 0; off < rg->len;
		     off += (guint64)CHUNK_PAGES * page) {
			guint n = (guint)MIN((guint64)CHUNK_PAGES,
					     (rg->len - off) / page);
			gint64 due;

			if (cancel && g_atomic_int_get(cancel))
				return vs_fail(error, VS_HOST_ERROR_FAILED,
					       "memory move cancelled");
			if (!move_chunk(pid, rg->start + off, n, page, node, st,
					error))
				return FALSE;
			st->bytes += (guint64)n * page;
			/* at the rate: the time the pages present may take
			 * (an untouched range costs no bandwidth) */
			due = t0 + (gint64)(st->present * G_USEC_PER_SEC /
					    ((guint64)mib_per_s << 20));
			if (due > g_get_monotonic_time())
				g_usleep(
					(gulong)(due - g_get_monotonic_time()));
		}
	}
	st->usec = g_get_monotonic_time() - t0;
	return TRUE;
}
