// SPDX-License-Identifier: GPL-2.0-or-later
/* Unit tests of libvshare-proto (GLib test framework, TAP output). */
#include "vshare-proto.h"

#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- CPU sets ------------------------------------------------------- */

static void test_cpuset_parse(void)
{
	VsCpuSet s;
	g_autofree char *f = NULL;
	g_autofree char *m = NULL;

	g_assert_true(vs_cpuset_parse("0-3,8,10-11", &s, NULL));
	g_assert_cmpuint(vs_cpuset_count(&s), ==, 7);
	f = vs_cpuset_format(&s);
	g_assert_cmpstr(f, ==, "0-3,8,10-11");
	m = vs_cpuset_format_mask(&s);
	g_assert_cmpstr(m, ==, "d0f");
}

static void test_cpuset_bad(void)
{
	static const char *const bad[] = {
		"", "a", "1-", "3-1", "1,", ",1", "1 2", "0-99999", "-1", "1--2"
	};
	VsCpuSet s;

	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) e = NULL;

		g_assert_false(vs_cpuset_parse(bad[i], &s, &e));
		g_assert_nonnull(e);
		g_assert_cmpuint(vs_cpuset_count(&s), ==, 0);
	}
}

static void test_cpuset_mask(void)
{
	VsCpuSet s, t;
	g_autofree char *m = NULL;
	g_autofree char *l = NULL;

	g_assert_true(vs_cpuset_parse("0,33,64", &s, NULL));
	m = vs_cpuset_format_mask(&s);
	g_assert_cmpstr(m, ==, "1,00000002,00000001");
	g_assert_true(vs_cpuset_parse_mask(m, &t, NULL));
	g_assert_true(vs_cpuset_equal(&s, &t));
	g_assert_true(vs_cpuset_parse_mask("ffffffff", &t, NULL));
	l = vs_cpuset_format(&t);
	g_assert_cmpstr(l, ==, "0-31");
	g_assert_false(vs_cpuset_parse_mask("xyz", &t, NULL));
	g_assert_false(vs_cpuset_parse_mask("", &t, NULL));
}

static void test_cpuset_ops(void)
{
	VsCpuSet a, b, c;

	vs_cpuset_parse("0-3", &a, NULL);
	vs_cpuset_parse("2-5", &b, NULL);
	g_assert_false(vs_cpuset_is_subset(&b, &a));
	g_assert_cmpint(vs_cpuset_first_outside(&b, &a), ==, 4);
	vs_cpuset_and(&c, &a, &b);
	g_assert_cmpuint(vs_cpuset_count(&c), ==, 2);
	g_assert_true(vs_cpuset_is_subset(&c, &a));
}

/* ---- framing -------------------------------------------------------- */

typedef struct {
	GPtrArray *frames; /* char*, or "ERR:<message>" */
} Collect;

static void collect(const char *frame, gsize len, const GError *error,
		    gpointer user_data)
{
	Collect *c = user_data;

	if (error)
		g_ptr_array_add(c->frames,
				g_strconcat("ERR:", error->message, NULL));
	else
		g_ptr_array_add(c->frames, g_strndup(frame, len));
}

static GPtrArray *frame_all(const void *data, gsize len, gsize chunk)
{
	Collect c = { g_ptr_array_new_with_free_func(g_free) };
	g_autoptr(VsFramer) f = vs_framer_new(VS_MAX_FRAME, collect, &c);
	const guint8 *p = data;

	for (gsize off = 0; off < len; off += chunk)
		vs_framer_feed(f, p + off, MIN(chunk, len - off));
	return c.frames;
}

static void test_framer_split(void)
{
	const char *in = "{\"a\":\"}{\\\"\"}{\"b\":[1,{\"c\":2}]}\n"
			 "  {\"d\":1}";

	/* Byte by byte and all at once give the same frames. */
	for (gsize chunk = 1; chunk <= strlen(in); chunk += strlen(in) - 1) {
		g_autoptr(GPtrArray) fr = frame_all(in, strlen(in), chunk);

		g_assert_cmpuint(fr->len, ==, 3);
		g_assert_cmpstr(fr->pdata[0], ==, "{\"a\":\"}{\\\"\"}");
		g_assert_cmpstr(fr->pdata[1], ==, "{\"b\":[1,{\"c\":2}]}");
		g_assert_cmpstr(fr->pdata[2], ==, "{\"d\":1}");
	}
}

