// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Pure readers for the libvirt driver: the parts of a live domain XML
 * vshare uses (name, uuid, vCPUs and their NUMA cells, virtio-mem devices,
 * the agent's unix channel, <cputune><quota>) and the cgroup path in
 * /proc/PID/cgroup. GMarkup, not libxml2: libvirt writes plain XML (no
 * DTD, no entities beyond the five), and one parser less is linked.
 */
#include "vmdrv-libvirt.h"

#include <string.h>

typedef struct {
	VsLvDomain *d;
	GString *path; /* "/domain/devices/memory/target" */
	GArray *lens;  /* path length before each open element */
	GString *text; /* text of the element being read */
	char *unit;    /* its unit= attribute */
	/* the virtio-mem device being read and its XML */
	VsVmem *mem;
	GString *cap;
	char *head;
	gboolean in_req, have_req, have_node;
	/* the unix channel being read */
	gboolean chan, chan_bind;
	char *chan_path, *chan_name;
	gint64 vcpu_current;
	GArray *cells; /* Cell, applied once <vcpu> is known */
} Ctx;

typedef struct {
	int node;
	VsCpuSet cpus;
} Cell;

#define MEM  "/domain/devices/memory"
#define CHAN "/domain/devices/channel"

static void dev_xml_free(gpointer p)
{
	VsLvDevXml *x = p;

	g_free(x->head);
	g_free(x->tail);
	g_free(x);
}

void vs_lv_domain_clear(VsLvDomain *d)
{
	g_clear_pointer(&d->name, g_free);
	g_clear_pointer(&d->uuid, g_free);
	g_clear_pointer(&d->agent_path, g_free);
	g_clear_pointer(&d->vcpu_node, g_array_unref);
	g_clear_pointer(&d->vmems, g_ptr_array_unref);
	g_clear_pointer(&d->vmem_xml, g_ptr_array_unref);
	d->n_vcpus = 0;
	d->n_cells = 0;
	d->agent_channel = FALSE;
	d->live = FALSE;
	d->quota = -1;
}

static const char *attr(const char **names, const char **values,
			const char *name)
{
	for (guint i = 0; names[i]; i++)
		if (!strcmp(names[i], name))
			return values[i];
	return NULL;
}

/* libvirt's scaled integers (virScaleInteger): @unit as in the schema. */
static gboolean scaled(const char *text, const char *unit, guint64 *out,
		       GError **error)
{
	static const struct {
		const char *name;
		guint64 mul;
	} units[] = {
		{ "b", 1 },
		{ "bytes", 1 },
		{ "KB", 1000ULL },
		{ "k", 1ULL << 10 },
		{ "KiB", 1ULL << 10 },
		{ "MB", 1000000ULL },
		{ "M", 1ULL << 20 },
		{ "MiB", 1ULL << 20 },
		{ "GB", 1000000000ULL },
		{ "G", 1ULL << 30 },
		{ "GiB", 1ULL << 30 },
		{ "TB", 1000000000000ULL },
		{ "T", 1ULL << 40 },
		{ "TiB", 1ULL << 40 },
	};
	guint64 v;

	if (!g_ascii_string_to_unsigned(g_strstrip((char *)text), 10, 0,
					G_MAXUINT64, &v, error))
		return FALSE;
	for (guint i = 0; i < G_N_ELEMENTS(units); i++) {
		if (strcmp(units[i].name, unit ? unit : "KiB"))
			continue;
		if (v > G_MAXUINT64 / units[i].mul)
			break;
		*out = v * units[i].mul;
		return TRUE;
	}
	g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
		    "size %s %s: unknown unit or too large", text,
		    unit ? unit : "KiB");
	return FALSE;
}

/* ---- the virtio-mem device's own XML --------------------------------- */

static void cap_start(Ctx *c, const char *el, const char **names,
		      const char **values)
{
	if (!strcmp(c->path->str, MEM "/target/requested")) {
		g_free(c->head); /* a repeated <requested> (fuzz-host) */
		c->head = g_strdup(c->cap->str);
		c->in_req = c->have_req = TRUE;
		return;
	}
	g_string_append_printf(c->cap, "<%s", el);
	for (guint i = 0; names[i]; i++) {
		g_autofree char *v = g_markup_escape_text(values[i], -1);

		g_string_append_printf(c->cap, " %s='%s'", names[i], v);
	}
	g_string_append_c(c->cap, '>');
}

static void cap_end(Ctx *c, const char *el)
{
	if (c->in_req) {
		c->in_req = FALSE;
		g_string_truncate(c->cap, 0);
		return;
	}
	g_string_append_printf(c->cap, "</%s>", el);
}

