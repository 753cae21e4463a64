// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The migration hook's XML reader and rewriter (host-shim/hook/migxml.c)
 * on a domain XML captured from tests/libvirt's libvirtd
 * (tests/unit/data/libvirt-live-pinned.xml: 2 vCPUs, 2 guest cells) and
 * hostile variants. The rewritten XML is read back with libxml2 here,
 * independently of the code under test.
 */
#include "migxml.h"
#include "testdata.h"

#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <string.h>

/* The string value of XPath @expr in @xml ("" when nothing matches). */
static char *xpath(const char *xml, const char *expr)
{
	xmlDoc *doc = xmlReadMemory(xml, (int)strlen(xml), "t.xml", NULL,
				    XML_PARSE_NONET);
	xmlXPathContext *ctx;
	xmlXPathObject *o;
	char *out;

	g_assert_nonnull(doc);
	ctx = xmlXPathNewContext(doc);
	o = xmlXPathEvalExpression(BAD_CAST expr, ctx);
	g_assert_nonnull(o);
	{
		xmlChar *s = xmlXPathCastToString(o);

		out = g_strdup((const char *)s);
		xmlFree(s);
	}
	xmlXPathFreeObject(o);
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
	return out;
}

#define XP_EQ(xml, expr, want)                                \
	do {                                                  \
		g_autofree char *got_ = xpath((xml), (expr)); \
		g_assert_cmpstr(got_, ==, (want));            \
	} while (0)

static void test_read(void)
{
	g_autofree char *xml = sample("libvirt-live-pinned.xml");
	g_auto(VsMigDomain) d = { 0 };
	g_autofree char *c0 = NULL, *c1 = NULL;

	g_assert_true(vs_mig_read(xml, strlen(xml), &d, NULL));
	g_assert_cmpstr(d.name, ==, "a");
	g_assert_cmpuint(d.nvcpus, ==, 2);
	g_assert_cmpuint(d.ncells, ==, 2);
	c0 = vs_cpuset_format(&d.cells[0].vcpus);
	c1 = vs_cpuset_format(&d.cells[1].vcpus);
	g_assert_cmpstr(c0, ==, "0");
	g_assert_cmpstr(c1, ==, "1");
	g_assert_cmpuint(d.cells[0].mem_kib, ==, 262144);
	g_assert_cmpuint(d.cells[1].mem_kib, ==, 262144);
}

static void places_swap(VsMigPlace p[2])
{
	memset(p, 0, 2 * sizeof(*p));
	/* guest cell 0 on host node 1 (pCPUs 2-3), cell 1 on node 0 */
	p[0].cell = 0;
	p[0].node = 1;
	g_assert_true(vs_cpuset_parse("2-3", &p[0].cpus, NULL));
	p[1].cell = 1;
	p[1].node = 0;
	g_assert_true(vs_cpuset_parse("0-1", &p[1].cpus, NULL));
}

