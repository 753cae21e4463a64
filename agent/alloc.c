// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * One allocation change = validate, sweep, then steps that each know how to
 * undo themselves: cgroup (cpus+mems), workqueue mask, IRQ affinities,
 * journal. Any failure undoes the steps already done, newest first.
 *
 * Workqueue mask, IRQ affinities and the cpuset files of foreign top-level
 * cgroups (cgroup.h: a container manager's, whose tasks must not move) are
 * "knobs": each has the value it had when the guest last held everything
 * (its original), and gets original ∩ allocation (or the allocation where
 * that is empty). Giving everything back therefore restores the originals
 * exactly. Foreign cgroups are looked for at every change: one made while
 * the guest is confined is confined at the next request.
 */
#include "alloc.h"

#include "sysinfo.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define STATE_FILE "allocation.json"

typedef enum {
	KNOB_WQ,      /* the unbound workqueue cpumask (bitmap format) */
	KNOB_IRQ,     /* /proc/irq/N/smp_affinity_list */
	KNOB_CG_CPUS, /* a foreign cgroup's cpuset.cpus ("" = inherit) */
	KNOB_CG_MEMS, /* its cpuset.mems */
} KnobKind;

typedef struct {
	char *path;
	KnobKind kind;
	char *orig; /* value when the guest held everything */
	char *prev; /* value before the change in progress */
} Knob;

/* What one change did, for the reply. */
typedef struct {
	VsSweepStats sweep; /* + tasks of foreign cgroups that refused */
	guint irqs_set, irqs_refused;
	gboolean wq;
	gint64 t[4]; /* end of: prepare, cgroup, knobs, journal */
} Outcome;

struct VsAlloc {
	VsCgroup *cg;
	VsAllocConfig cfg;
	char *state_path;
	GPtrArray *knobs;   /* Knob*, empty while the guest holds everything */
	gboolean restoring; /* start-up: the test hooks are for requests */
};

static void knob_free(gpointer p)
{
	Knob *k = p;

	g_free(k->path);
	g_free(k->orig);
	g_free(k->prev);
	g_free(k);
}

static Knob *knob_new(const char *path, KnobKind kind, const char *orig)
{
	Knob *k = g_new0(Knob, 1);

	k->path = g_strdup(path);
	k->kind = kind;
	k->orig = g_strdup(orig);
	return k;
}

static gboolean knob_is_cgroup(const Knob *k)
{
	return k->kind == KNOB_CG_CPUS || k->kind == KNOB_CG_MEMS;
}

/* Test hooks, after each step of a request: stop (the test then kills the
 * agent in the middle of a change) or fail. */
static gboolean fault(VsAlloc *a, const char *step, GError **error)
{
	if (a->restoring)
		return FALSE;
	if (a->cfg.test_stop && strcmp(a->cfg.test_stop, step) == 0) {
		g_message("test: stopping after step '%s'", step);
		raise(SIGSTOP);
	}
	if (!a->cfg.test_fault || strcmp(a->cfg.test_fault, step) != 0)
		return FALSE;
	g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
		    "injected fault after step '%s'", step);
	return TRUE;
}

/* ---- journal ---------------------------------------------------------- */

