// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * systemd backend: on a guest whose PID 1 is systemd, systemd owns the
 * cgroup tree and tracks services by their cgroups, so the agent moves no
 * task. It asks systemd over D-Bus (SetUnitProperties, runtime) for
 * AllowedCPUs= / AllowedMemoryNodes= on every top-level unit of the root
 * slice; systemd writes the cpusets, the kernel re-pins the tasks, units
 * keep their processes and new services inherit the set. The runtime
 * drop-ins (/run/systemd/system.control) survive daemon-reload.
 *
 * What systemd does not cover:
 * - tasks of the root cgroup itself (unbound kthreads): pinned with
 *   sched_setaffinity(); per-CPU kthreads refuse (EINVAL) and are counted;
 * - cgroup v1 (systemd.unified_cgroup_hierarchy=0): systemd 252 applies
 *   AllowedCPUs= only on the unified hierarchy and never touches the v1
 *   cpuset hierarchy (its v1 controller mask has no cpuset). There the
 *   properties are still set (they document the policy and take effect
 *   if the guest moves to v2) and the cpuset hierarchy, which is not the
 *   one systemd tracks units in, is managed by the cgroupfs backend.
 */
#include "cgroup.h"

#include "sysinfo.h"

#include <errno.h>
#include <gio/gio.h>
#include <sched.h>
#include <string.h>
#include <sys/stat.h>

#define SD_NAME	      "org.freedesktop.systemd1"
#define SD_PATH	      "/org/freedesktop/systemd1"
#define SD_MANAGER    "org.freedesktop.systemd1.Manager"
#define SD_TIMEOUT_MS 15000

/* Always confined when loaded, even before they have a cgroup (a slice
 * that starts later must start confined). */
static const char *const sd_known_units[] = { "system.slice", "user.slice",
					      "machine.slice", "init.scope" };

typedef struct {
	GDBusConnection *bus;
	/* Where systemd tracks units: the v2 mount, or name=systemd (v1). */
	char *hierarchy;
	/* v1 only: the cpuset hierarchy, run by the cgroupfs backend. */
	VsCgroup *cpuset1;
	GPtrArray *known;  /* loaded names among sd_known_units */
	VsTaskSet *pinned; /* root-cgroup tasks that refuse affinity */
	char *slice_path;  /* system.slice's D-Bus object */
	gboolean cached;   /* cpus/mems below are in force (the kernel's) */
	VsCpuSet cpus, mems;
	/* The units' values for "everything": every possible CPU and node,
	 * so that cpuset stays enabled on them (the next change is a write
	 * of their cpuset files) and hot-added CPUs are not left out. */
	VsCpuSet all_cpus, all_mems;
	/* What systemd was last asked for (unit values), and whether it
	 * took it: a failed call makes the next change ask again. */
	gboolean told;
	VsCpuSet told_cpus, told_mems;
	guint pending; /* SetUnitProperties / Get calls in flight */
} SdPriv;

/* ---- D-Bus ------------------------------------------------------------ */

/* The system bus when it is up (it forwards only what we ask for);
 * systemd's private socket otherwise (early boot, images without
 * dbus-daemon), as systemctl does. */
static GDBusConnection *sd_connect(GError **error)
{
	static const char *const addrs[] = {
		"unix:path=/run/dbus/system_bus_socket",
		"unix:path=/run/systemd/private",
	};
	g_autoptr(GError) local = NULL;

	for (gsize i = 0; i < G_N_ELEMENTS(addrs); i++) {
		GDBusConnectionFlags f =
			G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT;
		GDBusConnection *c;

		if (i == 0)
			f |= G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION;
		g_clear_error(&local);
		c = g_dbus_connection_new_for_address_sync(addrs[i], f, NULL,
							   NULL, &local);
		if (c) {
			g_debug("systemd: D-Bus via %s", addrs[i]);
			return c;
		}
	}
	g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
		    "cannot reach systemd over D-Bus: %s", local->message);
	return NULL;
}

/* The connection, made again if it went away (dbus-daemon or systemd
 * restarted). */
static GDBusConnection *sd_bus(SdPriv *p, GError **error)
{
	if (p->bus && g_dbus_connection_is_closed(p->bus))
		g_clear_object(&p->bus);
	if (!p->bus)
		p->bus = sd_connect(error);
	return p->bus;
}

