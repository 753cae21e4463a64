// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsharectl place VM [--policy NAME] [--apply] | --release
 * vsharectl migrate VM URI [--peer HOST:PORT]
 *
 * Where the layout policy puts VM on this host (paper 001's Optimizer,
 * docs/migration.md): vshared decides with every VM's profile and reserves
 * free pCPUs per guest cell. For a VM vshared follows but does not own
 * (a QEMU started with -incoming and registered), --apply pins its vCPU
 * threads to their cell's pCPUs and its other threads to all of them
 * before the migration's memory arrives. --release: the VM will not
 * arrive after all; its reserved pCPUs are free again.
 *
 * migrate: vshared starts a QMP VM's live migration to URI and, once it
 * is under way, sends the VM's profile to the destination's vshared
 * (--peer: its --peer-listen endpoint; CONF/peer.key on both hosts).
 */
#include "cli.h"

static const char *str(JsonObject *o, const char *k)
{
	return json_object_get_string_member_with_default(o, k, "?");
}

static void print_decisions(JsonObject *r, const char *member, const char *what)
{
	JsonArray *a = json_object_get_array_member(r, member);

	for (guint i = 0; a && i < json_array_get_length(a); i++) {
		JsonObject *o = json_array_get_object_element(a, i);

		g_print("  %s %s: node %" G_GINT64_FORMAT " (%s): %s\n", what,
			str(o, "vm"), json_object_get_int_member(o, "node"),
			str(o, "reason"), str(o, "note"));
	}
}

static void render(JsonNode *n)
{
	JsonObject *r = json_node_get_object(n);
	JsonArray *cells = json_object_get_array_member(r, "cells");

	g_print("%s: node %" G_GINT64_FORMAT " by %s (%s)\n", str(r, "vm"),
		json_object_get_int_member(r, "node"), str(r, "policy"),
		str(r, "reason"));
	for (guint i = 0; i < json_array_get_length(cells); i++) {
		JsonObject *c = json_array_get_object_element(cells, i);

		g_print("  guest cell %" G_GINT64_FORMAT
			": host node %" G_GINT64_FORMAT ", pCPUs %s\n",
			json_object_get_int_member(c, "cell"),
			json_object_get_int_member(c, "node"), str(c, "cpus"));
	}
	print_decisions(r, "neighbours", "neighbour");
	print_decisions(r, "moves", "move memory of");
	g_print("%s\n", json_object_get_boolean_member(r, "applied")
				? "applied: threads pinned"
				: "decided only (pCPUs reserved for 600 s)");
}

int cmd_place(Cli *c, int argc, char **argv)
{
	g_autofree char *policy = NULL;
	gboolean do_apply = FALSE, release = FALSE;
	GOptionEntry e[] = {
		{ "policy", 0, 0, G_OPTION_ARG_STRING, &policy,
		  "the layout policy (default: vshared's --layout-policy)",
		  "NAME" },
		{ "apply", 0, 0, G_OPTION_ARG_NONE, &do_apply,
		  "pin the VM's threads (a VM vshared follows)", NULL },
		{ "release", 0, 0, G_OPTION_ARG_NONE, &release,
		  "VM will not arrive: free the pCPUs reserved for it", NULL },
		{ NULL }
	};
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) r = NULL;
	JsonObject *a;

	if (!cli_parse(c, &argc, &argv,
		       "VM [--policy NAME] [--apply] | VM --release",
		       "Where the layout policy puts VM on this host "
		       "(docs/migration.md).",
		       e, &error) ||
	    !cli_want_args(argc, argv, 1, "VM", &error))
		return cli_fail(error);
	a = json_object_new();
	json_object_set_string_member(a, "vm", argv[1]);
	if (policy)
		json_object_set_string_member(a, "policy", policy);
	if (do_apply)
		json_object_set_boolean_member(a, "apply", TRUE);
	if (release)
		json_object_set_boolean_member(a, "release", TRUE);
	r = cli_daemon_call(c, "vshare-host-place", a, &error);
	if (!r)
		return cli_fail(error);
	if (c->json)
		cli_print_json(r);
	else if (release)
		g_print("%s: %s\n", argv[1],
			json_object_get_boolean_member(json_node_get_object(r),
						       "released")
				? "reservation released"
				: "had no reservation");
	else
		render(r);
	return VS_EXIT_OK;
}

static void render_migrate(JsonObject *r)
{
	g_print("%s: migrating to %s (%s)\n", str(r, "vm"), str(r, "uri"),
		str(r, "status"));
	if (!json_object_has_member(r, "peer"))
		return;
	if (json_object_get_boolean_member(r, "sent")) {
		JsonObject *a = json_object_get_object_member(r, "answer");

		g_print("  profile sent to %s: %s\n", str(r, "peer"),
			a ? str(a, "note") : "?");
	} else {
		g_print("  profile not sent to %s: %s\n", str(r, "peer"),
			str(r, "error"));
	}
}

int cmd_migrate(Cli *c, int argc, char **argv)
{
	g_autofree char *peer = NULL;
	GOptionEntry e[] = { { "peer", 0, 0, G_OPTION_ARG_STRING, &peer,
			       "the destination vshared's --peer-listen "
			       "endpoint: the VM's profile goes there",
			       "HOST:PORT" },
			     { NULL } };
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) r = NULL;
	JsonObject *a;

	if (!cli_parse(c, &argc, &argv, "VM URI [--peer HOST:PORT]",
		       "Live-migrate a VM of the QMP driver to QEMU's URI "
		       "(e.g. tcp:DEST:PORT); with --peer its profile is sent "
		       "to the destination's vshared (docs/migration.md).",
		       e, &error) ||
	    !cli_want_args(argc, argv, 2, "VM URI", &error))
		return cli_fail(error);
	a = json_object_new();
	json_object_set_string_member(a, "vm", argv[1]);
	json_object_set_string_member(a, "uri", argv[2]);
	if (peer)
		json_object_set_string_member(a, "peer", peer);
	r = cli_daemon_call(c, "vshare-host-migrate", a, &error);
	if (!r)
		return cli_fail(error);
	if (c->json)
		cli_print_json(r);
	else
		render_migrate(json_node_get_object(r));
	return VS_EXIT_OK;
}
