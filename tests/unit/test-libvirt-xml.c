// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The libvirt driver's pure readers on captured text: live domain XML from
 * tests/libvirt's domains (tests/unit/data/libvirt-*.xml; VSHARE_TEST_DATA
 * moves the directory) and /proc/PID/cgroup of a libvirt QEMU.
 */
#include "vmdrv-libvirt.h"

#include "testdata.h"

#include <string.h>

#define KiB 1024ULL

static VsVmem *vmem(VsLvDomain *d, guint i)
{
	return g_ptr_array_index(d->vmems, i);
}

static void test_pinned(void)
{
	g_autofree char *xml = sample("libvirt-live-pinned.xml");
	VsLvDomain d = { 0 };

	g_assert_true(vs_lv_parse_domain(xml, &d, NULL));
	g_assert_cmpstr(d.name, ==, "a");
	g_assert_cmpstr(d.uuid, ==, "ca2ecd9e-fb68-43af-9335-594a693cb5df");
	g_assert_true(g_str_has_suffix(d.agent_path, "/dom/a/agent.sock"));
	g_assert_cmpuint(d.n_vcpus, ==, 2);
	g_assert_cmpint(g_array_index(d.vcpu_node, int, 0), ==, 0);
	g_assert_cmpint(g_array_index(d.vcpu_node, int, 1), ==, 1);
	g_assert_cmpint(d.quota, ==, -1);
	g_assert_cmpuint(d.vmems->len, ==, 2);
	for (guint i = 0; i < 2; i++) {
		g_autofree char *alias = g_strdup_printf("virtiomem%u", i);

		g_assert_cmpstr(vmem(&d, i)->id, ==, alias);
		g_assert_cmpint(vmem(&d, i)->node, ==, (int)i);
		g_assert_cmpuint(vmem(&d, i)->max, ==, 524288 * KiB);
		g_assert_cmpuint(vmem(&d, i)->block, ==, 2048 * KiB);
	}
	g_assert_cmpuint(vmem(&d, 1)->requested, ==, 133120 * KiB);
	g_assert_cmpuint(vmem(&d, 1)->size, ==, 133120 * KiB);
	vs_lv_domain_clear(&d);
}

/* Captured while the guest was plugging: current below requested. */
static void test_resizing(void)
{
	g_autofree char *xml = sample("libvirt-live-resizing.xml");
	VsLvDomain d = { 0 };

	g_assert_true(vs_lv_parse_domain(xml, &d, NULL));
	g_assert_cmpstr(d.name, ==, "b");
	g_assert_cmpuint(vmem(&d, 1)->requested, ==, 393216 * KiB);
	g_assert_cmpuint(vmem(&d, 1)->size, ==, 262144 * KiB);
	g_assert_cmpuint(vmem(&d, 0)->size, ==, 131072 * KiB);
	vs_lv_domain_clear(&d);
}

static void test_quota(void)
{
	g_autofree char *xml = sample("libvirt-live-quota.xml");
	VsLvDomain d = { 0 };

	g_assert_true(vs_lv_parse_domain(xml, &d, NULL));
	g_assert_cmpint(d.quota, ==, 50000);
	vs_lv_domain_clear(&d);
}

/* The update is the device as libvirt wrote it but for <requested>. */
static void test_update_xml(void)
{
	g_autofree char *xml = sample("libvirt-live-resizing.xml");
	g_autofree char *up = NULL;
	g_autoptr(GError) e = NULL;
	VsLvDomain d = { 0 };

	g_assert_true(vs_lv_parse_domain(xml, &d, NULL));
	up = vs_lv_vmem_update_xml(g_ptr_array_index(d.vmem_xml, 1), 135266304,
				   NULL);
	g_assert_true(g_str_has_prefix(up, "<memory model='virtio-mem'>"));
	g_assert_true(g_str_has_suffix(up, "</memory>"));
	g_assert_nonnull(
		strstr(up, "<requested unit='KiB'>132096</requested>"));
	g_assert_nonnull(strstr(up, "<current unit='KiB'>262144</current>"));
	g_assert_nonnull(strstr(up, "<node>1</node>"));
	g_assert_nonnull(strstr(up, "<alias name='virtiomem1'>"));
	g_assert_nonnull(strstr(up, "slot='0x04'"));
	g_assert_null(strstr(up, "393216"));
	g_assert_null(vs_lv_vmem_update_xml(g_ptr_array_index(d.vmem_xml, 1),
					    1000, &e));
	g_assert_true(vs_error_is(e, VS_HOST_ERROR_USAGE));
	vs_lv_domain_clear(&d);
}

