// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsharectl policy list | show NAME | enable NAME | disable NAME |
 *                  reload [NAME] | dry-run NAME | log [-n N]
 * Policies live in vshared: each subcommand is one control-socket call;
 * --json prints the daemon's answer as it came.
 */
#include "cli.h"

#include <string.h>

static const char *str(JsonObject *o, const char *k)
{
	JsonNode *n = json_object_get_member(o, k);

	return n && json_node_get_value_type(n) == G_TYPE_STRING
		       ? json_node_get_string(n)
		       : NULL;
}

static void print_policy(JsonObject *p)
{
	JsonArray *every = json_object_get_array_member(p, "every");
	JsonArray *on = json_object_get_array_member(p, "on");
	g_autoptr(GString) sched = g_string_new(NULL);

	for (guint i = 0; i < json_array_get_length(every); i++)
		g_string_append_printf(sched, "%severy %gs",
				       sched->len ? ", " : "",
				       json_array_get_double_element(every, i));
	for (guint i = 0; i < json_array_get_length(on); i++)
		g_string_append_printf(sched, "%son %s", sched->len ? ", " : "",
				       json_array_get_string_element(on, i));
	g_print("%-20s %-8s %-8s runs %-6" G_GINT64_FORMAT
		" acts %" G_GINT64_FORMAT "/%" G_GINT64_FORMAT
		"/%" G_GINT64_FORMAT " (ok/refused/failed)  %s\n",
		str(p, "name"),
		json_object_get_boolean_member(p, "running")   ? "running"
		: json_object_get_boolean_member(p, "enabled") ? "failed"
							       : "off",
		str(p, "origin"), json_object_get_int_member(p, "runs"),
		json_object_get_int_member(p, "acts-ok"),
		json_object_get_int_member(p, "acts-refused"),
		json_object_get_int_member(p, "acts-failed"), sched->str);
	if (str(p, "error"))
		g_print("%20s error: %s\n", "", str(p, "error"));
}

static void print_list(JsonNode *r)
{
	JsonArray *a = json_object_get_array_member(json_node_get_object(r),
						    "policies");

	if (!json_array_get_length(a))
		g_print("no policies (vshared --policies DIR, "
			"/etc/vshare/policies)\n");
	for (guint i = 0; i < json_array_get_length(a); i++)
		print_policy(json_array_get_object_element(a, i));
}

static void print_act(JsonObject *o)
{
	const char *act = str(o, "act");

	if (str(o, "from"))
		g_print("%s: %s %s -> %s pCPUs %s", str(o, "policy"), act,
			str(o, "from"), str(o, "to"), str(o, "cpus"));
	else
		g_print("%s: %s %s %" G_GINT64_FORMAT, str(o, "policy"), act,
			str(o, "vm"), json_object_get_int_member(o, "value"));
	g_print(" (%s): %s%s%s\n", str(o, "reason"), str(o, "result"),
		str(o, "message") ? ": " : "",
		str(o, "message") ? str(o, "message") : "");
}

static void print_log(JsonNode *r, const char *member)
{
	JsonArray *a =
		json_object_get_array_member(json_node_get_object(r), member);

	for (guint i = 0; i < json_array_get_length(a); i++) {
		JsonNode *e = json_array_get_element(a, i);

		if (JSON_NODE_HOLDS_OBJECT(e)) {
			JsonObject *o = json_node_get_object(e);

			if (json_object_has_member(o, "time-us") &&
			    strcmp(member, "acts")) {
				g_autoptr(GDateTime) t =
					g_date_time_new_from_unix_local(
						json_object_get_int_member(
							o, "time-us") /
						1000000);
				g_autofree char *ts =
					g_date_time_format(t, "%F %T");

				g_print("%s ", ts);
			}
			print_act(o);
		} else {
			g_print("log: %s\n", json_node_get_string(e));
		}
	}
	if (!json_array_get_length(a))
		g_print("no acts\n");
	if (json_object_has_member(json_node_get_object(r), "error"))
		g_print("error: %s\n", str(json_node_get_object(r), "error"));
}

static JsonObject *named(const char *name)
{
	JsonObject *a = json_object_new();

	if (name)
		json_object_set_string_member(a, "name", name);
	return a;
}

static const struct {
	const char *sub, *cmd;
	int args; /* 1: NAME required, 0: none, -1: optional */
} subs[] = {
	{ "list", "vshare-host-policy-list", 0 },
	{ "show", "vshare-host-policy-show", 1 },
	{ "enable", "vshare-host-policy-enable", 1 },
	{ "disable", "vshare-host-policy-disable", 1 },
	{ "reload", "vshare-host-policy-reload", -1 },
	{ "dry-run", "vshare-host-policy-dry-run", 1 },
	{ "log", "vshare-host-policy-log", 0 },
};

static void render(Cli *c, guint k, JsonNode *r)
{
	JsonObject *o = json_node_get_object(r);

	if (c->json)
		cli_print_json(r);
	else if (!strcmp(subs[k].sub, "show"))
		print_policy(o), g_print("\n%s", str(o, "source"));
	else if (!strcmp(subs[k].sub, "enable") ||
		 !strcmp(subs[k].sub, "disable"))
		print_policy(o);
	else if (!strcmp(subs[k].sub, "dry-run"))
		print_log(r, "acts");
	else if (!strcmp(subs[k].sub, "log"))
		print_log(r, "entries");
	else
		print_list(r);
}

int cmd_policy(Cli *c, int argc, char **argv)
{
	int count = 50;
	GOptionEntry e[] = { { "count", 0, 0, G_OPTION_ARG_INT, &count,
			       "log: how many acts (default 50)", "N" },
			     { NULL } };
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) r = NULL;
	JsonObject *a;
	guint k;

	if (!cli_parse(c, &argc, &argv,
		       "list | show NAME | enable NAME | disable NAME | "
		       "reload [NAME] | dry-run NAME | log [-n N]",
		       "vshared's Lua policies (docs/policies.md).", e, &error))
		return cli_fail(error);
	for (k = 0; argc > 1 && k < G_N_ELEMENTS(subs); k++)
		if (!strcmp(argv[1], subs[k].sub))
			break;
	if (argc < 2 || k == G_N_ELEMENTS(subs)) {
		cli_usage_error(&error, "policy: list, show, enable, disable, "
					"reload, dry-run or log");
		return cli_fail(error);
	}
	if ((subs[k].args == 1 && argc != 3) ||
	    (subs[k].args == 0 && argc != 2) ||
	    (subs[k].args == -1 && argc > 3)) {
		cli_usage_error(&error, "policy %s: %s", subs[k].sub,
				subs[k].args == 1 ? "give one policy name"
						  : "too many arguments");
		return cli_fail(error);
	}
	a = named(argc > 2 ? argv[2] : NULL);
	if (!strcmp(subs[k].sub, "log"))
		json_object_set_int_member(a, "count", count);
	r = cli_daemon_call(c, subs[k].cmd, a, &error);
	if (!r)
		return cli_fail(error);
	render(c, k, r);
	return VS_EXIT_OK;
}
