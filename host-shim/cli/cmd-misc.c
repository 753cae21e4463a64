// SPDX-License-Identifier: GPL-2.0-or-later
/* vsharectl ledger, add, remove, list, status. */
#include "cli.h"

#include <string.h>

static void print_ledger(const VsSession *s)
{
	g_print("generation %" G_GUINT64_FORMAT ", host %s\n",
		s->ledger->generation, s->ledger->host);
	for (guint i = 0; i < s->ledger->vms->len; i++) {
		VsLedgerVm *v = g_ptr_array_index(s->ledger->vms, i);
		g_autofree char *c = vs_cpuset_format(&v->pcpus);

		g_print("%-16s pCPUs %-12s %-8s", v->name, c,
			vs_mode_name(v->mode));
		for (guint n = 0; n < s->host.n_nodes; n++)
			g_print(" node%u %" G_GUINT64_FORMAT "M", n,
				v->mem[n] >> 20);
		g_print("\n");
	}
}

static int ledger_reset(Cli *c)
{
	g_autoptr(GError) error = NULL;
	VsSession s;
	gboolean ok;
	int rc;

	/* No recover first: reset is what one runs when the ledger or the
	 * journal cannot be trusted. */
	ok = cli_session_open(c, &s, FALSE, &error);
	if (ok || vs_error_is(error, VS_HOST_ERROR_CORRUPT)) {
		int fd = vs_store_lock(&c->cfg, FALSE, NULL);

		g_clear_error(&error);
		ok = fd >= 0 ? vs_store_reset(&c->cfg, &s.host, &error)
			     : (g_set_error(&error, VS_HOST_ERROR,
					    VS_HOST_ERROR_BUSY,
					    "the ledger lock is held"),
				FALSE);
		vs_store_unlock(fd);
	}
	if (ok)
		g_print("ledger reset: no VM owns anything\n");
	rc = ok ? VS_EXIT_OK : cli_fail(error);
	vs_session_close(&s);
	return rc;
}

int cmd_ledger(Cli *c, int argc, char **argv)
{
	gboolean force = FALSE;
	GOptionEntry e[] = { { "force", 0, 0, G_OPTION_ARG_NONE, &force,
			       "reset: really discard the ledger", NULL },
			     { NULL } };
	g_autoptr(GError) error = NULL;
	VsSession s;
	int rc;

	if (!cli_parse(c, &argc, &argv, "show | reset --force",
		       "Show the ownership ledger, or start a new empty one.",
		       e, &error) ||
	    !cli_want_args(argc, argv, 1, "show or reset", &error))
		return cli_fail(error);
	if (!strcmp(argv[1], "reset") && force)
		return ledger_reset(c);
	if (strcmp(argv[1], "show")) {
		cli_usage_error(&error, "ledger: `show`, or `reset --force` "
					"(forgets who owns what; the VMs are "
					"not touched)");
		return cli_fail(error);
	}
	if (!cli_session_open(c, &s, FALSE, &error)) {
		rc = cli_fail(error);
	} else {
		g_autoptr(JsonNode) j = vs_ledger_to_json(s.ledger);

		if (c->json)
			cli_print_json(j);
		else
			print_ledger(&s);
		rc = VS_EXIT_OK;
	}
	vs_session_close(&s);
	return rc;
}

int cmd_add(Cli *c, int argc, char **argv)
{
	gboolean force = FALSE;
	g_autofree char *domain = NULL, *uri = NULL, *pidfile = NULL;
	GOptionEntry e[] = {
		{ "force", 0, 0, G_OPTION_ARG_NONE, &force,
		  "replace an existing entry", NULL },
		{ "libvirt", 0, 0, G_OPTION_ARG_STRING, &domain,
		  "a libvirt domain (name or UUID) instead of sockets",
		  "DOMAIN" },
		{ "uri", 0, 0, G_OPTION_ARG_STRING, &uri,
		  "libvirt connection (default qemu:///system)", "URI" },
		{ "pidfile", 0, 0, G_OPTION_ARG_FILENAME, &pidfile,
		  "QMP: the QEMU pid file; the QMP peer must be that process",
		  "FILE" },
		{ NULL }
	};
	g_autoptr(GError) error = NULL;
	VsVmConf v = { 0 };

	if (!cli_parse(c, &argc, &argv,
		       "VM --qmp SOCK [--agent SOCK] | VM --libvirt DOMAIN",
		       "Register a VM by its QMP and agent sockets, or by "
		       "its libvirt domain.",
		       e, &error) ||
	    !cli_want_args(argc, argv, 1, "one VM name", &error))
		return cli_fail(error);
	if (!c->inline_qmp == !domain) {
		cli_usage_error(&error, "add: --qmp SOCK or --libvirt DOMAIN "
					"is required (one of them)");
		return cli_fail(error);
	}
	v = (VsVmConf){ .name = argv[1],
			.driver = domain ? VS_DRIVER_LIBVIRT : VS_DRIVER_QMP,
			.qmp = c->inline_qmp,
			.agent = c->inline_agent,
			.pidfile = pidfile,
			.domain = domain,
			.uri = uri };
	if (!vs_registry_add(&c->cfg, &v, force, &error))
		return cli_fail(error);
	return VS_EXIT_OK;
}

int cmd_remove(Cli *c, int argc, char **argv)
{
	g_autoptr(GError) error = NULL;

	if (!cli_parse(c, &argc, &argv, "VM", "Unregister a VM.", NULL,
		       &error) ||
	    !cli_want_args(argc, argv, 1, "one VM name", &error) ||
	    !vs_registry_remove(&c->cfg, argv[1], &error))
		return cli_fail(error);
	return VS_EXIT_OK;
}

static void list_json(Cli *c, char **names)
{
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(JsonNode) root = NULL;

	json_builder_begin_array(b);
	for (guint i = 0; names[i]; i++) {
		g_autoptr(VsVmConf) v =
			vs_registry_get(&c->cfg, names[i], NULL);
		const char *keys[] = { "qmp", "agent", "domain", "uri" };
		const char *vals[] = { v ? v->qmp : NULL, v ? v->agent : NULL,
				       v ? v->domain : NULL,
				       v ? v->uri : NULL };

		json_builder_begin_object(b);
		json_builder_set_member_name(b, "name");
		json_builder_add_string_value(b, names[i]);
		json_builder_set_member_name(b, "driver");
		json_builder_add_string_value(b, v ? vs_driver_name(v->driver)
						   : NULL);
		for (guint k = 0; k < G_N_ELEMENTS(keys); k++) {
			json_builder_set_member_name(b, keys[k]);
			json_builder_add_string_value(b, vals[k]);
		}
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
	root = json_builder_get_root(b);
	cli_print_json(root);
}

int cmd_list(Cli *c, int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	g_auto(GStrv) names = NULL;

	if (!cli_parse(c, &argc, &argv, "", "Registered VMs.", NULL, &error) ||
	    !cli_want_args(argc, argv, 0, "no arguments", &error))
		return cli_fail(error);
	names = vs_registry_list(&c->cfg, &error);
	if (c->json)
		list_json(c, names);
	else
		for (guint i = 0; names[i]; i++)
			g_print("%s\n", names[i]);
	return VS_EXIT_OK;
}