static void test_units(void)
{
	g_autofree char *xml = sample("libvirt-live-pinned.xml");
	g_autofree char *mib = edit(xml, "<size unit='KiB'>524288</size>",
				    "<size unit='MiB'>512</size>");
	g_autofree char *big = edit(xml, "<size unit='KiB'>524288</size>",
				    "<size unit='TiB'>99999999</size>");
	g_autofree char *odd = edit(xml, "<size unit='KiB'>524288</size>",
				    "<size unit='parsecs'>1</size>");
	g_autoptr(GError) e = NULL;
	VsLvDomain d = { 0 };

	g_assert_true(vs_lv_parse_domain(mib, &d, NULL));
	g_assert_cmpuint(vmem(&d, 0)->max, ==, 512ULL << 20);
	g_assert_false(vs_lv_parse_domain(big, &d, &e));
	g_assert_true(vs_error_is(e, VS_HOST_ERROR_FAILED));
	g_clear_error(&e);
	g_assert_false(vs_lv_parse_domain(odd, &d, &e));
	g_assert_true(vs_error_is(e, VS_HOST_ERROR_FAILED));
	vs_lv_domain_clear(&d);
}

/* <current> comes from the guest through QEMU: beyond the device's size
 * it is refused as hostile, not believed. */
static void test_hostile(void)
{
	g_autofree char *xml = sample("libvirt-live-resizing.xml");
	g_autofree char *bad = edit(xml, "<current unit='KiB'>262144</current>",
				    "<current unit='KiB'>9999999</current>");
	g_autoptr(GError) e = NULL;
	VsLvDomain d = { 0 };

	g_assert_false(vs_lv_parse_domain(bad, &d, &e));
	g_assert_true(vs_error_is(e, VS_HOST_ERROR_HOSTILE));
	vs_lv_domain_clear(&d);
}

static void test_malformed(void)
{
	g_autofree char *xml = sample("libvirt-live-pinned.xml");
	g_autofree char *cut = g_strndup(xml, strlen(xml) / 2);
	g_autofree char *nonode = edit(xml, "<node>1</node>", "");
	g_autofree char *cell = edit(xml, "cpus='1'", "cpus='5'");
	const char *texts[] = { cut, nonode, cell, "", "<domain/>" };

	for (guint i = 0; i < G_N_ELEMENTS(texts); i++) {
		g_autoptr(GError) e = NULL;
		VsLvDomain d = { 0 };

		g_assert_false(vs_lv_parse_domain(texts[i], &d, &e));
		g_assert_true(vs_error_is(e, VS_HOST_ERROR_FAILED));
		vs_lv_domain_clear(&d);
	}
}

static void test_channel(void)
{
	g_autofree char *xml = sample("libvirt-live-pinned.xml");
	g_autofree char *other = edit(xml, "org.vshare.agent.0", "org.x.0");
	g_autofree char *connect = edit(xml, "mode='bind'", "mode='connect'");
	g_autofree char *two =
		edit(xml, "org.vshare.shell.0", "org.vshare.agent.0");
	g_autoptr(GError) e = NULL;
	VsLvDomain d = { 0 };

	g_assert_true(vs_lv_parse_domain(other, &d, NULL));
	g_assert_null(d.agent_path);
	g_assert_false(vs_lv_parse_domain(connect, &d, &e));
	g_clear_error(&e);
	g_assert_false(vs_lv_parse_domain(two, &d, &e));
	vs_lv_domain_clear(&d);
}

