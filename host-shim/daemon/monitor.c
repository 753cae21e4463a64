// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Paper 001's Monitor and, for libvirt VMs, its Transferer (docs/migration.md).
 *
 * At every metrics tick (worker), each VM's profile: sampled from the
 * hardware counters of its vCPU threads where the host has a usable PMU,
 * else the declared source CONF/profiles/NAME.json (this machine: no PMU;
 * said once at start, never a silent zero). A VM with neither has no
 * profile. The profile goes into the status document (`vsharectl status`),
 * the metrics and, for libvirt VMs, the domain's <metadata> (only when it
 * changed), so a live migration carries it to the destination's hook.
 */
#include "vshared.h"
#include "vshare-profile.h"

#include <string.h>

#define SAMPLE_MS 100

typedef struct {
	VsProfile p;
	char *published; /* metadata XML last given to libvirt */
	char *failed;	 /* the last refusal said (said once) */
} Known;

static void known_free(gpointer data)
{
	Known *k = data;

	g_free(k->published);
	g_free(k->failed);
	g_free(k);
}

void daemon_monitor_init(Daemon *d)
{
	g_autoptr(GError) error = NULL;

	d->profiles_bad =
		g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	d->profiles = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					    known_free);
	d->pmu = vs_pmu_probe(&error);
	if (!d->pmu)
		g_message("monitor: %s", error->message);
}

void daemon_monitor_free(Daemon *d)
{
	g_clear_pointer(&d->profiles, g_hash_table_destroy);
	g_clear_pointer(&d->profiles_bad, g_hash_table_destroy);
}

static gboolean sample(VsVm *vm, VsProfile *out, GError **error)
{
	g_autofree int *tids = g_new0(int, vm->vcpus->len + 1);

	for (guint i = 0; i < vm->vcpus->len; i++)
		tids[i] = (int)g_array_index(vm->vcpus, VsVcpu, i).tid;
	return vs_profile_sample(tids, vm->vcpus->len, SAMPLE_MS, out, error);
}

/* The VM's profile now: FALSE when it has none (or a bad declared file,
 * said once per change of the message). */
static gboolean measure(Daemon *d, VsVm *vm, VsProfile *out)
{
	g_autoptr(GError) error = NULL;
	const char *name = vm->conf->name;

	if (d->pmu && sample(vm, out, &error))
		return TRUE;
	if (error)
		g_debug("monitor: %s: %s", name, error->message);
	g_clear_error(&error);
	if (vs_profile_load_declared(d->cfg.conf_dir, name, out, &error)) {
		g_hash_table_remove(d->profiles_bad, name);
		return TRUE;
	}
	if (vs_error_is(error, VS_PROFILE_ABSENT)) {
		g_hash_table_remove(d->profiles_bad, name);
		return FALSE;
	}
	if (g_strcmp0(g_hash_table_lookup(d->profiles_bad, name),
		      error->message)) {
		g_warning("monitor: %s: %s (said once)", name, error->message);
		g_hash_table_replace(d->profiles_bad, g_strdup(name),
				     g_strdup(error->message));
	}
	return FALSE;
}

static void publish(VsVm *vm, Known *k)
{
	g_autofree char *xml = vs_profile_to_metadata_xml(&k->p);
	g_autoptr(GError) error = NULL;

	if (!vm->drv->set_metadata || !g_strcmp0(xml, k->published))
		return;
	if (!vs_vm_set_metadata(vm, VS_PROFILE_KEY, VS_PROFILE_NS, xml,
				&error)) {
		if (g_strcmp0(error->message, k->failed))
			g_warning("monitor: %s: profile not kept in the "
				  "domain: %s (retried every tick)",
				  vm->conf->name, error->message);
		g_free(k->failed);
		k->failed = g_strdup(error->message);
		return;
	}
	g_clear_pointer(&k->failed, g_free);
	g_free(k->published);
	k->published = g_steal_pointer(&xml);
}

/* Per VM of @status: measure, publish, and add "profile" to its entry. */
/* Profiles of VMs no longer in @vms are forgotten. */
static void forget_gone(Daemon *d, JsonArray *vms)
{
	g_autoptr(GHashTable) now = g_hash_table_new(g_str_hash, g_str_equal);
	GHashTableIter it;
	gpointer k;

	for (guint i = 0; vms && i < json_array_get_length(vms); i++)
		g_hash_table_add(
			now,
			(gpointer)json_object_get_string_member(
				json_array_get_object_element(vms, i), "name"));
	g_hash_table_iter_init(&it, d->profiles);
	while (g_hash_table_iter_next(&it, &k, NULL))
		if (!g_hash_table_contains(now, k))
			g_hash_table_iter_remove(&it);
}

void daemon_monitor_tick(Daemon *d, JsonNode *status)
{
	JsonArray *vms = json_object_get_array_member(
		json_node_get_object(status), "vms");

	forget_gone(d, vms);
	for (guint i = 0; vms && i < json_array_get_length(vms); i++) {
		JsonObject *o = json_array_get_object_element(vms, i);
		const char *name = json_object_get_string_member(o, "name");
		VsVm *vm = vs_session_vm(&d->session, name, NULL);
		VsProfile p;
		Known *k;

		if (!vm || !measure(d, vm, &p)) {
			g_hash_table_remove(d->profiles, name);
			continue;
		}
		k = g_hash_table_lookup(d->profiles, name);
		if (!k) {
			k = g_new0(Known, 1);
			g_hash_table_insert(d->profiles, g_strdup(name), k);
		}
		k->p = p;
		publish(vm, k);
		json_object_set_member(o, "profile", vs_profile_to_json(&p));
	}
}

gboolean daemon_monitor_profile(Daemon *d, const char *vm, VsProfile *out)
{
	Known *k = d->profiles ? g_hash_table_lookup(d->profiles, vm) : NULL;

	if (k)
		*out = k->p;
	return k != NULL;
}