static void sd_error(GError **error, GError *local, const char *what)
{
	g_dbus_error_strip_remote_error(local);
	g_set_error(error, VS_ERROR, VS_ERROR_GENERIC, "systemd: %s: %s", what,
		    local->message);
}

/* One method call. Errors come back in VS_ERROR, with @what. */
static GVariant *sd_call(SdPriv *p, const char *path, const char *iface,
			 const char *method, GVariant *args, const char *ret,
			 const char *what, GError **error)
{
	g_autoptr(GVariant) a = args ? g_variant_ref_sink(args) : NULL;
	g_autoptr(GError) local = NULL;
	GVariant *r;

	if (!sd_bus(p, error))
		return NULL;
	r = g_dbus_connection_call_sync(
		p->bus, SD_NAME, path, iface, method, a, G_VARIANT_TYPE(ret),
		G_DBUS_CALL_FLAGS_NONE, SD_TIMEOUT_MS, NULL, &local);
	if (!r)
		sd_error(error, local, what);
	return r;
}

static char *sd_unit_path(SdPriv *p, const char *unit, GError **error)
{
	g_autoptr(GVariant) r =
		sd_call(p, SD_PATH, SD_MANAGER, "LoadUnit",
			g_variant_new("(s)", unit), "(o)", unit, error);
	char *path = NULL;

	if (r)
		g_variant_get(r, "(o)", &path);
	return path;
}

static GVariant *sd_unit_prop(SdPriv *p, const char *unit, const char *iface,
			      const char *name, GError **error)
{
	g_autofree char *path = sd_unit_path(p, unit, error);
	g_autoptr(GVariant) r = NULL;
	GVariant *v = NULL;

	if (!path)
		return NULL;
	r = sd_call(p, path, "org.freedesktop.DBus.Properties", "Get",
		    g_variant_new("(ss)", iface, name), "(v)", unit, error);
	if (r)
		g_variant_get(r, "(v)", &v);
	return v;
}

/* systemd's CPU/node sets are byte arrays: bit i%8 of byte i/8. */
static GVariant *set_to_bytes(const VsCpuSet *set)
{
	guint8 bytes[VS_MAX_CPUS / 8] = { 0 };
	gsize n = 0;

	for (guint i = 0; i < VS_MAX_CPUS; i++) {
		if (!vs_cpuset_has(set, i))
			continue;
		bytes[i / 8] |= 1u << (i % 8);
		n = i / 8 + 1;
	}
	return g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, bytes, n, 1);
}

static void bytes_to_set(GVariant *v, VsCpuSet *set)
{
	gsize n = 0;
	const guint8 *b = g_variant_get_fixed_array(v, &n, 1);

	vs_cpuset_clear(set);
	for (gsize i = 0; i < n * 8 && i < VS_MAX_CPUS; i++)
		if (b[i / 8] & (1u << (i % 8)))
			vs_cpuset_add(set, i);
}

/* A property of system.slice as a set; empty means "not restricted". */
static gboolean sd_get_set(SdPriv *p, const char *name, VsCpuSet *set,
			   gboolean *empty, GError **error)
{
	g_autoptr(GVariant) r = NULL;
	g_autoptr(GVariant) v = NULL;

	if (!p->slice_path &&
	    !(p->slice_path = sd_unit_path(p, "system.slice", error)))
		return FALSE;
	r = sd_call(
		p, p->slice_path, "org.freedesktop.DBus.Properties", "Get",
		g_variant_new("(ss)", "org.freedesktop.systemd1.Slice", name),
		"(v)", "system.slice", error);
	if (!r)
		return FALSE;
	g_variant_get(r, "(v)", &v);
	if (!g_variant_is_of_type(v, G_VARIANT_TYPE_BYTESTRING)) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "systemd: %s is not a byte array", name);
		return FALSE;
	}
	bytes_to_set(v, set);
	*empty = vs_cpuset_count(set) == 0;
	return TRUE;
}

/* ---- which units ------------------------------------------------------ */

/* A cgroup directory named like a unit that has a cgroup: systemd's own.
 * Anything else directly below the root (lxc.payload.*, docker, ...) was
 * made by someone else, and systemd does not know it. */
static gboolean sd_is_unit(const char *name)
{
	static const char *const types[] = { ".slice",	".scope", ".service",
					     ".socket", ".mount", ".swap" };
	const char *dot = strrchr(name, '.');

	for (gsize i = 0; dot && dot != name && i < G_N_ELEMENTS(types); i++)
		if (strcmp(dot, types[i]) == 0)
			return TRUE;
	return FALSE;
}

