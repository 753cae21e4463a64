// SPDX-License-Identifier: GPL-2.0-or-later
#include "sysinfo.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NODE_SYSFS   "/sys/devices/system/node"
#define MEMORY_SYSFS "/sys/devices/system/memory"

static gboolean read_set(const char *path, VsCpuSet *set, GError **error)
{
	g_autofree char *text = vs_read_file(path, error);

	return text && vs_cpuset_parse(text, set, error);
}

gboolean vs_sys_online_cpus(VsCpuSet *set, GError **error)
{
	return read_set("/sys/devices/system/cpu/online", set, error);
}

gboolean vs_sys_memory_nodes(VsCpuSet *set, GError **error)
{
	return read_set(NODE_SYSFS "/has_memory", set, error);
}

static gint64 node_meminfo(const char *meminfo, const char *key)
{
	const char *p = strstr(meminfo, key);

	if (!p)
		return -1;
	p += strlen(key);
	while (*p == ' ' || *p == ':')
		p++;
	return g_ascii_strtoll(p, NULL, 10);
}

static JsonObject *node_json(guint node, GError **error)
{
	g_autofree char *dir = g_strdup_printf(NODE_SYSFS "/node%u", node);
	g_autofree char *cpulist_f = g_build_filename(dir, "cpulist", NULL);
	g_autofree char *meminfo_f = g_build_filename(dir, "meminfo", NULL);
	g_autofree char *cpus = vs_read_file(cpulist_f, error);
	g_autofree char *meminfo = cpus ? vs_read_file(meminfo_f, error) : NULL;
	JsonObject *o;

	if (!meminfo)
		return NULL;
	o = json_object_new();
	json_object_set_int_member(o, "id", node);
	json_object_set_string_member(o, "cpus", cpus);
	json_object_set_int_member(o, "mem-total-kib",
				   node_meminfo(meminfo, "MemTotal"));
	json_object_set_int_member(o, "mem-free-kib",
				   node_meminfo(meminfo, "MemFree"));
	return o;
}

/* Node of the memory block holding @addr, or -1 when none is added. */
static gint64 memory_block_node(guint64 addr, guint64 block_size)
{
	g_autofree char *dir = g_strdup_printf(
		MEMORY_SYSFS "/memory%" G_GUINT64_FORMAT, addr / block_size);
	g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
	const char *ent;

	while (d && (ent = g_dir_read_name(d)))
		if (g_str_has_prefix(ent, "node") && g_ascii_isdigit(ent[4]))
			return g_ascii_strtoll(ent + 4, NULL, 10);
	return -1;
}

/*
 * virtio-mem devices from /proc/iomem: each device claims its region under
 * its device name ("virtio5") and adds "System RAM (virtio_mem)" children
 * as it plugs memory blocks. The exact plugged size lives in the device's
 * config space; the host reads it through QMP ("size").
 */
static JsonArray *virtio_mem_json(void)
{
	g_autofree char *iomem = vs_read_file("/proc/iomem", NULL);
	g_autofree char *bs =
		vs_read_file(MEMORY_SYSFS "/block_size_bytes", NULL);
	guint64 block_size = bs ? g_ascii_strtoull(bs, NULL, 16) : 0;
	g_auto(GStrv) lines = iomem ? g_strsplit(iomem, "\n", -1) : NULL;
	JsonArray *arr = json_array_new();
	JsonObject *cur = NULL;

	for (char **l = lines; l && *l; l++) {
		guint64 start, end;
		const char *name = strstr(g_strchug(*l), " : ");
		char *dash;

		if (!name)
			continue;
		name += 3;
		start = g_ascii_strtoull(*l, &dash, 16);
		end = g_ascii_strtoull(dash + 1, NULL, 16);
		if (g_str_has_prefix(name, "virtio") &&
		    g_ascii_isdigit(name[6])) {
			cur = json_object_new();
			json_object_set_string_member(cur, "device", name);
			json_object_set_int_member(
				cur, "node",
				block_size
					? memory_block_node(start, block_size)
					: -1);
			json_object_set_int_member(cur, "region-bytes",
						   (gint64)(end - start + 1));
			json_object_set_int_member(cur, "online-bytes", 0);
			json_array_add_object_element(arr, cur);
		} else if (cur &&
			   strcmp(name, "System RAM (virtio_mem)") == 0) {
			gint64 have =
				json_object_get_int_member(cur, "online-bytes");

			json_object_set_int_member(
				cur, "online-bytes",
				have + (gint64)(end - start + 1));
			if (json_object_get_int_member(cur, "node") < 0 &&
			    block_size)
				json_object_set_int_member(
					cur, "node",
					memory_block_node(start, block_size));
		} else if (!g_str_has_prefix(name, "System RAM")) {
			cur = NULL;
		}
	}
	return arr;
}

