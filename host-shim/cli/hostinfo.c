// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Host facts: pause-loop exiting (vsharectl ple) and the kernel/KVM
 * settings that matter to full-vNUMA VMs (vsharectl host-check).
 * Everything is read from sysfs/procfs (VSHARE_SYSFS moves /sys for the
 * tests, which cannot have VMX/SVM hardware here).
 */
#include "cli.h"
#include "ple-model.h"

#include <fcntl.h>
#include <stdio.h>
#include <poll.h>
#include <signal.h>

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

typedef struct {
	const char *module;
	const char *exit_reason; /* kvm_exit filter for a PAUSE exit */
	const char *params[6];	 /* gap/count first */
} Vendor;

static const Vendor vendors[] = {
	{ "kvm_intel",
	  "exit_reason == 40",
	  { "ple_gap", "ple_window", "ple_window_grow", "ple_window_shrink",
	    "ple_window_max", NULL } },
	{ "kvm_amd",
	  "exit_code == 0x77",
	  { "pause_filter_count", "pause_filter_thresh",
	    "pause_filter_count_grow", "pause_filter_count_shrink",
	    "pause_filter_count_max", NULL } },
};

static char *sys_path(const Cli *o, const char *rel)
{
	return g_build_filename(o->cfg.sysfs, rel, NULL);
}

static char *param(const Cli *o, const char *module, const char *name)
{
	g_autofree char *rel =
		g_strdup_printf("module/%s/parameters/%s", module, name);
	g_autofree char *path = sys_path(o, rel);

	return vs_read_file(path, NULL);
}

static gboolean module_loaded(const Cli *o, const char *module)
{
	g_autofree char *rel = g_strdup_printf("module/%s", module);
	g_autofree char *path = sys_path(o, rel);

	return g_file_test(path, G_FILE_TEST_IS_DIR);
}

static gint cmp_str(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "kvm, kvm_pvm" */
static char *kvm_modules(const Cli *o)
{
	g_autofree char *dir = sys_path(o, "module");
	g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
	const char *e;

	while (d && (e = g_dir_read_name(d)))
		if (!strcmp(e, "kvm") || g_str_has_prefix(e, "kvm_"))
			g_ptr_array_add(names, g_strdup(e));
	g_ptr_array_sort(names, cmp_str);
	g_ptr_array_add(names, NULL);
	return names->len > 1 ? g_strjoinv(", ", (char **)names->pdata)
			      : g_strdup("none");
}

static const Vendor *loaded_vendor(const Cli *o, GError **error)
{
	g_autofree char *mods = NULL;

	for (guint i = 0; i < G_N_ELEMENTS(vendors); i++)
		if (module_loaded(o, vendors[i].module))
			return &vendors[i];
	mods = kvm_modules(o);
	g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_UNSUPPORTED,
		    "no kvm_intel or kvm_amd module is loaded (KVM modules "
		    "here: %s): pause-loop exiting is a VMX/SVM feature, so "
		    "this host has none to show, set or count",
		    mods);
	return NULL;
}

static const char cpu_pm_note[] =
	"VMs that own their pCPUs (vshare's model) can skip PAUSE and HLT "
	"exits altogether:\nstart QEMU with `-overcommit cpu-pm=on` (KVM "
	"then disables PAUSE/HLT/MWAIT exiting for that VM).\nDo not use it "
	"for a VM whose vCPUs share pCPUs: a spinning vCPU then never "
	"yields.\n";

