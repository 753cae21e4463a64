// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The ownership ledger as a value: which VM owns each pCPU, how much
 * virtio-mem memory of each host node each VM holds, and in which mode the
 * VM follows it. store.c puts it in a file.
 */
#include "vshare-host.h"

#include <string.h>

const char *vs_mode_name(VsMode m)
{
	switch (m) {
	case VS_MODE_COOP:
		return "coop";
	case VS_MODE_ENFORCE:
		return "enforce";
	default:
		return "auto";
	}
}

gboolean vs_mode_parse(const char *s, VsMode *m, GError **error)
{
	for (VsMode i = VS_MODE_COOP; i <= VS_MODE_AUTO; i++)
		if (!g_strcmp0(s, vs_mode_name(i))) {
			*m = i;
			return TRUE;
		}
	g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
		    "--mode must be coop, enforce or auto, not '%s'",
		    s ? s : "");
	return FALSE;
}

static void ledger_vm_free(gpointer p)
{
	VsLedgerVm *v = p;

	g_free(v->name);
	g_free(v);
}

VsLedger *vs_ledger_new(const VsHost *host)
{
	VsLedger *l = g_new0(VsLedger, 1);

	l->host = host ? vs_host_describe(host) : g_strdup("");
	l->vms = g_ptr_array_new_with_free_func(ledger_vm_free);
	return l;
}

void vs_ledger_free(VsLedger *l)
{
	if (!l)
		return;
	g_free(l->host);
	g_ptr_array_free(l->vms, TRUE);
	g_free(l);
}

VsLedgerVm *vs_ledger_find(const VsLedger *l, const char *name)
{
	for (guint i = 0; i < l->vms->len; i++) {
		VsLedgerVm *v = g_ptr_array_index(l->vms, i);

		if (!strcmp(v->name, name))
			return v;
	}
	return NULL;
}

VsLedgerVm *vs_ledger_add_vm(VsLedger *l, const char *name)
{
	VsLedgerVm *v = g_new0(VsLedgerVm, 1);

	v->name = g_strdup(name);
	v->mode = VS_MODE_COOP;
	g_ptr_array_add(l->vms, v);
	return v;
}

gboolean vs_ledger_remove_vm(VsLedger *l, const char *name)
{
	VsLedgerVm *v = vs_ledger_find(l, name);

	return v && g_ptr_array_remove(l->vms, v);
}

VsLedger *vs_ledger_copy(const VsLedger *l)
{
	VsLedger *c = vs_ledger_new(NULL);

	g_free(c->host);
	c->host = g_strdup(l->host);
	c->generation = l->generation;
	for (guint i = 0; i < l->vms->len; i++) {
		VsLedgerVm *v = g_ptr_array_index(l->vms, i);
		VsLedgerVm *n = vs_ledger_add_vm(c, v->name);
		char *name = n->name;

		*n = *v;
		n->name = name;
	}
	return c;
}

const char *vs_ledger_owner(const VsLedger *l, guint cpu)
{
	for (guint i = 0; i < l->vms->len; i++) {
		VsLedgerVm *v = g_ptr_array_index(l->vms, i);

		if (!v->unmanaged && vs_cpuset_has(&v->pcpus, cpu))
			return v->name;
	}
	return NULL;
}

static gboolean check_cpus(const VsLedgerVm *v, const VsHost *host,
			   VsCpuSet *seen, const VsLedger *l, GError **error)
{
	VsCpuSet both;
	int bad = vs_cpuset_first_outside(&v->pcpus, &host->all);

	if (bad >= 0)
		return vs_fail(error, VS_HOST_ERROR_REFUSED,
			       "pCPU %d is not a CPU of this host", bad);
	vs_cpuset_and(&both, seen, &v->pcpus);
	if (vs_cpuset_count(&both)) {
		int cpu = vs_cpuset_first_outside(&both, &(VsCpuSet){ 0 });

		return vs_fail(error, VS_HOST_ERROR_REFUSED,
			       "pCPU %d would be owned by VM %s and VM %s", cpu,
			       vs_ledger_owner(l, cpu), v->name);
	}
	for (guint w = 0; w < G_N_ELEMENTS(seen->bits); w++)
		seen->bits[w] |= v->pcpus.bits[w];
	return TRUE;
}

