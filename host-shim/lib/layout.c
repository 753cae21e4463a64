// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The host's nodes and pCPUs: from sysfs, or from CONF/host.conf when the
 * operator declares them (the tests declare two nodes on this one-node
 * host: a documented fake, docs/vsharectl.md).
 *
 *   [node0]
 *   cpus=0
 *   vmem=2G      # virtio-mem pool of this node the VMs share (optional)
 *
 * Node numbers may have gaps and a node may have no CPU (memory-only or
 * CXL nodes): both are kept, with an empty CPU set.
 */
#include "vshare-host.h"

#include <errno.h>
#include <string.h>

void vs_host_clear(VsHost *host)
{
	if (host->pcpus)
		g_array_free(host->pcpus, TRUE);
	memset(host, 0, sizeof(*host));
}

static void finish_host(VsHost *host)
{
	vs_cpuset_clear(&host->all);
	for (guint n = 0; n < host->n_nodes; n++)
		for (guint w = 0; w < G_N_ELEMENTS(host->all.bits); w++)
			host->all.bits[w] |= host->node_cpus[n].bits[w];
	host->pcpus = g_array_new(FALSE, FALSE, sizeof(guint));
	for (guint cpu = 0; cpu < VS_MAX_CPUS; cpu++)
		if (vs_cpuset_has(&host->all, cpu))
			g_array_append_val(host->pcpus, cpu);
}

static gboolean bad_conf(GError **error, const char *where, const char *group,
			 const char *what)
{
	g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE, "%s: [%s] %s",
		    where, group, what);
	return FALSE;
}

static gboolean conf_node(GKeyFile *kf, const char *where, guint n,
			  VsHost *host, VsCpuSet *seen, GError **error)
{
	g_autofree char *group = g_strdup_printf("node%u", n);
	g_autofree char *cpus = g_key_file_get_string(kf, group, "cpus", NULL);
	g_autofree char *vmem = g_key_file_get_string(kf, group, "vmem", NULL);
	VsCpuSet both;

	if (!cpus)
		return bad_conf(error, where, group, "needs cpus=LIST");
	if (*g_strstrip(cpus) &&
	    !vs_cpuset_parse(cpus, &host->node_cpus[n], NULL))
		return bad_conf(error, where, group, "cpus= is not a CPU list");
	vs_cpuset_and(&both, seen, &host->node_cpus[n]);
	if (vs_cpuset_count(&both))
		return bad_conf(error, where, group,
				"repeats a CPU of another node");
	for (guint w = 0; w < G_N_ELEMENTS(seen->bits); w++)
		seen->bits[w] |= host->node_cpus[n].bits[w];
	if (vmem && !vs_parse_size(vmem, &host->node_mem[n], error)) {
		g_prefix_error(error, "%s: [%s] ", where, group);
		return FALSE;
	}
	return TRUE;
}

gboolean vs_host_from_keyfile(const char *text, const char *where, VsHost *host,
			      GError **error)
{
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autoptr(GError) local = NULL;
	VsCpuSet seen;

	memset(host, 0, sizeof(*host));
	if (!g_key_file_load_from_data(kf, text, -1, G_KEY_FILE_NONE, &local)) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE, "%s: %s",
			    where, local->message);
		return FALSE;
	}
	vs_cpuset_clear(&seen);
	for (guint n = 0; n < VS_MAX_NODES; n++) {
		g_autofree char *group = g_strdup_printf("node%u", n);

		if (!g_key_file_has_group(kf, group))
			continue; /* gaps allowed */
		if (!conf_node(kf, where, n, host, &seen, error))
			return FALSE;
		vs_cpuset_add(&host->nodes, n);
		host->n_nodes = n + 1;
	}
	if (!vs_cpuset_count(&seen)) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
			    "%s declares no [nodeN] with CPUs", where);
		return FALSE;
	}
	host->declared = TRUE;
	finish_host(host);
	return TRUE;
}

