// SPDX-License-Identifier: GPL-2.0-or-later
/* The host error domain and the configuration a front end fills in. */
#include "vshare-host.h"

#include <string.h>

GQuark vs_host_error_quark(void)
{
	return g_quark_from_static_string("vshare-host-error");
}

const char *vs_host_error_name(int code)
{
	static const char *const names[] = {
		[VS_HOST_ERROR_FAILED] = "failed",
		[VS_HOST_ERROR_USAGE] = "usage",
		[VS_HOST_ERROR_REFUSED] = "refused",
		[VS_HOST_ERROR_PARTIAL] = "partial",
		[VS_HOST_ERROR_CORRUPT] = "corrupt",
		[VS_HOST_ERROR_UNSUPPORTED] = "unsupported",
		[VS_HOST_ERROR_BUSY] = "busy",
		[VS_HOST_ERROR_UNREACHABLE] = "unreachable",
		[VS_HOST_ERROR_HOSTILE] = "hostile",
		[VS_HOST_ERROR_GONE] = "gone",
	};

	if (code < 0 || code >= (int)G_N_ELEMENTS(names))
		return "failed";
	return names[code];
}

gboolean vs_error_is(const GError *e, VsHostError code)
{
	return e && e->domain == VS_HOST_ERROR && e->code == (int)code;
}

void vs_config_init(VsConfig *c)
{
	c->conf_dir = g_strdup("/etc/vshare");
	c->state_dir = g_strdup("/var/lib/vshare");
	c->sysfs = g_strdup("/sys");
	c->proc = g_strdup("/proc");
	c->agent_timeout_ms = 5000;
	c->qmp_timeout_ms = 10000;
	c->mem_timeout_ms = 30000;
	c->inline_vm = NULL;
}

void vs_config_clear(VsConfig *c)
{
	g_free(c->conf_dir);
	g_free(c->state_dir);
	g_free(c->sysfs);
	g_free(c->proc);
	vs_vmconf_free(c->inline_vm);
	if (c->found)
		g_ptr_array_unref(c->found);
	memset(c, 0, sizeof(*c));
}