static void test_framer_sentinel(void)
{
	const char in[] = "{\"half\": \"xx\xff{\"ok\":1}";
	g_autoptr(GPtrArray) fr = frame_all(in, sizeof(in) - 1, 4);

	g_assert_cmpuint(fr->len, ==, 1);
	g_assert_cmpstr(fr->pdata[0], ==, "{\"ok\":1}");
}

static void test_framer_oversized(void)
{
	GString *s = g_string_new("{\"x\":\"");
	g_autoptr(GPtrArray) fr = NULL;

	while (s->len < VS_MAX_FRAME + 100)
		g_string_append(s, "aaaaaaaaaa");
	g_string_append(s, "\"}\n{\"after\":1}\n");
	fr = frame_all(s->str, s->len, 1000);
	g_assert_cmpuint(fr->len, ==, 2);
	g_assert_true(g_str_has_prefix(fr->pdata[0], "ERR:JSON frame exceeds"));
	g_assert_cmpstr(fr->pdata[1], ==, "{\"after\":1}");
	g_string_free(s, TRUE);
}

static void test_framer_deep(void)
{
	GString *s = g_string_new(NULL);
	g_autoptr(GPtrArray) fr = NULL;

	for (int i = 0; i < 100; i++)
		g_string_append(s, "{\"a\":");
	g_string_append(s, "1\n{\"after\":1}");
	fr = frame_all(s->str, s->len, 7);
	g_assert_cmpuint(fr->len, ==, 2);
	g_assert_true(g_str_has_prefix(fr->pdata[0], "ERR:JSON nesting"));
	g_assert_cmpstr(fr->pdata[1], ==, "{\"after\":1}");
	g_string_free(s, TRUE);
}

static void test_framer_garbage(void)
{
	const char *in = "hello world\n{\"ok\":1}";
	g_autoptr(GPtrArray) fr = frame_all(in, strlen(in), 3);

	g_assert_cmpuint(fr->len, ==, 2);
	g_assert_true(g_str_has_prefix(fr->pdata[0], "ERR:JSON parse error"));
	g_assert_cmpstr(fr->pdata[1], ==, "{\"ok\":1}");
}

/* ---- dispatch ------------------------------------------------------- */

static JsonNode *echo_handler(JsonObject *args, gpointer ctx, GError **error)
{
	JsonNode *n = json_node_new(JSON_NODE_OBJECT);

	(void)ctx;
	(void)error;
	json_node_set_object(n, args);
	return n;
}

static JsonNode *fail_handler(JsonObject *args, gpointer ctx, GError **error)
{
	(void)args;
	(void)ctx;
	g_set_error(error, VS_ERROR, VS_ERROR_GENERIC, "it failed");
	return NULL;
}

static VsDispatcher *test_dispatcher(VsHandler h)
{
	VsDispatcher *d = vs_dispatcher_new("9.9");
	g_auto(GStrv) unbound = vs_dispatcher_unbound(d);

	/* every command the agent implements (not the built-in guest-sync,
	 * guest-sync-delimited, guest-ping, guest-info) */
	for (char **n = unbound; *n; n++)
		g_assert_true(vs_dispatcher_register(d, *n, h, NULL, NULL));
	return d;
}

/* Send @req, parse the reply; @sentinel: whether it began with 0xFF. */
static JsonObject *roundtrip(VsDispatcher *d, const char *req,
			     gboolean *sentinel)
{
	g_autoptr(GBytes) rep = vs_dispatcher_handle(d, req, strlen(req), NULL);
	gsize len;
	const char *data = g_bytes_get_data(rep, &len);
	g_autoptr(JsonParser) p = json_parser_new();

	g_assert_cmpuint(len, >, 1);
	g_assert_cmpint(data[len - 1], ==, '\n');
	if (sentinel)
		*sentinel = (guint8)data[0] == VS_SENTINEL;
	if ((guint8)data[0] == VS_SENTINEL) {
		data++;
		len--;
	}
	g_assert_true(json_parser_load_from_data(p, data, (gssize)len, NULL));
	return json_object_ref(json_node_get_object(json_parser_get_root(p)));
}