static gboolean mem_done(Ctx *c, GError **error)
{
	VsLvDevXml *x = g_new0(VsLvDevXml, 1);
	VsVmem *m = g_steal_pointer(&c->mem);

	x->head = g_steal_pointer(&c->head);
	x->tail = g_strdup(c->cap->str);
	g_string_truncate(c->cap, 0);
	g_ptr_array_add(c->d->vmems, m);
	g_ptr_array_add(c->d->vmem_xml, x);
	/* libvirt names a device (alias) when the domain runs: a defined
	 * domain's XML has none (host-check reads those) */
	if (!c->have_req || !c->have_node || !m->block ||
	    (!m->id && c->d->live)) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
			    "virtio-mem device %s: no <requested>, <node>, "
			    "<block> or alias",
			    m->id ? m->id : "?");
		return FALSE;
	}
	if (m->size > m->max || m->requested > m->max) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_HOSTILE,
			    "virtio-mem device %s: current %" G_GUINT64_FORMAT
			    " or requested %" G_GUINT64_FORMAT
			    " exceeds its size %" G_GUINT64_FORMAT,
			    m->id, m->size, m->requested, m->max);
		return FALSE;
	}
	return TRUE;
}

static gboolean mem_value(Ctx *c, const char *leaf, GError **error)
{
	VsVmem *m = c->mem;
	guint64 v;

	if (!strcmp(leaf, "node")) {
		if (!g_ascii_string_to_unsigned(g_strstrip(c->text->str), 10, 0,
						VS_MAX_NODES - 1, &v, error))
			return FALSE;
		m->node = (int)v;
		c->have_node = TRUE;
		return TRUE;
	}
	if (strcmp(leaf, "size") && strcmp(leaf, "block") &&
	    strcmp(leaf, "requested") && strcmp(leaf, "current"))
		return TRUE;
	if (!scaled(c->text->str, c->unit, &v, error))
		return FALSE;
	if (!strcmp(leaf, "size"))
		m->max = v;
	else if (!strcmp(leaf, "block"))
		m->block = v;
	else if (!strcmp(leaf, "requested"))
		m->requested = v;
	else
		m->size = v;
	return TRUE;
}

/* ---- elements ---------------------------------------------------------- */

static gboolean cell(Ctx *c, const char **names, const char **values,
		     GError **error)
{
	const char *id = attr(names, values, "id");
	const char *cpus = attr(names, values, "cpus");
	Cell cl;
	guint64 node;

	if (!id || !cpus) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
			    "<numa><cell> without id or cpus");
		return FALSE;
	}
	if (!g_ascii_string_to_unsigned(id, 10, 0, VS_MAX_NODES - 1, &node,
					error) ||
	    !vs_cpuset_parse(cpus, &cl.cpus, error))
		return FALSE;
	cl.node = (int)node;
	g_array_append_val(c->cells, cl);
	return TRUE;
}

static void channel_attrs(Ctx *c, const char **names, const char **values)
{
	const char *p = c->path->str;

	if (!strcmp(p, CHAN)) {
		c->chan = !g_strcmp0(attr(names, values, "type"), "unix");
		/* no <source>: libvirt binds, at a path it makes at start
		 * (a defined domain's XML has none) */
		c->chan_bind = TRUE;
		g_clear_pointer(&c->chan_path, g_free);
	} else if (!strcmp(p, CHAN "/source")) {
		c->chan_bind = !g_strcmp0(attr(names, values, "mode"), "bind");
		g_free(c->chan_path);
		c->chan_path = g_strdup(attr(names, values, "path"));
	} else if (!strcmp(p, CHAN "/target")) {
		g_free(c->chan_name);
		c->chan_name = g_strdup(attr(names, values, "name"));
	}
}

static gboolean channel_done(Ctx *c, GError **error)
{
	gboolean ours = c->chan && !g_strcmp0(c->chan_name, VS_AGENT_CHANNEL);

	c->chan = FALSE;
	g_clear_pointer(&c->chan_name, g_free);
	if (!ours)
		return TRUE;
	if (c->d->agent_channel || !c->chan_bind) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
			    "channel %s: want one <channel type='unix'> with "
			    "<source mode='bind'>",
			    VS_AGENT_CHANNEL);
		return FALSE;
	}
	c->d->agent_channel = TRUE; /* no path: libvirt sets one at start */
	c->d->agent_path = g_steal_pointer(&c->chan_path);
	return TRUE;
}

