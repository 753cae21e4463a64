// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The VM registry (CONF/vms/NAME.conf) and the host's pCPU/node layout.
 *
 *   # /etc/vshare/vms/a.conf
 *   [vm]
 *   qmp=/run/vshare/a/qmp.sock
 *   agent=/run/vshare/a/agent.sock
 *
 * The host layout comes from sysfs, or from CONF/host.conf when the
 * operator declares one (the tests declare two nodes on this one-node host:
 * a documented fake, see docs/vsharectl.md):
 *
 *   [node0]
 *   cpus=0
 *   vmem=2G      # virtio-mem pool of this node the VMs share (optional)
 */
#include "vsharectl.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

void vs_vmconf_free(VsVmConf *v)
{
	if (!v)
		return;
	g_free(v->name);
	g_free(v->qmp);
	g_free(v->agent);
	g_free(v);
}

gboolean vs_name_valid(const char *name, GError **error)
{
	gsize n = strlen(name);

	if (n == 0 || n > 64 || name[0] == '.' || name[0] == '-')
		goto bad;
	for (const char *p = name; *p; p++)
		if (!g_ascii_isalnum(*p) && !strchr("-_.", *p))
			goto bad;
	return TRUE;
bad:
	g_set_error(error, VSC_ERROR, VS_EXIT_USAGE,
		    "invalid VM name '%s' (1-64 of A-Z a-z 0-9 - _ .)", name);
	return FALSE;
}

static char *conf_path(const VsOpts *o, const char *name)
{
	g_autofree char *file = g_strconcat(name, ".conf", NULL);

	return g_build_filename(o->conf_dir, "vms", file, NULL);
}

VsVmConf *vs_registry_get(const VsOpts *o, const char *name, GError **error)
{
	g_autoptr(VsVmConf) v = g_new0(VsVmConf, 1);
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autoptr(GError) local = NULL;
	g_autofree char *path = NULL;

	if (!vs_name_valid(name, error))
		return NULL;
	v->name = g_strdup(name);
	if (o->inline_qmp) {
		v->qmp = g_strdup(o->inline_qmp);
		v->agent = g_strdup(o->inline_agent);
		return g_steal_pointer(&v);
	}
	path = conf_path(o, name);
	if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &local)) {
		g_set_error(error, VSC_ERROR, VS_EXIT_USAGE,
			    "unknown VM '%s': %s (register it with `vsharectl "
			    "add %s --qmp SOCK --agent SOCK`)",
			    name, local->message, name);
		return NULL;
	}
	v->qmp = g_key_file_get_string(kf, "vm", "qmp", NULL);
	v->agent = g_key_file_get_string(kf, "vm", "agent", NULL);
	if (!v->qmp) {
		g_set_error(error, VSC_ERROR, VS_EXIT_USAGE,
			    "%s: no qmp= in [vm]", path);
		return NULL;
	}
	return g_steal_pointer(&v);
}