static gboolean journal_write(VsAlloc *a, const VsCpuSet *cpus,
			      const VsCpuSet *mems, GError **error)
{
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(JsonGenerator) gen = json_generator_new();
	g_autoptr(JsonNode) root = NULL;
	g_autofree char *c = vs_cpuset_format(cpus);
	g_autofree char *m = vs_cpuset_format(mems);
	g_autofree char *text = NULL;

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "cpus");
	json_builder_add_string_value(b, c);
	json_builder_set_member_name(b, "mems");
	json_builder_add_string_value(b, m);
	json_builder_set_member_name(b, "knobs");
	json_builder_begin_array(b);
	for (guint i = 0; i < a->knobs->len; i++) {
		Knob *k = a->knobs->pdata[i];

		json_builder_begin_object(b);
		json_builder_set_member_name(b, "path");
		json_builder_add_string_value(b, k->path);
		json_builder_set_member_name(b, "mask");
		json_builder_add_boolean_value(b, k->kind == KNOB_WQ);
		json_builder_set_member_name(b, "orig");
		json_builder_add_string_value(b, k->orig);
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
	json_builder_end_object(b);
	root = json_builder_get_root(b);
	json_generator_set_root(gen, root);
	text = json_generator_to_data(gen, NULL);
	/* A temporary file renamed over the old one: a reader (a restarted
	 * agent) sees the old journal or the new one, never half. No fsync:
	 * the journal lives in /run (tmpfs), which a power loss empties
	 * anyway. */
	return g_file_set_contents_full(a->state_path, text, -1,
					G_FILE_SET_CONTENTS_CONSISTENT, 0600,
					error);
}

/* A journal entry is trusted with writes as root: every member must be
 * there with its type, and a knob's path must be one the agent manages. */
static const char *member_string(JsonObject *o, const char *name,
				 GError **error)
{
	JsonNode *n = json_object_get_member(o, name);

	if (n && JSON_NODE_HOLDS_VALUE(n) &&
	    json_node_get_value_type(n) == G_TYPE_STRING)
		return json_node_get_string(n);
	g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
		    "'%s' missing or not a string", name);
	return NULL;
}

static gboolean member_bool(JsonObject *o, const char *name, gboolean *value,
			    GError **error)
{
	JsonNode *n = json_object_get_member(o, name);

	if (n && JSON_NODE_HOLDS_VALUE(n) &&
	    json_node_get_value_type(n) == G_TYPE_BOOLEAN) {
		*value = json_node_get_boolean(n);
		return TRUE;
	}
	g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
		    "'%s' missing or not a boolean", name);
	return FALSE;
}

static gboolean all_digits(const char *s)
{
	return s[0] && strspn(s, "0123456789") == strlen(s);
}

/* Which knob @path is, if it is one the agent manages: the workqueue
 * mask, an IRQ's list, or a cpuset file of a cgroup directly below the
 * backend's top (not ours). */
static gboolean knob_kind(VsAlloc *a, const char *path, KnobKind *kind)
{
	g_autofree char *dir = g_path_get_dirname(path);
	g_autofree char *file = g_path_get_basename(path);
	g_autofree char *name = g_path_get_basename(dir);
	g_autofree char *canon = g_build_filename(a->cg->top, name, file, NULL);
	g_autofree char *irq =
		g_build_filename("/proc/irq", name, "smp_affinity_list", NULL);

	if (strcmp(path, VS_WQ_CPUMASK) == 0)
		*kind = KNOB_WQ;
	else if (all_digits(name) && strcmp(path, irq) == 0)
		*kind = KNOB_IRQ;
	else if (strcmp(path, canon) != 0 || name[0] == '.' ||
		 strcmp(dir, a->cg->path) == 0)
		return FALSE;
	else if (!strcmp(file, "cpuset.cpus") || !strcmp(file, "cpus"))
		*kind = KNOB_CG_CPUS;
	else if (!strcmp(file, "cpuset.mems") || !strcmp(file, "mems"))
		*kind = KNOB_CG_MEMS;
	else
		return FALSE;
	return TRUE;
}

static gboolean knob_orig_ok(KnobKind kind, const char *orig, GError **error)
{
	VsCpuSet set;

	if (kind == KNOB_WQ)
		return vs_cpuset_parse_mask(orig, &set, error);
	if (kind != KNOB_IRQ && !orig[0])
		return TRUE; /* a v2 cgroup that inherits */
	return vs_cpuset_parse(orig, &set, error);
}