static gboolean sd_not_unit(const char *name)
{
	return !sd_is_unit(name);
}

/* The top-level units: the loaded well-known ones and every unit that has
 * a cgroup directly below the root now. */
static GPtrArray *sd_units(SdPriv *p)
{
	GPtrArray *units = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GPtrArray) dirs =
		vs_cgroup_foreign(p->hierarchy, "", sd_not_unit);

	for (guint i = 0; i < p->known->len; i++)
		g_ptr_array_add(units, g_strdup(p->known->pdata[i]));
	for (guint i = 0; i < dirs->len; i++) {
		VsForeign *f = dirs->pdata[i];
		g_autofree char *name = g_path_get_basename(f->dir);

		if (!g_ptr_array_find_with_equal_func(units, name, g_str_equal,
						      NULL))
			g_ptr_array_add(units, g_steal_pointer(&name));
	}
	return units;
}

/* v2: the top-level cgroups that are not units get the set through their
 * own cpuset files (alloc.c); v1: every cgroup of the cpuset hierarchy
 * but ours (systemd makes none there). */
static GPtrArray *sd_foreign(VsCgroup *cg)
{
	SdPriv *p = cg->priv;

	if (p->cpuset1)
		return p->cpuset1->ops->foreign(p->cpuset1);
	return vs_cgroup_foreign(p->hierarchy, "cpuset.", sd_is_unit);
}

static gboolean sd_load_known(SdPriv *p, GError **error)
{
	for (gsize i = 0; i < G_N_ELEMENTS(sd_known_units); i++) {
		g_autoptr(GVariant) v = sd_unit_prop(
			p, sd_known_units[i], "org.freedesktop.systemd1.Unit",
			"LoadState", error);

		if (!v)
			return FALSE;
		if (g_str_equal(g_variant_get_string(v, NULL), "loaded"))
			g_ptr_array_add(p->known, g_strdup(sd_known_units[i]));
	}
	return TRUE;
}

/* ---- the root cgroup's own tasks ----------------------------------------- */

/* Pin what may be pinned; a task that refuses (per-CPU kthread) is
 * remembered and counted, one that exited is skipped. */
static gboolean sd_pin_root(SdPriv *p, const VsCpuSet *cpus, GError **error)
{
	g_autoptr(GArray) pids = vs_cgroup_read_procs(p->hierarchy, error);
	cpu_set_t *mask = CPU_ALLOC(VS_MAX_CPUS);
	gsize size = CPU_ALLOC_SIZE(VS_MAX_CPUS);

	if (!pids || !mask) {
		CPU_FREE(mask);
		return pids != NULL;
	}
	CPU_ZERO_S(size, mask);
	for (guint i = 0; i < VS_MAX_CPUS; i++)
		if (vs_cpuset_has(cpus, i))
			CPU_SET_S(i, size, mask);
	vs_task_set_prune(p->pinned, pids);
	for (guint i = 0; i < pids->len; i++) {
		int pid = g_array_index(pids, int, i);

		if (vs_task_set_has(p->pinned, pid))
			continue;
		if (sched_setaffinity(pid, size, mask) == 0 || errno == ESRCH)
			continue;
		g_debug("pid %d keeps its affinity: %s", pid,
			g_strerror(errno));
		vs_task_set_add(p->pinned, pid);
	}
	CPU_FREE(mask);
	return TRUE;
}

/* ---- the backend ------------------------------------------------------ */

static gboolean sd_sweep(VsCgroup *cg, VsSweepStats *stats, GError **error)
{
	SdPriv *p = cg->priv;
	g_autoptr(GArray) pids = NULL;

	if (p->cpuset1)
		return p->cpuset1->ops->sweep(p->cpuset1, stats, error);
	/* v2: nothing moves; report the root's kthreads that cannot be
	 * pinned (the others get the allocation in sd_set). */
	pids = vs_cgroup_read_procs(p->hierarchy, error);
	if (!pids)
		return FALSE;
	vs_task_set_prune(p->pinned, pids);
	for (guint i = 0; i < pids->len; i++) {
		int pid = g_array_index(pids, int, i);

		if (vs_task_set_has(p->pinned, pid)) {
			stats->unmovable_kthreads++;
		} else if (vs_task_flags(pid) & VS_PF_NO_SETAFFINITY) {
			vs_task_set_add(p->pinned, pid);
			stats->unmovable_kthreads++;
		}
	}
	return TRUE;
}