static int ple_show(const Cli *o, const Vendor *v)
{
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(JsonNode) root = NULL;
	g_autofree char *first = param(o, v->module, v->params[0]);
	gboolean off = first && !strcmp(first, "0");

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "module");
	json_builder_add_string_value(b, v->module);
	json_builder_set_member_name(b, "enabled");
	json_builder_add_boolean_value(b, first && !off);
	json_builder_set_member_name(b, "parameters");
	json_builder_begin_object(b);
	for (guint i = 0; v->params[i]; i++) {
		g_autofree char *val = param(o, v->module, v->params[i]);

		json_builder_set_member_name(b, v->params[i]);
		if (val)
			json_builder_add_int_value(
				b, g_ascii_strtoll(val, NULL, 10));
		else
			json_builder_add_null_value(b);
	}
	json_builder_end_object(b);
	json_builder_end_object(b);
	root = json_builder_get_root(b);
	if (o->json) {
		cli_print_json(root);
		return VS_EXIT_OK;
	}
	g_print("%s: pause-loop exiting %s\n", v->module,
		off ? "disabled (gap/count is 0)" : "enabled");
	for (guint i = 0; v->params[i]; i++) {
		g_autofree char *val = param(o, v->module, v->params[i]);

		g_print("  %-26s %s\n", v->params[i], val ? val : "(absent)");
	}
	g_print("\nParameters are read-only while the module is loaded; "
		"`vsharectl ple set` writes a modprobe.d file.\n%s",
		cpu_pm_note);
	return VS_EXIT_OK;
}

static int ple_set(const Cli *o, const Vendor *v, const char *dir, gint64 gap,
		   gint64 window, gboolean disable)
{
	g_autofree char *path = g_build_filename(dir, "vshare-ple.conf", NULL);
	g_autoptr(GString) s = g_string_new(NULL);
	g_autoptr(GError) error = NULL;

	if (disable)
		gap = 0;
	if (gap < 0 && window < 0) {
		g_printerr("vsharectl: ple set: give --gap N, --window N or "
			   "--disable\n");
		return VS_EXIT_USAGE;
	}
	g_string_append_printf(s, "# written by vsharectl ple set\noptions %s",
			       v->module);
	if (gap >= 0)
		g_string_append_printf(s, " %s=%" G_GINT64_FORMAT, v->params[0],
				       gap);
	if (window >= 0)
		g_string_append_printf(s, " %s=%" G_GINT64_FORMAT, v->params[1],
				       window);
	g_string_append_c(s, '\n');
	if (g_mkdir_with_parents(dir, 0755) < 0 ||
	    !vs_write_private(path, s->str, &error) || chmod(path, 0644) < 0) {
		g_printerr("vsharectl: %s\n",
			   error ? error->message : g_strerror(errno));
		return VS_EXIT_FAILED;
	}
	g_print("wrote %s:\n%s\nThe running module keeps its values: they "
		"apply after `modprobe -r %s && modprobe %s`\n(with every VM "
		"stopped), or at the next boot.\n",
		path, s->str, v->module, v->module);
	return VS_EXIT_OK;
}

static char *tracefs_dir(void)
{
	const char *env = g_getenv("VSHARE_TRACEFS");
	static const char *const cands[] = { "/sys/kernel/tracing",
					     "/sys/kernel/debug/tracing" };

	if (env)
		return g_strdup(env);
	for (guint i = 0; i < G_N_ELEMENTS(cands); i++) {
		g_autofree char *ev =
			g_build_filename(cands[i], "events", NULL);

		if (g_file_test(ev, G_FILE_TEST_IS_DIR))
			return g_strdup(cands[i]);
	}
	return NULL;
}

/* "CPU 1/KVM-4242 [001] d.... 12.5: kvm_exit: ..." -> 4242 */
static gint64 line_tid(const char *line)
{
	const char *colon = strstr(line, ": kvm_exit:");
	const char *p;

	if (!colon)
		return -1;
	p = strchr(line, '[');
	if (!p || p > colon)
		return -1;
	while (p > line && p[-1] == ' ')
		p--;
	while (p > line && g_ascii_isdigit(p[-1]))
		p--;
	return p > line && p[-1] == '-' ? g_ascii_strtoll(p, NULL, 10) : -1;
}

/* Thread id -> "VM vCPU N" for the registered VMs. */
static GHashTable *vcpu_names(const Cli *o)
{
	GHashTable *who = g_hash_table_new_full(g_int64_hash, g_int64_equal,
						g_free, g_free);
	g_auto(GStrv) names = vs_registry_list(&o->cfg, NULL);

	for (guint i = 0; names[i]; i++) {
		g_autoptr(VsVmConf) c =
			vs_registry_get(&o->cfg, names[i], NULL);
		g_autoptr(VsVm) vm =
			c ? vs_vm_open(&o->cfg, g_steal_pointer(&c), NULL)
			  : NULL;

		for (guint k = 0; vm && k < vm->vcpus->len; k++)
			g_hash_table_insert(
				who,
				g_memdup2(&g_array_index(vm->vcpus, VsVcpu, k)
						   .tid,
					  sizeof(gint64)),
				g_strdup_printf("%s vCPU %u", names[i], k));
	}
	return who;
}