static Knob *journal_knob(VsAlloc *a, JsonNode *n, GError **error)
{
	JsonObject *o =
		JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
	const char *path, *orig;
	gboolean mask;
	KnobKind kind;

	if (!o) {
		g_set_error_literal(error, VS_ERROR, VS_ERROR_GENERIC,
				    "a knob is not an object");
		return NULL;
	}
	if (!(path = member_string(o, "path", error)) ||
	    !(orig = member_string(o, "orig", error)) ||
	    !member_bool(o, "mask", &mask, error))
		return NULL;
	if (!knob_kind(a, path, &kind) || mask != (kind == KNOB_WQ)) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "knob path '%s' is not one the agent manages",
			    path);
		return NULL;
	}
	if (!knob_orig_ok(kind, orig, error))
		return NULL;
	return knob_new(path, kind, orig);
}

/* The journal's text -> allocation and knobs (into @knobs). */
static gboolean journal_parse(VsAlloc *a, const char *text, VsCpuSet *cpus,
			      VsCpuSet *mems, GPtrArray *knobs, GError **error)
{
	g_autoptr(JsonParser) p = json_parser_new();
	JsonNode *root, *kn;
	JsonObject *o;
	JsonArray *arr;
	const char *c, *m;

	if (!json_parser_load_from_data(p, text, -1, error))
		return FALSE;
	root = json_parser_get_root(p);
	o = root && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root)
						 : NULL;
	kn = o ? json_object_get_member(o, "knobs") : NULL;
	if (!o || !kn || !JSON_NODE_HOLDS_ARRAY(kn)) {
		g_set_error_literal(error, VS_ERROR, VS_ERROR_GENERIC,
				    "not an object with a 'knobs' array");
		return FALSE;
	}
	if (!(c = member_string(o, "cpus", error)) ||
	    !(m = member_string(o, "mems", error)) ||
	    !vs_cpuset_parse(c, cpus, error) ||
	    !vs_cpuset_parse(m, mems, error))
		return FALSE;
	arr = json_node_get_array(kn);
	for (guint i = 0; i < json_array_get_length(arr); i++) {
		Knob *k =
			journal_knob(a, json_array_get_element(arr, i), error);

		if (!k)
			return FALSE;
		g_ptr_array_add(knobs, k);
	}
	return TRUE;
}

static gboolean journal_load(VsAlloc *a, VsCpuSet *cpus, VsCpuSet *mems,
			     gboolean *found, GError **error)
{
	g_autoptr(GPtrArray) knobs = g_ptr_array_new_with_free_func(knob_free);
	g_autofree char *text = NULL;
	g_autoptr(GError) local = NULL;

	*found = g_file_test(a->state_path, G_FILE_TEST_EXISTS);
	if (!*found)
		return TRUE;
	if (!g_file_get_contents(a->state_path, &text, NULL, &local) ||
	    !journal_parse(a, text, cpus, mems, knobs, &local)) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "malformed journal: %s", local->message);
		return FALSE;
	}
	g_ptr_array_extend_and_steal(a->knobs, g_steal_pointer(&knobs));
	return TRUE;
}

/* A journal that cannot be trusted must not keep the agent (and with it
 * every later give-back) from starting: it goes aside, for a human. */
static void journal_set_aside(VsAlloc *a, const char *why)
{
	g_autoptr(GDateTime) now = g_date_time_new_now_utc();
	g_autofree char *stamp = g_date_time_format(now, "%Y%m%dT%H%M%S.%f");
	g_autofree char *bad =
		g_strdup_printf("%s.bad.%s", a->state_path, stamp);
	const char *where = bad;

	if (rename(a->state_path, bad) < 0)
		where = unlink(a->state_path) == 0 ? "nowhere (removed)"
						   : "nowhere (left in place)";
	g_warning("%s: %s; moved to %s; starting with the full set",
		  a->state_path, why, where);
}

/* ---- knobs: workqueue mask, IRQ affinities, foreign cgroups ------------- */