static gint cmp_names(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char **vs_registry_list(const VsOpts *o, GError **error)
{
	g_autofree char *dir = g_build_filename(o->conf_dir, "vms", NULL);
	g_autoptr(GPtrArray) names = g_ptr_array_new();
	g_autoptr(GDir) d = NULL;
	const char *e;

	d = g_dir_open(dir, 0, NULL);
	while (d && (e = g_dir_read_name(d)))
		if (g_str_has_suffix(e, ".conf") && e[0] != '.')
			g_ptr_array_add(
				names,
				g_strndup(e, strlen(e) - strlen(".conf")));
	g_ptr_array_sort(names, cmp_names);
	g_ptr_array_add(names, NULL);
	(void)error;
	return (char **)g_ptr_array_free(g_steal_pointer(&names), FALSE);
}

gboolean vs_registry_add(const VsOpts *o, const char *name, const char *qmp,
			 const char *agent, gboolean force, GError **error)
{
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autofree char *path = NULL;
	g_autofree char *dir = g_build_filename(o->conf_dir, "vms", NULL);
	g_autofree char *text = NULL;

	if (!vs_name_valid(name, error))
		return FALSE;
	path = conf_path(o, name);
	if (!force && g_file_test(path, G_FILE_TEST_EXISTS)) {
		g_set_error(error, VSC_ERROR, VS_EXIT_REFUSED,
			    "VM '%s' is already registered (%s); --force "
			    "replaces it",
			    name, path);
		return FALSE;
	}
	if (g_mkdir_with_parents(dir, 0755) < 0) {
		g_set_error(error, VSC_ERROR, VS_EXIT_FAILED, "mkdir %s: %s",
			    dir, g_strerror(errno));
		return FALSE;
	}
	g_key_file_set_string(kf, "vm", "qmp", qmp);
	if (agent)
		g_key_file_set_string(kf, "vm", "agent", agent);
	text = g_key_file_to_data(kf, NULL, NULL);
	return vs_write_atomic(path, text, error);
}

gboolean vs_registry_remove(const VsOpts *o, const char *name, GError **error)
{
	g_autofree char *path = NULL;

	if (!vs_name_valid(name, error))
		return FALSE;
	path = conf_path(o, name);
	if (unlink(path) < 0) {
		g_set_error(error, VSC_ERROR, VS_EXIT_FAILED, "%s: %s", path,
			    g_strerror(errno));
		return FALSE;
	}
	return TRUE;
}

/* ---- host layout ------------------------------------------------------ */

void vs_host_clear(VsHost *host)
{
	if (host->pcpus)
		g_array_free(host->pcpus, TRUE);
	memset(host, 0, sizeof(*host));
}

static gboolean parse_size(const char *s, guint64 *out, GError **error)
{
	char *end = NULL;
	guint64 v = g_ascii_strtoull(s, &end, 10);
	guint64 mul = 1;

	if (end == s)
		goto bad;
	switch (g_ascii_toupper(*end)) {
	case 'K':
		mul = 1ULL << 10;
		break;
	case 'M':
		mul = 1ULL << 20;
		break;
	case 'G':
		mul = 1ULL << 30;
		break;
	case 'T':
		mul = 1ULL << 40;
		break;
	case '\0':
		break;
	default:
		goto bad;
	}
	if (*end && end[1] && !(g_ascii_toupper(end[1]) == 'B' && !end[2]) &&
	    !(g_ascii_toupper(end[1]) == 'I' &&
	      g_ascii_toupper(end[2]) == 'B' && !end[3]))
		goto bad;
	if (v > G_MAXUINT64 / mul)
		goto bad;
	*out = v * mul;
	return TRUE;
bad:
	g_set_error(error, VSC_ERROR, VS_EXIT_USAGE,
		    "bad size '%s' (e.g. 256M, 1G, 1073741824)", s);
	return FALSE;
}

gboolean vs_parse_size(const char *s, guint64 *out, GError **error)
{
	return parse_size(s, out, error);
}

static void finish_host(VsHost *host)
{
	host->pcpus = g_array_new(FALSE, FALSE, sizeof(guint));
	for (guint cpu = 0; cpu < VS_MAX_CPUS; cpu++)
		for (guint n = 0; n < host->n_nodes; n++)
			if (vs_cpuset_has(&host->node_cpus[n], cpu)) {
				g_array_append_val(host->pcpus, cpu);
				break;
			}
}

static gboolean host_from_conf(const char *path, VsHost *host, GError **error)
{
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autoptr(GError) local = NULL;
	VsCpuSet seen;

	if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &local)) {
		g_set_error(error, VSC_ERROR, VS_EXIT_USAGE, "%s: %s", path,
			    local->message);
		return FALSE;
	}
	vs_cpuset_clear(&seen);
	for (guint n = 0; n < VS_MAX_NODES; n++) {
		g_autofree char *group = g_strdup_printf("node%u", n);
		g_autofree char *cpus = NULL;
		g_autofree char *vmem = NULL;
		VsCpuSet both;

		if (!g_key_file_has_group(kf, group))
			break;
		cpus = g_key_file_get_string(kf, group, "cpus", NULL);
		if (!cpus ||
		    !vs_cpuset_parse(cpus, &host->node_cpus[n], error) ||
		    !vs_cpuset_count(&host->node_cpus[n])) {
			g_clear_error(error);
			g_set_error(error, VSC_ERROR, VS_EXIT_USAGE,
				    "%s: [%s] needs cpus=LIST", path, group);
			return FALSE;
		}
		vs_cpuset_and(&both, &seen, &host->node_cpus[n]);
		if (vs_cpuset_count(&both)) {
			g_set_error(error, VSC_ERROR, VS_EXIT_USAGE,
				    "%s: [%s] repeats a CPU of another node",
				    path, group);
			return FALSE;
		}
		for (guint c = 0; c < VS_MAX_CPUS; c++)
			if (vs_cpuset_has(&host->node_cpus[n], c))
				vs_cpuset_add(&seen, c);
		vmem = g_key_file_get_string(kf, group, "vmem", NULL);
		if (vmem && !parse_size(vmem, &host->node_mem[n], error)) {
			g_prefix_error(error, "%s: [%s] ", path, group);
			return FALSE;
		}
		host->n_nodes = n + 1;
	}
	if (!host->n_nodes) {
		g_set_error(error, VSC_ERROR, VS_EXIT_USAGE,
			    "%s declares no [node0]", path);
		return FALSE;
	}
	host->declared = TRUE;
	return TRUE;
}

static gboolean host_from_sysfs(const VsOpts *o, VsHost *host, GError **error)
{
	for (guint n = 0; n < VS_MAX_NODES; n++) {
		g_autofree char *path = g_strdup_printf(
			"%s/devices/system/node/node%u/cpulist", o->sysfs, n);
		g_autofree char *text = vs_read_file(path, NULL);

		if (!text)
			break;
		if (!vs_cpuset_parse(text, &host->node_cpus[n], error))
			return FALSE;
		host->n_nodes = n + 1;
	}
	if (!host->n_nodes) { /* no NUMA in the kernel: one node */
		g_autofree char *path = g_strdup_printf(
			"%s/devices/system/cpu/online", o->sysfs);
		g_autofree char *text = vs_read_file(path, error);

		if (!text || !vs_cpuset_parse(text, &host->node_cpus[0], error))
			return FALSE;
		host->n_nodes = 1;
	}
	return TRUE;
}

gboolean vs_host_load(const VsOpts *o, VsHost *host, GError **error)
{
	g_autofree char *path =
		g_build_filename(o->conf_dir, "host.conf", NULL);
	gboolean ok;

	memset(host, 0, sizeof(*host));
	if (g_file_test(path, G_FILE_TEST_EXISTS))
		ok = host_from_conf(path, host, error);
	else
		ok = host_from_sysfs(o, host, error);
	if (ok)
		finish_host(host);
	return ok;
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

		g_string_append_printf(s, "%s%u:%s/%" G_GUINT64_FORMAT,
				       n ? ";" : "", n, c, host->node_mem[n]);
	}
	return g_string_free(s, FALSE);
}