static void test_rewrite(void)
{
	g_autofree char *orig = sample("libvirt-live-pinned.xml");
	/* what a real domain carries too: scheduler tuning, numad
	 * placement, another application's metadata and ours */
	g_autofree char *t1 =
		edit(orig, "<cputune>", "<cputune><shares>2048</shares>");
	g_autofree char *t2 =
		edit(t1, "<vcpu placement='static'>",
		     "<metadata><app:x xmlns:app='urn:other'>keep</app:x>"
		     "<vshare:profile xmlns:vshare='urn:vshare:profile:1' "
		     "mpki='12.5'/></metadata>"
		     "<numatune><memory mode='interleave' placement='auto'/>"
		     "</numatune><vcpu placement='auto'>");
	g_auto(VsMigDomain) d = { 0 };
	g_autoptr(GError) error = NULL;
	VsMigPlace p[2];
	g_autofree char *out = NULL;

	g_assert_true(vs_mig_read(t2, strlen(t2), &d, &error));
	places_swap(p);
	out = vs_mig_rewrite(t2, strlen(t2), &d, p, 2, &error);
	g_assert_no_error(error);
	XP_EQ(out, "count(/domain/cputune/vcpupin)", "2");
	XP_EQ(out, "/domain/cputune/vcpupin[@vcpu='0']/@cpuset", "2-3");
	XP_EQ(out, "/domain/cputune/vcpupin[@vcpu='1']/@cpuset", "0-1");
	XP_EQ(out, "/domain/cputune/emulatorpin/@cpuset", "0-3");
	XP_EQ(out, "/domain/cputune/shares", "2048");
	XP_EQ(out, "count(/domain/numatune)", "1");
	XP_EQ(out, "/domain/numatune/memory/@mode", "strict");
	XP_EQ(out, "/domain/numatune/memory/@nodeset", "0-1");
	XP_EQ(out, "count(/domain/numatune/memory/@placement)", "0");
	XP_EQ(out, "/domain/numatune/memnode[@cellid='0']/@nodeset", "1");
	XP_EQ(out, "/domain/numatune/memnode[@cellid='1']/@nodeset", "0");
	XP_EQ(out, "count(/domain/vcpu/@placement)", "0");
	XP_EQ(out, "/domain/vcpu", "2");
	/* the guest-visible layout and the metadata are untouched */
	XP_EQ(out, "/domain/cpu/numa/cell[@id='0']/@cpus", "0");
	XP_EQ(out, "/domain/cpu/numa/cell[@id='1']/@cpus", "1");
	XP_EQ(out, "/domain/cpu/numa/cell[@id='1']/@memory", "262144");
	XP_EQ(out, "/domain/metadata/*[local-name()='x']", "keep");
	XP_EQ(out,
	      "/domain/metadata/*[namespace-uri()='urn:vshare:profile:1']"
	      "/@mpki",
	      "12.5");
}

/* vshared says the host's nodes are not the kernel's (a declared layout):
 * vCPUs pinned, libvirt's <numatune> left exactly as it was. */
static void test_no_binding(void)
{
	g_autofree char *orig = sample("libvirt-live-pinned.xml");
	g_autofree char *xml =
		edit(orig, "<vcpu placement='static'>",
		     "<numatune><memory mode='preferred' nodeset='0'/>"
		     "</numatune><vcpu placement='static'>");
	g_auto(VsMigDomain) d = { 0 };
	g_autoptr(GError) error = NULL;
	VsMigPlace p[2];
	g_autofree char *out = NULL;

	g_assert_true(vs_mig_read(xml, strlen(xml), &d, &error));
	places_swap(p);
	p[0].node = p[1].node = -1;
	out = vs_mig_rewrite(xml, strlen(xml), &d, p, 2, &error);
	g_assert_no_error(error);
	XP_EQ(out, "/domain/cputune/vcpupin[@vcpu='0']/@cpuset", "2-3");
	XP_EQ(out, "count(/domain/numatune)", "1");
	XP_EQ(out, "/domain/numatune/memory/@mode", "preferred");
	XP_EQ(out, "/domain/numatune/memory/@nodeset", "0");
	XP_EQ(out, "count(/domain/numatune/memnode)", "0");
	p[0].node = -2;
	g_clear_pointer(&out, g_free);
	g_assert_null(vs_mig_rewrite(xml, strlen(xml), &d, p, 2, &error));
}