static void knobs_capture_irqs(VsAlloc *a)
{
	g_autoptr(GArray) irqs = vs_sys_irqs();

	for (guint i = 0; i < irqs->len; i++) {
		g_autofree char *f =
			g_strdup_printf("/proc/irq/%d/smp_affinity_list",
					g_array_index(irqs, int, i));
		g_autofree char *v = vs_read_file(f, NULL);

		if (v)
			g_ptr_array_add(a->knobs, knob_new(f, KNOB_IRQ, v));
	}
}

/* Forget cgroups that went away; add the foreign cgroups not known yet.
 * An unreadable file (v2: cpuset not enabled for it yet) is "": the
 * cgroup inherits everything. */
static gboolean knobs_capture_foreign(VsAlloc *a)
{
	g_autoptr(GPtrArray) fs = a->cg->ops->foreign(a->cg);
	g_autoptr(GHashTable) known = g_hash_table_new(g_str_hash, g_str_equal);
	guint n = a->knobs->len;
	gboolean changed = FALSE;

	for (guint i = a->knobs->len; i-- > 0;) {
		Knob *k = a->knobs->pdata[i];
		g_autofree char *dir = g_path_get_dirname(k->path);

		if (knob_is_cgroup(k) && !g_file_test(dir, G_FILE_TEST_IS_DIR))
			g_ptr_array_remove_index(a->knobs, i);
		else
			g_hash_table_add(known, k->path);
	}
	changed = a->knobs->len != n;
	for (guint i = 0; i < fs->len; i++) {
		VsForeign *f = fs->pdata[i];
		g_autofree char *c = NULL, *m = NULL;

		if (g_hash_table_contains(known, f->cpus))
			continue;
		c = vs_read_file(f->cpus, NULL);
		m = vs_read_file(f->mems, NULL);
		g_ptr_array_add(a->knobs,
				knob_new(f->cpus, KNOB_CG_CPUS, c ? c : ""));
		g_ptr_array_add(a->knobs,
				knob_new(f->mems, KNOB_CG_MEMS, m ? m : ""));
		changed = TRUE;
	}
	return changed;
}

/* Record the originals of the knobs not known yet (and forget cgroups
 * that are gone); TRUE if the list changed. */
static gboolean knobs_capture(VsAlloc *a)
{
	guint before = a->knobs->len;

	if (!before && a->cfg.workqueue) {
		g_autofree char *v = vs_read_file(VS_WQ_CPUMASK, NULL);

		if (v)
			g_ptr_array_add(a->knobs,
					knob_new(VS_WQ_CPUMASK, KNOB_WQ, v));
	}
	if (!before && a->cfg.irqs)
		knobs_capture_irqs(a);
	return knobs_capture_foreign(a) || a->knobs->len != before;
}

/* Read a CPU list file; empty when absent (e.g. nohz_full without
 * CONFIG_NO_HZ_FULL) or empty. */
static void read_list(const char *path, VsCpuSet *set)
{
	g_autofree char *v = vs_read_file(path, NULL);

	if (!v || !v[0] || !vs_cpuset_parse(v, set, NULL))
		vs_cpuset_clear(set);
}

/* The unbound workqueue mask at boot: the housekeeping CPUs, i.e. online
 * minus isolcpus and nohz_full. */
static char *wq_default(const VsCpuSet *online)
{
	VsCpuSet t, iso, nohz;

	read_list("/sys/devices/system/cpu/isolated", &iso);
	read_list("/sys/devices/system/cpu/nohz_full", &nohz);
	vs_cpuset_clear(&t);
	for (guint i = 0; i < VS_MAX_CPUS; i++)
		if (vs_cpuset_has(online, i) && !vs_cpuset_has(&iso, i) &&
		    !vs_cpuset_has(&nohz, i))
			vs_cpuset_add(&t, i);
	return vs_cpuset_format_mask(vs_cpuset_count(&t) ? &t : online);
}

