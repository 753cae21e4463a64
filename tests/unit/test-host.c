// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of libvshare-host (GLib test framework, TAP output): the pure
 * parsers on captured text (tests/unit/data), the host layout, the ledger
 * and its file, every refusal of the planner, and recovery from each
 * journal state. No VM here: a VM whose QMP socket does not exist is a VM
 * whose QEMU is gone, which recovery must skip.
 */
#include "vshare-host.h"
#include "vshare-prom.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *data_file(const char *name)
{
	g_autofree char *path =
		g_test_build_filename(G_TEST_DIST, "data", name, NULL);
	char *text = NULL;

	g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
	return text;
}

/* ---- parsers -------------------------------------------------------- */

static void test_size(void)
{
	static const struct {
		const char *s;
		guint64 v;
	} good[] = { { "0", 0 },	   { "256M", 256ULL << 20 },
		     { "1G", 1ULL << 30 }, { "1GiB", 1ULL << 30 },
		     { "4kB", 4096 },	   { "1073741824", 1ULL << 30 } };
	static const char *const bad[] = { "-1",
					   " 1",
					   "+5",
					   "",
					   "1Q",
					   "1MX",
					   "99999999999999999999",
					   "9999999999T",
					   "1.5G",
					   "G" };
	guint64 v;

	for (guint i = 0; i < G_N_ELEMENTS(good); i++) {
		g_assert_true(vs_parse_size(good[i].s, &v, NULL));
		g_assert_cmpuint(v, ==, good[i].v);
	}
	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) e = NULL;

		g_assert_false(vs_parse_size(bad[i], &v, &e));
		g_assert_true(vs_error_is(e, VS_HOST_ERROR_USAGE));
	}
}

static char *controllers_cpu(const char *mount)
{
	return g_strdup("cpuset cpu io memory pids\n");
}

static char *controllers_none(const char *mount)
{
	return g_strdup("memory pids\n");
}

static void test_mountinfo(void)
{
	g_autofree char *hybrid = data_file("mountinfo-hybrid.txt");
	g_autofree char *v2 = data_file("mountinfo-v2.txt");
	g_autofree char *m1 = NULL, *m2 = NULL, *m3 = NULL, *m4 = NULL;
	int ver;

	/* this host: v1 cpu wins over the v2 mount */
	m1 = vs_mountinfo_cgroup(hybrid, "cpu", controllers_cpu, &ver);
	g_assert_cmpint(ver, ==, 1);
	g_assert_cmpstr(m1, ==, "/sys/fs/cgroup/cpu");
	m2 = vs_mountinfo_cgroup(v2, "cpu", controllers_cpu, &ver);
	g_assert_cmpint(ver, ==, 2);
	g_assert_cmpstr(m2, ==, "/sys/fs/cgroup");
	m3 = vs_mountinfo_cgroup(v2, "cpu", controllers_none, &ver);
	g_assert_cmpint(ver, ==, 0);
	g_assert_null(m3);
	m4 = vs_mountinfo_cgroup("garbage\n\n1 2 3\n", "cpu", NULL, &ver);
	g_assert_null(m4);
}

static void test_proc_stat(void)
{
	g_autofree char *text = data_file("proc-stat.txt");
	g_autoptr(GArray) a = vs_parse_proc_stat(text, NULL);
	g_autoptr(GError) e = NULL;
	VsCpuTimes *c1;

	g_assert_nonnull(a);
	g_assert_cmpuint(a->len, ==, 2);
	c1 = &g_array_index(a, VsCpuTimes, 1);
	/* cpu1 52704 0 19094 67217 813 0 800 0 */
	g_assert_cmpuint(c1->total, ==, 52704 + 19094 + 67217 + 813 + 800);
	g_assert_cmpuint(c1->busy, ==, 52704 + 19094 + 800);
	g_assert_null(vs_parse_proc_stat("cpu0 1 2\n", &e));
	g_assert_nonnull(e);
	g_assert_null(vs_parse_proc_stat("intr 1 2 3\n", NULL));
}

