// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vshare-libvirt-hook: installed as /etc/libvirt/hooks/qemu.d/vshare.
 *
 * On the destination of a live migration libvirt runs
 * `qemu.d/vshare NAME migrate begin -` with the incoming domain XML on
 * stdin, before QEMU starts; what the hook prints replaces the XML. The
 * hook asks vshared where the VM goes (`vshare-host-place`: the layout
 * policy, with the profile the VM carries in its <metadata>) and prints
 * the XML with <cputune> and <numatune> rewritten, so the incoming VM runs
 * on its layout from its first instruction.
 *
 * It never calls libvirt (libvirtd waits for the hook: a call back would
 * deadlock) and fails open: on any problem (vshared down or slow, bad XML,
 * a placement that does not fit) it prints nothing, which leaves the XML
 * unchanged, says why on stderr (libvirtd's log) and exits 0, so the
 * migration goes on as it would without vshare. Every other hook call
 * exits 0 at once.
 */
#include "migxml.h"
#include "vshare-host.h"
#include "vshare-profile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int opt_timeout_ms = 3000;

static char *read_stdin(gsize *len, GError **error)
{
	g_autoptr(GByteArray) buf = g_byte_array_new();
	guint8 chunk[65536];
	ssize_t n;

	while ((n = read(0, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
				    "stdin: %s", g_strerror(errno));
			return NULL;
		}
		if (buf->len + (gsize)n > VS_MIG_MAX_XML) {
			g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_HOSTILE,
				    "domain XML over %u bytes", VS_MIG_MAX_XML);
			return NULL;
		}
		g_byte_array_append(buf, chunk, (guint)n);
	}
	*len = buf->len;
	g_byte_array_append(buf, (const guint8 *)"", 1);
	return (char *)g_byte_array_free(g_steal_pointer(&buf), FALSE);
}

/* The profile the VM carries in its <metadata> (paper 001's Transferer:
 * it travels inside the migration XML). Absent: the policy sees an
 * unprofiled VM; refused: said, and the same. */
static void add_profile(JsonObject *a, const char *name, const char *xml)
{
	g_autoptr(GError) error = NULL;
	VsProfile p;

	if (vs_profile_from_domain_xml(xml, &p, &error)) {
		json_object_set_member(a, "profile", vs_profile_to_json(&p));
		return;
	}
	if (!vs_error_is(error, VS_PROFILE_ABSENT))
		fprintf(stderr, "vshare hook: %s: profile ignored: %s\n", name,
			error->message);
}

static JsonObject *request_args(const VsMigDomain *d, const char *xml)
{
	JsonObject *a = json_object_new();
	JsonArray *cells = json_array_new();

	json_object_set_string_member(a, "vm", d->name);
	for (guint i = 0; i < d->ncells; i++) {
		JsonObject *c = json_object_new();

		json_object_set_int_member(c, "cell", d->cells[i].id);
		json_object_set_int_member(c, "vcpus",
					   vs_cpuset_count(&d->cells[i].vcpus));
		json_object_set_int_member(c, "memory-kib",
					   (gint64)d->cells[i].mem_kib);
		json_array_add_object_element(cells, c);
	}
	json_object_set_array_member(a, "cells", cells);
	add_profile(a, d->name, xml);
	return a;
}

static char *socket_path(void)
{
	const char *env = g_getenv("VSHARE_SOCKET");

	return g_strdup(env ? env : VS_DAEMON_SOCKET);
}

/* One request on vshared's control socket (the agent protocol's framing:
 * replies in order), within the hook's deadline. */
static JsonNode *ask_vshared(JsonObject *args, GError **error)
{
	g_autofree char *path = socket_path();
	g_autoptr(VsPeer) p =
		vs_peer_connect(path, "vshared", VS_QMP_MAX_REPLY, error);

	if (!p) {
		json_object_unref(args);
		return NULL;
	}
	return vs_agent_call(p, "vshare-host-place", args, opt_timeout_ms,
			     error);
}

/* {cells: [{cell, node, cpus}]} -> places; checked by vs_mig_rewrite. */
static guint read_places(JsonNode *ret, VsMigPlace *places, GError **error)
{
	JsonObject *o =
		JSON_NODE_HOLDS_OBJECT(ret) ? json_node_get_object(ret) : NULL;
	JsonArray *a = o ? json_object_get_array_member(o, "cells") : NULL;
	guint n = a ? json_array_get_length(a) : 0;

	for (guint i = 0; i < n && i < VS_MIG_MAX_CELLS; i++) {
		JsonObject *c = json_array_get_object_element(a, i);
		const char *cpus =
			c ? json_object_get_string_member_with_default(
				    c, "cpus", "")
			  : "";

		if (!c || !vs_cpuset_parse(cpus, &places[i].cpus, NULL)) {
			g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_HOSTILE,
				    "vshared's placement: bad cell %u", i);
			return 0;
		}
		places[i].cell = (guint)json_object_get_int_member_with_default(
			c, "cell", G_MAXUINT);
		places[i].node = (int)json_object_get_int_member_with_default(
			c, "node", -1);
	}
	if (!n || n > VS_MIG_MAX_CELLS)
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_HOSTILE,
			    "vshared's placement has %u cells", n);
	return n <= VS_MIG_MAX_CELLS ? n : 0;
}

static char *place(const char *xml, gsize len, GError **error)
{
	g_auto(VsMigDomain) d = { 0 };
	g_autoptr(JsonNode) ret = NULL;
	VsMigPlace places[VS_MIG_MAX_CELLS] = { 0 };
	guint n;

	if (!vs_mig_read(xml, len, &d, error))
		return NULL;
	ret = ask_vshared(request_args(&d, xml), error);
	if (!ret)
		return NULL;
	n = read_places(ret, places, error);
	if (!n)
		return NULL;
	if (!json_object_get_boolean_member_with_default(
		    json_node_get_object(ret), "bind-memory", FALSE)) {
		/* a declared host layout: its nodes are not the kernel's */
		for (guint i = 0; i < n; i++)
			places[i].node = -1;
		fprintf(stderr,
			"vshare hook: %s: vCPUs pinned; memory binding "
			"left to libvirt (vshared: the host's nodes are "
			"not the kernel's)\n",
			d.name);
	}
	return vs_mig_rewrite(xml, len, &d, places, n, error);
}

int main(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *xml = NULL;
	g_autofree char *out = NULL;
	const char *t = g_getenv("VSHARE_HOOK_TIMEOUT_MS");
	gsize len = 0;

	if (argc == 2 && !strcmp(argv[1], "--version"))
		return printf("vshare-libvirt-hook %s\n", vs_schema_version), 0;
	if (argc < 4 || strcmp(argv[2], "migrate") || strcmp(argv[3], "begin"))
		return 0;
	if (t)
		opt_timeout_ms = CLAMP(atoi(t), 100, 60000);
	xml = read_stdin(&len, &error);
	if (xml)
		out = place(xml, len, &error);
	if (!out) {
		fprintf(stderr,
			"vshare hook: %s: incoming layout left to libvirt: "
			"%s\n",
			argv[1], error ? error->message : "no placement");
		return 0;
	}
	fputs(out, stdout);
	return fflush(stdout) ? 1 : 0;
}