/* A unit's set as the guest's: within what is online (or has memory);
 * an empty (unrestricted) or possible-wide set reads as all of it. */
static void sd_clip(VsCpuSet *set, const VsCpuSet *have)
{
	VsCpuSet t;

	vs_cpuset_and(&t, set, have);
	*set = vs_cpuset_count(&t) ? t : *have;
}

/* system.slice's @cprop and @mprop, as the guest's sets. */
static gboolean sd_get_pair(SdPriv *p, const char *cprop, const char *mprop,
			    VsCpuSet *cpus, VsCpuSet *mems, GError **error)
{
	VsCpuSet online, nodes;
	gboolean ce, me;

	if (!sd_get_set(p, cprop, cpus, &ce, error) ||
	    !sd_get_set(p, mprop, mems, &me, error) ||
	    !vs_sys_online_cpus(&online, error) ||
	    !vs_sys_memory_nodes(&nodes, error))
		return FALSE;
	sd_clip(cpus, &online);
	sd_clip(mems, &nodes);
	return TRUE;
}

static gboolean sd_get(VsCgroup *cg, VsCpuSet *cpus, VsCpuSet *mems,
		       GError **error)
{
	SdPriv *p = cg->priv;

	if (p->cpuset1)
		return p->cpuset1->ops->get(p->cpuset1, cpus, mems, error);
	if (!p->cached) { /* the agent is the one writer of these */
		if (!sd_get_pair(p, "AllowedCPUs", "AllowedMemoryNodes",
				 &p->cpus, &p->mems, error))
			return FALSE;
		p->cached = TRUE;
	}
	*cpus = p->cpus;
	*mems = p->mems;
	return TRUE;
}

/* system.slice's cpuset.*.effective: what the kernel enforces now (systemd
 * may not have caught up with a change yet). */
static gboolean sd_read_effective(SdPriv *p, VsCpuSet *cpus, VsCpuSet *mems)
{
	g_autofree char *cf = g_build_filename(p->hierarchy, "system.slice",
					       "cpuset.cpus.effective", NULL);
	g_autofree char *mf = g_build_filename(p->hierarchy, "system.slice",
					       "cpuset.mems.effective", NULL);
	g_autofree char *c = vs_read_file(cf, NULL);
	g_autofree char *m = c ? vs_read_file(mf, NULL) : NULL;

	return m && vs_cpuset_parse(c, cpus, NULL) &&
	       vs_cpuset_parse(m, mems, NULL);
}

static gboolean sd_get_effective(VsCgroup *cg, VsCpuSet *cpus, VsCpuSet *mems,
				 GError **error)
{
	SdPriv *p = cg->priv;

	if (p->cpuset1)
		return p->cpuset1->ops->get_effective(p->cpuset1, cpus, mems,
						      error);
	if (sd_read_effective(p, cpus, mems))
		return TRUE;
	/* No cpuset for the slice (unrestricted): ask systemd. */
	return sd_get_pair(p, "EffectiveCPUs", "EffectiveMemoryNodes", cpus,
			   mems, error);
}

/* ---- systemd's side: SetUnitProperties -------------------------------- */

static GVariant *sd_props(const VsCpuSet *cpus, const VsCpuSet *mems)
{
	GVariantBuilder b;

	g_variant_builder_init(&b, G_VARIANT_TYPE("a(sv)"));
	if (cpus)
		g_variant_builder_add(&b, "(sv)", "AllowedCPUs",
				      set_to_bytes(cpus));
	if (mems)
		g_variant_builder_add(&b, "(sv)", "AllowedMemoryNodes",
				      set_to_bytes(mems));
	return g_variant_builder_end(&b);
}

/* Synchronous: SetUnitProperties for every unit at once: the calls are
 * all sent, then the replies collected on a private main context (the
 * agent's own loop must not dispatch a new request meanwhile). systemd
 * handles them in order, so the round trips overlap. */
typedef struct {
	const char *unit;
	guint *pending;
	GError **error;
} SdReply;

static void sd_reply(GObject *src, GAsyncResult *res, gpointer data)
{
	SdReply *r = data;
	g_autoptr(GError) local = NULL;
	g_autoptr(GVariant) v = g_dbus_connection_call_finish(
		G_DBUS_CONNECTION(src), res, &local);

	if (!v && !*r->error)
		sd_error(r->error, local, r->unit);
	(*r->pending)--;
}