static void test_schedstat_status(void)
{
	g_assert_cmpint(vs_parse_schedstat("123456 789 10\n"), ==, 123456);
	g_assert_cmpint(vs_parse_schedstat("-5 1 1"), ==, -1);
	g_assert_cmpint(vs_parse_schedstat("x"), ==, -1);
	g_assert_cmpint(vs_parse_schedstat(NULL), ==, -1);
	g_assert_cmpint(vs_parse_status_tgid("Name:\tqemu\nTgid:\t4242\n"), ==,
			4242);
	g_assert_cmpint(vs_parse_status_tgid("Name:\tq\nPid:\t1\n"), ==, -1);
}

/* ---- host layout --------------------------------------------------------- */

static const char *host_conf = "[node0]\ncpus=0\nvmem=1G\n"
			       "[node1]\ncpus=1\nvmem=1G\n";

static void load_host(VsHost *h, const char *text)
{
	g_assert_true(vs_host_from_keyfile(text, "test", h, NULL));
}

static void test_layout(void)
{
	VsHost h;
	g_autofree char *d = NULL;
	g_autoptr(GError) e = NULL;

	/* a gap (no node1) and a CPU-less node 3 */
	load_host(&h, "[node0]\ncpus=0-1\n[node2]\ncpus=2-3\n"
		      "[node3]\ncpus=\nvmem=2G\n");
	g_assert_cmpuint(h.n_nodes, ==, 4);
	g_assert_cmpuint(h.pcpus->len, ==, 4);
	g_assert_cmpint(vs_host_node_of(&h, 3), ==, 2);
	g_assert_false(vs_cpuset_has(&h.nodes, 1));
	d = vs_host_describe(&h);
	g_assert_cmpstr(d, ==, "0:0-1/0;2:2-3/0;3:/2147483648");
	vs_host_clear(&h);
	g_assert_false(vs_host_from_keyfile("[node0]\ncpus=0\n[node1]\n"
					    "cpus=0\n",
					    "t", &h, &e));
	g_assert_true(vs_error_is(e, VS_HOST_ERROR_USAGE));
	vs_host_clear(&h);
	/* pCPUs beyond 1024 are kept (dynamic sets when pinning) */
	load_host(&h, "[node0]\ncpus=0,2047\n");
	g_assert_cmpuint(g_array_index(h.pcpus, guint, 1), ==, 2047);
	vs_host_clear(&h);
}

/* ---- ledger and its file ---------------------------------------------------- */

static VsLedger *ledger_ab(const VsHost *h)
{
	VsLedger *l = vs_ledger_new(h);
	VsLedgerVm *a = vs_ledger_add_vm(l, "a");
	VsLedgerVm *b = vs_ledger_add_vm(l, "b");

	vs_cpuset_add(&a->pcpus, 0);
	a->mem[1] = 256ULL << 20;
	vs_cpuset_add(&b->pcpus, 1);
	b->mode = VS_MODE_ENFORCE;
	l->generation = 7;
	return l;
}

static void test_store_roundtrip(void)
{
	VsHost h;
	g_autoptr(VsLedger) l = NULL, back = NULL;
	g_autofree char *text = NULL;

	load_host(&h, host_conf);
	l = ledger_ab(&h);
	g_assert_true(vs_ledger_validate(l, &h, NULL));
	text = vs_store_text(l);
	back = vs_store_parse(text, "t", &h, NULL);
	g_assert_nonnull(back);
	g_assert_cmpuint(back->generation, ==, 7);
	g_assert_cmpint(vs_ledger_find(back, "b")->mode, ==, VS_MODE_ENFORCE);
	g_assert_cmpuint(vs_ledger_find(back, "a")->mem[1], ==, 256ULL << 20);
	g_assert_cmpstr(vs_ledger_owner(back, 1), ==, "b");
	vs_host_clear(&h);
}

static void expect_corrupt(const char *text, const VsHost *h)
{
	g_autoptr(GError) e = NULL;
	g_autoptr(VsLedger) l = vs_store_parse(text, "t", h, &e);

	g_assert_null(l);
	g_assert_true(vs_error_is(e, VS_HOST_ERROR_CORRUPT));
}