JsonObject *vs_sys_topology(GError **error)
{
	g_autoptr(JsonObject) o = json_object_new();
	JsonArray *nodes = json_array_new();
	VsCpuSet online, nodeset, memnodes;
	g_autofree char *online_s = NULL, *mem_s = NULL, *possible = NULL;

	json_object_set_array_member(o, "nodes", nodes);
	if (!vs_sys_online_cpus(&online, error) ||
	    !read_set(NODE_SYSFS "/online", &nodeset, error) ||
	    !vs_sys_memory_nodes(&memnodes, error))
		return NULL;
	for (guint n = 0; n < VS_MAX_CPUS; n++) {
		JsonObject *no;

		if (!vs_cpuset_has(&nodeset, n))
			continue;
		no = node_json(n, error);
		if (!no)
			return NULL;
		json_array_add_object_element(nodes, no);
	}
	online_s = vs_cpuset_format(&online);
	mem_s = vs_cpuset_format(&memnodes);
	possible = vs_read_file("/sys/devices/system/cpu/possible", error);
	if (!possible)
		return NULL;
	json_object_set_string_member(o, "online-cpus", online_s);
	json_object_set_string_member(o, "possible-cpus", possible);
	json_object_set_string_member(o, "memory-nodes", mem_s);
	json_object_set_array_member(o, "virtio-mem", virtio_mem_json());
	return g_steal_pointer(&o);
}

static const char *const stat_fields[] = { "user",     "nice",	 "system",
					   "idle",     "iowait", "irq",
					   "softirq",  "steal",	 "guest",
					   "guestnice" };

JsonArray *vs_sys_cpu_stats(GError **error)
{
	g_autofree char *text = vs_read_file("/proc/stat", error);
	g_auto(GStrv) lines = text ? g_strsplit(text, "\n", -1) : NULL;
	long hz = sysconf(_SC_CLK_TCK);
	JsonArray *arr;

	if (!text)
		return NULL;
	arr = json_array_new();
	for (char **l = lines; *l; l++) {
		g_auto(GStrv) w = NULL;
		JsonObject *o;
		gint64 busy = 0;

		if (!g_str_has_prefix(*l, "cpu") || !g_ascii_isdigit((*l)[3]))
			continue;
		w = g_strsplit_set(*l, " ", -1);
		o = json_object_new();
		json_object_set_string_member(o, "type", "linux");
		json_object_set_int_member(o, "cpu", atoi(*l + 3));
		json_object_set_boolean_member(o, "online", TRUE);
		for (guint i = 0; i < G_N_ELEMENTS(stat_fields); i++) {
			const char *v =
				i + 1 < g_strv_length(w) ? w[i + 1] : "0";
			gint64 ms = g_ascii_strtoll(v, NULL, 10) * 1000 / hz;

			json_object_set_int_member(o, stat_fields[i], ms);
			/* busy: everything but idle, iowait and steal; guest
			 * time is already counted in user. */
			if (i != 3 && i != 4 && i < 7)
				busy += ms;
		}
		json_object_set_int_member(o, "busy", busy);
		json_array_add_object_element(arr, o);
	}
	return arr;
}

static gint cmp_int(gconstpointer a, gconstpointer b)
{
	return *(const int *)a - *(const int *)b;
}

GArray *vs_sys_irqs(void)
{
	g_autoptr(GDir) d = g_dir_open("/proc/irq", 0, NULL);
	GArray *irqs = g_array_new(FALSE, FALSE, sizeof(int));
	const char *ent;

	while (d && (ent = g_dir_read_name(d))) {
		int irq;

		if (!g_ascii_isdigit(ent[0]))
			continue;
		irq = atoi(ent);
		g_array_append_val(irqs, irq);
	}
	g_array_sort(irqs, cmp_int);
	return irqs;
}
