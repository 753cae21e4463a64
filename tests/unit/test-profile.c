// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of profile.c (GLib test framework, TAP output): the JSON
 * form and every refusal, classification at its thresholds, the libvirt
 * metadata element through a full domain XML, the declared file in a
 * temporary CONF, resctrl on a fake sysfs tree, and the PMU probe (on a
 * host without a PMU it must say so in one line; with one, a busy thread
 * is sampled).
 */
#include "vshare-profile.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static JsonNode *json(const char *text)
{
	g_autoptr(JsonParser) p = json_parser_new();

	g_assert_true(json_parser_load_from_data(p, text, -1, NULL));
	return json_node_copy(json_parser_get_root(p));
}

static void assert_same(const VsProfile *a, const VsProfile *b)
{
	g_assert_cmpfloat(a->mpki, ==, b->mpki);
	g_assert_cmpfloat(a->miss_ratio, ==, b->miss_ratio);
	g_assert_cmpfloat(a->bandwidth_mbps, ==, b->bandwidth_mbps);
	g_assert_cmpint(a->klass, ==, b->klass);
	g_assert_cmpint(a->node, ==, b->node);
	g_assert_cmpstr(a->source, ==, b->source);
	g_assert_cmpint(a->time, ==, b->time);
}

static VsProfile sample_profile(void)
{
	VsProfile p;

	vs_profile_init(&p);
	p.mpki = 12.5;
	p.miss_ratio = 0.4;
	p.bandwidth_mbps = 3200;
	p.klass = VS_PROFILE_MEMORY;
	p.node = 1;
	g_strlcpy(p.source, "declared", sizeof(p.source));
	p.time = 1700000000;
	return p;
}

/* ---- JSON ----------------------------------------------------------------- */

static void test_json_roundtrip(void)
{
	VsProfile p = sample_profile(), q, r;
	g_autoptr(JsonNode) n = vs_profile_to_json(&p);
	g_autoptr(JsonNode) m = NULL;
	g_autoptr(GError) e = NULL;

	g_assert_true(vs_profile_from_json(n, &q, &e));
	g_assert_no_error(e);
	assert_same(&p, &q);

	/* the declared form: class computed, numbers as integers */
	m = json("{\"mpki\": 1, \"bandwidth-mbps\": 3200, \"node\": 0}");
	g_assert_true(vs_profile_from_json(m, &r, &e));
	g_assert_cmpint(r.klass, ==, VS_PROFILE_MEMORY);
	g_assert_cmpfloat(r.mpki, ==, 1.0);
	g_assert_cmpfloat(r.miss_ratio, <, 0);
	g_assert_cmpint(r.node, ==, 0);
}

static void test_json_hostile(void)
{
	static const struct {
		const char *text, *msg;
	} bad[] = {
		{ "[1]", "not a JSON object" },
		{ "{}", "none of mpki, bandwidth-mbps, class" },
		{ "{\"node\": 1}", "none of mpki" },
		{ "{\"mpki\": \"12\"}", "mpki must be a number" },
		{ "{\"mpki\": true}", "mpki must be a number" },
		{ "{\"mpki\": null}", "mpki must be a number" },
		{ "{\"mpki\": [1]}", "mpki must be a number" },
		{ "{\"mpki\": \"NaN\"}", "mpki must be a number" },
		{ "{\"mpki\": -1}", "mpki -1 is negative" },
		{ "{\"mpki\": 1000.5}", "mpki 1000.5 is absurd" },
		{ "{\"miss-ratio\": 1.5, \"mpki\": 1}",
		  "miss-ratio 1.5 is absurd" },
		{ "{\"bandwidth-mbps\": 2e7}",
		  "bandwidth-mbps 2e+07 is absurd" },
		{ "{\"bandwidth-mbps\": -0.5}", "is negative" },
		{ "{\"mpki\": 1, \"node\": 64}", "node 64 is outside 0..63" },
		{ "{\"mpki\": 1, \"node\": -1}", "node -1 is outside 0..63" },
		{ "{\"mpki\": 1, \"node\": 1.0}", "node must be an integer" },
		{ "{\"mpki\": 1, \"node\": \"1\"}", "node must be an integer" },
		{ "{\"class\": \"io\"}", "unknown class 'io'" },
		{ "{\"class\": \"unknown\"}", "unknown class 'unknown'" },
		{ "{\"class\": 1}", "class must be a string" },
		{ "{\"mpki\": 1, \"source\": \"guess\"}",
		  "unknown source 'guess'" },
		{ "{\"mpki\": 1, \"time\": -5}", "time -5 is negative" },
		{ "{\"mpki\": 1, \"mpkj\": 2}", "unknown member 'mpkj'" },
	};
	VsProfile p;

	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(JsonNode) n = json(bad[i].text);
		g_autoptr(GError) e = NULL;

		g_assert_false(vs_profile_from_json(n, &p, &e));
		g_assert_error(e, VS_HOST_ERROR, VS_HOST_ERROR_CORRUPT);
		if (!strstr(e->message, bad[i].msg))
			g_error("%s: '%s' lacks '%s'", bad[i].text, e->message,
				bad[i].msg);
	}
}