static void test_store_corrupt(void)
{
	VsHost h, other;
	g_autoptr(VsLedger) l = NULL;
	g_autofree char *text = NULL, *edited = NULL, *bad = NULL;
	char *p;

	load_host(&h, host_conf);
	l = ledger_ab(&h);
	text = vs_store_text(l);
	expect_corrupt("", &h);
	expect_corrupt("{", &h);
	expect_corrupt("[]", &h);
	expect_corrupt("{\"format\":\"vshare-ledger-1\"}", &h);
	bad = g_strndup(text, strlen(text) / 2); /* truncated */
	expect_corrupt(bad, &h);
	edited = g_strdup(text); /* an edit breaks the checksum */
	p = strstr(edited, "\"0\"");
	g_assert_nonnull(p);
	p[1] = '1';
	expect_corrupt(edited, &h);
	load_host(&other, "[node0]\ncpus=0-1\n"); /* another layout */
	expect_corrupt(text, &other);
	vs_host_clear(&other);
	vs_host_clear(&h);
}

static void expect_invalid(VsLedger *l, const VsHost *h, const char *what)
{
	g_autoptr(GError) e = NULL;

	g_assert_false(vs_ledger_validate(l, h, &e));
	g_assert_true(vs_error_is(e, VS_HOST_ERROR_REFUSED));
	g_assert_nonnull(strstr(e->message, what));
}

static void test_validate(void)
{
	VsHost h;
	g_autoptr(VsLedger) l = NULL;

	load_host(&h, host_conf);
	l = ledger_ab(&h);
	vs_cpuset_add(&vs_ledger_find(l, "a")->pcpus, 1);
	expect_invalid(l, &h, "owned by VM");
	vs_ledger_free(l);
	l = ledger_ab(&h);
	vs_cpuset_add(&vs_ledger_find(l, "a")->pcpus, 5);
	expect_invalid(l, &h, "not a CPU of this host");
	vs_ledger_free(l);
	l = ledger_ab(&h);
	vs_ledger_find(l, "b")->mem[1] = 900ULL << 20; /* 256 + 900 > 1024 */
	expect_invalid(l, &h, "pool");
	vs_ledger_find(l, "b")->mem[1] = G_MAXUINT64 - 5; /* wraps */
	expect_invalid(l, &h, "overflow");
	vs_host_clear(&h);
}

/* ---- the planner -------------------------------------------------------------- */

static gboolean import_ok(const char *vm, guint64 mem[VS_MAX_NODES],
			  gpointer data, GError **error)
{
	mem[1] = 128ULL << 20;
	return TRUE;
}

static gboolean import_fail(const char *vm, guint64 mem[VS_MAX_NODES],
			    gpointer data, GError **error)
{
	g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
		    "unknown VM '%s'", vm);
	return FALSE;
}

static void refused(const VsLedger *l, const VsHost *h, const VsChangeReq *r,
		    VsHostError code, const char *what)
{
	g_autoptr(GError) e = NULL;
	g_autoptr(VsPlan) p = vs_plan_make(l, h, r, import_fail, NULL, &e);

	g_assert_null(p);
	g_assert_nonnull(e);
	if (!vs_error_is(e, code) || !strstr(e->message, what))
		g_error("want code %d '%s', got %d '%s'", code, what, e->code,
			e->message);
}

static VsChangeReq lend_req(const char *from, const char *to, guint cpu)
{
	VsChangeReq r = { .kind = VS_REQ_LEND,
			  .from = from,
			  .to = to,
			  .node = -1,
			  .mode = VS_MODE_AUTO };

	vs_cpuset_add(&r.cpus, cpu);
	return r;
}