static void on_start(GMarkupParseContext *pc, const char *el,
		     const char **names, const char **values, gpointer data,
		     GError **error)
{
	Ctx *c = data;
	const char *p;

	g_array_append_val(c->lens, c->path->len);
	g_string_append_printf(c->path, "/%s", el);
	g_string_truncate(c->text, 0);
	g_free(c->unit);
	c->unit = g_strdup(attr(names, values, "unit"));
	p = c->path->str;
	if (!strcmp(p, MEM) &&
	    !g_strcmp0(attr(names, values, "model"), "virtio-mem")) {
		c->mem = g_new0(VsVmem, 1);
		c->have_req = c->have_node = FALSE;
	}
	if (c->mem)
		cap_start(c, el, names, values);
	if (!strcmp(p, MEM "/alias") && c->mem && !c->mem->id)
		c->mem->id = g_strdup(attr(names, values, "name"));
	else if (!strcmp(p, "/domain/vcpu") && attr(names, values, "current"))
		c->vcpu_current = g_ascii_strtoll(
			attr(names, values, "current"), NULL, 10);
	else if (!strcmp(p, "/domain/cpu/numa/cell"))
		cell(c, names, values, error);
	else if (g_str_has_prefix(p, CHAN))
		channel_attrs(c, names, values);
	else if (!strcmp(p, "/domain"))
		c->d->live = attr(names, values, "id") != NULL;
}

static gboolean vcpus(Ctx *c, GError **error)
{
	guint64 max;

	if (!g_ascii_string_to_unsigned(g_strstrip(c->text->str), 10, 1,
					VS_MAX_CPUS, &max, error))
		return FALSE;
	g_array_set_size(c->d->vcpu_node, (guint)max);
	for (guint i = 0; i < max; i++)
		g_array_index(c->d->vcpu_node, int, i) = -1;
	c->d->n_vcpus = (guint)max;
	return TRUE;
}

static gboolean leaf(Ctx *c, const char *p, GError **error)
{
	char *t = c->text->str;

	/* a repeated element replaces the earlier one (found by fuzz-host) */
	if (!strcmp(p, "/domain/name")) {
		g_free(c->d->name);
		c->d->name = g_strstrip(g_strdup(t));
	} else if (!strcmp(p, "/domain/uuid")) {
		g_free(c->d->uuid);
		c->d->uuid = g_strstrip(g_strdup(t));
	}
	if (!strcmp(p, "/domain/vcpu"))
		return vcpus(c, error);
	else if (!strcmp(p, "/domain/cputune/quota"))
		c->d->quota = g_ascii_strtoll(t, NULL, 10);
	else if (c->mem && g_str_has_prefix(p, MEM "/target/"))
		return mem_value(c, p + strlen(MEM "/target/"), error);
	return TRUE;
}

static void on_end(GMarkupParseContext *pc, const char *el, gpointer data,
		   GError **error)
{
	Ctx *c = data;
	const char *p = c->path->str;

	if (c->mem)
		cap_end(c, el);
	if (!leaf(c, p, error))
		return;
	if (c->mem && !strcmp(p, MEM) && !mem_done(c, error))
		return;
	if (!strcmp(p, CHAN) && !channel_done(c, error))
		return;
	g_string_truncate(c->path,
			  g_array_index(c->lens, gsize, c->lens->len - 1));
	g_array_set_size(c->lens, c->lens->len - 1);
	g_string_truncate(c->text, 0);
}

static void on_text(GMarkupParseContext *pc, const char *text, gsize len,
		    gpointer data, GError **error)
{
	Ctx *c = data;

	g_string_append_len(c->text, text, (gssize)len);
	if (c->mem && !c->in_req) {
		g_autofree char *esc = g_markup_escape_text(text, (gssize)len);

		g_string_append(c->cap, esc);
	}
}

static void ctx_clear(Ctx *c)
{
	g_string_free(c->path, TRUE);
	g_array_unref(c->lens);
	g_string_free(c->text, TRUE);
	g_string_free(c->cap, TRUE);
	g_free(c->unit);
	g_free(c->head);
	g_free(c->chan_path);
	g_free(c->chan_name);
	g_array_unref(c->cells);
	if (c->mem)
		vs_vmem_free(c->mem);
}

/* After the parse: every vCPU in a cell (or no cells at all). */
static gboolean check(Ctx *c, GError **error)
{
	VsLvDomain *d = c->d;

	if (!d->name || !d->uuid || !d->n_vcpus) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
			    "domain XML without <name>, <uuid> or <vcpu>");
		return FALSE;
	}
	for (guint k = 0; k < c->cells->len; k++) {
		Cell *cl = &g_array_index(c->cells, Cell, k);

		for (guint i = 0; i < d->vcpu_node->len; i++)
			if (vs_cpuset_has(&cl->cpus, i))
				g_array_index(d->vcpu_node, int, i) = cl->node;
	}
	for (guint i = 0; i < d->vcpu_node->len; i++) {
		int *n = &g_array_index(d->vcpu_node, int, i);

		if (*n < 0 && c->cells->len) {
			g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
				    "vCPU %u is in no <numa><cell>", i);
			return FALSE;
		}
		*n = MAX(*n, 0);
	}
	if (c->vcpu_current > 0 && c->vcpu_current < d->n_vcpus)
		d->n_vcpus = (guint)c->vcpu_current;
	d->n_cells = c->cells->len;
	return TRUE;
}