/* NaN and infinities cannot be written in JSON; a caller can build them. */
static void test_json_nonfinite(void)
{
	const double v[] = { NAN, INFINITY, -INFINITY };
	VsProfile p;

	for (guint i = 0; i < G_N_ELEMENTS(v); i++) {
		g_autoptr(JsonNode) n = json_node_new(JSON_NODE_OBJECT);
		g_autoptr(JsonObject) o = json_object_new();
		g_autoptr(GError) e = NULL;

		json_object_set_double_member(o, "mpki", v[i]);
		json_node_set_object(n, o);
		g_assert_false(vs_profile_from_json(n, &p, &e));
		g_assert_error(e, VS_HOST_ERROR, VS_HOST_ERROR_CORRUPT);
		g_assert_nonnull(strstr(e->message, "not a finite number"));
	}
	g_assert_false(vs_profile_from_json(NULL, &p, NULL));
}

/* ---- classification --------------------------------------------------------- */

static VsProfileClass cls(double mpki, double bw, double mt, double bt)
{
	VsProfile p;

	vs_profile_init(&p);
	p.mpki = mpki;
	p.bandwidth_mbps = bw;
	return vs_profile_classify(&p, mt, bt);
}

static void test_classify(void)
{
	/* defaults: 3.0 mpki, 1000 MB/s, both inclusive */
	g_assert_cmpint(cls(3.0, -1, 0, 0), ==, VS_PROFILE_MEMORY);
	g_assert_cmpint(cls(2.999, -1, 0, 0), ==, VS_PROFILE_CPU);
	g_assert_cmpint(cls(-1, 1000, 0, 0), ==, VS_PROFILE_MEMORY);
	g_assert_cmpint(cls(-1, 999.9, 0, 0), ==, VS_PROFILE_CPU);
	g_assert_cmpint(cls(0.5, 1000, 0, 0), ==, VS_PROFILE_MEMORY);
	g_assert_cmpint(cls(3.5, 10, 0, 0), ==, VS_PROFILE_MEMORY);
	g_assert_cmpint(cls(0, 0, 0, 0), ==, VS_PROFILE_CPU);
	g_assert_cmpint(cls(-1, -1, 0, 0), ==, VS_PROFILE_UNKNOWN);
	/* thresholds as parameters */
	g_assert_cmpint(cls(3.0, -1, 10, 0), ==, VS_PROFILE_CPU);
	g_assert_cmpint(cls(10, -1, 10, 0), ==, VS_PROFILE_MEMORY);
	g_assert_cmpint(cls(-1, 1000, 0, 5000), ==, VS_PROFILE_CPU);
	g_assert_cmpint(cls(-1, 5000, 0, 5000), ==, VS_PROFILE_MEMORY);
	g_assert_cmpstr(vs_profile_class_name(VS_PROFILE_MEMORY), ==, "memory");
	g_assert_cmpstr(vs_profile_class_name(VS_PROFILE_CPU), ==, "cpu");
}

static void test_counts(void)
{
	VsPmuCounts c = { .llc_misses = 5000,
			  .llc_refs = 20000,
			  .instructions = 1000000,
			  .cycles = 2000000,
			  .elapsed_us = 100000 };
	VsPmuCounts none = { 0 };
	VsProfile p;

	vs_profile_from_counts(&c, &p);
	g_assert_cmpfloat_with_epsilon(p.mpki, 5.0, 1e-9);
	g_assert_cmpfloat_with_epsilon(p.miss_ratio, 0.25, 1e-9);
	/* 5000 lines of 64 bytes in 0.1 s: 3.2 MB/s */
	g_assert_cmpfloat_with_epsilon(p.bandwidth_mbps, 3.2, 1e-9);
	g_assert_cmpint(p.klass, ==, VS_PROFILE_MEMORY);
	g_assert_cmpstr(p.source, ==, "perf");
	g_assert_cmpint(p.node, ==, -1);
	vs_profile_from_counts(&none, &p);
	g_assert_cmpfloat(p.mpki, <, 0);
	g_assert_cmpint(p.klass, ==, VS_PROFILE_UNKNOWN);
}

