// SPDX-License-Identifier: GPL-2.0-or-later
/* Handlers of the vshare-* commands: typed arguments in, a JSON value out.
 * The protocol layer has validated the arguments against the schema. */
#include "commands.h"

#include "sysinfo.h"

#include <errno.h>
#include <string.h>

static JsonNode *obj_node(JsonObject *o)
{
	JsonNode *n;

	if (!o)
		return NULL;
	n = json_node_new(JSON_NODE_OBJECT);
	json_node_take_object(n, o);
	return n;
}

static JsonNode *cmd_get_topology(JsonObject *args, gpointer ctx,
				  GError **error)
{
	VsAgent *agent = ctx;
	JsonObject *topo = vs_sys_topology(error);
	JsonObject *cg;

	(void)args;
	if (!topo)
		return NULL;
	cg = json_object_new();
	json_object_set_int_member(cg, "version", agent->cg->version);
	json_object_set_string_member(cg, "backend", agent->cg->ops->name);
	json_object_set_string_member(cg, "path", agent->cg->path);
	json_object_set_object_member(topo, "cgroup", cg);
	return obj_node(topo);
}

static JsonNode *cmd_set_allocation(JsonObject *args, gpointer ctx,
				    GError **error)
{
	VsAgent *agent = ctx;
	const char *mems = json_object_has_member(args, "mems")
				   ? json_object_get_string_member(args, "mems")
				   : NULL;

	return obj_node(vs_alloc_set(
		agent->alloc, json_object_get_string_member(args, "cpus"), mems,
		error));
}

static JsonNode *cmd_get_allocation(JsonObject *args, gpointer ctx,
				    GError **error)
{
	VsAgent *agent = ctx;

	(void)args;
	return obj_node(vs_alloc_get(agent->alloc, error));
}

static JsonNode *cmd_get_cpu_stats(JsonObject *args, gpointer ctx,
				   GError **error)
{
	JsonArray *arr = vs_sys_cpu_stats(error);
	JsonNode *n;

	(void)args;
	(void)ctx;
	if (!arr)
		return NULL;
	n = json_node_new(JSON_NODE_ARRAY);
	json_node_take_array(n, arr);
	return n;
}

/* ---- qemu-ga's vCPU commands, served by confinement (--guest-vcpus) ----
 * Same arguments, checks and error texts as qemu-ga (qga/commands-posix.c,
 * transfer_vcpu()), so libvirt's `virsh guestvcpus` / `setvcpus --guest`
 * work unchanged; but "offline" means outside the allocation: the kernel
 * keeps every vCPU online. */

#define CPU_SYSFS "/sys/devices/system/cpu"

static gboolean vcpu_file_exists(gint64 id, const char *file)
{
	g_autofree char *p = g_strdup_printf(
		CPU_SYSFS "/cpu%" G_GINT64_FORMAT "/%s", id, file);

	return g_file_test(p, G_FILE_TEST_EXISTS);
}

static gint cmp_int64(gconstpointer a, gconstpointer b)
{
	gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;

	return x < y ? -1 : x > y;
}

/* The logical ids the kernel shows (cpuN directories), sorted. */
static GArray *vcpu_ids(GError **error)
{
	g_autoptr(GDir) d = g_dir_open(CPU_SYSFS, 0, error);
	GArray *ids;
	const char *name;

	if (!d)
		return NULL;
	ids = g_array_new(FALSE, FALSE, sizeof(gint64));
	while ((name = g_dir_read_name(d))) {
		gint64 id;

		if (!g_str_has_prefix(name, "cpu") || !name[3] ||
		    strspn(name + 3, "0123456789") != strlen(name + 3))
			continue;
		id = g_ascii_strtoll(name + 3, NULL, 10);
		g_array_append_val(ids, id);
	}
	g_array_sort(ids, cmp_int64);
	return ids;
}

static JsonNode *cmd_get_vcpus(JsonObject *args, gpointer ctx, GError **error)
{
	VsAgent *agent = ctx;
	g_autoptr(GArray) ids = vcpu_ids(error);
	VsCpuSet cpus, mems, online;
	JsonArray *arr;
	JsonNode *n;

	(void)args;
	if (!ids || !agent->cg->ops->get(agent->cg, &cpus, &mems, error) ||
	    !vs_sys_online_cpus(&online, error))
		return NULL;
	arr = json_array_new();
	for (guint i = 0; i < ids->len; i++) {
		gint64 id = g_array_index(ids, gint64, i);
		JsonObject *o = json_object_new();
		gboolean on = id < VS_MAX_CPUS && vs_cpuset_has(&cpus, id) &&
			      vs_cpuset_has(&online, id);

		json_object_set_int_member(o, "logical-id", id);
		json_object_set_boolean_member(o, "online", on);
		json_object_set_boolean_member(o, "can-offline",
					       vcpu_file_exists(id, "online"));
		json_array_add_object_element(arr, o);
	}
	n = json_node_new(JSON_NODE_ARRAY);
	json_node_take_array(n, arr);
	return n;
}