static void test_plan_refusals(void)
{
	VsHost h;
	g_autoptr(VsLedger) l = NULL;
	VsChangeReq r;

	load_host(&h, host_conf);
	l = ledger_ab(&h);
	/* a pCPU owned by another VM */
	r = (VsChangeReq){ .kind = VS_REQ_CPUS, .vm = "a", .node = -1 };
	vs_cpuset_add(&r.cpus, 1);
	refused(l, &h, &r, VS_HOST_ERROR_REFUSED, "owned by VM b");
	/* a pCPU the host does not have */
	r = (VsChangeReq){ .kind = VS_REQ_CPUS, .vm = "a", .node = -1 };
	vs_cpuset_add(&r.cpus, 9);
	refused(l, &h, &r, VS_HOST_ERROR_USAGE, "does not exist");
	/* an unknown VM: import fails */
	r = (VsChangeReq){ .kind = VS_REQ_CPUS, .vm = "zz", .node = -1 };
	refused(l, &h, &r, VS_HOST_ERROR_USAGE, "unknown VM 'zz'");
	/* memory for a VM not managed */
	r = (VsChangeReq){ .kind = VS_REQ_MEM, .vm = "zz", .node = 0 };
	refused(l, &h, &r, VS_HOST_ERROR_REFUSED, "not managed");
	/* capacity: node 1's pool is 1G, a holds 256M */
	r = (VsChangeReq){
		.kind = VS_REQ_MEM, .vm = "b", .node = 1, .bytes = 900ULL << 20
	};
	refused(l, &h, &r, VS_HOST_ERROR_REFUSED, "pool");
	r = (VsChangeReq){ .kind = VS_REQ_MEM, .vm = "b", .node = 5 };
	refused(l, &h, &r, VS_HOST_ERROR_USAGE, "no node 5");
	/* giving what one does not own: CPUs, then memory */
	r = lend_req("a", "b", 1);
	refused(l, &h, &r, VS_HOST_ERROR_REFUSED, "does not own pCPUs 1");
	r = lend_req("zz", "b", 0);
	refused(l, &h, &r, VS_HOST_ERROR_REFUSED, "does not own");
	r = lend_req("a", "b", 0);
	r.node = 1;
	r.bytes = 512ULL << 20;
	refused(l, &h, &r, VS_HOST_ERROR_REFUSED, "cannot lend 512 MiB");
	r = lend_req("a", "a", 0);
	refused(l, &h, &r, VS_HOST_ERROR_USAGE, "same VM");
	r = (VsChangeReq){ .kind = VS_REQ_FORGET, .vm = "zz" };
	refused(l, &h, &r, VS_HOST_ERROR_USAGE, "not in the ledger");
	r = (VsChangeReq){ .kind = VS_REQ_FORGET, .vm = "../etc" };
	refused(l, &h, &r, VS_HOST_ERROR_USAGE, "invalid VM name");
	vs_host_clear(&h);
}

static void test_plan_lend(void)
{
	VsHost h;
	g_autoptr(VsLedger) l = NULL;
	g_autoptr(VsPlan) p = NULL;
	VsChangeReq r;
	static const struct {
		const char *vm;
		VsStepKind kind;
	} order[] = { { "a", VS_STEP_MEM },
		      { "a", VS_STEP_CPUS },
		      { "c", VS_STEP_CPUS },
		      { "c", VS_STEP_MEM } };

	load_host(&h, host_conf);
	l = ledger_ab(&h);
	vs_ledger_remove_vm(l, "b");
	r = lend_req("a", "c", 0);
	r.node = 1;
	r.bytes = 128ULL << 20;
	p = vs_plan_make(l, &h, &r, import_ok, NULL, NULL);
	g_assert_nonnull(p);
	/* giver memory, giver CPUs, receiver CPUs, receiver memory */
	g_assert_cmpuint(p->steps->len, ==, 4);
	for (guint i = 0; i < 4; i++) {
		VsStep *s = &g_array_index(p->steps, VsStep, i);

		g_assert_cmpstr(s->vm, ==, order[i].vm);
		g_assert_cmpint(s->kind, ==, order[i].kind);
	}
	g_assert_cmpuint(p->after->generation, ==, 8);
	g_assert_cmpstr(vs_ledger_owner(p->after, 0), ==, "c");
	/* c came with its own 128M (import) and got a's 128M */
	g_assert_cmpuint(vs_ledger_find(p->after, "c")->mem[1], ==,
			 256ULL << 20);
	g_assert_cmpuint(vs_ledger_find(p->after, "a")->mem[1], ==,
			 128ULL << 20);
	g_assert_true(vs_ledger_find(p->imported, "c")->unmanaged);
	/* the ledger planned from is untouched */
	g_assert_cmpstr(vs_ledger_owner(l, 0), ==, "a");
	vs_host_clear(&h);
}

/* ---- files, lock, recovery ------------------------------------------------------ */

typedef struct {
	char *dir;
	VsConfig cfg;
	VsHost host;
} Env;