/* ---- libvirt metadata ------------------------------------------------------------ */

static const char domain_head[] =
	"<domain type='kvm' id='3'>\n"
	"  <name>vm-a</name>\n"
	"  <uuid>2c5a4c3e-7f61-4d0e-9a35-0e5b1d7f3a10</uuid>\n"
	"  <metadata>\n"
	"    <libosinfo:libosinfo "
	"xmlns:libosinfo=\"http://libosinfo.org/xmlns/libvirt/domain/1.0\">\n"
	"      <libosinfo:os id=\"http://debian.org/debian/12\"/>\n"
	"    </libosinfo:libosinfo>\n"
	"    <other:profile xmlns:other=\"urn:example:other\" mpki=\"99\"/>\n";
static const char domain_tail[] =
	"  </metadata>\n"
	"  <memory unit='KiB'>2097152</memory>\n"
	"  <vcpu placement='static'>2</vcpu>\n"
	"  <devices>\n"
	"    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
	"  </devices>\n"
	"</domain>\n";

static char *domain_with(const char *meta)
{
	return g_strconcat(domain_head, meta ? meta : "", domain_tail, NULL);
}

static void test_metadata_roundtrip(void)
{
	VsProfile p = sample_profile(), q;
	g_autofree char *el = vs_profile_to_metadata_xml(&p);
	g_autofree char *renamed = NULL, *xml = NULL, *dflt = NULL;
	g_autoptr(GError) e = NULL;

	g_assert_true(g_str_has_prefix(el, "<profile "));
	g_assert_null(strstr(el, "xmlns"));
	g_assert_nonnull(strstr(el, " mpki=\"12.5\""));
	g_assert_nonnull(strstr(el, " miss-ratio=\"0.4\""));
	g_assert_nonnull(strstr(el, " class=\"memory\""));
	/* what libvirt stores: the element in the namespace, prefix = key */
	{
		g_autofree char *ns = g_strconcat(
			"<vshare:profile xmlns:vshare=\"urn:vshare:profile:1\"",
			el + strlen("<profile"), NULL);

		xml = domain_with(ns);
	}
	g_assert_true(vs_profile_from_domain_xml(xml, &q, &e));
	g_assert_no_error(e);
	assert_same(&p, &q);

	/* libvirt rewrites the prefix to the key it was given */
	renamed = domain_with(
		"    <vs1:profile xmlns:vs1='urn:vshare:profile:1' "
		"mpki='12.5' miss-ratio='0.4' bandwidth-mbps='3200' "
		"class='memory' node='1' source='declared' "
		"time='1700000000'/>\n");
	g_assert_true(vs_profile_from_domain_xml(renamed, &q, &e));
	assert_same(&p, &q);

	/* a default namespace, nested, class computed */
	dflt = domain_with("    <wrap><profile xmlns='urn:vshare:profile:1' "
			   "mpki='0.5'/></wrap>\n");
	g_assert_true(vs_profile_from_domain_xml(dflt, &q, &e));
	g_assert_cmpfloat(q.mpki, ==, 0.5);
	g_assert_cmpint(q.klass, ==, VS_PROFILE_CPU);
	g_assert_cmpint(q.node, ==, -1);
}

static void test_metadata_missing(void)
{
	static const char outside[] =
		"<domain><name>x</name><metadata/>"
		"<vshare:profile xmlns:vshare='urn:vshare:profile:1' "
		"mpki='5'/></domain>";
	g_autofree char *none = domain_with(NULL);
	g_autoptr(GError) e1 = NULL, e2 = NULL, e3 = NULL;
	VsProfile q;

	/* another namespace's <profile> is not ours */
	g_assert_false(vs_profile_from_domain_xml(none, &q, &e1));
	g_assert_error(e1, VS_HOST_ERROR, VS_PROFILE_ABSENT);
	g_assert_nonnull(strstr(e1->message, "no profile element"));
	/* outside <metadata> does not count */
	g_assert_false(vs_profile_from_domain_xml(outside, &q, &e2));
	g_assert_error(e2, VS_HOST_ERROR, VS_PROFILE_ABSENT);
	/* malformed XML */
	g_assert_false(
		vs_profile_from_domain_xml("<domain><metadata>", &q, &e3));
	g_assert_error(e3, VS_HOST_ERROR, VS_HOST_ERROR_FAILED);
	g_assert_false(vs_profile_from_domain_xml(NULL, &q, NULL));
}

