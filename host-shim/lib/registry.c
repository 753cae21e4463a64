// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The VM registry: CONF/vms/NAME.conf names a VM's driver and how to reach
 * it.
 *
 *   [vm]                          [vm]
 *   driver=qmp                    driver=libvirt
 *   qmp=/run/vshare/a/qmp.sock    domain=a        # name or UUID
 *   agent=/run/vshare/a/agent.sock  uri=qemu:///system
 *   pidfile=/run/vshare/a/qemu.pid  # optional: the QMP peer must be it
 */
#include "vshare-host.h"

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
	g_free(v->pidfile);
	g_free(v->domain);
	g_free(v->uri);
	g_free(v);
}

VsVmConf *vs_vmconf_copy(const VsVmConf *v)
{
	VsVmConf *c = g_new0(VsVmConf, 1);

	c->name = g_strdup(v->name);
	c->driver = v->driver;
	c->qmp = g_strdup(v->qmp);
	c->agent = g_strdup(v->agent);
	c->pidfile = g_strdup(v->pidfile);
	c->domain = g_strdup(v->domain);
	c->uri = g_strdup(v->uri);
	return c;
}

const char *vs_driver_name(VsDriverKind k)
{
	return k == VS_DRIVER_LIBVIRT ? "libvirt" : "qmp";
}

gboolean vs_name_valid(const char *name, GError **error)
{
	gsize n = name ? strlen(name) : 0;

	if (n == 0 || n > 64 || name[0] == '.' || name[0] == '-')
		goto bad;
	for (const char *p = name; *p; p++)
		if (!g_ascii_isalnum(*p) && !strchr("-_.", *p))
			goto bad;
	return TRUE;
bad:
	g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
		    "invalid VM name '%s' (1-64 of A-Z a-z 0-9 - _ .)",
		    name ? name : "");
	return FALSE;
}

static char *conf_path(const VsConfig *c, const char *name)
{
	g_autofree char *file = g_strconcat(name, ".conf", NULL);

	return g_build_filename(c->conf_dir, "vms", file, NULL);
}

static gboolean conf_from_keyfile(GKeyFile *kf, const char *path, VsVmConf *v,
				  GError **error)
{
	g_autofree char *drv = g_key_file_get_string(kf, "vm", "driver", NULL);

	v->qmp = g_key_file_get_string(kf, "vm", "qmp", NULL);
	v->agent = g_key_file_get_string(kf, "vm", "agent", NULL);
	v->pidfile = g_key_file_get_string(kf, "vm", "pidfile", NULL);
	v->domain = g_key_file_get_string(kf, "vm", "domain", NULL);
	v->uri = g_key_file_get_string(kf, "vm", "uri", NULL);
	if (!drv || !strcmp(drv, "qmp"))
		v->driver = VS_DRIVER_QMP;
	else if (!strcmp(drv, "libvirt"))
		v->driver = VS_DRIVER_LIBVIRT;
	else
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
				   "%s: driver=%s (qmp or libvirt)", path, drv),
		       FALSE;
	if (v->driver == VS_DRIVER_QMP && !v->qmp)
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
				   "%s: no qmp= in [vm]", path),
		       FALSE;
	if (v->driver == VS_DRIVER_LIBVIRT && !v->domain)
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
				   "%s: no domain= in [vm]", path),
		       FALSE;
	return TRUE;
}