gboolean vs_ledger_validate(const VsLedger *l, const VsHost *host,
			    GError **error)
{
	VsCpuSet seen;
	guint64 used[VS_MAX_NODES] = { 0 };

	vs_cpuset_clear(&seen);
	for (guint i = 0; i < l->vms->len; i++) {
		VsLedgerVm *v = g_ptr_array_index(l->vms, i);

		if (v->unmanaged)
			continue;
		if (v->mode != VS_MODE_COOP && v->mode != VS_MODE_ENFORCE)
			return vs_fail(error, VS_HOST_ERROR_REFUSED,
				       "VM %s: mode %s in a ledger", v->name,
				       vs_mode_name(v->mode));
		if (!check_cpus(v, host, &seen, l, error))
			return FALSE;
		for (guint n = 0; n < VS_MAX_NODES; n++) {
			if (v->mem[n] && n >= host->n_nodes)
				return vs_fail(error, VS_HOST_ERROR_REFUSED,
					       "VM %s holds memory on node %u, "
					       "which the host does not have",
					       v->name, n);
			if (v->mem[n] > G_MAXINT64 - used[n])
				return vs_fail(error, VS_HOST_ERROR_REFUSED,
					       "host node %u: memory sizes "
					       "overflow",
					       n);
			used[n] += v->mem[n];
		}
	}
	for (guint n = 0; n < host->n_nodes; n++)
		if (host->node_mem[n] && used[n] > host->node_mem[n])
			return vs_fail(error, VS_HOST_ERROR_REFUSED,
				       "host node %u: VMs would hold "
				       "%" G_GUINT64_FORMAT
				       " MiB of virtio-mem, the node's pool "
				       "is %" G_GUINT64_FORMAT " MiB",
				       n, used[n] >> 20,
				       host->node_mem[n] >> 20);
	return TRUE;
}

/* ---- JSON ------------------------------------------------------------- */

static void vm_to_json(JsonBuilder *b, const VsLedgerVm *v)
{
	g_autofree char *cpus = vs_cpuset_format(&v->pcpus);
	guint last = 0;

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "name");
	json_builder_add_string_value(b, v->name);
	json_builder_set_member_name(b, "pcpus");
	json_builder_add_string_value(b, cpus);
	json_builder_set_member_name(b, "mode");
	json_builder_add_string_value(b, vs_mode_name(v->mode));
	if (v->unmanaged) {
		json_builder_set_member_name(b, "unmanaged");
		json_builder_add_boolean_value(b, TRUE);
	}
	for (guint n = 0; n < VS_MAX_NODES; n++)
		if (v->mem[n])
			last = n + 1;
	if (v->weight) {
		json_builder_set_member_name(b, "weight");
		json_builder_add_int_value(b, v->weight);
	}
	if (v->nice) {
		json_builder_set_member_name(b, "nice");
		json_builder_add_int_value(b, v->nice);
	}
	json_builder_set_member_name(b, "vmem-bytes");
	json_builder_begin_array(b);
	for (guint n = 0; n < last; n++)
		json_builder_add_int_value(b, (gint64)v->mem[n]);
	json_builder_end_array(b);
	json_builder_end_object(b);
}

JsonNode *vs_ledger_to_json(const VsLedger *l)
{
	g_autoptr(JsonBuilder) b = json_builder_new();

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "generation");
	json_builder_add_int_value(b, l->generation);
	json_builder_set_member_name(b, "host");
	json_builder_add_string_value(b, l->host);
	json_builder_set_member_name(b, "vms");
	json_builder_begin_array(b);
	for (guint i = 0; i < l->vms->len; i++)
		vm_to_json(b, g_ptr_array_index(l->vms, i));
	json_builder_end_array(b);
	json_builder_end_object(b);
	return json_builder_get_root(b);
}

static gboolean corrupt(GError **error, const char *what)
{
	g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_CORRUPT, "%s", what);
	return FALSE;
}