static void test_metadata_hostile(void)
{
	static const struct {
		const char *el, *msg;
	} bad[] = {
		{ "<v:profile xmlns:v='urn:vshare:profile:1' mpki='nan'/>",
		  "not a finite number" },
		{ "<v:profile xmlns:v='urn:vshare:profile:1' mpki='inf'/>",
		  "not a finite number" },
		{ "<v:profile xmlns:v='urn:vshare:profile:1' mpki='12x'/>",
		  "mpki '12x' is not a number" },
		{ "<v:profile xmlns:v='urn:vshare:profile:1' mpki=''/>",
		  "is not a number" },
		{ "<v:profile xmlns:v='urn:vshare:profile:1' mpki='2000'/>",
		  "absurd" },
		{ "<v:profile xmlns:v='urn:vshare:profile:1' mpki='1' "
		  "node='64'/>",
		  "node 64 is outside" },
		{ "<v:profile xmlns:v='urn:vshare:profile:1' mpki='1' "
		  "node='1.5'/>",
		  "node '1.5' is not an integer" },
		{ "<v:profile xmlns:v='urn:vshare:profile:1' class='fast'/>",
		  "unknown class 'fast'" },
		{ "<v:profile xmlns:v='urn:vshare:profile:1' mpki='1' "
		  "colour='red'/>",
		  "unknown attribute 'colour'" },
		{ "<v:profile xmlns:v='urn:vshare:profile:1' node='1'/>",
		  "none of mpki" },
		{ "<v:profile xmlns:v='urn:vshare:profile:1' mpki='1'/>"
		  "<w:profile xmlns:w='urn:vshare:profile:1' mpki='2'/>",
		  "more than one profile" },
	};
	VsProfile q;

	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autofree char *xml = domain_with(bad[i].el);
		g_autoptr(GError) e = NULL;

		g_assert_false(vs_profile_from_domain_xml(xml, &q, &e));
		g_assert_error(e, VS_HOST_ERROR, VS_HOST_ERROR_CORRUPT);
		if (!strstr(e->message, bad[i].msg))
			g_error("%s: '%s' lacks '%s'", bad[i].el, e->message,
				bad[i].msg);
	}
}

/* ---- the declared file ------------------------------------------------------------- */

static void put(const char *dir, const char *name, const char *text)
{
	g_autofree char *path = g_build_filename(dir, name, NULL);

	g_assert_true(g_file_set_contents(path, text, -1, NULL));
}

static void test_declared(void)
{
	g_autofree char *conf = g_dir_make_tmp("vshare-profile-XXXXXX", NULL);
	g_autofree char *dir = g_build_filename(conf, "profiles", NULL);
	g_autofree char *big = g_strnfill(VS_PROFILE_MAX_FILE + 1, ' ');
	g_autofree char *link = g_build_filename(dir, "l.json", NULL);
	const char *tail[] = { "a.json", "bad.json", "big.json", "nan.json",
			       "l.json" };
	VsProfile p;
	GError *e = NULL;

	g_assert_cmpint(mkdir(dir, 0700), ==, 0);
	put(dir, "a.json",
	    "{\"mpki\": 12.5, \"miss-ratio\": 0.4, \"bandwidth-mbps\": 3200, "
	    "\"node\": 1}\n");
	put(dir, "bad.json", "{\"mpki\": 12.5,");
	put(dir, "nan.json", "{\"mpki\": 1, \"node\": 99}");
	put(dir, "big.json", big);
	g_assert_cmpint(symlink("a.json", link), ==, 0);

	g_assert_true(vs_profile_load_declared(conf, "a", &p, &e));
	g_assert_no_error(e);
	g_assert_cmpfloat(p.mpki, ==, 12.5);
	g_assert_cmpfloat(p.miss_ratio, ==, 0.4);
	g_assert_cmpfloat(p.bandwidth_mbps, ==, 3200);
	g_assert_cmpint(p.node, ==, 1);
	g_assert_cmpint(p.klass, ==, VS_PROFILE_MEMORY);
	g_assert_cmpstr(p.source, ==, "declared");
	g_assert_cmpint(p.time, >, 0);

	g_assert_false(vs_profile_load_declared(conf, "missing", &p, &e));
	g_assert_error(e, VS_HOST_ERROR, VS_PROFILE_ABSENT);
	g_clear_error(&e);
	g_assert_false(vs_profile_load_declared(conf, "../a", &p, &e));
	g_assert_error(e, VS_HOST_ERROR, VS_HOST_ERROR_USAGE);
	g_clear_error(&e);
	g_assert_false(vs_profile_load_declared(conf, "bad", &p, &e));
	g_assert_error(e, VS_HOST_ERROR, VS_HOST_ERROR_CORRUPT);
	g_assert_nonnull(strstr(e->message, "bad.json"));
	g_clear_error(&e);
	g_assert_false(vs_profile_load_declared(conf, "nan", &p, &e));
	g_assert_error(e, VS_HOST_ERROR, VS_HOST_ERROR_CORRUPT);
	g_assert_nonnull(strstr(e->message, "node 99 is outside 0..63"));
	g_clear_error(&e);
	g_assert_false(vs_profile_load_declared(conf, "big", &p, &e));
	g_assert_error(e, VS_HOST_ERROR, VS_HOST_ERROR_CORRUPT);
	g_assert_nonnull(strstr(e->message, "is larger than 65536 bytes"));
	g_clear_error(&e);
	/* a symlink is refused (O_NOFOLLOW) */
	g_assert_false(vs_profile_load_declared(conf, "l", &p, &e));
	g_assert_nonnull(e);
	g_clear_error(&e);

	for (guint i = 0; i < G_N_ELEMENTS(tail); i++) {
		g_autofree char *f = g_build_filename(dir, tail[i], NULL);

		g_assert_cmpint(unlink(f), ==, 0);
	}
	g_assert_cmpint(rmdir(dir), ==, 0);
	g_assert_cmpint(rmdir(conf), ==, 0);
}

