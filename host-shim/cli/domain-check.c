// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsharectl host-check DOMAIN: what a libvirt domain lacks to be a
 * full-vNUMA guest vshare manages on this host (lib's
 * vs_lv_domain_lacks on the domain's XML and the host's layout).
 */
#include "cli.h"
#include "vmdrv-libvirt.h"

int cli_domain_check(Cli *o, const char *domain, const char *uri)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *xml = vs_libvirt_domain_xml(uri, domain, &error);
	g_autoptr(GPtrArray) lacks = NULL;
	g_autoptr(JsonBuilder) b = NULL;
	VsLvDomain d = { 0 };
	VsHost host;

	if (!xml || !vs_host_load(&o->cfg, &host, &error))
		return cli_fail(error);
	if (!vs_lv_parse_domain(xml, &d, &error)) {
		vs_lv_domain_clear(&d);
		vs_host_clear(&host);
		g_prefix_error(&error, "domain %s: ", domain);
		return cli_fail(error);
	}
	lacks = vs_lv_domain_lacks(&d, &host);
	if (o->json) {
		g_autoptr(JsonNode) root = NULL;

		b = json_builder_new();
		json_builder_begin_object(b);
		json_builder_set_member_name(b, "domain");
		json_builder_add_string_value(b, d.name);
		json_builder_set_member_name(b, "fits");
		json_builder_add_boolean_value(b, lacks->len == 0);
		json_builder_set_member_name(b, "lacks");
		json_builder_begin_array(b);
		for (guint i = 0; i < lacks->len; i++)
			json_builder_add_string_value(b, lacks->pdata[i]);
		json_builder_end_array(b);
		json_builder_end_object(b);
		root = json_builder_get_root(b);
		cli_print_json(root);
	} else if (!lacks->len) {
		g_print("%s: fits (%u vCPUs on %u nodes, agent channel, "
			"virtio-mem on every node)\n",
			d.name, d.n_vcpus, host.n_nodes);
	} else {
		for (guint i = 0; i < lacks->len; i++)
			g_print("%s lacks: %s\n", d.name,
				(char *)lacks->pdata[i]);
	}
	vs_lv_domain_clear(&d);
	vs_host_clear(&host);
	return lacks->len ? VS_EXIT_FAILED : VS_EXIT_OK;
}