typedef struct {
	char *inst;	  /* tracing instance (or the top tracefs) */
	gboolean own;	  /* we created @inst */
	gboolean enabled; /* we enabled kvm_exit in it */
	char *event;	  /* .../events/kvm/kvm_exit */
} Trace;

/* Disable what we enabled, remove what we created: always, also on
 * Ctrl-C (the caller turns SIGINT/SIGTERM into a loop exit). */
static void trace_cleanup(Trace *t)
{
	if (t->enabled) {
		g_autofree char *en =
			g_build_filename(t->event, "enable", NULL);
		g_autofree char *fi =
			g_build_filename(t->event, "filter", NULL);

		vs_write_file(en, "0", NULL);
		vs_write_file(fi, "0", NULL);
	}
	if (t->own)
		rmdir(t->inst);
	g_free(t->inst);
	g_free(t->event);
}

static gboolean trace_setup(Trace *t, const char *tfs, const Vendor *v,
			    GError **error)
{
	g_autofree char *en = NULL, *fi = NULL;

	/* A private trace instance: the global buffer stays untouched. */
	t->inst = g_strdup_printf("%s/instances/vsharectl-%d", tfs, getpid());
	t->own = !g_getenv("VSHARE_TRACEFS") && mkdir(t->inst, 0700) == 0;
	if (!t->own) {
		g_free(t->inst);
		t->inst = g_strdup(tfs);
	}
	t->event = g_build_filename(t->inst, "events/kvm/kvm_exit", NULL);
	if (g_getenv("VSHARE_TRACEFS"))
		return TRUE; /* a test's fake: nothing to enable */
	fi = g_build_filename(t->event, "filter", NULL);
	en = g_build_filename(t->event, "enable", NULL);
	if (!vs_write_file(fi, v->exit_reason, error))
		return FALSE;
	t->enabled = TRUE;
	return vs_write_file(en, "1", error);
}

static volatile sig_atomic_t watch_stop;

static void on_stop(int sig)
{
	watch_stop = sig;
}

static void count_line(GHashTable *count, const char *line)
{
	gint64 tid = line_tid(line);

	if (tid < 0)
		return;
	g_hash_table_insert(
		count, g_memdup2(&tid, sizeof(tid)),
		GINT_TO_POINTER(
			GPOINTER_TO_INT(g_hash_table_lookup(count, &tid)) + 1));
}

static void flush_counts(GHashTable *who, GHashTable *count, int sec)
{
	GHashTableIter it;
	gpointer k, val;

	g_hash_table_iter_init(&it, count);
	while (g_hash_table_iter_next(&it, &k, &val)) {
		const char *name = g_hash_table_lookup(who, k);

		g_print("t=%d %s (thread %" G_GINT64_FORMAT "): %d\n", sec,
			name ? name : "unregistered", *(gint64 *)k,
			GPOINTER_TO_INT(val));
	}
	g_hash_table_remove_all(count);
}

/* Lines from the non-blocking pipe into @count; FALSE at EOF. */
static gboolean read_lines(int fd, GString *buf, GHashTable *count)
{
	char chunk[4096];
	ssize_t n = read(fd, chunk, sizeof(chunk));
	char *nl;

	if (n == 0)
		return FALSE;
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	g_string_append_len(buf, chunk, n);
	while ((nl = strchr(buf->str, '\n'))) {
		*nl = '\0';
		count_line(count, buf->str);
		g_string_erase(buf, 0, nl - buf->str + 1);
	}
	if (buf->len > 65536)
		g_string_truncate(buf, 0);
	return TRUE;
}

/* Count PAUSE exits per vCPU thread for @seconds: poll() with the
 * deadline, so a quiet pipe cannot hold us past it. */
