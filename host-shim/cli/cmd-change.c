// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The commands that change ownership (cpus, mem, lend, forget) and keep the
 * ledger (recover, ledger): options in, a VsChangeReq out; the planner and
 * the transaction are the library's.
 */
#include "cli.h"

#include <string.h>

static gboolean parse_pcpus(const char *text, gboolean allow_none,
			    VsCpuSet *set, GError **error)
{
	vs_cpuset_clear(set);
	if (allow_none && !strcmp(text, "none"))
		return TRUE; /* parked */
	if (!vs_cpuset_parse(text, set, error)) {
		(*error)->domain = VS_HOST_ERROR;
		(*error)->code = VS_HOST_ERROR_USAGE;
		return FALSE;
	}
	if (!vs_cpuset_count(set))
		return cli_usage_error(error,
				       "empty CPU list (`none` parks a VM: "
				       "every vCPU throttled)");
	return TRUE;
}

static gboolean mode_of(const char *s, VsMode *m, GError **error)
{
	return vs_mode_parse(s ? s : "auto", m, error);
}

int cmd_cpus(Cli *c, int argc, char **argv)
{
	g_autofree char *set = NULL, *mode = NULL;
	GOptionEntry e[] = {
		{ "set", 's', 0, G_OPTION_ARG_STRING, &set,
		  "pCPUs (= vCPU numbers) the VM owns from now on; none "
		  "parks it (every vCPU throttled)",
		  "LIST" },
		{ "mode", 'm', 0, G_OPTION_ARG_STRING, &mode,
		  "coop (the guest agent confines), enforce (host throttles "
		  "the other vCPUs), auto (coop, else enforce; default)",
		  "MODE" },
		{ NULL }
	};
	g_autoptr(GError) error = NULL;
	VsChangeReq r = { .kind = VS_REQ_CPUS, .node = -1 };

	if (!cli_parse(c, &argc, &argv,
		       "VM --set LIST [--mode coop|enforce|auto]",
		       "Give VM exactly the pCPUs in LIST (vCPU i runs on "
		       "pCPU i).",
		       e, &error) ||
	    !cli_want_args(argc, argv, 1, "one VM name", &error) ||
	    !mode_of(mode, &r.mode, &error))
		return cli_fail(error);
	if (!set) {
		cli_usage_error(&error, "cpus: --set LIST is required (status "
					"shows the current ones)");
		return cli_fail(error);
	}
	if (!vs_name_valid(argv[1], &error) ||
	    !parse_pcpus(set, TRUE, &r.cpus, &error))
		return cli_fail(error);
	r.vm = argv[1];
	return cli_change(c, &r, "done");
}

int cmd_mem(Cli *c, int argc, char **argv)
{
	int node = -1;
	g_autofree char *size = NULL;
	GOptionEntry e[] = { { "node", 'n', 0, G_OPTION_ARG_INT, &node,
			       "vNUMA/host node", "N" },
			     { "size", 0, 0, G_OPTION_ARG_STRING, &size,
			       "virtio-mem size on that node (e.g. 256M, 1G)",
			       "SIZE" },
			     { NULL } };
	g_autoptr(GError) error = NULL;
	VsChangeReq r = { .kind = VS_REQ_MEM };

	if (!cli_parse(c, &argc, &argv, "VM --node N --size SIZE",
		       "Resize the VM's virtio-mem device on node N; the "
		       "guest moves its pages off first when shrinking.",
		       e, &error) ||
	    !cli_want_args(argc, argv, 1, "one VM name", &error))
		return cli_fail(error);
	if (node < 0 || !size) {
		cli_usage_error(&error,
				"mem: --node N and --size SIZE are required");
		return cli_fail(error);
	}
	if (!vs_parse_size(size, &r.bytes, &error) ||
	    !vs_name_valid(argv[1], &error))
		return cli_fail(error);
	r.vm = argv[1];
	r.node = node;
	return cli_change(c, &r, "done");
}

static gboolean lend_args(const char *from, const char *to, const char *cpus,
			  const char *mem, int node, GError **error)
{
	if (!from || !to || !cpus || (mem && node < 0) || (!mem && node >= 0))
		return cli_usage_error(error,
				       "lend: --from, --to and --cpus are "
				       "required; --node and --mem go "
				       "together");
	if (!vs_name_valid(from, error) || !vs_name_valid(to, error))
		return FALSE;
	if (!strcmp(from, to))
		return cli_usage_error(error,
				       "lend: --from and --to name the same "
				       "VM");
	return TRUE;
}