static gboolean mem_from_json(VsLedgerVm *v, JsonNode *mem, GError **error)
{
	JsonArray *a =
		JSON_NODE_HOLDS_ARRAY(mem) ? json_node_get_array(mem) : NULL;

	if (!a || json_array_get_length(a) > VS_MAX_NODES)
		return corrupt(error, "vmem-bytes is not an array of sizes");
	for (guint i = 0; i < json_array_get_length(a); i++) {
		JsonNode *e = json_array_get_element(a, i);

		if (json_node_get_value_type(e) != G_TYPE_INT64 ||
		    json_node_get_int(e) < 0)
			return corrupt(error, "vmem-bytes holds a non-size");
		v->mem[i] = json_node_get_int(e);
	}
	return TRUE;
}

/* Optional integer member within [lo, hi]; absent: 0. */
static gboolean int_in(JsonObject *o, const char *k, gint64 lo, gint64 hi,
		       int *out)
{
	JsonNode *n = json_object_get_member(o, k);

	*out = 0;
	if (!n)
		return TRUE;
	if (json_node_get_value_type(n) != G_TYPE_INT64 ||
	    json_node_get_int(n) < lo || json_node_get_int(n) > hi)
		return FALSE;
	*out = (int)json_node_get_int(n);
	return TRUE;
}

static gboolean vm_from_json(VsLedger *l, JsonNode *n, GError **error)
{
	JsonObject *o =
		JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
	const char *name = vs_json_str(o, "name");
	const char *pcpus = vs_json_str(o, "pcpus");
	const char *mode = vs_json_str(o, "mode");
	JsonNode *mem = o ? json_object_get_member(o, "vmem-bytes") : NULL;
	JsonNode *unm = o ? json_object_get_member(o, "unmanaged") : NULL;
	VsLedgerVm *v;

	if (!name || !pcpus || !mode || !mem)
		return corrupt(error, "a VM entry lacks name/pcpus/mode/"
				      "vmem-bytes");
	if (!vs_name_valid(name, NULL) || vs_ledger_find(l, name))
		return corrupt(error, "a VM name is invalid or repeated");
	v = vs_ledger_add_vm(l, name);
	if (*pcpus && /* "": parked */
	    !vs_cpuset_parse(pcpus, &v->pcpus, NULL))
		return corrupt(error, "a VM's pcpus is not a CPU list");
	if (!vs_mode_parse(mode, &v->mode, NULL) || v->mode == VS_MODE_AUTO)
		return corrupt(error,
			       "a VM's mode is neither coop nor enforce");
	if (unm && json_node_get_value_type(unm) != G_TYPE_BOOLEAN)
		return corrupt(error, "a VM's unmanaged is not a boolean");
	v->unmanaged = unm && json_node_get_boolean(unm);
	if (!int_in(o, "weight", 1, 10000, &v->weight) ||
	    !int_in(o, "nice", -20, 19, &v->nice))
		return corrupt(error, "a VM's weight or nice is out of range");
	return mem_from_json(v, mem, error);
}

VsLedger *vs_ledger_from_json(JsonNode *node, GError **error)
{
	g_autoptr(VsLedger) l = vs_ledger_new(NULL);
	JsonObject *o = node && JSON_NODE_HOLDS_OBJECT(node)
				? json_node_get_object(node)
				: NULL;
	JsonNode *gen = o ? json_object_get_member(o, "generation") : NULL;
	const char *host = vs_json_str(o, "host");
	JsonNode *vms = o ? json_object_get_member(o, "vms") : NULL;
	JsonArray *a;

	if (!gen || json_node_get_value_type(gen) != G_TYPE_INT64 ||
	    json_node_get_int(gen) < 0 || !host || !vms ||
	    !JSON_NODE_HOLDS_ARRAY(vms)) {
		corrupt(error, "generation/host/vms missing or mistyped");
		return NULL;
	}
	l->generation = json_node_get_int(gen);
	g_free(l->host);
	l->host = g_strdup(host);
	a = json_node_get_array(vms);
	for (guint i = 0; i < json_array_get_length(a); i++)
		if (!vm_from_json(l, json_array_get_element(a, i), error))
			return NULL;
	return g_steal_pointer(&l);
}