static void env_setup(Env *e)
{
	g_autofree char *hc = NULL;
	VsVmConf gone = { .name = "gone", .driver = VS_DRIVER_QMP };

	e->dir = g_dir_make_tmp("vshare-unit-XXXXXX", NULL);
	vs_config_init(&e->cfg);
	g_free(e->cfg.conf_dir);
	g_free(e->cfg.state_dir);
	e->cfg.conf_dir = g_build_filename(e->dir, "etc", NULL);
	e->cfg.state_dir = g_build_filename(e->dir, "state", NULL);
	g_mkdir_with_parents(e->cfg.conf_dir, 0755);
	hc = g_build_filename(e->cfg.conf_dir, "host.conf", NULL);
	g_assert_true(g_file_set_contents(hc, host_conf, -1, NULL));
	/* QEMU gone: its QMP socket does not exist */
	gone.qmp = g_build_filename(e->dir, "no-such.sock", NULL);
	g_assert_true(vs_registry_add(&e->cfg, &gone, FALSE, NULL));
	g_free(gone.qmp);
	load_host(&e->host, host_conf);
}

static void env_clear(Env *e)
{
	g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", e->dir);

	g_assert_cmpint(system(cmd), ==, 0);
	vs_config_clear(&e->cfg);
	vs_host_clear(&e->host);
	g_free(e->dir);
}

static char *state_file(Env *e, const char *name)
{
	return g_build_filename(e->cfg.state_dir, name, NULL);
}

static void test_state_perms(void)
{
	Env e;
	struct stat st;
	g_autoptr(VsLedger) l = NULL;
	g_autofree char *ledger = NULL, *lock = NULL;
	int fd;

	env_setup(&e);
	g_mkdir_with_parents(e.cfg.state_dir, 0755); /* too open */
	l = ledger_ab(&e.host);
	g_assert_true(vs_store_save(&e.cfg, l, NULL));
	fd = vs_store_lock(&e.cfg, FALSE, NULL);
	g_assert_cmpint(fd, >=, 0);
	ledger = state_file(&e, "ledger.json");
	lock = state_file(&e, "lock");
	g_assert_cmpint(stat(e.cfg.state_dir, &st), ==, 0);
	g_assert_cmpint(st.st_mode & 07777, ==, 0700);
	g_assert_cmpint(stat(ledger, &st), ==, 0);
	g_assert_cmpint(st.st_mode & 07777, ==, 0600);
	g_assert_cmpint(stat(lock, &st), ==, 0);
	g_assert_cmpint(st.st_mode & 07777, ==, 0600);
	{
		g_autoptr(GError) err = NULL;
		g_autofree char *me = g_strdup_printf("(pid %d)", getpid());

		/* a second lock in this process: flock is per open file */
		g_assert_cmpint(vs_store_lock(&e.cfg, FALSE, &err), <, 0);
		g_assert_true(vs_error_is(err, VS_HOST_ERROR_BUSY));
		g_assert_nonnull(strstr(err->message, me));
	}
	vs_store_unlock(fd);
	env_clear(&e);
}

static void write_journal(Env *e, VsLedger *before, VsLedger *after,
			  const char *steps)
{
	g_autoptr(JsonNode) b = vs_ledger_to_json(before);
	g_autoptr(JsonNode) a = vs_ledger_to_json(after);
	g_autofree char *bs = json_to_string(b, FALSE);
	g_autofree char *as = json_to_string(a, FALSE);
	g_autofree char *text = g_strdup_printf(
		"{\"op\":\"lend\",\"pid\":1,\"before\":%s,\"after\":%s,"
		"\"steps\":%s}",
		bs, as, steps);
	g_autofree char *path = state_file(e, "journal.json");

	g_assert_true(vs_state_dir_ensure(e->cfg.state_dir, NULL));
	g_assert_true(g_file_set_contents(path, text, -1, NULL));
}

static void count_events(const VsEvent *ev, gpointer data)
{
	((int *)data)[ev->kind]++;
}

/* Open a locked session (which recovers) and say what happened. */
static gboolean recover_in(Env *e, int *events, GError **error)
{
	VsSession s;
	int fd = vs_store_lock(&e->cfg, FALSE, error);
	gboolean ok;

	g_assert_cmpint(fd, >=, 0);
	ok = vs_session_open(&s, &e->cfg, fd, count_events, events, error);
	vs_session_close(&s);
	return ok;
}

static VsLedger *stored(Env *e)
{
	return vs_store_load(&e->cfg, &e->host, NULL);
}