/* ---- resctrl on a fake tree -------------------------------------------------------- */

static void mkfile(const char *root, const char *rel, const char *text)
{
	g_autofree char *path = g_build_filename(root, rel, NULL);
	g_autofree char *dir = g_path_get_dirname(path);

	g_assert_cmpint(g_mkdir_with_parents(dir, 0700), ==, 0);
	g_assert_true(g_file_set_contents(path, text, -1, NULL));
}

static void rm_rf(const char *path)
{
	g_autoptr(GDir) d = g_dir_open(path, 0, NULL);
	const char *name;

	while (d && (name = g_dir_read_name(d))) {
		g_autofree char *sub = g_build_filename(path, name, NULL);

		if (g_file_test(sub, G_FILE_TEST_IS_DIR))
			rm_rf(sub);
		else
			g_assert_cmpint(unlink(sub), ==, 0);
	}
	g_assert_cmpint(rmdir(path), ==, 0);
}

static void test_resctrl(void)
{
	g_autofree char *root = g_dir_make_tmp("vshare-resctrl-XXXXXX", NULL);
	g_autofree char *group =
		g_build_filename(root, "fs/resctrl/vm-a", NULL);
	g_autofree char *none = g_build_filename(root, "fs/resctrl/x", NULL);
	g_autoptr(GError) e = NULL, e2 = NULL;
	guint64 bytes = 0;

	g_assert_false(vs_resctrl_probe(root));
	mkfile(root, "fs/resctrl/info/L3_MON/mon_features",
	       "llc_occupancy\nmbm_local_bytes\n");
	g_assert_false(vs_resctrl_probe(root));
	mkfile(root, "fs/resctrl/info/L3_MON/mon_features",
	       "llc_occupancy\nmbm_total_bytes\nmbm_local_bytes\n");
	g_assert_true(vs_resctrl_probe(root));

	mkfile(group, "mon_data/mon_L3_00/mbm_total_bytes", "1000\n");
	mkfile(group, "mon_data/mon_L3_01/mbm_total_bytes", "2345\n");
	g_assert_true(vs_resctrl_mbm_bytes(group, &bytes, &e));
	g_assert_no_error(e);
	g_assert_cmpuint(bytes, ==, 3345);
	mkfile(group, "mon_data/mon_L3_01/mbm_total_bytes", "Unavailable\n");
	g_assert_false(vs_resctrl_mbm_bytes(group, &bytes, &e));
	g_assert_error(e, VS_HOST_ERROR, VS_HOST_ERROR_FAILED);
	g_assert_false(vs_resctrl_mbm_bytes(none, &bytes, &e2));
	g_assert_error(e2, VS_HOST_ERROR, VS_PROFILE_ABSENT);
	rm_rf(root);
}

/* ---- the PMU --------------------------------------------------------------------------- */

static gint busy_tid;
static gint busy_stop;

static gpointer busy(gpointer data)
{
	volatile guint64 x = 0;

	g_atomic_int_set(&busy_tid, (gint)syscall(SYS_gettid));
	while (!g_atomic_int_get(&busy_stop))
		x++;
	return NULL;
}