static gboolean sd_set_units(SdPriv *p, GPtrArray *units, const VsCpuSet *cpus,
			     const VsCpuSet *mems, GError **error)
{
	g_autoptr(GMainContext) ctx = g_main_context_new();
	g_autofree SdReply *replies = g_new0(SdReply, units->len);
	GError *first = NULL;
	guint pending = 0;

	if (!sd_bus(p, error))
		return FALSE;
	g_main_context_push_thread_default(ctx);
	for (guint i = 0; i < units->len; i++) {
		replies[i] = (SdReply){ units->pdata[i], &pending, &first };
		pending++;
		g_dbus_connection_call(
			p->bus, SD_NAME, SD_PATH, SD_MANAGER,
			"SetUnitProperties",
			g_variant_new("(sb@a(sv))", units->pdata[i], TRUE,
				      sd_props(cpus, mems)),
			G_VARIANT_TYPE("()"), G_DBUS_CALL_FLAGS_NONE,
			SD_TIMEOUT_MS, NULL, sd_reply, &replies[i]);
	}
	while (pending)
		g_main_context_iteration(ctx, TRUE);
	g_main_context_pop_thread_default(ctx);
	if (first) {
		g_propagate_error(error, first);
		return FALSE;
	}
	return TRUE;
}

/* Asynchronous: the calls go out on the agent's own main context and the
 * reply to the request does not wait for them. When the last one is
 * answered, a Get of system.slice's AllowedCPUs (systemd has written the
 * cgroups once it serves it) checks systemd's value, and each unit's
 * cpuset files are read back: a write of systemd's in between (its old
 * value) is undone. */
typedef struct {
	SdPriv *p;
	char *unit;
} SdAsync;

static void sd_async_free(SdAsync *a)
{
	g_free(a->unit);
	g_free(a);
}

static gboolean sd_unit_cpuset(SdPriv *p, const char *unit, const char *name,
			       char **path)
{
	*path = g_build_filename(p->hierarchy, unit, name, NULL);
	return g_file_test(*path, G_FILE_TEST_EXISTS);
}

/* Unit cgroups whose cpuset file @name does not hold @want get it again;
 * the number rewritten. */
static guint sd_restore_units(SdPriv *p, const char *name, const VsCpuSet *want)
{
	g_autoptr(GPtrArray) units = sd_units(p);
	g_autofree char *text = vs_cpuset_format(want);
	guint n = 0;

	for (guint i = 0; i < units->len; i++) {
		g_autofree char *f = NULL;
		g_autofree char *v = NULL;
		VsCpuSet have;

		if (!sd_unit_cpuset(p, units->pdata[i], name, &f))
			continue;
		v = vs_read_file(f, NULL);
		if (v && vs_cpuset_parse(v, &have, NULL) &&
		    vs_cpuset_equal(&have, want))
			continue;
		if (vs_write_file(f, text, NULL))
			n++;
	}
	return n;
}

static void sd_verified(GObject *src, GAsyncResult *res, gpointer data)
{
	SdAsync *a = data;
	SdPriv *p = a->p;
	g_autoptr(GError) local = NULL;
	g_autoptr(GVariant) r = g_dbus_connection_call_finish(
		G_DBUS_CONNECTION(src), res, &local);
	g_autoptr(GVariant) v = NULL;
	VsCpuSet got;
	guint n;

	p->pending--;
	if (p->pending || !p->told || p->cpuset1) {
		sd_async_free(a);
		return; /* a newer change is on its way, or nothing to check */
	}
	if (r)
		g_variant_get(r, "(v)", &v);
	if (v && g_variant_is_of_type(v, G_VARIANT_TYPE_BYTESTRING))
		bytes_to_set(v, &got);
	if (!v || !vs_cpuset_equal(&got, &p->told_cpus)) {
		g_warning("systemd: system.slice did not take AllowedCPUs=%s",
			  local ? local->message : "(another value)");
		p->told = FALSE;
	}
	n = sd_restore_units(p, "cpuset.cpus", &p->told_cpus) +
	    sd_restore_units(p, "cpuset.mems", &p->told_mems);
	if (n)
		g_message("systemd rewrote %u unit cpuset files before it "
			  "had the new properties: written again",
			  n);
	sd_async_free(a);
}