/* No guest NUMA: one cell with every vCPU; no memnode is written. */
static void test_flat(void)
{
	const char *xml = "<domain type='kvm'><name>flat</name>"
			  "<memory unit='KiB'>1048576</memory>"
			  "<vcpu>3</vcpu></domain>";
	g_auto(VsMigDomain) d = { 0 };
	VsMigPlace p = { .cell = 0, .node = 1 };
	g_autofree char *out = NULL, *c0 = NULL;

	g_assert_true(vs_mig_read(xml, strlen(xml), &d, NULL));
	g_assert_cmpuint(d.ncells, ==, 1);
	c0 = vs_cpuset_format(&d.cells[0].vcpus);
	g_assert_cmpstr(c0, ==, "0-2");
	g_assert_cmpuint(d.cells[0].mem_kib, ==, 1048576);
	g_assert_true(vs_cpuset_parse("4-7", &p.cpus, NULL));
	out = vs_mig_rewrite(xml, strlen(xml), &d, &p, 1, NULL);
	g_assert_nonnull(out);
	XP_EQ(out, "count(/domain/cputune/vcpupin)", "3");
	XP_EQ(out, "/domain/cputune/vcpupin[@vcpu='2']/@cpuset", "4-7");
	XP_EQ(out, "/domain/numatune/memory/@nodeset", "1");
	XP_EQ(out, "count(/domain/numatune/memnode)", "0");
}

static void refused(const char *xml, const char *needle)
{
	g_auto(VsMigDomain) d = { 0 };
	g_autoptr(GError) error = NULL;

	g_assert_false(vs_mig_read(xml, strlen(xml), &d, &error));
	g_assert_nonnull(error);
	if (!strstr(error->message, needle))
		g_error("'%s': wanted '%s'", error->message, needle);
}

static void test_hostile(void)
{
	g_autofree char *orig = sample("libvirt-live-pinned.xml");
	g_autofree char *overlap = edit(orig, "cpus='1'", "cpus='0-1'");
	g_autofree char *beyond = edit(orig, "cpus='1'", "cpus='1-5'");
	g_autofree char *missing = edit(orig, "cpus='1'", "cpus=''");
	g_autofree char *gap = edit(orig, "<vcpu placement='static'>2",
				    "<vcpu placement='static'>3");
	g_autofree char *dup = edit(orig, "<cell id='1'", "<cell id='0'");
	g_autofree char *unit = edit(orig, "unit='KiB'/>", "unit='parsec'/>");
	g_autofree char *noname =
		edit(orig, "<name>a</name>", "<name>../../etc</name>");
	g_autofree char *huge = g_malloc0(VS_MIG_MAX_XML + 2);
	GString *many = g_string_new("<domain><name>m</name><vcpu>65</vcpu>"
				     "<cpu><numa>");

	refused("not xml at all", "not well-formed");
	refused("<domain><name>a</name>", "not well-formed");
	refused("<qemu><name>a</name></qemu>", "not <domain>");
	refused(overlap, "overlap");
	refused(beyond, "exceed");
	refused(missing, "cell cpus");
	refused(gap, "a vCPU is in no guest cell");
	refused(dup, "twice");
	refused(unit, "unit unknown");
	refused(noname, "domain name");
	refused("<domain><name>a</name><vcpu>0</vcpu></domain>",
		"<vcpu> is not a vCPU count");
	refused("<domain><name>a</name><vcpu>x</vcpu></domain>",
		"<vcpu> is not a vCPU count");
	/* an external entity is never fetched: no DOCTYPE is read at all */
	refused("<?xml version='1.0'?><!DOCTYPE domain [<!ENTITY e SYSTEM "
		"'file:///etc/hostname'>]><domain><name>&e;</name>"
		"<vcpu>1</vcpu></domain>",
		"a DOCTYPE");
	memset(huge, ' ', VS_MIG_MAX_XML + 1);
	{
		g_auto(VsMigDomain) d = { 0 };
		g_autoptr(GError) error = NULL;

		g_assert_false(
			vs_mig_read(huge, VS_MIG_MAX_XML + 1, &d, &error));
		g_assert_nonnull(strstr(error->message, "16 MiB"));
	}
	for (guint i = 0; i < 65; i++)
		g_string_append_printf(
			many, "<cell id='%u' cpus='%u' memory='1'/>", i, i);
	g_string_append(many, "</numa></cpu></domain>");
	refused(many->str, "64 guest NUMA cells");
	g_string_free(many, TRUE);
}

/* Entities that expand (a 100 KB input became 100 MB of text and of
 * libvirtd's log before): refused as a DOCTYPE, in UTF-8 and in an
 * encoding the byte check cannot read; no error quotes the input. */