static void test_pmu(void)
{
	g_autoptr(GError) e = NULL;
	g_autoptr(GThread) t = NULL;
	VsPmuCounts c;
	int tid;

	if (!vs_pmu_probe(&e)) {
		g_test_message("%s", e->message);
		g_assert_error(e, VS_HOST_ERROR, VS_PROFILE_ABSENT);
		g_assert_true(g_str_has_prefix(
			e->message,
			"no usable PMU: perf_event_open(LLC misses): "));
		g_assert_nonnull(strstr(e->message, "; using declared profiles "
						    "(CONF/profiles/VM.json)"));
		g_assert_null(strchr(e->message, '\n'));
		g_test_skip(e->message); /* the real counters: a PMU host */
		return;
	}
	t = g_thread_new("busy", busy, NULL);
	while (!(tid = g_atomic_int_get(&busy_tid)))
		g_thread_yield();
	g_assert_true(vs_pmu_sample(&tid, 1, 50, &c, &e));
	g_assert_no_error(e);
	g_atomic_int_set(&busy_stop, 1);
	g_thread_join(g_steal_pointer(&t));
	g_assert_cmpuint(c.instructions, >, 0);
	g_assert_cmpint(c.elapsed_us, >=, 50000);
}

static void test_sample_usage(void)
{
	int tid = 0;
	VsProfile p;
	g_autoptr(GError) e = NULL, e2 = NULL;

	g_assert_false(vs_profile_sample(&tid, 0, 50, &p, &e));
	g_assert_error(e, VS_HOST_ERROR, VS_HOST_ERROR_USAGE);
	g_assert_false(vs_profile_sample(&tid, 1, 50, &p, &e2));
	g_assert_error(e2, VS_HOST_ERROR, VS_HOST_ERROR_USAGE);
}

/* ---- memmove.c: paced memory moves (a neighbour's memory) ------------ */

/* Captured from a QEMU under TCG (trimmed): guest RAM is the 256 MiB
 * rw-p mapping; the 8 MiB+ one is a thread stack region. */
static const char qemu_maps[] =
	"55d0c0a00000-55d0c0f8a000 r--p 00000000 08:01 1234 "
	"/usr/bin/qemu-system-x86_64\n"
	"55d0c2a00000-55d0c2e00000 rw-p 00000000 00:00 0 [heap]\n"
	"7f1a30000000-7f1a40000000 rw-p 00000000 00:00 0 \n"
	"7f1a40000000-7f1a40800000 rw-p 00000000 00:00 0 \n"
	"7f1a48000000-7f1a58000000 r-xp 00000000 00:00 0 \n"
	"7ffc9d1e0000-7ffc9d201000 rw-p 00000000 00:00 0 [stack]\n";

static void test_ram_ranges(void)
{
	g_autoptr(GArray) r = g_array_new(FALSE, FALSE, sizeof(VsRange));
	g_autoptr(GError) error = NULL;

	g_assert_true(
		vs_parse_ram_ranges(qemu_maps, VS_RAM_MIN_BYTES, r, &error));
	g_assert_cmpuint(r->len, ==, 2);
	g_assert_cmphex(g_array_index(r, VsRange, 0).start, ==,
			0x7f1a30000000ull);
	g_assert_cmpuint(g_array_index(r, VsRange, 0).len, ==, 256u << 20);
	g_assert_cmpuint(g_array_index(r, VsRange, 1).len, ==, 8u << 20);
	for (guint i = 0; i < 3; i++) {
		static const char *bad[] = { "zz-10 rw-p 0 0 0\n",
					     "20-10 rw-p 0 0 0\n", "10-20\n" };

		g_clear_error(&error);
		g_array_set_size(r, 0);
		g_assert_false(vs_parse_ram_ranges(bad[i], 0, r, &error));
		g_assert_nonnull(strstr(error->message, "not \"start-end"));
	}
}

