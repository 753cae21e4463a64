// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The QMP driver: a QEMU started by hand or by a tool other than libvirt,
 * reached through a QMP socket of its own. The QEMU process is the QMP
 * peer (SO_PEERCRED), checked against the registry's pidfile= when given;
 * vCPU threads must be its tasks. Pinning is sched_setaffinity of those
 * threads; throttling is vshare's own cpu cgroups (cgroup.c); virtio-mem
 * is qom-set of requested-size, its progress heard as QMP events.
 */
#include "vshare-host.h"

#include <poll.h>
#include <string.h>
#include <unistd.h>

typedef struct {
	VsPeer *qmp;
	guint events;	  /* MEMORY_DEVICE_SIZE_CHANGE etc. heard */
	char *mig_status; /* the last MIGRATION event's status */
} QmpVm;

static QmpVm *priv(VsVm *vm)
{
	return vm->priv;
}

static void on_event(JsonObject *ev, gpointer data)
{
	VsVm *vm = data;
	JsonNode *d = json_object_get_member(ev, "data");
	const char *name = vs_json_str(ev, "event");
	const char *status = vs_json_str(
		d && JSON_NODE_HOLDS_OBJECT(d) ? json_node_get_object(d) : NULL,
		"status");

	priv(vm)->events++;
	if (!g_strcmp0(name, "RESUME"))
		vm->incoming = FALSE;
	if (!g_strcmp0(name, "MIGRATION") && status && strlen(status) < 32) {
		g_free(priv(vm)->mig_status);
		priv(vm)->mig_status = g_strdup(status);
	}
}

/* Events queued by a pump go through on_event. */
static void drain(VsVm *vm)
{
	JsonNode *n;

	while ((n = vs_peer_recv_queued(priv(vm)->qmp))) {
		if (JSON_NODE_HOLDS_OBJECT(n) &&
		    json_object_has_member(json_node_get_object(n), "event"))
			on_event(json_node_get_object(n), vm);
		json_node_unref(n);
	}
}

static JsonNode *call(VsVm *vm, const char *cmd, JsonObject *args,
		      GError **error)
{
	return vs_qmp_call(priv(vm)->qmp, cmd, args, vm->cfg->qmp_timeout_ms,
			   on_event, vm, error);
}

static gboolean expected_pid(VsVm *vm, pid_t peer, GError **error)
{
	g_autofree char *text = NULL;
	gint64 want;

	if (!vm->conf->pidfile)
		return TRUE;
	text = vs_read_bounded(vm->conf->pidfile, 64, error);
	if (!text)
		return FALSE;
	want = g_ascii_strtoll(g_strstrip(text), NULL, 10);
	if (want != peer)
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_HOSTILE,
				   "the QMP socket %s is served by pid %d, "
				   "not by QEMU pid %" G_GINT64_FORMAT " (%s)",
				   vm->conf->qmp, (int)peer, want,
				   vm->conf->pidfile),
		       FALSE;
	return TRUE;
}

/* A QEMU started with -incoming that has not resumed yet. */
static gboolean inmigrate(VsVm *vm)
{
	g_autoptr(JsonNode) r = call(vm, "query-status", NULL, NULL);
	JsonObject *o =
		r && JSON_NODE_HOLDS_OBJECT(r) ? json_node_get_object(r) : NULL;

	return !g_strcmp0(vs_json_str(o, "status"), "inmigrate");
}

static gboolean qmp_open(VsVm *vm, const VsConfig *c, GError **error)
{
	QmpVm *q = g_new0(QmpVm, 1);
	g_autoptr(JsonNode) cpus = NULL;
	pid_t pid;
	uid_t uid;

	vm->priv = q;
	q->qmp = vs_qmp_open(vm->conf->qmp, c->qmp_timeout_ms, error);
	if (!q->qmp || !vs_peer_cred(q->qmp, &pid, &uid, error) ||
	    !expected_pid(vm, pid, error))
		return FALSE;
	vm->qemu_pid = pid;
	vm->agent_path = g_strdup(vm->conf->agent);
	cpus = call(vm, "query-cpus-fast", NULL, error);
	if (!cpus || !vs_qmp_parse_vcpus(cpus, vm->vcpus, error))
		return FALSE;
	vm->incoming = inmigrate(vm);
	return vs_vm_refresh_mem(vm, error);
}

static void qmp_close(VsVm *vm)
{
	if (!priv(vm))
		return;
	vs_peer_free(priv(vm)->qmp);
	g_free(priv(vm)->mig_status);
	g_free(priv(vm));
	vm->priv = NULL;
}

static gboolean qmp_refresh_mem(VsVm *vm, GError **error)
{
	g_autoptr(JsonNode) r = call(vm, "query-memory-devices", NULL, error);

	return r && vs_qmp_parse_vmems(r, vm->vmems, error);
}

static gboolean qmp_pin(VsVm *vm, guint vcpu, guint pcpu, GError **error)
{
	gint64 tid = g_array_index(vm->vcpus, VsVcpu, vcpu).tid;

	if (!vs_pin_thread(tid, pcpu, error)) {
		g_prefix_error(error, "VM %s: vCPU %u: ", vm->conf->name, vcpu);
		return FALSE;
	}
	return TRUE;
}