static void test_recover_states(void)
{
	Env e;
	g_autoptr(VsLedger) before = NULL, after = NULL, now = NULL;
	g_autofree char *journal = NULL;
	const char *steps = "[{\"vm\":\"gone\",\"kind\":\"mem\"},"
			    "{\"vm\":\"gone\",\"kind\":\"cpus\"}]";
	int ev[VS_EV_UNDO_FAILED + 1] = { 0 };
	g_autoptr(GError) err = NULL;

	env_setup(&e);
	journal = state_file(&e, "journal.json");
	before = ledger_ab(&e.host);
	after = vs_ledger_copy(before);
	after->generation++;
	vs_ledger_add_vm(after, "gone");
	/* nothing to recover */
	g_assert_true(vs_store_save(&e.cfg, before, NULL));
	g_assert_true(recover_in(&e, ev, NULL));
	g_assert_cmpint(ev[VS_EV_RECOVER], ==, 0);
	/* interrupted: rolled back; the VM whose QEMU is gone is skipped */
	write_journal(&e, before, after, steps);
	g_assert_true(recover_in(&e, ev, NULL));
	g_assert_cmpint(ev[VS_EV_RECOVER], ==, 1);
	g_assert_cmpint(ev[VS_EV_UNDO_SKIPPED], ==, 2);
	g_assert_false(g_file_test(journal, G_FILE_TEST_EXISTS));
	now = stored(&e);
	g_assert_cmpuint(now->generation, ==, before->generation);
	/* committed before the journal went: just removed */
	g_assert_true(vs_store_save(&e.cfg, after, NULL));
	write_journal(&e, before, after, steps);
	g_assert_true(recover_in(&e, ev, NULL));
	g_assert_false(g_file_test(journal, G_FILE_TEST_EXISTS));
	g_clear_pointer(&now, vs_ledger_free);
	now = stored(&e);
	g_assert_cmpuint(now->generation, ==, after->generation);
	/* a journal of another generation: refused, kept */
	write_journal(&e, after, after, steps);
	before->generation = 99;
	write_journal(&e, before, before, steps);
	g_assert_false(recover_in(&e, ev, &err));
	g_assert_true(vs_error_is(err, VS_HOST_ERROR_CORRUPT));
	g_assert_true(g_file_test(journal, G_FILE_TEST_EXISTS));
	env_clear(&e);
}

static void test_recover_damaged(void)
{
	static const char *const bad[] = {
		"",
		"{",
		"[]",
		"{\"op\":1}",
		"{\"op\":\"x\",\"before\":{},\"after\":{},\"steps\":[]}",
	};
	static const char *const bad_steps[] = {
		"[{\"kind\":\"mem\"}]", /* no vm (was a NULL deref) */
		"[{\"vm\":\"a\",\"kind\":\"x\"}]", /* unknown kind */
		"[{\"vm\":\"../a\",\"kind\":\"mem\"}]",
		"[{\"vm\":5,\"kind\":\"mem\"}]",
		"[1]",
		"{}",
	};
	Env e;
	g_autoptr(VsLedger) l = NULL;
	g_autofree char *journal = NULL;
	int ev[VS_EV_UNDO_FAILED + 1] = { 0 };

	env_setup(&e);
	journal = state_file(&e, "journal.json");
	l = ledger_ab(&e.host);
	g_assert_true(vs_store_save(&e.cfg, l, NULL));
	for (guint i = 0; i < G_N_ELEMENTS(bad) + G_N_ELEMENTS(bad_steps);
	     i++) {
		g_autoptr(GError) err = NULL;

		if (i < G_N_ELEMENTS(bad))
			g_assert_true(
				g_file_set_contents(journal, bad[i], -1, NULL));
		else
			write_journal(&e, l, l,
				      bad_steps[i - G_N_ELEMENTS(bad)]);
		g_assert_false(recover_in(&e, ev, &err));
		g_assert_true(vs_error_is(err, VS_HOST_ERROR_CORRUPT));
		g_assert_true(g_file_test(journal, G_FILE_TEST_EXISTS));
	}
	env_clear(&e);
}