static void watch_loop(int fd, GHashTable *who, int seconds)
{
	g_autoptr(GHashTable) count = g_hash_table_new_full(
		g_int64_hash, g_int64_equal, g_free, NULL);
	g_autoptr(GString) buf = g_string_new(NULL);
	gint64 end = g_get_monotonic_time() + (gint64)seconds * G_USEC_PER_SEC;
	gint64 next = g_get_monotonic_time() + G_USEC_PER_SEC;
	gboolean eof = FALSE;
	int sec = 0;

	while (!watch_stop && g_get_monotonic_time() < end) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		gint64 until = MIN(end, next);
		int ms = (int)MAX((until - g_get_monotonic_time()) / 1000, 0);

		if (!eof && poll(&pf, 1, ms) > 0)
			eof = !read_lines(fd, buf, count);
		else if (eof)
			poll(NULL, 0, ms); /* a fake file ended: wait it out */
		if (g_get_monotonic_time() >= next) {
			flush_counts(who, count, sec++);
			next += G_USEC_PER_SEC;
		}
	}
	flush_counts(who, count, sec);
}

static int ple_watch(const Cli *o, const Vendor *v, int seconds)
{
	g_autofree char *tfs = tracefs_dir();
	g_autofree char *pipe_path = NULL;
	g_autoptr(GHashTable) who = NULL;
	g_autoptr(GError) error = NULL;
	struct sigaction sa = { .sa_handler = on_stop }, old_int, old_term;
	Trace t = { 0 };
	int fd, rc = VS_EXIT_OK;

	if (!tfs) {
		g_printerr("vsharectl: ple watch: no tracefs (mount -t tracefs "
			   "nodev /sys/kernel/tracing) or no kvm events in "
			   "it: cannot count PAUSE exits\n");
		return VS_EXIT_UNSUPPORTED;
	}
	who = vcpu_names(o);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	if (!trace_setup(&t, tfs, v, &error)) {
		g_printerr("vsharectl: ple watch: %s\n", error->message);
		rc = VS_EXIT_UNSUPPORTED;
		goto out;
	}
	pipe_path = g_build_filename(t.inst, "trace_pipe", NULL);
	fd = open(pipe_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		g_printerr("vsharectl: ple watch: %s: %s\n", pipe_path,
			   g_strerror(errno));
		rc = VS_EXIT_UNSUPPORTED;
		goto out;
	}
	g_print("PAUSE exits per second (%s), by VM and vCPU\n", v->module);
	watch_loop(fd, who, seconds);
	close(fd);
out:
	trace_cleanup(&t);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	return rc;
}

/* "ple [opts] simulate [more]" -> "simulate [opts] [more]" */
static int ple_model(Cli *o, int argc, char **argv, int at)
{
	g_autofree char **v = g_new0(char *, argc + 1);
	int n = 0;

	v[n++] = argv[at];
	for (int i = 1; i < argc; i++)
		if (i != at)
			v[n++] = argv[i];
	return cmd_ple_model(o, n, v);
}