/* An IRQ's affinity at registration: default_smp_affinity. */
static char *irq_default(const VsCpuSet *online)
{
	g_autofree char *v =
		vs_read_file("/proc/irq/default_smp_affinity", NULL);
	VsCpuSet def, t;

	if (!v || !vs_cpuset_parse_mask(v, &def, NULL))
		def = *online;
	vs_cpuset_and(&t, &def, online);
	return vs_cpuset_format(vs_cpuset_count(&t) ? &t : online);
}

/* A foreign cgroup's value before anyone set it: v2 inherits (""), a v1
 * child starts with a copy of its parent's (the top's). */
static char *cgroup_default(VsAlloc *a, const Knob *k)
{
	g_autofree char *file = g_path_get_basename(k->path);
	g_autofree char *parent = g_build_filename(a->cg->top, file, NULL);
	char *v = a->cg->version == 1 ? vs_read_file(parent, NULL) : NULL;

	return v ? v : g_strdup("");
}

/* The originals went with the journal: take the kernel's defaults. */
static void knobs_defaults(VsAlloc *a, const VsCpuSet *online)
{
	g_autofree char *wq = wq_default(online);
	g_autofree char *irq = irq_default(online);

	knobs_capture(a); /* the paths */
	for (guint i = 0; i < a->knobs->len; i++) {
		Knob *k = a->knobs->pdata[i];

		g_free(k->orig);
		k->orig = knob_is_cgroup(k)    ? cgroup_default(a, k)
			  : k->kind == KNOB_WQ ? g_strdup(wq)
					       : g_strdup(irq);
	}
}

/* original ∩ allocation, or the allocation where that is empty; a
 * cgroup given everything back gets its original exactly ("" included). */
static char *knob_target(const Knob *k, const VsCpuSet *cpus,
			 const VsCpuSet *mems, gboolean full)
{
	const VsCpuSet *want = k->kind == KNOB_CG_MEMS ? mems : cpus;
	VsCpuSet orig, t;
	gboolean ok;

	if (full && knob_is_cgroup(k))
		return g_strdup(k->orig);
	ok = k->kind == KNOB_WQ ? vs_cpuset_parse_mask(k->orig, &orig, NULL)
				: vs_cpuset_parse(k->orig, &orig, NULL);
	if (ok)
		vs_cpuset_and(&t, &orig, want);
	if (!ok || vs_cpuset_count(&t) == 0)
		t = *want;
	return k->kind == KNOB_WQ ? vs_cpuset_format_mask(&t)
				  : vs_cpuset_format(&t);
}

/* A v2 cgroup with tasks cannot go back to an empty ("inherit") set once
 * it had one (ENOSPC, validate_change()): it gets every possible CPU or
 * node instead, which restricts nothing (its effective set is then its
 * parent's, as with inherit). The cpuset controller stays enabled below
 * the root under systemd (cgroup-systemd.c), so the file does not vanish
 * as it did before. */
static gboolean knob_write_unrestricted(const Knob *k, const char *target,
					GError **error)
{
	g_autofree char *all = NULL;

	if (!knob_is_cgroup(k) || target[0] || errno != ENOSPC)
		return FALSE;
	all = vs_read_file(k->kind == KNOB_CG_CPUS
				   ? "/sys/devices/system/cpu/possible"
				   : "/sys/devices/system/node/possible",
			   NULL);
	if (!all)
		return FALSE;
	g_clear_error(error);
	return vs_write_file(k->path, all, error);
}

/* "" (a cgroup's "inherit") goes as a newline: a write of no bytes may
 * not reach the kernel at all. */
static gboolean knob_write(const Knob *k, const char *value, GError **error)
{
	return vs_write_file(k->path, value[0] ? value : "\n", error) ||
	       knob_write_unrestricted(k, value, error);
}

static void knobs_undo(VsAlloc *a)
{
	for (guint i = 0; i < a->knobs->len; i++) {
		Knob *k = a->knobs->pdata[i];
		g_autoptr(GError) error = NULL;

		if (k->prev && !knob_write(k, k->prev, &error))
			g_warning("rollback: %s", error->message);
		g_clear_pointer(&k->prev, g_free);
	}
}

