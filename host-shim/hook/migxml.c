// SPDX-License-Identifier: GPL-2.0-or-later
/* Reading and rewriting an incoming domain XML (migxml.h). */
#include "migxml.h"

#include "vshare-host.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <string.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlDoc, xmlFreeDoc)

void vs_mig_domain_clear(VsMigDomain *d)
{
	g_clear_pointer(&d->name, g_free);
	memset(d, 0, sizeof(*d));
}

static gboolean bad(GError **error, const char *fmt, const char *what)
{
	g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_HOSTILE, fmt, what);
	return FALSE;
}

/* No network, no entities, no DTD: the XML comes from another host.
 * libvirt never writes a DOCTYPE; one is refused before parsing (as
 * bytes) and after (an encoding that hides it from the byte check), so no
 * entity is ever expanded, by the parser or by xmlNodeGetContent. Error
 * messages never quote the input (they go to libvirtd's log). */
static xmlDoc *parse(const char *xml, gsize len, GError **error)
{
	xmlDoc *doc;
	xmlNode *root;

	if (len > VS_MIG_MAX_XML) {
		bad(error, "domain XML over %s", "16 MiB");
		return NULL;
	}
	if (memmem(xml, len, "<!DOCTYPE", 9) ||
	    memmem(xml, len, "<!ENTITY", 8)) {
		bad(error, "domain XML: %s", "a DOCTYPE (libvirt writes none)");
		return NULL;
	}
	doc = xmlReadMemory(xml, (int)len, "domain.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR |
				    XML_PARSE_NOWARNING);
	if (!doc) {
		bad(error, "domain XML: %s", "not well-formed");
		return NULL;
	}
	if (doc->intSubset || doc->extSubset) {
		xmlFreeDoc(doc);
		bad(error, "domain XML: %s", "a DOCTYPE (libvirt writes none)");
		return NULL;
	}
	root = xmlDocGetRootElement(doc);
	if (!root || xmlStrcmp(root->name, BAD_CAST "domain")) {
		xmlFreeDoc(doc);
		bad(error, "domain XML: %s", "the root is not <domain>");
		return NULL;
	}
	return doc;
}

static xmlNode *child(xmlNode *parent, const char *name)
{
	for (xmlNode *n = parent ? parent->children : NULL; n; n = n->next)
		if (n->type == XML_ELEMENT_NODE &&
		    !xmlStrcmp(n->name, BAD_CAST name))
			return n;
	return NULL;
}

static char *text_of(xmlNode *n)
{
	xmlChar *t = xmlNodeGetContent(n);
	char *out = g_strdup(t ? (const char *)t : "");

	xmlFree(t);
	return g_strstrip(out);
}

static char *prop(xmlNode *n, const char *name)
{
	xmlChar *v = xmlGetProp(n, BAD_CAST name);
	char *out = v ? g_strdup((const char *)v) : NULL;

	xmlFree(v);
	return out;
}

/* <cell memory='N' unit='U'>: KiB (libvirt's default unit). */
static gboolean cell_mem(xmlNode *n, guint64 *kib, GError **error)
{
	g_autofree char *mem = prop(n, "memory");
	g_autofree char *unit = prop(n, "unit");
	guint64 v;
	guint shift = 10;

	if (!mem || !g_ascii_string_to_unsigned(mem, 10, 0, G_MAXUINT64 >> 30,
						&v, NULL))
		return bad(error, "cell memory %s",
			   mem ? "is not a size" : "missing");
	if (!unit || !g_ascii_strcasecmp(unit, "KiB") || !strcmp(unit, "k"))
		shift = 10;
	else if (!g_ascii_strcasecmp(unit, "MiB") || !strcmp(unit, "M"))
		shift = 20;
	else if (!g_ascii_strcasecmp(unit, "GiB") || !strcmp(unit, "G"))
		shift = 30;
	else if (!g_ascii_strcasecmp(unit, "b") ||
		 !g_ascii_strcasecmp(unit, "bytes"))
		shift = 0;
	else
		return bad(error, "cell memory unit %s", "unknown");
	*kib = (v << shift) >> 10;
	return TRUE;
}

static gboolean read_cell(xmlNode *n, VsMigDomain *d, GError **error)
{
	g_autofree char *id = prop(n, "id");
	g_autofree char *cpus = prop(n, "cpus");
	VsMigCell *c;
	guint64 v;

	if (d->ncells == VS_MIG_MAX_CELLS)
		return bad(error, "more than %s guest NUMA cells", "64");
	c = &d->cells[d->ncells];
	if (!id || !g_ascii_string_to_unsigned(id, 10, 0, VS_MIG_MAX_CELLS - 1,
					       &v, NULL))
		return bad(error, "cell id %s",
			   id ? "is not 0..63" : "missing");
	c->id = (guint)v;
	if (!cpus || !vs_cpuset_parse(cpus, &c->vcpus, NULL))
		return bad(error, "cell cpus %s",
			   cpus ? "is not a CPU list" : "missing");
	if (!cell_mem(n, &c->mem_kib, error))
		return FALSE;
	for (guint i = 0; i < d->ncells; i++)
		if (d->cells[i].id == c->id)
			return bad(error, "a cell id %s", "twice");
	d->ncells++;
	return TRUE;
}