int cmd_ple(Cli *o, int argc, char **argv)
{
	gint64 gap = -1, window = -1;
	gboolean disable = FALSE;
	int seconds = 10;
	g_autofree char *dir = NULL;
	g_autofree char *vendor = NULL;
	GOptionEntry e[] = {
		{ "gap", 0, 0, G_OPTION_ARG_INT64, &gap,
		  "set: ple_gap / pause_filter_count", "N" },
		{ "window", 0, 0, G_OPTION_ARG_INT64, &window,
		  "set: ple_window / pause_filter_thresh", "N" },
		{ "disable", 0, 0, G_OPTION_ARG_NONE, &disable,
		  "set: gap 0 (no pause-loop exits)", NULL },
		{ "modprobe-dir", 0, 0, G_OPTION_ARG_FILENAME, &dir,
		  "set: where to write vshare-ple.conf (/etc/modprobe.d)",
		  "DIR" },
		{ "vendor", 0, 0, G_OPTION_ARG_STRING, &vendor,
		  "set: intel or amd when neither module is loaded", "V" },
		{ "seconds", 0, 0, G_OPTION_ARG_INT, &seconds,
		  "watch: how long (default 10)", "S" },
		{ NULL }
	};
	GError *error = NULL;
	const Vendor *v;
	int rc;

	for (int i = 1; i < argc; i++) /* the model has its own options */
		if (argv[i][0] != '-') {
			if (!strcmp(argv[i], "simulate") ||
			    !strcmp(argv[i], "advise"))
				return ple_model(o, argc, argv, i);
			break;
		}
	if (!cli_parse(
		    o, &argc, &argv, "show | set | watch | simulate | advise",
		    "Pause-loop exiting of kvm_intel / kvm_amd.", e, &error) ||
	    (argc != 2 &&
	     !(error = g_error_new(VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
				   "ple: show, set or watch"))))
		return cli_fail(error);
	if (strcmp(argv[1], "show") && strcmp(argv[1], "set") &&
	    strcmp(argv[1], "watch")) {
		g_printerr("vsharectl: ple: show, set or watch, not '%s'\n",
			   argv[1]);
		return VS_EXIT_USAGE;
	}
	if (vendor && !strcmp(argv[1], "set"))
		v = !strcmp(vendor, "amd") ? &vendors[1] : &vendors[0];
	else
		v = loaded_vendor(o, &error);
	if (!v) {
		rc = cli_fail(error);
		g_clear_error(&error);
		return rc;
	}
	if (!strcmp(argv[1], "show"))
		return ple_show(o, v);
	if (!strcmp(argv[1], "set"))
		return ple_set(o, v, dir ? dir : "/etc/modprobe.d", gap, window,
			       disable);
	if (seconds <= 0) {
		g_printerr("vsharectl: --seconds must be positive\n");
		return VS_EXIT_USAGE;
	}
	return ple_watch(o, v, seconds);
}

/* ---- host-check ------------------------------------------------------------ */

typedef struct {
	JsonBuilder *b;
	gboolean json;
	int warnings;
} Report;

static void item(Report *r, const char *what, const char *level,
		 const char *value, const char *advice)
{
	if (!strcmp(level, "warn"))
		r->warnings++;
	if (r->json) {
		json_builder_begin_object(r->b);
		json_builder_set_member_name(r->b, "check");
		json_builder_add_string_value(r->b, what);
		json_builder_set_member_name(r->b, "level");
		json_builder_add_string_value(r->b, level);
		json_builder_set_member_name(r->b, "value");
		json_builder_add_string_value(r->b, value);
		json_builder_set_member_name(r->b, "advice");
		json_builder_add_string_value(r->b, advice);
		json_builder_end_object(r->b);
		return;
	}
	g_print("[%-4s] %-22s %s\n", level, what, value);
	if (advice && *advice)
		g_print("       %s\n", advice);
}

/* The steal-time fix ("KVM: x86: do not set st->preempted when going back
 * to user space", "... outside instruction boundaries") is in 5.19. */
static gboolean release_at_least(const char *rel, int maj, int min)
{
	int a = 0, b = 0;

	if (sscanf(rel, "%d.%d", &a, &b) != 2)
		return FALSE;
	return a > maj || (a == maj && b >= min);
}