static void sd_async_reply(GObject *src, GAsyncResult *res, gpointer data)
{
	SdAsync *a = data;
	SdPriv *p = a->p;
	g_autoptr(GError) local = NULL;
	g_autoptr(GVariant) v = g_dbus_connection_call_finish(
		G_DBUS_CONNECTION(src), res, &local);

	if (!v) {
		g_dbus_error_strip_remote_error(local);
		g_warning("systemd: %s: %s (asked again at the next change)",
			  a->unit, local->message);
		p->told = FALSE;
	}
	if (p->pending == 1 && p->told && p->slice_path) {
		/* the last reply: the barrier and the check (the count
		 * stays up for it) */
		g_dbus_connection_call(
			G_DBUS_CONNECTION(src), SD_NAME, p->slice_path,
			"org.freedesktop.DBus.Properties", "Get",
			g_variant_new("(ss)", "org.freedesktop.systemd1.Slice",
				      "AllowedCPUs"),
			G_VARIANT_TYPE("(v)"), G_DBUS_CALL_FLAGS_NONE,
			SD_TIMEOUT_MS, NULL, sd_verified, a);
		return;
	}
	p->pending--;
	sd_async_free(a);
}

/* Ask systemd for @cpus / @mems (unit values; NULL: unchanged) on every
 * unit, without waiting. */
static gboolean sd_tell(SdPriv *p, GPtrArray *units, const VsCpuSet *cpus,
			const VsCpuSet *mems, GError **error)
{
	if (!sd_bus(p, error))
		return FALSE;
	if (!p->slice_path &&
	    !(p->slice_path = sd_unit_path(p, "system.slice", error)))
		return FALSE;
	for (guint i = 0; i < units->len; i++) {
		SdAsync *a = g_new0(SdAsync, 1);

		a->p = p;
		a->unit = g_strdup(units->pdata[i]);
		p->pending++;
		g_dbus_connection_call(
			p->bus, SD_NAME, SD_PATH, SD_MANAGER,
			"SetUnitProperties",
			g_variant_new("(sb@a(sv))", a->unit, TRUE,
				      sd_props(cpus, mems)),
			G_VARIANT_TYPE("()"), G_DBUS_CALL_FLAGS_NONE,
			SD_TIMEOUT_MS, NULL, sd_async_reply, a);
	}
	return TRUE;
}

/* ---- the kernel's side: the units' cpuset files ----------------------- */

/* TRUE if every unit that has a cgroup has its cpuset files, i.e. systemd
 * enabled cpuset for them (the agent's start-up asks it to). */
static gboolean sd_direct_ok(SdPriv *p, GPtrArray *units)
{
	for (guint i = 0; i < units->len; i++) {
		g_autofree char *dir =
			g_build_filename(p->hierarchy, units->pdata[i], NULL);
		g_autofree char *f = NULL;

		if (g_file_test(dir, G_FILE_TEST_IS_DIR) &&
		    !sd_unit_cpuset(p, units->pdata[i], "cpuset.cpus", &f))
			return FALSE;
	}
	return TRUE;
}

/* Write @name (cpuset.cpus or cpuset.mems) of every unit cgroup: the
 * kernel re-pins their tasks at once. */
static gboolean sd_write_units(SdPriv *p, GPtrArray *units, const char *name,
			       const VsCpuSet *set, GError **error)
{
	g_autofree char *text = vs_cpuset_format(set);

	for (guint i = 0; i < units->len; i++) {
		g_autofree char *f = NULL;

		if (sd_unit_cpuset(p, units->pdata[i], name, &f) &&
		    !vs_write_file(f, text, error))
			return FALSE;
	}
	return TRUE;
}

/* What a unit is given: the set, or every possible CPU / node for
 * "everything" (unrestricted, and cpuset stays enabled on the unit). */
static void sd_target(const VsCpuSet *set, const VsCpuSet *have,
		      const VsCpuSet *possible, VsCpuSet *out)
{
	*out = vs_cpuset_equal(set, have) ? *possible : *set;
}

/* The slow path, while the units have no cpuset files yet: systemd
 * writes them, and the reply waits for it. */
static gboolean sd_set_sync(SdPriv *p, GPtrArray *units, const VsCpuSet *tc,
			    const VsCpuSet *tm, GError **error)
{
	VsCpuSet got;
	gboolean empty;

	if (!sd_set_units(p, units, tc, tm, error))
		return FALSE;
	/* systemd realises cgroups after replying: a last round trip (which
	 * it serves after that) makes sure they are written, and checks. */
	if (!sd_get_set(p, "AllowedCPUs", &got, &empty, error))
		return FALSE;
	if (!vs_cpuset_equal(&got, tc)) {
		g_set_error_literal(error, VS_ERROR, VS_ERROR_GENERIC,
				    "systemd: system.slice did not take the "
				    "new AllowedCPUs=");
		return FALSE;
	}
	return TRUE;
}