/* A knob that refused: an IRQ (managed, per-CPU) is counted; a foreign
 * cgroup's tasks stay outside (v1: a child holds CPUs outside the set),
 * counted in unmovable-other, once per cgroup. A cgroup that is gone, or
 * whose cpuset files went with the controller while everything is given
 * back, is unrestricted: nothing to do. */
static void knob_refused(const Knob *k, int err, gboolean full,
			 GHashTable *dirs, Outcome *out, const GError *why)
{
	g_autofree char *dir = g_path_get_dirname(k->path);
	guint n;

	if (k->kind == KNOB_IRQ) {
		g_debug("%s", why->message);
		out->irqs_refused++;
		return;
	}
	if (err == ENOENT && (full || !g_file_test(dir, G_FILE_TEST_IS_DIR)))
		return;
	if (g_hash_table_contains(dirs, dir))
		return;
	n = vs_cgroup_count_tasks(dir);
	out->sweep.unmovable_other += n;
	g_message("%s (%u tasks stay outside)", why->message, n);
	g_hash_table_add(dirs, g_steal_pointer(&dir));
}

static void knob_took(const Knob *k, Outcome *out)
{
	if (k->kind == KNOB_WQ)
		out->wq = TRUE;
	else if (k->kind == KNOB_IRQ)
		out->irqs_set++;
}

/* The workqueue mask must take (it is part of the guarantee); IRQs and
 * foreign cgroups that refuse are counted (knob_refused). */
static gboolean knobs_apply(VsAlloc *a, const VsCpuSet *cpus,
			    const VsCpuSet *mems, gboolean full, Outcome *out,
			    GError **error)
{
	g_autoptr(GHashTable) dirs =
		g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

	for (guint i = 0; i < a->knobs->len; i++) {
		Knob *k = a->knobs->pdata[i];
		g_autofree char *target = knob_target(k, cpus, mems, full);
		g_autoptr(GError) local = NULL;
		int err;

		g_clear_pointer(&k->prev, g_free);
		k->prev = vs_read_file(k->path, NULL);
		if (k->prev && strcmp(k->prev, target) == 0) {
			g_clear_pointer(&k->prev, g_free);
			knob_took(k, out);
			continue;
		}
		if (knob_write(k, target, &local)) {
			knob_took(k, out);
			continue;
		}
		err = errno;
		g_clear_pointer(&k->prev, g_free);
		if (k->kind == KNOB_WQ) {
			g_propagate_error(error, g_steal_pointer(&local));
			return FALSE;
		}
		knob_refused(k, err, full, dirs, out, local);
	}
	return TRUE;
}

/* ---- the transaction -------------------------------------------------- */

static gboolean validate(const char *cpus_s, const char *mems_s, VsCpuSet *cpus,
			 VsCpuSet *mems, GError **error)
{
	VsCpuSet online, memnodes;
	g_autofree char *have = NULL;
	int bad;

	if (!vs_sys_online_cpus(&online, error) ||
	    !vs_sys_memory_nodes(&memnodes, error) ||
	    !vs_cpuset_parse(cpus_s, cpus, error) ||
	    (mems_s && !vs_cpuset_parse(mems_s, mems, error)))
		return FALSE;
	bad = vs_cpuset_first_outside(cpus, &online);
	if (bad >= 0) {
		have = vs_cpuset_format(&online);
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "CPU %d is not online (online: %s)", bad, have);
		return FALSE;
	}
	bad = vs_cpuset_first_outside(mems, &memnodes);
	if (bad >= 0) {
		have = vs_cpuset_format(&memnodes);
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "node %d has no memory (nodes with memory: %s)",
			    bad, have);
		return FALSE;
	}
	return TRUE;
}

static gboolean is_full(const VsCpuSet *cpus, const VsCpuSet *mems)
{
	VsCpuSet online, memnodes;

	return vs_sys_online_cpus(&online, NULL) &&
	       vs_sys_memory_nodes(&memnodes, NULL) &&
	       vs_cpuset_equal(cpus, &online) &&
	       vs_cpuset_equal(mems, &memnodes);
}