int cmd_host_check(Cli *o, int argc, char **argv)
{
	GError *error = NULL;
	struct utsname u;
	Report r = { 0 };
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(JsonNode) root = NULL;
	g_autofree char *mods = NULL;
	g_autofree char *cpuinfo = NULL;
	g_autofree char *hp = NULL;
	g_autofree char *nb = NULL;
	g_autofree char *thp = NULL;
	g_autofree char *val = NULL;
	g_autofree char *p = NULL;
	VsHost host;
	const Vendor *v = NULL;
	g_autofree char *uri = NULL;
	GOptionEntry e[] = { { "uri", 0, 0, G_OPTION_ARG_STRING, &uri,
			       "libvirt URI of DOMAIN (default "
			       "qemu:///system)",
			       "URI" },
			     { NULL } };

	if (!cli_parse(o, &argc, &argv, "[DOMAIN [--uri URI]]",
		       "Kernel and KVM facts that matter to vshare, with "
		       "advice; with a libvirt DOMAIN, what it lacks to be a "
		       "full-vNUMA guest vshare manages (exit 1 when it "
		       "lacks something).",
		       e, &error) ||
	    (argc > 2 &&
	     !(error = g_error_new(VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
				   "host-check takes at most one "
				   "domain"))))
		return cli_fail(error);
	if (argc == 2)
		return cli_domain_check(o, argv[1],
					uri ? uri : "qemu:///system");
	r.b = b;
	r.json = o->json;
	json_builder_begin_array(b);
	uname(&u);
	mods = kvm_modules(o);
	for (guint i = 0; i < G_N_ELEMENTS(vendors); i++)
		if (module_loaded(o, vendors[i].module))
			v = &vendors[i];
	cpuinfo = vs_read_file("/proc/cpuinfo", NULL);
	val = g_strdup_printf(
		"%s; KVM modules: %s; CPU %s", u.release, mods,
		cpuinfo && (strstr(cpuinfo, " vmx") || strstr(cpuinfo, " svm"))
			? "has VMX/SVM"
			: "has no VMX/SVM");
	item(&r, "kvm", v ? "ok" : "warn", val,
	     v ? ""
	       : "no kvm_intel/kvm_amd: QEMU runs guests under TCG here; "
		 "PLE and halt polling do not apply");
	g_free(val);
	if (release_at_least(u.release, 5, 19))
		item(&r, "steal-time preempted", "ok",
		     "host kernel >= 5.19: a halted vCPU is not reported "
		     "preempted",
		     "guests on older hosts still need vshare's guest patch "
		     "(guest-kernel/, patch a)");
	else
		item(&r, "steal-time preempted", "warn",
		     "host kernel < 5.19: halted vCPUs are reported preempted "
		     "unless your vendor backported the fix",
		     "run guests with vshare's guest-kernel patch a "
		     "(vshare.idle_preempt=auto detects this at boot)");
	p = sys_path(o, "module/kvm/parameters/halt_poll_ns");
	hp = vs_read_file(p, NULL);
	val = g_strdup_printf("halt_poll_ns=%s", hp ? hp : "(kvm not loaded)");
	item(&r, "halt polling",
	     hp && g_ascii_strtoll(hp, NULL, 10) > 200000 ? "warn" : "ok", val,
	     "an idle vCPU of a VM that lent its pCPU polls on a pCPU another "
	     "VM owns: keep halt_poll_ns <= 200000 (0 when lending often)");
	g_free(val);
	nb = vs_read_file("/proc/sys/kernel/numa_balancing", NULL);
	val = g_strdup_printf("kernel.numa_balancing=%s", nb ? nb : "(absent)");
	item(&r, "NUMA balancing", nb && strcmp(nb, "0") ? "warn" : "ok", val,
	     nb && strcmp(nb, "0") ? "set kernel.numa_balancing=0: it migrates "
				     "pinned guests' "
				     "memory behind the ledger's back"
				   : "");
	g_free(val);
	g_free(p);
	p = sys_path(o, "kernel/mm/transparent_hugepage/enabled");
	thp = vs_read_file(p, NULL);
	item(&r, "transparent hugepages",
	     thp && strstr(thp, "[never]") ? "warn" : "ok",
	     thp ? thp : "(absent)",
	     thp && strstr(thp, "[never]")
		     ? "use always or madvise: QEMU madvises guest RAM, and "
		       "2 MiB pages matter for guest TLB reach"
		     : "");
	item(&r, "cgroup for enforce",
	     strncmp(vs_cgroup_cpu_backend(), "none", 4) ? "ok" : "warn",
	     vs_cgroup_cpu_backend(),
	     strncmp(vs_cgroup_cpu_backend(), "none", 4)
		     ? ""
		     : "mount the cpu controller: enforce mode needs it");
	if (vs_host_load(&o->cfg, &host, NULL)) {
		g_autofree char *d = vs_host_describe(&host);

		val = g_strdup_printf("%u node(s): %s%s", host.n_nodes, d,
				      host.declared ? " (declared in host.conf)"
						    : "");
		item(&r, "host layout", host.declared ? "info" : "ok", val,
		     host.declared ? "the layout is declared, not read from "
				     "sysfs: fine for tests, check it on a "
				     "real host"
				   : "");
		vs_host_clear(&host);
	}
	json_builder_end_array(b);
	root = json_builder_get_root(b);
	if (o->json)
		cli_print_json(root);
	else
		g_print("%d warning(s)\n", r.warnings);
	return VS_EXIT_OK;
}