static void test_entities(void)
{
	GString *laughs = g_string_new(
		"<?xml version='1.0'?><!DOCTYPE domain [<!ENTITY a0 'PWNED'>");
	g_autofree char *orig = sample("libvirt-live-pinned.xml");
	g_autofree char *named =
		edit(orig, "<name>a</name>", "<name>PWNED/../x</name>");
	g_autofree char *vcpu = edit(orig, "<vcpu placement='static'>2",
				     "<vcpu placement='static'>PWNED");
	g_autofree char *unit = edit(orig, "unit='KiB'/>", "unit='PWNED'/>");
	const char *echo[] = { named, vcpu, unit };
	g_autofree char *u16 = NULL;
	gsize u16len = 0;

	for (guint i = 1; i < 10; i++)
		g_string_append_printf(
			laughs,
			"<!ENTITY a%u "
			"'&a%u;&a%u;&a%u;&a%u;&a%u;&a%u;&a%u;&a%u;&a%u;&a%u;'>",
			i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1,
			i - 1, i - 1, i - 1);
	g_string_append(laughs, "]><domain><name>&a9;</name><vcpu>&a9;</vcpu>"
				"</domain>");
	refused(laughs->str, "a DOCTYPE");
	/* the byte check cannot see it: the parsed document's DTD is */
	u16 = g_convert("<?xml version='1.0' encoding='UTF-16'?><!DOCTYPE "
			"domain []><domain><name>a</name><vcpu>1</vcpu>"
			"</domain>",
			-1, "UTF-16", "UTF-8", NULL, &u16len, NULL);
	g_assert_nonnull(u16);
	{
		g_auto(VsMigDomain) d = { 0 };
		g_autoptr(GError) error = NULL;

		g_assert_false(vs_mig_read(u16, u16len, &d, &error));
		g_test_message("UTF-16: %s", error->message);
		g_assert_nonnull(strstr(error->message, "DOCTYPE"));
	}
	for (guint i = 0; i < G_N_ELEMENTS(echo); i++) {
		g_auto(VsMigDomain) d = { 0 };
		g_autoptr(GError) error = NULL;

		g_assert_false(
			vs_mig_read(echo[i], strlen(echo[i]), &d, &error));
		g_test_message("%s", error->message);
		g_assert_null(strstr(error->message, "PWNED"));
	}
	g_string_free(laughs, TRUE);
}

static void test_bad_places(void)
{
	g_autofree char *xml = sample("libvirt-live-pinned.xml");
	g_auto(VsMigDomain) d = { 0 };
	VsMigPlace p[2];
	g_autoptr(GError) e1 = NULL, e2 = NULL, e3 = NULL;

	g_assert_true(vs_mig_read(xml, strlen(xml), &d, NULL));
	places_swap(p);
	g_assert_null(vs_mig_rewrite(xml, strlen(xml), &d, p, 1, &e1));
	g_assert_nonnull(strstr(e1->message, "per guest cell"));
	p[1].cell = 7;
	g_assert_null(vs_mig_rewrite(xml, strlen(xml), &d, p, 2, &e2));
	g_assert_nonnull(strstr(e2->message, "without a node"));
	places_swap(p);
	vs_cpuset_clear(&p[0].cpus);
	g_assert_null(vs_mig_rewrite(xml, strlen(xml), &d, p, 2, &e3));
	g_assert_nonnull(strstr(e3->message, "without a node or pCPUs"));
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/migxml/read", test_read);
	g_test_add_func("/migxml/rewrite", test_rewrite);
	g_test_add_func("/migxml/flat", test_flat);
	g_test_add_func("/migxml/hostile", test_hostile);
	g_test_add_func("/migxml/entities", test_entities);
	g_test_add_func("/migxml/bad-places", test_bad_places);
	g_test_add_func("/migxml/no-binding", test_no_binding);
	return g_test_run();
}