int cmd_lend(Cli *c, int argc, char **argv)
{
	g_autofree char *from = NULL, *to = NULL, *cpus = NULL;
	g_autofree char *mem = NULL, *mode = NULL;
	int node = -1;
	GOptionEntry e[] = {
		{ "from", 0, 0, G_OPTION_ARG_STRING, &from, "giver", "VM" },
		{ "to", 0, 0, G_OPTION_ARG_STRING, &to, "receiver", "VM" },
		{ "cpus", 0, 0, G_OPTION_ARG_STRING, &cpus,
		  "pCPUs to move (owned by the giver)", "LIST" },
		{ "node", 'n', 0, G_OPTION_ARG_INT, &node,
		  "node whose virtio-mem memory moves", "N" },
		{ "mem", 0, 0, G_OPTION_ARG_STRING, &mem,
		  "how much memory moves on that node", "SIZE" },
		{ "mode", 'm', 0, G_OPTION_ARG_STRING, &mode,
		  "coop, enforce or auto (default)", "MODE" },
		{ NULL }
	};
	g_autoptr(GError) error = NULL;
	VsChangeReq r = { .kind = VS_REQ_LEND };

	if (!cli_parse(c, &argc, &argv,
		       "--from A --to B --cpus LIST [--node N --mem SIZE]",
		       "Move pCPUs (and memory of a node) from VM A to VM B: "
		       "A lets go first, then B takes them; all or nothing.",
		       e, &error) ||
	    !cli_want_args(argc, argv, 0, "no positional arguments", &error) ||
	    !mode_of(mode, &r.mode, &error) ||
	    !lend_args(from, to, cpus, mem, node, &error) ||
	    (mem && !vs_parse_size(mem, &r.bytes, &error)) ||
	    !parse_pcpus(cpus, FALSE, &r.cpus, &error))
		return cli_fail(error);
	r.from = from;
	r.to = to;
	r.node = mem ? node : -1;
	return cli_change(c, &r, "done");
}

int cmd_tune(Cli *c, int argc, char **argv)
{
	int weight = 0, nice = G_MININT;
	GOptionEntry e[] = {
		{ "weight", 'w', 0, G_OPTION_ARG_INT, &weight,
		  "CPU weight of the VM against the others, 1..10000 "
		  "(100 = default; cgroup v2 scale, v1 cpu.shares = "
		  "weight * 1024 / 100)",
		  "W" },
		{ "nice", 0, 0, G_OPTION_ARG_INT, &nice,
		  "nice of every QEMU thread, -20..19", "N" },
		{ NULL }
	};
	g_autoptr(GError) error = NULL;
	VsChangeReq r = { .kind = VS_REQ_TUNE, .node = -1 };

	if (!cli_parse(c, &argc, &argv, "VM [--weight W] [--nice N]",
		       "Set a managed VM's CPU weight and/or nice "
		       "(journalled; paper 003's knobs).",
		       e, &error) ||
	    !cli_want_args(argc, argv, 1, "one VM name", &error) ||
	    !vs_name_valid(argv[1], &error))
		return cli_fail(error);
	r.vm = argv[1];
	r.weight = weight;
	r.set_nice = nice != G_MININT;
	r.nice = r.set_nice ? nice : 0;
	return cli_change(c, &r, "done");
}

int cmd_forget(Cli *c, int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	VsChangeReq r = { .kind = VS_REQ_FORGET, .node = -1 };

	if (!cli_parse(c, &argc, &argv, "VM",
		       "Drop VM from the ledger (it is gone, or leaves "
		       "vshare); its pCPUs and memory become free. Touches no "
		       "VM.",
		       NULL, &error) ||
	    !cli_want_args(argc, argv, 1, "one VM name", &error))
		return cli_fail(error);
	r.vm = argv[1];
	return cli_change(c, &r, "forgotten");
}

int cmd_recover(Cli *c, int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	VsSession s;
	gboolean ok, again = FALSE, handled;
	int rc;

	if (!cli_parse(c, &argc, &argv, "",
		       "Roll back a change a killed vsharectl left half done "
		       "(every locking command does this first).",
		       NULL, &error) ||
	    !cli_want_args(argc, argv, 0, "no arguments", &error))
		return cli_fail(error);
	rc = cli_daemon_change(c, NULL, NULL, &handled);
	if (handled)
		return rc;
	/* Opening a locked session already recovers; it says so. */
	ok = cli_session_open(c, &s, TRUE, &error) &&
	     vs_session_recover(&s, &again, &error);
	if (ok && !c->recovered)
		g_print("nothing to recover\n");
	rc = ok ? VS_EXIT_OK : cli_fail(error);
	vs_session_close(&s);
	return rc;
}