static const char *err_class(JsonObject *o)
{
	if (!json_object_has_member(o, "error"))
		return NULL;
	return json_object_get_string_member(
		json_object_get_object_member(o, "error"), "class");
}

static const char *err_desc(JsonObject *o)
{
	return json_object_get_string_member(
		json_object_get_object_member(o, "error"), "desc");
}

static void test_dispatch_builtins(void)
{
	g_autoptr(VsDispatcher) d = test_dispatcher(echo_handler);
	g_autoptr(JsonObject) sync = NULL, delim = NULL, ping = NULL;
	g_autoptr(JsonObject) info = NULL;
	gboolean sentinel;
	JsonArray *cmds;
	guint n = 0;

	sync = roundtrip(d,
			 "{\"execute\":\"guest-sync\",\"arguments\":{\"id\":"
			 "1234567890123}}",
			 &sentinel);
	g_assert_false(sentinel);
	g_assert_cmpint(json_object_get_int_member(sync, "return"), ==,
			1234567890123);
	delim = roundtrip(d,
			  "{\"execute\":\"guest-sync-delimited\","
			  "\"arguments\":{\"id\":7},\"id\":\"x\"}",
			  &sentinel);
	g_assert_true(sentinel);
	g_assert_cmpint(json_object_get_int_member(delim, "return"), ==, 7);
	g_assert_cmpstr(json_object_get_string_member(delim, "id"), ==, "x");
	ping = roundtrip(d, "{\"execute\":\"guest-ping\"}", NULL);
	g_assert_cmpuint(json_object_get_size(
				 json_object_get_object_member(ping, "return")),
			 ==, 0);
	info = roundtrip(d, "{\"execute\":\"guest-info\"}", NULL);
	cmds = json_object_get_array_member(
		json_object_get_object_member(info, "return"),
		"supported_commands");
	for (const VsCommandSpec *c = vs_schema_commands; c->name; c++)
		n++;
	g_assert_cmpuint(json_array_get_length(cmds), ==, n);
	g_assert_cmpstr(json_object_get_string_member(
				json_object_get_object_member(info, "return"),
				"version"),
			==, "9.9");
}

static void test_dispatch_errors(void)
{
	static const struct {
		const char *req;
		const char *cls;
		const char *desc; /* prefix */
	} cases[] = {
		{ "{\"execute\":\"nope\"}", "CommandNotFound",
		  "The command nope has not been found" },
		{ "{\"execute\":\"guest-sync\"}", "GenericError",
		  "Parameter 'id' is missing" },
		{ "{\"execute\":\"guest-sync\",\"arguments\":{\"id\":\"1\"}}",
		  "GenericError",
		  "Invalid parameter type for 'id', expected: integer" },
		{ "{\"execute\":\"guest-ping\",\"arguments\":{\"x\":1}}",
		  "GenericError", "Parameter 'x' is unexpected" },
		{ "{\"execute\":\"guest-ping\",\"arguments\":[]}",
		  "GenericError", "QMP input member 'arguments' must be" },
		{ "{\"execute\":1}", "GenericError",
		  "QMP input member 'execute' must be" },
		{ "{\"arguments\":{}}", "GenericError",
		  "QMP input lacks member 'execute'" },
		{ "{\"execute\":\"guest-ping\",\"foo\":1}", "GenericError",
		  "QMP input member 'foo' is unexpected" },
		{ "{\"execute\":\"guest-ping\"", "GenericError",
		  "JSON parse error" },
		{ "{\"execute\":\"guest-ping\"}}", "GenericError",
		  "JSON parse error" },
		{ "{\"execute\":\"\xc3\x28\"}", "GenericError",
		  "JSON parse error: invalid UTF-8" },
		{ "{\"execute\":\"vshare-set-allocation\",\"arguments\":"
		  "{\"cpus\":\"1-\"}}",
		  "GenericError", "Parameter 'cpus': invalid CPU/node list" },
		{ "{\"execute\":\"vshare-set-allocation\",\"arguments\":"
		  "{\"cpus\":\"\"}}",
		  "GenericError", "Parameter 'cpus': empty" },
		{ "{\"execute\":\"vshare-set-allocation\",\"arguments\":"
		  "{\"cpus\":0}}",
		  "GenericError", "Invalid parameter type for 'cpus'" },
	};
	g_autoptr(VsDispatcher) d = test_dispatcher(echo_handler);

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(JsonObject) r = roundtrip(d, cases[i].req, NULL);

		g_test_message("request %s", cases[i].req);
		g_assert_cmpstr(err_class(r), ==, cases[i].cls);
		g_assert_true(g_str_has_prefix(err_desc(r), cases[i].desc));
	}
}