/* tune: weight and nice through the planner, kept in the ledger file */
static void test_plan_tune(void)
{
	VsHost h;
	g_autoptr(VsLedger) l = NULL, back = NULL;
	g_autoptr(VsPlan) p = NULL;
	g_autofree char *text = NULL;
	g_autoptr(GError) e = NULL;
	VsChangeReq r;
	VsLedgerVm *a;

	load_host(&h, host_conf);
	l = ledger_ab(&h);
	r = (VsChangeReq){ .kind = VS_REQ_TUNE, .vm = "zz", .weight = 50 };
	refused(l, &h, &r, VS_HOST_ERROR_USAGE, "unknown VM 'zz'");
	r = (VsChangeReq){ .kind = VS_REQ_TUNE, .vm = "a", .weight = 10001 };
	refused(l, &h, &r, VS_HOST_ERROR_USAGE, "weight must be");
	r = (VsChangeReq){
		.kind = VS_REQ_TUNE, .vm = "a", .nice = 20, .set_nice = TRUE
	};
	refused(l, &h, &r, VS_HOST_ERROR_USAGE, "nice must be");
	r = (VsChangeReq){ .kind = VS_REQ_TUNE, .vm = "a" };
	refused(l, &h, &r, VS_HOST_ERROR_USAGE, "give a weight");
	r = (VsChangeReq){ .kind = VS_REQ_TUNE,
			   .vm = "a",
			   .weight = 250,
			   .nice = -7,
			   .set_nice = TRUE };
	p = vs_plan_make(l, &h, &r, NULL, NULL, &e);
	g_assert_no_error(e);
	g_assert_cmpuint(p->steps->len, ==, 1);
	g_assert_cmpint(g_array_index(p->steps, VsStep, 0).kind, ==,
			VS_STEP_TUNE);
	a = vs_ledger_find(p->after, "a");
	g_assert_cmpint(a->weight, ==, 250);
	g_assert_cmpint(a->nice, ==, -7);
	g_assert_cmpint(vs_ledger_find(l, "a")->weight, ==, 0); /* pure */
	text = vs_store_text(p->after);
	back = vs_store_parse(text, "t", &h, &e);
	g_assert_no_error(e);
	g_assert_cmpint(vs_ledger_find(back, "a")->nice, ==, -7);
	g_assert_cmpint(vs_ledger_find(back, "a")->weight, ==, 250);

	/* an unmanaged VM may be tuned: an entry that owns nothing */
	g_clear_pointer(&p, vs_plan_free);
	r = (VsChangeReq){
		.kind = VS_REQ_TUNE, .vm = "c", .nice = 5, .set_nice = TRUE
	};
	p = vs_plan_make(l, &h, &r, import_ok, NULL, &e);
	g_assert_no_error(e);
	g_assert_true(vs_ledger_find(p->after, "c")->unmanaged);
	g_assert_cmpstr(vs_ledger_owner(p->after, 0), ==, "a");
	g_assert_cmpstr(vs_ledger_owner(p->after, 1), ==, "b");
	/* it cannot lend, nor hold memory until it owns pCPUs */
	{
		g_autoptr(VsLedger) l2 = vs_ledger_copy(p->after);
		VsChangeReq m = { .kind = VS_REQ_MEM, .vm = "c", .node = 0 };

		refused(l2, &h, &m, VS_HOST_ERROR_REFUSED, "not managed");
		m = lend_req("c", "a", 0);
		refused(l2, &h, &m, VS_HOST_ERROR_REFUSED, "does not own");
	}
	vs_host_clear(&h);
}

static void test_cpu_stat(void)
{
	g_assert_cmpint(
		vs_parse_cpu_stat_throttled_ns("nr_periods 10\nnr_throttled 3\n"
					       "throttled_time 123456789\n"),
		==, 123456789);
	g_assert_cmpint(
		vs_parse_cpu_stat_throttled_ns("usage_usec 5\nnr_throttled 1\n"
					       "throttled_usec 250\n"),
		==, 250000);
	g_assert_cmpint(vs_parse_cpu_stat_throttled_ns("nr_periods 1\n"), ==,
			-1);
	g_assert_cmpint(vs_parse_cpu_stat_throttled_ns("throttled_time -5\n"),
			==, -1);
	g_assert_cmpint(vs_parse_cpu_stat_throttled_ns(
				"throttled_usec 99999999999999999999\n"),
			==, -1);
	g_assert_cmpint(vs_parse_cpu_stat_throttled_ns(NULL), ==, -1);
}