/*
 * v2: the kernel first, systemd after. The units' cpuset files are
 * written directly (the kernel re-pins every task of the guest in the
 * time of those writes) and the reply does not wait for systemd; the same
 * values go to systemd as runtime properties at once, asynchronously, so
 * systemd's own later writes (daemon-reload, a unit started or
 * restarted) write them too. Until systemd has them, it could write its
 * old value back: the check after its last reply undoes that.
 */
static gboolean sd_set(VsCgroup *cg, const VsCpuSet *cpus, const VsCpuSet *mems,
		       GError **error)
{
	SdPriv *p = cg->priv;
	g_autoptr(GPtrArray) units = sd_units(p);
	g_autoptr(GError) local = NULL;
	VsCpuSet online, nodes, tc, tm;
	gboolean same_c, same_m, tell_c, tell_m;

	if (!vs_sys_online_cpus(&online, error) ||
	    !vs_sys_memory_nodes(&nodes, error))
		return FALSE;
	sd_target(cpus, &online, &p->all_cpus, &tc);
	sd_target(mems, &nodes, &p->all_mems, &tm);
	same_c = p->cached && vs_cpuset_equal(cpus, &p->cpus);
	same_m = p->cached && vs_cpuset_equal(mems, &p->mems);
	tell_c = !p->told || !vs_cpuset_equal(&tc, &p->told_cpus);
	tell_m = !p->told || !vs_cpuset_equal(&tm, &p->told_mems);
	p->cached = FALSE; /* unknown until this change is complete */
	if (p->cpuset1) {
		/* v1: systemd applies nothing there; its properties record
		 * the policy. The cpuset hierarchy is the cgroupfs
		 * backend's. Kthreads it refuses (kthreadd) are pinned. */
		if (!p->cpuset1->ops->set(p->cpuset1, cpus, mems, error) ||
		    !sd_pin_root(p, cpus, error))
			return FALSE;
	} else if (!sd_direct_ok(p, units)) {
		if (!sd_set_sync(p, units, &tc, &tm, error) ||
		    !sd_pin_root(p, cpus, error))
			return FALSE;
		tell_c = tell_m = FALSE;
	} else if ((!same_c &&
		    !sd_write_units(p, units, "cpuset.cpus", &tc, error)) ||
		   (!same_m &&
		    !sd_write_units(p, units, "cpuset.mems", &tm, error)) ||
		   !sd_pin_root(p, cpus, error)) {
		return FALSE;
	}
	p->cpus = *cpus;
	p->mems = *mems;
	p->cached = TRUE;
	if ((tell_c || tell_m) && !sd_tell(p, units, tell_c ? &tc : NULL,
					   tell_m ? &tm : NULL, &local)) {
		/* the kernel has it; systemd is asked again next time */
		g_warning("%s", local->message);
		p->told = FALSE;
		return TRUE;
	}
	p->told_cpus = tc;
	p->told_mems = tm;
	p->told = TRUE;
	return TRUE;
}

/* ---- start-up ----------------------------------------------------------- */

static void sd_read_possible(const char *f, VsCpuSet *set,
			     gboolean (*fallback)(VsCpuSet *, GError **))
{
	g_autofree char *v = vs_read_file(f, NULL);

	if (!v || !vs_cpuset_parse(v, set, NULL))
		fallback(set, NULL);
}

/* v2: cpuset enabled on the top-level units before the first change
 * (systemd enables it down the tree on first use: 1.4-3.3 s under TCG),
 * with every possible CPU and node (no restriction), so every take-away
 * is a write of their cpuset files. Skipped when they have it already
 * (an agent restart: prepared, or confined as the journal says). */
static void sd_prepare(SdPriv *p)
{
	g_autoptr(GPtrArray) units = sd_units(p);
	g_autoptr(GError) error = NULL;
	VsCpuSet cur;
	gboolean empty;

	if (!sd_get_set(p, "AllowedCPUs", &cur, &empty, &error) ||
	    (!empty && sd_direct_ok(p, units)) ||
	    !sd_set_sync(p, units, &p->all_cpus, &p->all_mems, &error)) {
		if (error)
			g_warning("cannot prepare the units' cpusets (the "
				  "first change goes through systemd): %s",
				  error->message);
		return;
	}
	p->told_cpus = p->all_cpus;
	p->told_mems = p->all_mems;
	p->told = TRUE;
}