/* Every schema command accepts its full argument set and rejects a
 * missing required argument. */
/* [{"logical-id": 1, "online": true}] */
static void add_vcpus(JsonBuilder *b)
{
	json_builder_begin_array(b);
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "logical-id");
	json_builder_add_int_value(b, 1);
	json_builder_set_member_name(b, "online");
	json_builder_add_boolean_value(b, TRUE);
	json_builder_end_object(b);
	json_builder_end_array(b);
}

static void test_dispatch_every_command(void)
{
	g_autoptr(VsDispatcher) d = test_dispatcher(echo_handler);

	for (const VsCommandSpec *c = vs_schema_commands; c->name; c++) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		g_autoptr(JsonGenerator) gen = json_generator_new();
		g_autoptr(JsonNode) root = NULL;
		g_autofree char *req = NULL;
		g_autoptr(JsonObject) r = NULL;

		json_builder_begin_object(b);
		json_builder_set_member_name(b, "execute");
		json_builder_add_string_value(b, c->name);
		json_builder_set_member_name(b, "arguments");
		json_builder_begin_object(b);
		for (const VsArgSpec *a = c->args; a->name; a++) {
			json_builder_set_member_name(b, a->name);
			if (a->type == VS_TYPE_INT)
				json_builder_add_int_value(b, 1);
			else if (a->type == VS_TYPE_BOOL)
				json_builder_add_boolean_value(b, TRUE);
			else if (a->type == VS_TYPE_VCPUS)
				add_vcpus(b);
			else
				json_builder_add_string_value(b, "0");
		}
		json_builder_end_object(b);
		json_builder_end_object(b);
		root = json_builder_get_root(b);
		json_generator_set_root(gen, root);
		req = json_generator_to_data(gen, NULL);
		r = roundtrip(d, req, NULL);
		g_test_message("%s", req);
		g_assert_null(err_class(r));
		g_assert_true(json_object_has_member(r, "return"));
	}
}

static void test_dispatch_handler_error(void)
{
	g_autoptr(VsDispatcher) d = test_dispatcher(fail_handler);
	g_autoptr(JsonObject) r = roundtrip(
		d, "{\"execute\":\"vshare-get-topology\",\"id\":5}", NULL);

	g_assert_cmpstr(err_class(r), ==, "GenericError");
	g_assert_cmpstr(err_desc(r), ==, "it failed");
	g_assert_cmpint(json_object_get_int_member(r, "id"), ==, 5);
}

static void test_dispatch_allow_block(void)
{
	g_autoptr(VsDispatcher) d = test_dispatcher(echo_handler);
	g_autoptr(GError) e = NULL;
	g_autoptr(JsonObject) r1 = NULL, r2 = NULL;

	g_assert_false(vs_dispatcher_block(d, "guest-ping,bogus", &e));
	g_assert_true(vs_dispatcher_is_enabled(d, "guest-ping"));
	g_assert_true(vs_dispatcher_block(d, "vshare-set-allocation", NULL));
	r1 = roundtrip(d,
		       "{\"execute\":\"vshare-set-allocation\","
		       "\"arguments\":{\"cpus\":\"0\"}}",
		       NULL);
	g_assert_cmpstr(err_class(r1), ==, "CommandNotFound");
	g_assert_cmpstr(err_desc(r1), ==,
			"Command vshare-set-allocation has been disabled");
	g_assert_true(
		vs_dispatcher_allow_only(d, "guest-sync,guest-info", NULL));
	g_assert_false(vs_dispatcher_is_enabled(d, "guest-ping"));
	g_assert_true(vs_dispatcher_is_enabled(d, "guest-info"));
	r2 = roundtrip(d, "{\"execute\":\"guest-ping\"}", NULL);
	g_assert_cmpstr(err_class(r2), ==, "CommandNotFound");
}