static gboolean read_vcpus(xmlNode *root, VsMigDomain *d, GError **error)
{
	g_autofree char *n = text_of(child(root, "vcpu"));
	guint64 v;

	if (!g_ascii_string_to_unsigned(n, 10, 1, VS_MAX_CPUS, &v, NULL))
		return bad(error, "<vcpu> %s",
			   n[0] ? "is not a vCPU count" : "missing");
	d->nvcpus = (guint)v;
	return TRUE;
}

/* Every vCPU in exactly one cell, none beyond <vcpu>. */
static gboolean check_cells(VsMigDomain *d, GError **error)
{
	VsCpuSet seen = { 0 };

	for (guint i = 0; i < d->ncells; i++)
		for (guint c = 0; c < VS_MAX_CPUS; c++) {
			if (!vs_cpuset_has(&d->cells[i].vcpus, c))
				continue;
			if (c >= d->nvcpus || vs_cpuset_has(&seen, c))
				return bad(error, "%s",
					   "guest cells' cpus overlap or "
					   "exceed <vcpu>");
			vs_cpuset_add(&seen, c);
		}
	if (vs_cpuset_count(&seen) != d->nvcpus)
		return bad(error, "%s", "a vCPU is in no guest cell");
	return TRUE;
}

static void one_cell(xmlNode *root, VsMigDomain *d)
{
	g_autofree char *mem = text_of(child(root, "memory"));
	guint64 kib = 0;

	g_ascii_string_to_unsigned(mem, 10, 0, G_MAXUINT64 >> 10, &kib, NULL);
	d->ncells = 1;
	d->cells[0].id = 0;
	d->cells[0].mem_kib = kib;
	for (guint c = 0; c < d->nvcpus; c++)
		vs_cpuset_add(&d->cells[0].vcpus, c);
}

gboolean vs_mig_read(const char *xml, gsize len, VsMigDomain *d, GError **error)
{
	g_autoptr(xmlDoc) doc = parse(xml, len, error);
	xmlNode *root, *numa;
	g_autofree char *name = NULL;

	memset(d, 0, sizeof(*d));
	if (!doc)
		return FALSE;
	root = xmlDocGetRootElement(doc);
	name = text_of(child(root, "name"));
	if (!vs_name_valid(name, NULL))
		return bad(error, "domain name %s", "not valid");
	if (!read_vcpus(root, d, error))
		return FALSE;
	numa = child(child(root, "cpu"), "numa");
	for (xmlNode *n = numa ? numa->children : NULL; n; n = n->next)
		if (n->type == XML_ELEMENT_NODE &&
		    !xmlStrcmp(n->name, BAD_CAST "cell") &&
		    !read_cell(n, d, error))
			return FALSE;
	if (!d->ncells)
		one_cell(root, d);
	else if (!check_cells(d, error))
		return FALSE;
	d->name = g_steal_pointer(&name);
	return TRUE;
}

/* ---- rewriting ---------------------------------------------------------- */

static void drop_children(xmlNode *parent, const char *name)
{
	xmlNode *n = parent->children;

	while (n) {
		xmlNode *next = n->next;

		if (n->type == XML_ELEMENT_NODE &&
		    !xmlStrcmp(n->name, BAD_CAST name)) {
			xmlUnlinkNode(n);
			xmlFreeNode(n);
		}
		n = next;
	}
}

static const VsMigPlace *place_of(const VsMigPlace *p, guint n, guint cell)
{
	for (guint i = 0; i < n; i++)
		if (p[i].cell == cell)
			return &p[i];
	return NULL;
}

static gboolean check_places(const VsMigDomain *d, const VsMigPlace *p, guint n,
			     GError **error)
{
	if (n != d->ncells)
		return bad(error, "%s", "a placement per guest cell is needed");
	for (guint i = 0; i < d->ncells; i++) {
		const VsMigPlace *pl = place_of(p, n, d->cells[i].id);

		if (!pl || pl->node < -1 || pl->node >= VS_MAX_CPUS ||
		    !vs_cpuset_count(&pl->cpus))
			return bad(error, "%s",
				   "a guest cell without a node or pCPUs");
	}
	return TRUE;
}

