// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Coop is trust in the guest: its agent says it moved every task off the
 * vCPUs it lent. The guard checks what the host sees: at each metrics
 * tick, a coop VM's vCPU threads on pCPUs it does not own must be nearly
 * idle. Two ticks in a row above VS_GUARD_BUSY and the VM is switched to
 * enforce (its other vCPUs throttled from the host), through the same
 * journalled change `vsharectl cpus --mode enforce` makes.
 */
#include "vshared.h"

#include <string.h>

#define VS_GUARD_BUSY	 20.0 /* percent of a pCPU */
#define VS_GUARD_STRIKES 2

/* Does @vm (a status document entry) use vCPUs it lent? */
static gboolean uses_lent(JsonObject *vm, const char *name)
{
	JsonArray *a = json_object_get_array_member(vm, "vcpus");

	for (guint i = 0; a && i < json_array_get_length(a); i++) {
		JsonObject *v = json_array_get_object_element(a, i);
		JsonNode *o = json_object_get_member(v, "pcpu-owner");
		const char *owner =
			o && json_node_get_value_type(o) == G_TYPE_STRING
				? json_node_get_string(o)
				: NULL;

		if (g_strcmp0(owner, name) &&
		    json_object_get_double_member(v, "host-cpu-percent") >
			    VS_GUARD_BUSY)
			return TRUE;
	}
	return FALSE;
}

static void enforce(Daemon *d, VsLedgerVm *lv)
{
	VsChangeReq r = { .kind = VS_REQ_CPUS,
			  .vm = lv->name,
			  .cpus = lv->pcpus,
			  .node = -1,
			  .mode = VS_MODE_ENFORCE };
	g_autofree char *name = g_strdup(lv->name);
	g_autoptr(GError) e = NULL;

	daemon_stat_add(d, "coop_violations", 1);
	if (vs_session_change(&d->session, &r, &e))
		g_message("%s: kept using vCPUs it lent in coop mode for %d "
			  "ticks: now enforced from the host",
			  name, VS_GUARD_STRIKES);
	else
		g_warning("%s: uses vCPUs it lent; enforcing failed: %s", name,
			  e->message);
	g_ptr_array_set_size(d->event_nodes, 0);
}

void daemon_guard(Daemon *d, JsonNode *status)
{
	JsonArray *vms = json_object_get_array_member(
		json_node_get_object(status), "vms");

	if (!d->strikes)
		d->strikes = g_hash_table_new_full(g_str_hash, g_str_equal,
						   g_free, NULL);
	for (guint i = 0; i < json_array_get_length(vms); i++) {
		JsonObject *vm = json_array_get_object_element(vms, i);
		const char *name = json_object_get_string_member(vm, "name");
		VsLedgerVm *lv = vs_ledger_find(d->session.ledger, name);
		guint n;

		if (!lv || lv->unmanaged || lv->mode != VS_MODE_COOP ||
		    !json_object_get_boolean_member(vm, "reachable") ||
		    !uses_lent(vm, name)) {
			g_hash_table_remove(d->strikes, name);
			continue;
		}
		n = GPOINTER_TO_UINT(g_hash_table_lookup(d->strikes, name)) + 1;
		g_hash_table_insert(d->strikes, g_strdup(name),
				    GUINT_TO_POINTER(n));
		if (n >= VS_GUARD_STRIKES) {
			g_hash_table_remove(d->strikes, name);
			enforce(d, lv);
		}
	}
}