gboolean vs_lv_parse_domain(const char *xml, VsLvDomain *d, GError **error)
{
	static const GMarkupParser parser = {
		.start_element = on_start,
		.end_element = on_end,
		.text = on_text,
	};
	Ctx c = {
		.d = d,
		.path = g_string_new(NULL),
		.lens = g_array_new(FALSE, FALSE, sizeof(gsize)),
		.text = g_string_new(NULL),
		.cap = g_string_new(NULL),
		.cells = g_array_new(FALSE, FALSE, sizeof(Cell)),
	};
	g_autoptr(GMarkupParseContext) pc =
		g_markup_parse_context_new(&parser, 0, &c, NULL);
	gboolean ok;

	vs_lv_domain_clear(d);
	d->vcpu_node = g_array_new(FALSE, TRUE, sizeof(int));
	d->vmems = g_ptr_array_new_with_free_func(vs_vmem_free);
	d->vmem_xml = g_ptr_array_new_with_free_func(dev_xml_free);
	ok = g_markup_parse_context_parse(pc, xml, -1, error) &&
	     g_markup_parse_context_end_parse(pc, error) && check(&c, error);
	ctx_clear(&c);
	if (!ok && error && *error && (*error)->domain != VS_HOST_ERROR) {
		g_autoptr(GError) e = g_steal_pointer(error);

		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
			    "domain XML: %s", e->message);
	}
	return ok;
}

char *vs_lv_vmem_update_xml(const VsLvDevXml *x, guint64 bytes, GError **error)
{
	if (bytes % 1024) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
			    "%" G_GUINT64_FORMAT " is not a whole KiB", bytes);
		return NULL;
	}
	return g_strdup_printf("%s<requested unit='KiB'>%" G_GUINT64_FORMAT
			       "</requested>%s",
			       x->head, bytes / 1024, x->tail);
}

/* "4:cpu,cpuacct:/machine/x" (v1) or "0::/machine/x" (v2). */
char *vs_lv_proc_cgroup(const char *text, const char *controller, int version)
{
	g_auto(GStrv) lines = g_strsplit(text ? text : "", "\n", -1);

	for (guint i = 0; lines[i]; i++) {
		g_auto(GStrv) f = g_strsplit(lines[i], ":", 3);
		g_auto(GStrv) ctl = NULL;

		if (g_strv_length(f) != 3 || f[2][0] != '/')
			continue;
		if (version == 2 && !strcmp(f[0], "0") && !*f[1])
			return g_strdup(f[2]);
		ctl = g_strsplit(f[1], ",", -1);
		if (version == 1 &&
		    g_strv_contains((const char *const *)ctl, controller))
			return g_strdup(f[2]);
	}
	return NULL;
}

GPtrArray *vs_lv_domain_lacks(const VsLvDomain *d, const VsHost *h)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
	guint n = MIN(d->n_vcpus, h->pcpus->len);

	if (!d->agent_channel)
		g_ptr_array_add(
			out,
			g_strdup("no agent channel: add <channel "
				 "type='unix'><source mode='bind'/><target "
				 "type='virtio' name='" VS_AGENT_CHANNEL
				 "'/></channel> (coop cannot work "
				 "without it; enforce can)"));
	if (d->n_vcpus != h->pcpus->len)
		g_ptr_array_add(
			out, g_strdup_printf("%u vCPUs for %u host pCPUs: "
					     "full vNUMA is one vCPU per pCPU",
					     d->n_vcpus, h->pcpus->len));
	if (!d->n_cells && h->n_nodes > 1)
		g_ptr_array_add(
			out,
			g_strdup_printf("no <numa><cell>s: the host has "
					"%u nodes, the guest must see them",
					h->n_nodes));
	for (guint i = 0; d->n_cells && i < n; i++) {
		int want =
			vs_host_node_of(h, g_array_index(h->pcpus, guint, i));
		int got = g_array_index(d->vcpu_node, int, i);

		if (got != want)
			g_ptr_array_add(
				out, g_strdup_printf(
					     "vCPU %u is in cell %d, its "
					     "pCPU %u in node %d",
					     i, got,
					     g_array_index(h->pcpus, guint, i),
					     want));
	}
	for (guint node = 0; node < h->n_nodes; node++) {
		gboolean has = FALSE;

		if (!vs_cpuset_count(&h->node_cpus[node]))
			continue;
		for (guint k = 0; d->vmems && k < d->vmems->len && !has; k++)
			has = ((VsVmem *)d->vmems->pdata[k])->node == (int)node;
		if (!has)
			g_ptr_array_add(
				out,
				g_strdup_printf("node %u: no virtio-mem "
						"device (its memory cannot "
						"be lent or received)",
						node));
	}
	return out;
}