static void cgroup_undo(VsAlloc *a, const VsCpuSet *cpus, const VsCpuSet *mems)
{
	g_autoptr(GError) error = NULL;

	if (!a->cg->ops->set(a->cg, cpus, mems, &error))
		g_warning("rollback of the cgroup: %s", error->message);
}

static JsonObject *report(const VsCpuSet *cpus, const VsCpuSet *mems, gint64 t0,
			  const Outcome *out)
{
	static const char *const steps[] = { "prepare", "cgroup", "knobs",
					     "journal" };
	JsonObject *o = json_object_new();
	JsonObject *st = json_object_new();
	g_autofree char *c = vs_cpuset_format(cpus);
	g_autofree char *m = vs_cpuset_format(mems);

	for (gsize i = 0; i < G_N_ELEMENTS(steps); i++)
		json_object_set_int_member(
			st, steps[i], out->t[i] - (i ? out->t[i - 1] : t0));
	json_object_set_string_member(o, "cpus", c);
	json_object_set_string_member(o, "mems", m);
	json_object_set_int_member(o, "elapsed-us", out->t[3] - t0);
	json_object_set_object_member(o, "steps-us", st);
	json_object_set_int_member(o, "moved-tasks", out->sweep.moved);
	json_object_set_int_member(o, "unmovable-kthreads",
				   out->sweep.unmovable_kthreads);
	json_object_set_int_member(o, "unmovable-other",
				   out->sweep.unmovable_other);
	json_object_set_int_member(o, "irqs-set", out->irqs_set);
	json_object_set_int_member(o, "irqs-refused", out->irqs_refused);
	json_object_set_boolean_member(o, "workqueue", out->wq);
	return o;
}

static JsonObject *alloc_apply(VsAlloc *a, VsCpuSet *cpus, VsCpuSet *mems,
			       GError **error)
{
	gint64 t0 = g_get_monotonic_time();
	Outcome out = { 0 };
	VsCpuSet pc, pm;
	gboolean full = is_full(cpus, mems);

	if (!a->cg->ops->sweep(a->cg, &out.sweep, error) ||
	    !a->cg->ops->get(a->cg, &pc, &pm, error))
		return NULL;
	/* Intent: the originals are on disk before anything changes (and
	 * before the first change, the allocation it starts from). */
	if (!full) {
		gboolean first = !a->knobs->len;

		if ((knobs_capture(a) || first) &&
		    !journal_write(a, &pc, &pm, error)) {
			if (first)
				g_ptr_array_set_size(a->knobs, 0);
			return NULL;
		}
	}
	out.t[0] = g_get_monotonic_time();
	if (!a->cg->ops->set(a->cg, cpus, mems, error) ||
	    fault(a, "cgroup", error))
		goto undo_cgroup;
	out.t[1] = g_get_monotonic_time();
	if (!knobs_apply(a, cpus, mems, full, &out, error) ||
	    fault(a, "knobs", error))
		goto undo_knobs;
	out.t[2] = g_get_monotonic_time();
	if (full) {
		/* The knobs are forgotten only once the journal is gone: a
		 * failure here still has them to undo. */
		if (unlink(a->state_path) < 0 && errno != ENOENT) {
			g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
				    "cannot remove %s: %s", a->state_path,
				    g_strerror(errno));
			goto undo_knobs;
		}
		g_ptr_array_set_size(a->knobs, 0);
	} else if (!journal_write(a, cpus, mems, error) ||
		   fault(a, "journal", error)) {
		goto undo_knobs;
	}
	out.t[3] = g_get_monotonic_time();
	return report(cpus, mems, t0, &out);

undo_knobs:
	knobs_undo(a);
undo_cgroup:
	cgroup_undo(a, &pc, &pm);
	if (!is_full(&pc, &pm))
		journal_write(a, &pc, &pm, NULL);
	return NULL;
}