/* A child holding 24 MiB of touched memory; its pid. */
static GPid ram_child(int *out_fd)
{
	const char *argv[] = { "python3", "-c",
			       "import sys, time\n"
			       "b = bytearray(24 << 20)\n"
			       "for i in range(0, len(b), 4096): b[i] = 1\n"
			       "print('ready', flush=True)\n"
			       "sys.stdin.read()\n",
			       NULL };
	GPid pid;
	int in, out;
	char buf[8] = "";
	gsize got = 0;

	g_assert_true(g_spawn_async_with_pipes(NULL, (char **)argv, NULL,
					       G_SPAWN_SEARCH_PATH, NULL, NULL,
					       &pid, &in, &out, NULL, NULL));
	/* blocks until ready; an unbuffered python (PYTHONUNBUFFERED in the
	 * environment) writes "ready" and "\n" in two writes */
	while (got < 6) {
		ssize_t n = read(out, buf + got, 6 - got);

		if (n < 0 && errno == EINTR)
			continue;
		g_assert_cmpint(n, >, 0);
		got += (gsize)n;
	}
	g_assert_cmpstr(buf, ==, "ready\n");
	close(out);
	*out_fd = in;
	return pid;
}

static void test_move_memory(void)
{
	g_autoptr(GError) error = NULL;
	VsMoveStats st;
	gint cancel = 0;
	int fd;
	GPid pid;
	guint64 mib;

	g_assert_false(vs_move_memory(1, VS_MAX_NODES, 64, NULL, &st, &error));
	g_assert_nonnull(strstr(error->message, "not a NUMA node"));
	if (!vs_node_is_real(0)) {
		g_test_skip("no NUMA node 0 in sysfs");
		return;
	}
	g_clear_error(&error);
	g_assert_false(vs_move_memory(G_MAXINT32, 0, 64, NULL, &st, &error));
	g_assert_error(error, VS_HOST_ERROR, VS_HOST_ERROR_GONE);
	g_clear_error(&error);
	pid = ram_child(&fd);
	/* node 0 (this host's one): every present page reports node 0, and
	 * the walk is paced: 24 MiB+ at 64 MiB/s takes 0.375 s or more */
	g_assert_true(vs_move_memory(pid, 0, 64, &cancel, &st, &error));
	mib = st.present >> 20;
	g_test_message(
		"moved: %" G_GUINT64_FORMAT " MiB present, %" G_GUINT64_FORMAT
		" pages on node 0, %" G_GUINT64_FORMAT " refused, %.3f s",
		mib, st.on_node, st.failed, st.usec / 1e6);
	g_assert_cmpuint(mib, >=, 24);
	g_assert_cmpuint(st.on_node * 4096, >=, 24u << 20);
	g_assert_cmpuint(st.failed, ==, 0);
	g_assert_cmpint(st.usec, >=,
			(gint64)(mib * G_USEC_PER_SEC / 64) * 9 / 10);
	/* cancelled: stops at the next chunk with an error */
	g_atomic_int_set(&cancel, 1);
	g_assert_false(vs_move_memory(pid, 0, 64, &cancel, &st, &error));
	g_assert_nonnull(strstr(error->message, "cancelled"));
	close(fd); /* the child reads EOF and exits */
	waitpid(pid, NULL, 0);
	g_spawn_close_pid(pid);
}

/* ---- transfer.c: the peer endpoint's authentication ------------------ */

static void test_transfer_mac(void)
{
	const guint8 *key = (const guint8 *)"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk";
	g_autofree char *nonce = g_strnfill(64, '0');
	const char *req = "{\"execute\":\"x\"}";
	/* python3: hmac.new(key, (nonce + "\n" + req).encode(), sha256) */
	const char *want = "ac9f7bdd38fb71e9e66b414dc01f5c42"
			   "94642cd7c088de66dba9eee6de5b9b1c";
	g_autofree char *mac = vs_transfer_mac(key, 32, nonce, req);
	g_autofree char *n1 = NULL, *n2 = NULL, *short_mac = NULL;

	g_assert_cmpstr(mac, ==, want);
	g_assert_true(vs_transfer_verify(key, 32, nonce, req, mac));
	g_assert_false(
		vs_transfer_verify(key, 32, nonce, "{\"execute\":\"y\"}", mac));
	g_assert_false(vs_transfer_verify(key, 31, nonce, req, mac));
	n1 = vs_transfer_nonce(NULL);
	n2 = vs_transfer_nonce(NULL);
	g_assert_cmpuint(strlen(n1), ==, 64);
	g_assert_cmpstr(n1, !=, n2); /* fresh each time */
	g_assert_false(vs_transfer_verify(key, 32, n1, req, mac));
	short_mac = g_strndup(mac, 63);
	g_assert_false(vs_transfer_verify(key, 32, nonce, req, short_mac));
	g_assert_false(vs_transfer_verify(key, 32, nonce, req, NULL));
}