/* Files vshared reads (profiles, reservations, keys, the journal): a
 * FIFO, a device or a link is refused at once, never waited on. */
static void test_read_bounded(void)
{
	g_autofree char *dir = g_dir_make_tmp("vs-files-XXXXXX", NULL);
	g_autofree char *fifo = g_build_filename(dir, "fifo.json", NULL);
	g_autofree char *link = g_build_filename(dir, "link.json", NULL);
	g_autofree char *big = g_build_filename(dir, "big.json", NULL);
	g_autofree char *ok = g_build_filename(dir, "ok.json", NULL);
	const char *refused[] = { fifo, link, "/dev/zero", dir };
	g_autofree char *text = NULL;

	g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
	g_assert_cmpint(symlink("/etc/hostname", link), ==, 0);
	g_assert_true(g_file_set_contents(big, "0123456789", -1, NULL));
	g_assert_true(g_file_set_contents(ok, "{}", -1, NULL));
	for (guint i = 0; i < G_N_ELEMENTS(refused); i++) {
		g_autoptr(GError) error = NULL;

		g_assert_null(vs_read_bounded(refused[i], 4096, &error));
		g_test_message("%s", error->message);
	}
	{
		g_autoptr(GError) error = NULL;

		g_assert_null(vs_read_bounded(big, 9, &error));
		g_assert_nonnull(strstr(error->message, "larger than 9"));
	}
	text = vs_read_bounded(ok, 9, NULL);
	g_assert_cmpstr(text, ==, "{}");
	unlink(fifo);
	unlink(link);
	unlink(big);
	unlink(ok);
	rmdir(dir);
}

/* Samples added interleaved come out one block per family, HELP and TYPE
 * first, in declaration order; label values and HELP escaped. */
static void test_prom_grouped(void)
{
	g_autoptr(VsProm) p = vs_prom_new();
	g_autofree char *text = NULL;

	vs_prom_family(p, "x_up", "gauge", "up\\down\nnext");
	vs_prom_family(p, "x_seconds", "summary", "time");
	vs_prom_family(p, "x_up", "counter", "ignored: declared before");
	vs_prom_add(p, "x_seconds", "_sum", 0.25, NULL);
	vs_prom_add(p, "x_up", NULL, 1, "domain", "a\"b\\c\nd", NULL);
	vs_prom_add(p, "x_seconds", "_count", 2, NULL);
	vs_prom_add(p, "x_up", NULL, 0, "domain", "e", "cpu", "3", NULL);
	text = vs_prom_text(p);
	g_assert_cmpstr(text, ==,
			"# HELP x_up up\\\\down\\nnext\n"
			"# TYPE x_up gauge\n"
			"x_up{domain=\"a\\\"b\\\\c\\nd\"} 1\n"
			"x_up{domain=\"e\",cpu=\"3\"} 0\n"
			"# HELP x_seconds time\n"
			"# TYPE x_seconds summary\n"
			"x_seconds_sum 0.25\n"
			"x_seconds_count 2\n");
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/parse/size", test_size);
	g_test_add_func("/files/read-bounded", test_read_bounded);
	g_test_add_func("/parse/mountinfo", test_mountinfo);
	g_test_add_func("/parse/proc-stat", test_proc_stat);
	g_test_add_func("/parse/schedstat-status", test_schedstat_status);
	g_test_add_func("/layout/gaps-cpuless-large", test_layout);
	g_test_add_func("/store/roundtrip", test_store_roundtrip);
	g_test_add_func("/store/corrupt", test_store_corrupt);
	g_test_add_func("/ledger/validate", test_validate);
	g_test_add_func("/plan/refusals", test_plan_refusals);
	g_test_add_func("/plan/lend", test_plan_lend);
	g_test_add_func("/plan/tune", test_plan_tune);
	g_test_add_func("/parse/cpu-stat", test_cpu_stat);
	g_test_add_func("/store/permissions-lock", test_state_perms);
	g_test_add_func("/recover/states", test_recover_states);
	g_test_add_func("/recover/damaged", test_recover_damaged);
	g_test_add_func("/prom/grouped", test_prom_grouped);
	return g_test_run();
}