static void test_dispatch_unbound(void)
{
	g_autoptr(VsDispatcher) d = vs_dispatcher_new("1");
	g_auto(GStrv) unbound = vs_dispatcher_unbound(d);
	g_autoptr(GError) e = NULL;

	g_assert_true(g_strv_contains((const char *const *)unbound,
				      "vshare-get-topology"));
	g_assert_false(
		g_strv_contains((const char *const *)unbound, "guest-ping"));
	g_assert_false(vs_dispatcher_register(d, "not-in-schema", echo_handler,
					      NULL, &e));
	g_assert_error(e, VS_ERROR, VS_ERROR_COMMAND_NOT_FOUND);
}

static void test_frame_error_reply(void)
{
	g_autoptr(VsDispatcher) d = test_dispatcher(echo_handler);
	g_autoptr(GError) fe =
		g_error_new_literal(VS_ERROR, VS_ERROR_GENERIC, "too big");
	g_autoptr(GBytes) rep = vs_dispatcher_handle(d, NULL, 0, fe);
	gsize len;
	const char *data = g_bytes_get_data(rep, &len);

	g_assert_cmpstr(data, ==,
			"{\"error\":{\"class\":\"GenericError\",\"desc\":"
			"\"too big\"}}\n");
	g_assert_cmpuint(len, ==, strlen(data));
}

static void test_request_build(void)
{
	JsonObject *args = json_object_new();
	g_autofree char *line = NULL;

	json_object_set_string_member(args, "cpus", "0-1");
	line = vs_request_build("vshare-set-allocation", args, 3);
	g_assert_cmpstr(line, ==,
			"{\"execute\":\"vshare-set-allocation\",\"arguments\":"
			"{\"cpus\":\"0-1\"},\"id\":3}\n");
}

/* ---- task identity ----------------------------------------------- */