static void test_proc_cgroup(void)
{
	static const char v1[] =
		"9:name=systemd:/\n8:pids:/\n"
		"7:blkio:/machine/qemu-1-a.libvirt-qemu\n"
		"3:cpuset:/machine/qemu-1-a.libvirt-qemu/emulator\n"
		"2:cpuacct:/\n"
		"1:cpu:/machine/qemu-1-a.libvirt-qemu/emulator\n"
		"0::/machine/qemu-1-a.libvirt-qemu/emulator\n";
	static const char both[] = "4:cpu,cpuacct:/machine/x/emulator\n";
	g_autofree char *a = vs_lv_proc_cgroup(v1, "cpu", 1);
	g_autofree char *b = vs_lv_proc_cgroup(v1, "cpu", 2);
	g_autofree char *c = vs_lv_proc_cgroup(both, "cpu", 1);

	g_assert_cmpstr(a, ==, "/machine/qemu-1-a.libvirt-qemu/emulator");
	g_assert_cmpstr(b, ==, "/machine/qemu-1-a.libvirt-qemu/emulator");
	g_assert_cmpstr(c, ==, "/machine/x/emulator");
	g_assert_null(vs_lv_proc_cgroup(both, "memory", 1));
	g_assert_null(vs_lv_proc_cgroup("garbage", "cpu", 1));
	g_assert_null(vs_lv_proc_cgroup(NULL, "cpu", 2));
}

/* host-check DOMAIN: a captured domain on the tests' declared 2-node
 * host fits; each missing part is named. */
static void test_lacks(void)
{
	static const char two[] = "[node0]\ncpus=0\n[node1]\ncpus=1\n";
	static const char four[] = "[node0]\ncpus=0-1\n[node1]\ncpus=2-3\n";
	g_autofree char *xml = sample("libvirt-live-pinned.xml");
	g_autofree char *noagent = edit(xml, "org.vshare.agent.0", "org.x.0");
	g_autofree char *nopath =
		edit(xml, "mode='bind' path=", "mode='bind' p=");
	g_autofree char *nosource =
		edit(xml, "<source mode='bind' path=", "<nosource p=");
	VsLvDomain d = { 0 };
	VsHost h2, h4;
	GPtrArray *l;

	g_assert_true(vs_host_from_keyfile(two, "test", &h2, NULL));
	g_assert_true(vs_host_from_keyfile(four, "test", &h4, NULL));
	g_assert_true(vs_lv_parse_domain(xml, &d, NULL));
	l = vs_lv_domain_lacks(&d, &h2);
	g_assert_cmpuint(l->len, ==, 0);
	g_ptr_array_unref(l);
	/* 2 vCPUs on a 4-pCPU host: the count, and vCPU 1 in the wrong cell */
	l = vs_lv_domain_lacks(&d, &h4);
	g_assert_cmpuint(l->len, ==, 2);
	g_assert_nonnull(strstr(l->pdata[0], "2 vCPUs for 4 host pCPUs"));
	g_assert_nonnull(strstr(l->pdata[1], "vCPU 1 is in cell 1, its pCPU 1 "
					     "in node 0"));
	g_ptr_array_unref(l);
	g_assert_true(vs_lv_parse_domain(noagent, &d, NULL));
	l = vs_lv_domain_lacks(&d, &h2);
	g_assert_cmpuint(l->len, ==, 1);
	g_assert_nonnull(strstr(l->pdata[0], "no agent channel"));
	g_ptr_array_unref(l);
	/* a defined domain before its start: the channel, no path yet */
	g_assert_true(vs_lv_parse_domain(nopath, &d, NULL));
	g_assert_true(d.agent_channel);
	g_assert_null(d.agent_path);
	l = vs_lv_domain_lacks(&d, &h2);
	g_assert_cmpuint(l->len, ==, 0);
	g_ptr_array_unref(l);
	/* libvirt's XML of it: the channel without <source> */
	g_assert_true(vs_lv_parse_domain(nosource, &d, NULL));
	g_assert_true(d.agent_channel);
	g_assert_null(d.agent_path);
	vs_lv_domain_clear(&d);
	vs_host_clear(&h2);
	vs_host_clear(&h4);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/libvirt-xml/pinned", test_pinned);
	g_test_add_func("/libvirt-xml/resizing", test_resizing);
	g_test_add_func("/libvirt-xml/quota", test_quota);
	g_test_add_func("/libvirt-xml/update", test_update_xml);
	g_test_add_func("/libvirt-xml/units", test_units);
	g_test_add_func("/libvirt-xml/hostile", test_hostile);
	g_test_add_func("/libvirt-xml/malformed", test_malformed);
	g_test_add_func("/libvirt-xml/channel", test_channel);
	g_test_add_func("/libvirt-xml/lacks", test_lacks);
	g_test_add_func("/libvirt-xml/proc-cgroup", test_proc_cgroup);
	return g_test_run();
}