static void test_transfer_key(void)
{
	g_autofree char *dir = g_dir_make_tmp("vs-key-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "peer.key", NULL);
	g_autofree char *link = g_build_filename(dir, "link.key", NULL);
	g_autoptr(GError) error = NULL;
	g_autofree guint8 *key = NULL;
	gsize len = 0;

	g_assert_null(vs_transfer_key_load(path, &len, &error));
	g_assert_error(error, VS_HOST_ERROR, VS_HOST_ERROR_UNSUPPORTED);
	g_clear_error(&error);
	g_assert_true(g_file_set_contents(path, "short\n", -1, NULL));
	chmod(path, 0600);
	g_assert_null(vs_transfer_key_load(path, &len, &error));
	g_assert_nonnull(strstr(error->message, "at least 32"));
	g_clear_error(&error);
	g_assert_true(g_file_set_contents(
		path, "0123456789abcdef0123456789abcdef01234567\n", -1, NULL));
	chmod(path, 0644);
	g_assert_null(vs_transfer_key_load(path, &len, &error));
	g_assert_nonnull(strstr(error->message, "mode 0600"));
	g_clear_error(&error);
	chmod(path, 0600);
	g_assert_cmpint(symlink(path, link), ==, 0);
	g_assert_null(vs_transfer_key_load(link, &len, &error));
	g_assert_error(error, VS_HOST_ERROR, VS_HOST_ERROR_REFUSED);
	g_clear_error(&error);
	key = vs_transfer_key_load(path, &len, &error);
	g_assert_no_error(error);
	g_assert_cmpuint(len, ==, 40); /* the newline is not key */
	unlink(link);
	unlink(path);
	rmdir(dir);
}

static void test_transfer_split(void)
{
	static const char *bad[] = { "host", ":1", "h:0", "h:70000",
				     "h:x",  "h:", "" };
	g_autofree char *h = NULL, *p = NULL, *h6 = NULL, *p6 = NULL;
	g_autoptr(GError) error = NULL;

	g_assert_true(vs_transfer_split("127.0.0.1:7000", &h, &p, NULL));
	g_assert_cmpstr(h, ==, "127.0.0.1");
	g_assert_cmpstr(p, ==, "7000");
	g_assert_true(vs_transfer_split("[::1]:7001", &h6, &p6, NULL));
	g_assert_cmpstr(h6, ==, "::1");
	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		char *x = NULL, *y = NULL;

		g_clear_error(&error);
		g_assert_false(vs_transfer_split(bad[i], &x, &y, &error));
		g_assert_nonnull(strstr(error->message, "HOST:PORT"));
		g_assert_null(x);
	}
}

/* Nobody listens: an error at once, not a hang. */
static void test_transfer_unreachable(void)
{
	const guint8 *key = (const guint8 *)"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk";
	g_autoptr(GError) error = NULL;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	g_autofree char *peer = NULL;
	gint64 t0;

	/* a port that was free a moment ago */
	g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
	g_assert_cmpint(getsockname(fd, (struct sockaddr *)&sa, &len), ==, 0);
	close(fd);
	peer = g_strdup_printf("127.0.0.1:%u", ntohs(sa.sin_port));
	t0 = g_get_monotonic_time();
	g_assert_null(vs_transfer_send(peer, key, 32, "{}", 2000, &error));
	g_assert_error(error, VS_HOST_ERROR, VS_HOST_ERROR_UNREACHABLE);
	g_assert_cmpint(g_get_monotonic_time() - t0, <, 2000000);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/profile/json/roundtrip", test_json_roundtrip);
	g_test_add_func("/profile/json/hostile", test_json_hostile);
	g_test_add_func("/profile/json/nonfinite", test_json_nonfinite);
	g_test_add_func("/profile/classify", test_classify);
	g_test_add_func("/profile/counts", test_counts);
	g_test_add_func("/profile/metadata/roundtrip", test_metadata_roundtrip);
	g_test_add_func("/profile/metadata/missing", test_metadata_missing);
	g_test_add_func("/profile/metadata/hostile", test_metadata_hostile);
	g_test_add_func("/profile/declared", test_declared);
	g_test_add_func("/profile/resctrl", test_resctrl);
	g_test_add_func("/profile/pmu", test_pmu);
	g_test_add_func("/profile/sample-usage", test_sample_usage);
	g_test_add_func("/memmove/ranges", test_ram_ranges);
	g_test_add_func("/memmove/move", test_move_memory);
	g_test_add_func("/transfer/mac", test_transfer_mac);
	g_test_add_func("/transfer/key", test_transfer_key);
	g_test_add_func("/transfer/split", test_transfer_split);
	g_test_add_func("/transfer/unreachable", test_transfer_unreachable);
	return g_test_run();
}