static void set_prop_uint(xmlNode *n, const char *name, guint v)
{
	char buf[16];

	g_snprintf(buf, sizeof(buf), "%u", v);
	xmlNewProp(n, BAD_CAST name, BAD_CAST buf);
}

static void write_cputune(xmlNode *root, const VsMigDomain *d,
			  const VsMigPlace *p, guint n)
{
	xmlNode *tune = child(root, "cputune");
	VsCpuSet all = { 0 };
	g_autofree char *alls = NULL;

	if (!tune)
		tune = xmlNewChild(root, NULL, BAD_CAST "cputune", NULL);
	drop_children(tune, "vcpupin");
	drop_children(tune, "emulatorpin");
	for (guint c = 0; c < d->ncells; c++) {
		const VsMigPlace *pl = place_of(p, n, d->cells[c].id);
		g_autofree char *cpus = vs_cpuset_format(&pl->cpus);

		for (guint v = 0; v < VS_MAX_CPUS; v++) {
			xmlNode *pin;

			if (!vs_cpuset_has(&d->cells[c].vcpus, v))
				continue;
			pin = xmlNewChild(tune, NULL, BAD_CAST "vcpupin", NULL);
			set_prop_uint(pin, "vcpu", v);
			xmlNewProp(pin, BAD_CAST "cpuset", BAD_CAST cpus);
		}
		for (guint i = 0; i < VS_MAX_CPUS; i++)
			if (vs_cpuset_has(&pl->cpus, i))
				vs_cpuset_add(&all, i);
	}
	alls = vs_cpuset_format(&all);
	xmlNewProp(xmlNewChild(tune, NULL, BAD_CAST "emulatorpin", NULL),
		   BAD_CAST "cpuset", BAD_CAST alls);
}

static void write_numatune(xmlNode *root, const VsMigDomain *d,
			   const VsMigPlace *p, guint n, gboolean cells)
{
	xmlNode *tune = child(root, "numatune"), *mem;
	VsCpuSet nodes = { 0 };
	g_autofree char *nodess = NULL;

	for (guint i = 0; i < n; i++)
		if (p[i].node < 0)
			return; /* no memory binding: libvirt's stays */
	if (tune) {
		xmlUnlinkNode(tune);
		xmlFreeNode(tune);
	}
	tune = xmlNewChild(root, NULL, BAD_CAST "numatune", NULL);
	for (guint i = 0; i < n; i++)
		vs_cpuset_add(&nodes, (guint)p[i].node);
	nodess = vs_cpuset_format(&nodes);
	mem = xmlNewChild(tune, NULL, BAD_CAST "memory", NULL);
	xmlNewProp(mem, BAD_CAST "mode", BAD_CAST "strict");
	xmlNewProp(mem, BAD_CAST "nodeset", BAD_CAST nodess);
	for (guint c = 0; cells && c < d->ncells; c++) {
		const VsMigPlace *pl = place_of(p, n, d->cells[c].id);
		xmlNode *mn = xmlNewChild(tune, NULL, BAD_CAST "memnode", NULL);
		char node[16];

		g_snprintf(node, sizeof(node), "%d", pl->node);
		set_prop_uint(mn, "cellid", d->cells[c].id);
		xmlNewProp(mn, BAD_CAST "mode", BAD_CAST "strict");
		xmlNewProp(mn, BAD_CAST "nodeset", BAD_CAST node);
	}
}

/* vCPU placement 'auto' asks numad: the pins replace it. */
static void vcpu_static(xmlNode *root)
{
	xmlNode *v = child(root, "vcpu");

	xmlUnsetProp(v, BAD_CAST "placement");
	xmlUnsetProp(v, BAD_CAST "cpuset");
}

char *vs_mig_rewrite(const char *xml, gsize len, const VsMigDomain *d,
		     const VsMigPlace *places, guint nplaces, GError **error)
{
	g_autoptr(xmlDoc) doc = NULL;
	xmlNode *root;
	xmlChar *out = NULL;
	int outlen = 0;
	char *ret;
	gboolean guest_cells;

	if (!check_places(d, places, nplaces, error))
		return NULL;
	doc = parse(xml, len, error);
	if (!doc)
		return NULL;
	root = xmlDocGetRootElement(doc);
	guest_cells = child(child(root, "cpu"), "numa") != NULL;
	vcpu_static(root);
	write_cputune(root, d, places, nplaces);
	write_numatune(root, d, places, nplaces, guest_cells);
	xmlDocDumpFormatMemory(doc, &out, &outlen, 1);
	if (!out) {
		g_set_error_literal(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
				    "cannot serialise the domain XML");
		return NULL;
	}
	ret = g_strndup((const char *)out, (gsize)outlen);
	xmlFree(out);
	return ret;
}