JsonObject *vs_alloc_set(VsAlloc *a, const char *cpus_s, const char *mems_s,
			 GError **error)
{
	VsCpuSet cpus, mems, cur_c;

	if (!mems_s && !a->cg->ops->get(a->cg, &cur_c, &mems, error))
		return NULL;
	if (!validate(cpus_s, mems_s, &cpus, &mems, error))
		return NULL;
	return alloc_apply(a, &cpus, &mems, error);
}

JsonObject *vs_alloc_get(VsAlloc *a, GError **error)
{
	VsCpuSet c, m, ec, em;
	g_autofree char *cs = NULL, *ms = NULL, *ecs = NULL, *ems = NULL;
	JsonObject *o;
	gint outside;

	if (!a->cg->ops->get(a->cg, &c, &m, error) ||
	    !a->cg->ops->get_effective(a->cg, &ec, &em, error))
		return NULL;
	outside = a->cg->ops->count_outside(a->cg, error);
	if (outside < 0)
		return NULL;
	cs = vs_cpuset_format(&c);
	ms = vs_cpuset_format(&m);
	ecs = vs_cpuset_format(&ec);
	ems = vs_cpuset_format(&em);
	o = json_object_new();
	json_object_set_string_member(o, "cpus", cs);
	json_object_set_string_member(o, "mems", ms);
	json_object_set_string_member(o, "effective-cpus", ecs);
	json_object_set_string_member(o, "effective-mems", ems);
	json_object_set_boolean_member(o, "full", is_full(&c, &m));
	json_object_set_int_member(o, "tasks-outside", outside);
	return o;
}

/* Start-up: re-apply the journalled allocation. A malformed journal is set
 * aside and everything given back (the kernel's defaults for the knobs):
 * the guest is never left confined with no record of it. */
static void alloc_restore(VsAlloc *a)
{
	g_autoptr(JsonObject) rep = NULL;
	g_autoptr(GError) local = NULL;
	VsCpuSet cpus, mems;
	gboolean found, bad = FALSE;

	if (!journal_load(a, &cpus, &mems, &found, &local)) {
		journal_set_aside(a, local->message);
		g_clear_error(&local);
		bad = TRUE;
		if (!vs_sys_online_cpus(&cpus, &local) ||
		    !vs_sys_memory_nodes(&mems, &local)) {
			g_warning("cannot give everything back: %s",
				  local->message);
			return;
		}
		knobs_defaults(a, &cpus);
	} else if (!found) {
		return;
	}
	a->restoring = TRUE;
	rep = alloc_apply(a, &cpus, &mems, &local);
	a->restoring = FALSE;
	if (!rep) {
		/* e.g. a CPU of the journal went offline meanwhile: keep the
		 * agent up, report the allocation as the kernel has it. */
		g_warning("cannot apply %s: %s",
			  bad ? "the full set" : "the journalled allocation",
			  local->message);
	} else if (!bad) {
		g_message("re-applied the journalled allocation");
	}
}

VsAlloc *vs_alloc_new(VsCgroup *cg, const VsAllocConfig *cfg, GError **error)
{
	g_autoptr(VsAlloc) a = g_new0(VsAlloc, 1);

	a->cg = cg;
	a->cfg = *cfg;
	a->knobs = g_ptr_array_new_with_free_func(knob_free);
	if (g_mkdir_with_parents(cfg->state_dir, 0700) < 0) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "cannot create %s: %s", cfg->state_dir,
			    g_strerror(errno));
		return NULL;
	}
	a->state_path = g_build_filename(cfg->state_dir, STATE_FILE, NULL);
	alloc_restore(a);
	return g_steal_pointer(&a);
}

void vs_alloc_free(VsAlloc *a)
{
	if (!a)
		return;
	if (a->knobs)
		g_ptr_array_unref(a->knobs);
	g_free(a->state_path);
	g_free(a);
}