/* One entry applied to @want, with qemu-ga's checks and texts. */
static gboolean vcpu_step(VsCpuSet *want, const VsCpuSet *online, gint64 id,
			  gboolean on, GError **error)
{
	VsCpuSet t;

	if (!vcpu_file_exists(id, "")) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "open(\"" CPU_SYSFS "/cpu%" G_GINT64_FORMAT
			    "/\"): %s",
			    id, g_strerror(ENOENT));
		return FALSE;
	}
	if (id >= VS_MAX_CPUS)
		return on; /* outside any set: pretend, as qemu-ga does */
	if (on && !vs_cpuset_has(online, id)) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "logical processor #%" G_GINT64_FORMAT
			    " is offline in the kernel (not lent): online it "
			    "there first",
			    id);
		return FALSE;
	}
	if (on) {
		vs_cpuset_add(want, id);
		return TRUE;
	}
	vs_cpuset_clear(&t);
	for (guint i = 0; i < VS_MAX_CPUS; i++)
		if (i != id && vs_cpuset_has(want, i))
			vs_cpuset_add(&t, i);
	/* vCPU 0 (no online switch) and the last vCPU stay, as with
	 * qemu-ga (the kernel refuses to offline its last CPU) */
	if (!vcpu_file_exists(id, "online") || !vs_cpuset_count(&t)) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "logical processor #%" G_GINT64_FORMAT
			    " can't be offlined",
			    id);
		return FALSE;
	}
	*want = t;
	return TRUE;
}

static JsonNode *cmd_set_vcpus(JsonObject *args, gpointer ctx, GError **error)
{
	VsAgent *agent = ctx;
	JsonArray *arr = json_object_get_array_member(args, "vcpus");
	g_autoptr(GError) stop = NULL;
	g_autoptr(JsonObject) rep = NULL;
	g_autofree char *text = NULL;
	VsCpuSet cur, mems, online, want;
	guint done = 0;
	JsonNode *n;

	if (!agent->cg->ops->get(agent->cg, &cur, &mems, error) ||
	    !vs_sys_online_cpus(&online, error))
		return NULL;
	want = cur;
	for (; done < json_array_get_length(arr); done++) {
		JsonObject *o = json_array_get_object_element(arr, done);

		if (!vcpu_step(&want, &online,
			       json_object_get_int_member(o, "logical-id"),
			       json_object_get_boolean_member(o, "online"),
			       &stop))
			break;
	}
	/* qemu-ga: an error only when nothing was processed */
	if (stop && !done) {
		g_propagate_error(error, g_steal_pointer(&stop));
		return NULL;
	}
	if (!vs_cpuset_equal(&want, &cur)) {
		text = vs_cpuset_format(&want);
		rep = vs_alloc_set(agent->alloc, text, NULL, error);
		if (!rep)
			return NULL;
	}
	n = json_node_new(JSON_NODE_VALUE);
	json_node_set_int(n, done);
	return n;
}

static const struct {
	const char *name;
	VsHandler handler;
} handlers[] = {
	{ "vshare-get-topology", cmd_get_topology },
	{ "vshare-set-allocation", cmd_set_allocation },
	{ "vshare-get-allocation", cmd_get_allocation },
	{ "vshare-get-cpu-stats", cmd_get_cpu_stats },
	{ "guest-get-vcpus", cmd_get_vcpus },
	{ "guest-set-vcpus", cmd_set_vcpus },
};

gboolean vs_commands_register(VsAgent *agent, GError **error)
{
	g_auto(GStrv) unbound = NULL;

	for (gsize i = 0; i < G_N_ELEMENTS(handlers); i++)
		if (!vs_dispatcher_register(agent->disp, handlers[i].name,
					    handlers[i].handler, agent, error))
			return FALSE;
	unbound = vs_dispatcher_unbound(agent->disp);
	if (unbound[0]) {
		g_autofree char *list = g_strjoinv(", ", unbound);

		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "schema commands without a handler: %s", list);
		return FALSE;
	}
	return TRUE;
}
