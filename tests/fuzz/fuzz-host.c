// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for everything the host parses that a guest, QEMU,
 * libvirt or a damaged disk can shape: the first byte picks the parser,
 * the rest is its input.
 *   0  a peer's byte stream (socketpair) -> bounded frames -> QMP
 *      query-cpus-fast / query-memory-devices checks, progress events
 *   1  the ledger file            2  the journal
 *   3  a declared host.conf       4  /proc/stat, mountinfo, schedstat,
 *                                    sizes
 *   5  libvirt domain XML
 * Any crash, leak or sanitizer report fails.
 */
#include "vmdrv-libvirt.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const guint8 *data, size_t size);

static const char *host_conf = "[node0]\ncpus=0\nvmem=1G\n[node1]\ncpus=1\n";

static void check_frame(JsonNode *n)
{
	JsonObject *o = json_node_get_object(n);
	JsonNode *ret = json_object_get_member(o, "return");
	g_autoptr(GArray) vcpus = g_array_new(FALSE, TRUE, sizeof(VsVcpu));
	g_autoptr(GPtrArray) vmems =
		g_ptr_array_new_with_free_func(vs_vmem_free);
	VsEvent ev;

	vs_qmp_parse_vcpus(ret, vcpus, NULL);
	vs_qmp_parse_vmems(ret, vmems, NULL);
	vs_event_from_json(n, &ev);
}

static void peer_stream(const guint8 *data, size_t size)
{
	int sv[2];
	g_autoptr(VsPeer) p = NULL;
	JsonNode *n;

	if (size > 65536 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
		return;
	p = vs_peer_new_fd(sv[0], "fuzz", 4096);
	if (size && write(sv[1], data, size) < 0)
		abort();
	close(sv[1]);
	while (vs_peer_pump(p, NULL) && (n = vs_peer_recv_queued(p)) != NULL) {
		check_frame(n);
		json_node_unref(n);
	}
	while ((n = vs_peer_recv_queued(p))) {
		check_frame(n);
		json_node_unref(n);
	}
}

static void texts(const char *text)
{
	g_autoptr(GArray) st = vs_parse_proc_stat(text, NULL);
	g_autofree char *m = NULL;
	guint64 v;
	int ver;

	m = vs_mountinfo_cgroup(text, "cpu", NULL, &ver);
	vs_parse_schedstat(text);
	vs_parse_status_tgid(text);
	vs_parse_size(text, &v, NULL);
}

int LLVMFuzzerTestOneInput(const guint8 *data, size_t size)
{
	g_autofree char *text = NULL;
	VsHost host;

	if (size < 1)
		return 0;
	text = g_strndup((const char *)data + 1, size - 1);
	switch (data[0] % 6) {
	case 0:
		peer_stream(data + 1, size - 1);
		break;
	case 1:
		vs_host_from_keyfile(host_conf, "fuzz", &host, NULL);
		vs_ledger_free(vs_store_parse(text, "fuzz", &host, NULL));
		vs_host_clear(&host);
		break;
	case 2:
		vs_journal_check(text, NULL);
		break;
	case 3:
		if (vs_host_from_keyfile(text, "fuzz", &host, NULL))
			vs_host_clear(&host);
		break;
	case 4:
		texts(text);
		break;
	default: {
		VsLvDomain d = { 0 };

		vs_lv_parse_domain(text, &d, NULL);
		vs_lv_domain_clear(&d);
	}
	}
	return 0;
}