static gboolean qmp_mem_request(VsVm *vm, VsVmem *d, guint64 bytes,
				GError **error)
{
	g_autoptr(JsonObject) args = json_object_new();
	g_autoptr(JsonNode) r = NULL;

	json_object_set_string_member(args, "path", d->id);
	json_object_set_string_member(args, "property", "requested-size");
	json_object_set_int_member(args, "value", (gint64)bytes);
	r = call(vm, "qom-set", json_object_ref(args), error);
	return r != NULL;
}

/* Until QEMU says something (MEMORY_DEVICE_SIZE_CHANGE), at most 100 ms:
 * QEMU rate-limits that event to one a second per device, so the size is
 * also read again at that pace rather than a second late. */
static void qmp_wait(VsVm *vm, gint64 deadline)
{
	gint64 until = MIN(deadline, g_get_monotonic_time() + 100000);
	struct pollfd pf = { .fd = vs_peer_fd(priv(vm)->qmp),
			     .events = POLLIN };
	gint64 left = (until - g_get_monotonic_time()) / 1000;

	if (left > 0 && poll(&pf, 1, (int)left) > 0) {
		vs_peer_pump(priv(vm)->qmp, NULL);
		drain(vm);
	}
}

static gboolean under_way(const char *s)
{
	return s && (!strcmp(s, "setup") || !strcmp(s, "active") ||
		     !strcmp(s, "device") || !strcmp(s, "pre-switchover") ||
		     !strcmp(s, "completed"));
}

/* The migration's own error text (query-migrate), for a failure. */
static char *mig_error(VsVm *vm)
{
	g_autoptr(JsonNode) r = call(vm, "query-migrate", NULL, NULL);
	JsonObject *o =
		r && JSON_NODE_HOLDS_OBJECT(r) ? json_node_get_object(r) : NULL;
	const char *why = vs_json_str(o, "error-desc");

	return g_strdup(why ? why : "no reason given");
}

static gboolean qmp_migrate(VsVm *vm, const char *uri, char **status,
			    GError **error)
{
	QmpVm *q = priv(vm);
	g_autoptr(JsonNode) caps = NULL, r = NULL;
	JsonObject *args = json_object_new(), *cap = json_object_new();
	JsonArray *a = json_array_new();
	gint64 deadline;

	/* MIGRATION events are sent only with the "events" capability */
	json_object_set_string_member(cap, "capability", "events");
	json_object_set_boolean_member(cap, "state", TRUE);
	json_array_add_object_element(a, cap);
	json_object_set_array_member(args, "capabilities", a);
	caps = call(vm, "migrate-set-capabilities", args, error);
	if (!caps)
		return FALSE;
	g_clear_pointer(&q->mig_status, g_free);
	args = json_object_new();
	json_object_set_string_member(args, "uri", uri);
	r = call(vm, "migrate", args, error);
	if (!r)
		return FALSE;
	deadline =
		g_get_monotonic_time() + (gint64)vm->cfg->qmp_timeout_ms * 1000;
	while (!under_way(q->mig_status) &&
	       g_strcmp0(q->mig_status, "failed") &&
	       g_strcmp0(q->mig_status, "cancelled")) {
		if (g_get_monotonic_time() > deadline)
			return vs_fail(error, VS_HOST_ERROR_UNREACHABLE,
				       "VM %s: QEMU said nothing of the "
				       "migration to %s (last: %s)",
				       vm->conf->name, uri,
				       q->mig_status ? q->mig_status : "none");
		qmp_wait(vm, deadline);
	}
	if (!under_way(q->mig_status)) {
		g_autofree char *why = mig_error(vm);

		return vs_fail(error, VS_HOST_ERROR_FAILED,
			       "VM %s: the migration to %s %s: %s",
			       vm->conf->name, uri, q->mig_status, why);
	}
	*status = g_strdup(q->mig_status);
	return TRUE;
}

static gboolean qmp_alive(VsVm *vm)
{
	g_autofree char *dir = g_strdup_printf("%s/%" G_GINT64_FORMAT,
					       vm->cfg->proc, vm->qemu_pid);

	return vm->qemu_pid > 0 && g_file_test(dir, G_FILE_TEST_IS_DIR);
}

static int qmp_watch_fd(VsVm *vm)
{
	return priv(vm) && priv(vm)->qmp ? vs_peer_fd(priv(vm)->qmp) : -1;
}

/* Events are only counted: lifecycle matters through the connection
 * itself (QEMU closes it when it exits). */
static gboolean qmp_watch_read(VsVm *vm)
{
	gboolean ok = vs_peer_pump(priv(vm)->qmp, NULL);

	drain(vm);
	return ok;
}

static const char *qmp_backend(VsVm *vm)
{
	return vs_cgroup_cpu_backend();
}

const VsVmDriver vs_vmdrv_qmp = {
	.name = "qmp",
	.open = qmp_open,
	.close = qmp_close,
	.refresh_mem = qmp_refresh_mem,
	.pin = qmp_pin,
	.throttle = vs_cgroup_throttle,
	.throttled = vs_cgroup_throttled,
	.mem_request = qmp_mem_request,
	.wait = qmp_wait,
	.alive = qmp_alive,
	.throttle_backend = qmp_backend,
	.watch_fd = qmp_watch_fd,
	.watch_read = qmp_watch_read,
	.set_weight = vs_cgroup_weight,
	.throttled_ns = vs_cgroup_throttled_ns,
	.migrate = qmp_migrate,
};