static pid_t spawn_idle(void)
{
	pid_t pid = fork();

	g_assert_cmpint(pid, >=, 0);
	if (pid == 0) {
		/* Dies with the test even when an assertion aborts it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		pause();
		_exit(0);
	}
	return pid;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	g_assert_cmpint(waitpid(pid, NULL, 0), ==, pid);
}

static void test_task_stat_field(void)
{
	guint64 v;

	g_assert_true(vs_task_stat_field(getpid(), 4, &v)); /* ppid */
	g_assert_cmpuint(v, ==, (guint64)getppid());
	g_assert_true(vs_task_stat_field(getpid(), 22, &v));
	g_assert_false(vs_task_stat_field(getpid(), 2, &v));
	g_assert_false(vs_task_stat_field(getpid(), 400, &v));
	g_assert_false(vs_task_stat_field(-1, 22, &v));
}

static void test_task_set_exit_and_prune(void)
{
	g_autoptr(VsTaskSet) set = vs_task_set_new();
	g_autoptr(GArray) none = g_array_new(FALSE, FALSE, sizeof(int));
	pid_t a = spawn_idle(), b = spawn_idle();

	vs_task_set_add(set, a);
	vs_task_set_add(set, b);
	g_assert_true(vs_task_set_contains(set, a));
	reap(a);
	g_assert_false(vs_task_set_contains(set, a)); /* gone: forgotten */
	g_assert_cmpuint(vs_task_set_size(set), ==, 1);
	vs_task_set_prune(set, none); /* b is no longer listed */
	g_assert_cmpuint(vs_task_set_size(set), ==, 0);
	g_assert_false(vs_task_set_contains(set, b));
	reap(b);
}

/* prune() also forgets a task that exited while its pid is still
 * listed (one poll() over the pidfds); has() then answers from the set. */
static void test_task_set_prune_exited(void)
{
	g_autoptr(VsTaskSet) set = vs_task_set_new();
	g_autoptr(GArray) both = g_array_new(FALSE, FALSE, sizeof(int));
	pid_t a = spawn_idle(), b = spawn_idle();

	g_array_append_val(both, a);
	g_array_append_val(both, b);
	vs_task_set_add(set, a);
	vs_task_set_add(set, b);
	vs_task_set_prune(set, both);
	g_assert_true(vs_task_set_has(set, a) && vs_task_set_has(set, b));
	reap(a);
	vs_task_set_prune(set, both);
	g_assert_false(vs_task_set_has(set, a));
	g_assert_true(vs_task_set_has(set, b));
	reap(b);
}

/* The clock /proc's starttime counts (boot time, in clock ticks). */
static guint64 boot_ticks(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return ((guint64)ts.tv_sec * 1000000000u + (guint64)ts.tv_nsec) /
	       (1000000000u / (guint64)sysconf(_SC_CLK_TCK));
}

/* Fork until the child gets @pid (ns_last_pid = @pid - 1 first); -1 when
 * other processes keep taking it. */
static pid_t spawn_at(pid_t pid)
{
	g_autofree char *last = g_strdup_printf("%d", pid - 1);

	for (int i = 0; i < 50; i++) {
		pid_t c;

		if (!vs_write_file("/proc/sys/kernel/ns_last_pid", last, NULL))
			return -1;
		c = spawn_idle();
		if (c == pid)
			return c;
		reap(c);
	}
	return -1;
}

/* A pid the kernel recycles is a new task: the set must not keep skipping
 * it (a kthread's pid reused by a process that can be moved). */
static void test_task_set_recycled_pid(void)
{
	g_autoptr(VsTaskSet) set = vs_task_set_new();
	pid_t a = spawn_idle(), b;
	guint64 start;

	vs_task_set_add(set, a);
	g_assert_true(vs_task_stat_field(a, 22, &start));
	reap(a);
	/* The new task must start in a later clock tick than the old one. */
	while (boot_ticks() <= start)
		g_usleep(1000);
	b = spawn_at(a);
	if (b < 0) {
		g_test_skip("cannot recycle a pid (needs root for "
			    "/proc/sys/kernel/ns_last_pid)");
		return;
	}
	g_assert_false(vs_task_set_contains(set, b));
	g_assert_cmpuint(vs_task_set_size(set), ==, 0);
	vs_task_set_add(set, b);
	g_assert_true(vs_task_set_contains(set, b));
	reap(b);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/cpuset/parse", test_cpuset_parse);
	g_test_add_func("/cpuset/bad", test_cpuset_bad);
	g_test_add_func("/cpuset/mask", test_cpuset_mask);
	g_test_add_func("/cpuset/ops", test_cpuset_ops);
	g_test_add_func("/framer/split", test_framer_split);
	g_test_add_func("/framer/sentinel", test_framer_sentinel);
	g_test_add_func("/framer/oversized", test_framer_oversized);
	g_test_add_func("/framer/deep", test_framer_deep);
	g_test_add_func("/framer/garbage", test_framer_garbage);
	g_test_add_func("/dispatch/builtins", test_dispatch_builtins);
	g_test_add_func("/dispatch/errors", test_dispatch_errors);
	g_test_add_func("/dispatch/every-command", test_dispatch_every_command);
	g_test_add_func("/dispatch/handler-error", test_dispatch_handler_error);
	g_test_add_func("/dispatch/allow-block", test_dispatch_allow_block);
	g_test_add_func("/dispatch/unbound", test_dispatch_unbound);
	g_test_add_func("/dispatch/frame-error", test_frame_error_reply);
	g_test_add_func("/request/build", test_request_build);
	g_test_add_func("/task/stat-field", test_task_stat_field);
	g_test_add_func("/task/set-exit-prune", test_task_set_exit_and_prune);
	g_test_add_func("/task/set-recycled-pid", test_task_set_recycled_pid);
	g_test_add_func("/task/set-prune-exited", test_task_set_prune_exited);
	return g_test_run();
}