VsVmConf *vs_registry_get(const VsConfig *c, const char *name, GError **error)
{
	g_autoptr(VsVmConf) v = NULL;
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autofree char *path = NULL;
	g_autofree char *text = NULL;
	g_autoptr(GError) local = NULL;

	if (!vs_name_valid(name, error))
		return NULL;
	if (c->inline_vm &&
	    (!c->inline_vm->name || !strcmp(c->inline_vm->name, name))) {
		v = vs_vmconf_copy(c->inline_vm);
		g_free(v->name);
		v->name = g_strdup(name);
		return g_steal_pointer(&v);
	}
	path = conf_path(c, name);
	for (guint i = 0; c->found && i < c->found->len &&
			  !g_file_test(path, G_FILE_TEST_EXISTS);
	     i++)
		if (!strcmp(((VsVmConf *)c->found->pdata[i])->name, name))
			return vs_vmconf_copy(c->found->pdata[i]);
	v = g_new0(VsVmConf, 1);
	v->name = g_strdup(name);
	text = vs_read_bounded(path, 65536, &local);
	if (!text ||
	    !g_key_file_load_from_data(kf, text, -1, G_KEY_FILE_NONE, NULL)) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
			    "unknown VM '%s': %s (register it with `vsharectl "
			    "add %s --qmp SOCK --agent SOCK` or `--libvirt "
			    "DOMAIN`)",
			    name, local ? local->message : "unreadable", name);
		return NULL;
	}
	if (!conf_from_keyfile(kf, path, v, error))
		return NULL;
	return g_steal_pointer(&v);
}

static gint cmp_names(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char **vs_registry_list(const VsConfig *c, GError **error)
{
	g_autofree char *dir = g_build_filename(c->conf_dir, "vms", NULL);
	g_autoptr(GPtrArray) names = g_ptr_array_new();
	g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
	const char *e;

	while (d && (e = g_dir_read_name(d))) {
		g_autofree char *n = NULL;

		if (!g_str_has_suffix(e, ".conf"))
			continue;
		n = g_strndup(e, strlen(e) - strlen(".conf"));
		if (vs_name_valid(n, NULL))
			g_ptr_array_add(names, g_steal_pointer(&n));
	}
	for (guint i = 0; c->found && i < c->found->len; i++) {
		const char *n = ((VsVmConf *)c->found->pdata[i])->name;

		if (!g_ptr_array_find_with_equal_func(names, n, g_str_equal,
						      NULL))
			g_ptr_array_add(names, g_strdup(n));
	}
	g_ptr_array_sort(names, cmp_names);
	g_ptr_array_add(names, NULL);
	(void)error;
	return (char **)g_ptr_array_free(g_steal_pointer(&names), FALSE);
}

gboolean vs_registry_add(const VsConfig *c, const VsVmConf *v, gboolean force,
			 GError **error)
{
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autofree char *dir = g_build_filename(c->conf_dir, "vms", NULL);
	g_autofree char *path = NULL;
	g_autofree char *text = NULL;
	const char *keys[] = { "qmp", "agent", "pidfile", "domain", "uri" };
	const char *vals[] = { v->qmp, v->agent, v->pidfile, v->domain,
			       v->uri };

	if (!vs_name_valid(v->name, error))
		return FALSE;
	path = conf_path(c, v->name);
	if (!force && g_file_test(path, G_FILE_TEST_EXISTS))
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_REFUSED,
				   "VM '%s' is already registered (%s); "
				   "--force replaces it",
				   v->name, path),
		       FALSE;
	if (g_mkdir_with_parents(dir, 0755) < 0)
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
				   "mkdir %s: %s", dir, g_strerror(errno)),
		       FALSE;
	g_key_file_set_string(kf, "vm", "driver", vs_driver_name(v->driver));
	for (guint i = 0; i < G_N_ELEMENTS(keys); i++)
		if (vals[i])
			g_key_file_set_string(kf, "vm", keys[i], vals[i]);
	text = g_key_file_to_data(kf, NULL, NULL);
	return vs_write_private(path, text, error);
}

gboolean vs_registry_remove(const VsConfig *c, const char *name, GError **error)
{
	g_autofree char *path = NULL;

	if (!vs_name_valid(name, error))
		return FALSE;
	path = conf_path(c, name);
	if (unlink(path) < 0)
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
				   "%s: %s", path, g_strerror(errno)),
		       FALSE;
	return TRUE;
}
