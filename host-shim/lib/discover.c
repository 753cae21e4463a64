// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libvirt domains that carry the vshare agent's channel
 * (<channel type='unix'> with target name org.vshare.agent.0) are vshare's
 * to manage, under the domain's name, with no registry file: the daemon
 * lists them (vs_libvirt_discover) and adds them to the configuration's
 * discovered VMs, which vs_registry_get/list consult after the files.
 */
#include "vmdrv-libvirt.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <string.h>

static void quiet(void *data, virErrorPtr e)
{
}

static VsVmConf *conf_of(virDomainPtr dom, const char *uri)
{
	g_autofree char *xml = virDomainGetXMLDesc(dom, 0);
	VsLvDomain d = { 0 };
	VsVmConf *v = NULL;

	if (xml && vs_lv_parse_domain(xml, &d, NULL) && d.agent_path &&
	    vs_name_valid(d.name, NULL)) {
		v = g_new0(VsVmConf, 1);
		v->name = g_strdup(d.name);
		v->driver = VS_DRIVER_LIBVIRT;
		v->domain = g_strdup(d.uuid);
		v->uri = g_strdup(uri);
	}
	vs_lv_domain_clear(&d);
	return v;
}

GPtrArray *vs_libvirt_discover(const char *uri, GError **error)
{
	g_autoptr(GPtrArray) out =
		g_ptr_array_new_with_free_func((GDestroyNotify)vs_vmconf_free);
	virDomainPtr *doms = NULL;
	virConnectPtr conn;
	int n;

	virInitialize();
	virSetErrorFunc(NULL, quiet);
	conn = vs_libvirt_open(uri, error);
	if (!conn)
		return NULL;
	n = virConnectListAllDomains(conn, &doms,
				     VIR_CONNECT_LIST_DOMAINS_ACTIVE);
	for (int i = 0; i < n; i++) {
		VsVmConf *v = conf_of(doms[i], uri);

		if (v)
			g_ptr_array_add(out, v);
		virDomainFree(doms[i]);
	}
	free(doms);
	virConnectClose(conn);
	if (n < 0) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_UNREACHABLE,
			    "libvirt %s: cannot list domains", uri);
		return NULL;
	}
	return g_steal_pointer(&out);
}

char *vs_libvirt_domain_xml(const char *uri, const char *domain, GError **error)
{
	virConnectPtr conn;
	virDomainPtr dom = NULL;
	char *xml = NULL;

	virInitialize();
	virSetErrorFunc(NULL, quiet);
	conn = vs_libvirt_open(uri, error);
	if (!conn)
		return NULL;
	if (g_uuid_string_is_valid(domain))
		dom = virDomainLookupByUUIDString(conn, domain);
	if (!dom)
		dom = virDomainLookupByName(conn, domain);
	if (!dom)
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
			    "libvirt %s: no domain '%s'", uri, domain);
	else if (!(xml = virDomainGetXMLDesc(dom, 0)))
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_UNREACHABLE,
			    "libvirt %s: domain '%s': %s", uri, domain,
			    virGetLastErrorMessage());
	if (dom)
		virDomainFree(dom);
	virConnectClose(conn);
	return xml;
}