static gint sd_count_outside(VsCgroup *cg, GError **error)
{
	SdPriv *p = cg->priv;
	g_autoptr(GArray) pids = NULL;

	if (p->cpuset1)
		return p->cpuset1->ops->count_outside(p->cpuset1, error);
	pids = vs_cgroup_read_procs(p->hierarchy, error);
	return pids ? (gint)pids->len : -1;
}

static void sd_free(VsCgroup *cg)
{
	SdPriv *p = cg->priv;

	if (!p)
		return;
	/* Their callbacks hold p: let systemd answer (or the calls time
	 * out) before it goes. */
	while (p->pending)
		g_main_context_iteration(NULL, TRUE);
	g_clear_object(&p->bus);
	vs_cgroup_free(p->cpuset1);
	g_free(p->hierarchy);
	g_free(p->slice_path);
	if (p->known)
		g_ptr_array_unref(p->known);
	vs_task_set_free(p->pinned);
	g_free(p);
}

static const VsCgroupOps sd_ops = {
	.name = "systemd",
	.sweep = sd_sweep,
	.get = sd_get,
	.get_effective = sd_get_effective,
	.set = sd_set,
	.count_outside = sd_count_outside,
	.foreign = sd_foreign,
	.free = sd_free,
};

/* The hierarchy systemd tracks units in: unified (v2), the cgroup2 mount
 * of a hybrid set-up, or name=systemd (legacy). */
static char *sd_find_hierarchy(GError **error)
{
	static const char *const dirs[] = { "/sys/fs/cgroup",
					    "/sys/fs/cgroup/unified",
					    "/sys/fs/cgroup/systemd" };

	for (gsize i = 0; i < G_N_ELEMENTS(dirs); i++) {
		int v = vs_cgroup_detect(dirs[i], NULL);

		if (v == 2 || (v == 1 && i == 2))
			return g_strdup(dirs[i]);
	}
	g_set_error_literal(error, VS_ERROR, VS_ERROR_GENERIC,
			    "systemd's cgroup hierarchy is not mounted");
	return NULL;
}

gboolean vs_cgroup_systemd_booted(void)
{
	struct stat st;

	return lstat("/run/systemd/system", &st) == 0 && S_ISDIR(st.st_mode);
}

VsCgroup *vs_cgroup_systemd_open(GError **error)
{
	g_autoptr(VsCgroup) cg = g_new0(VsCgroup, 1);
	g_autofree char *cpuset = NULL;
	SdPriv *p = g_new0(SdPriv, 1);

	cg->ops = &sd_ops;
	cg->priv = p;
	p->known = g_ptr_array_new_with_free_func(g_free);
	p->pinned = vs_task_set_new();
	if (!vs_cgroup_systemd_booted()) {
		g_set_error_literal(error, VS_ERROR, VS_ERROR_GENERIC,
				    "PID 1 is not systemd");
		return NULL;
	}
	p->hierarchy = sd_find_hierarchy(error);
	if (!p->hierarchy || !(p->bus = sd_connect(error)) ||
	    !sd_load_known(p, error))
		return NULL;
	cpuset = vs_cgroup_find_cpuset_root(&cg->version, error);
	if (!cpuset)
		return NULL;
	if (cg->version == 1) {
		p->cpuset1 = vs_cgroup_fs_open(cpuset, error);
		if (!p->cpuset1)
			return NULL;
	}
	sd_read_possible("/sys/devices/system/cpu/possible", &p->all_cpus,
			 vs_sys_online_cpus);
	sd_read_possible("/sys/devices/system/node/possible", &p->all_mems,
			 vs_sys_memory_nodes);
	if (!p->cpuset1)
		sd_prepare(p);
	cg->scope = g_strdup(p->hierarchy);
	cg->path = g_strdup(p->cpuset1 ? p->cpuset1->path : p->hierarchy);
	cg->top = g_strdup(p->cpuset1 ? p->cpuset1->top : p->hierarchy);
	g_message("systemd backend, cgroup v%d, units tracked in %s",
		  cg->version, p->hierarchy);
	return g_steal_pointer(&cg);
}