/* Node numbers from the directory, in any order, with gaps. */
static gboolean host_from_sysfs(const VsConfig *c, VsHost *host, GError **error)
{
	g_autofree char *dir =
		g_strdup_printf("%s/devices/system/node", c->sysfs);
	g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
	const char *e;

	while (d && (e = g_dir_read_name(d))) {
		g_autofree char *path = NULL, *text = NULL;
		char *end;
		guint64 n;

		if (!g_str_has_prefix(e, "node") || !g_ascii_isdigit(e[4]))
			continue;
		n = g_ascii_strtoull(e + 4, &end, 10);
		if (*end || n >= VS_MAX_NODES)
			continue;
		path = g_strdup_printf("%s/%s/cpulist", dir, e);
		text = vs_read_file(path, NULL);
		if (!text)
			continue;
		if (*g_strstrip(text) && /* empty: a CPU-less node */
		    !vs_cpuset_parse(text, &host->node_cpus[n], error))
			return FALSE;
		host->n_nodes = MAX(host->n_nodes, n + 1);
		vs_cpuset_add(&host->nodes, n);
	}
	if (!host->n_nodes) { /* no NUMA in the kernel: one node */
		g_autofree char *path = g_strdup_printf(
			"%s/devices/system/cpu/online", c->sysfs);
		g_autofree char *text = vs_read_file(path, error);

		if (!text || !vs_cpuset_parse(text, &host->node_cpus[0], error))
			return FALSE;
		host->n_nodes = 1;
		vs_cpuset_add(&host->nodes, 0);
	}
	finish_host(host);
	return TRUE;
}

/* Nothing but blank lines and comments (the shipped host.conf). */
static gboolean only_comments(const char *text)
{
	g_auto(GStrv) lines = g_strsplit(text, "\n", -1);

	for (guint i = 0; lines[i]; i++) {
		const char *l = lines[i];

		while (g_ascii_isspace(*l))
			l++;
		if (*l && *l != '#' && *l != ';')
			return FALSE;
	}
	return TRUE;
}

gboolean vs_host_load(const VsConfig *c, VsHost *host, GError **error)
{
	g_autofree char *path =
		g_build_filename(c->conf_dir, "host.conf", NULL);
	g_autofree char *text = NULL;
	g_autoptr(GError) local = NULL;

	memset(host, 0, sizeof(*host));
	text = vs_read_bounded(path, 65536, &local);
	if (text && !only_comments(text))
		return vs_host_from_keyfile(text, path, host, error);
	if (text) /* the shipped sample, every line commented: not declared */
		return host_from_sysfs(c, host, error);
	if (g_file_test(path, G_FILE_TEST_EXISTS)) {
		g_propagate_error(error, g_steal_pointer(&local));
		return FALSE;
	}
	return host_from_sysfs(c, host, error);
}

int vs_host_node_of(const VsHost *host, guint pcpu)
{
	for (guint n = 0; n < host->n_nodes; n++)
		if (vs_cpuset_has(&host->node_cpus[n], pcpu))
			return n;
	return -1;
}

/* "0:0-15/0;1:16-31/0": nodes, CPUs and pools; stored in the ledger so a
 * changed host layout is noticed instead of misread. */
char *vs_host_describe(const VsHost *host)
{
	GString *s = g_string_new(NULL);

	for (guint n = 0; n < host->n_nodes; n++) {
		g_autofree char *c = vs_cpuset_format(&host->node_cpus[n]);

		if (!vs_cpuset_has(&host->nodes, n))
			continue;
		g_string_append_printf(s, "%s%u:%s/%" G_GUINT64_FORMAT,
				       s->len ? ";" : "", n, c,
				       host->node_mem[n]);
	}
	return g_string_free(s, FALSE);
}

void vs_host_vcpus_of(const VsHost *host, const VsCpuSet *pcpus,
		      VsCpuSet *vcpus)
{
	vs_cpuset_clear(vcpus);
	for (guint i = 0; i < host->pcpus->len; i++)
		if (vs_cpuset_has(pcpus, g_array_index(host->pcpus, guint, i)))
			vs_cpuset_add(vcpus, i);
}

/* A guest may use memory of every node: each holds boot memory the VM
 * keeps wherever its vCPUs are. */
void vs_host_all_nodes(const VsHost *host, VsCpuSet *nodes)
{
	*nodes = host->nodes;
}
