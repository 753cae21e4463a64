// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The ownership ledger (STATE/ledger.json): which VM owns each pCPU and how
 * much virtio-mem memory of each host node each VM holds. Written
 * atomically (temp file, fsync, rename, fsync of the directory) under an
 * exclusive flock of STATE/lock, with a SHA-256 of its body so a truncated
 * or edited file is refused instead of guessed at.
 */
#include "vsharectl.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define LEDGER_FORMAT "vshare-ledger-1"

static void ledger_vm_free(gpointer p)
{
	VsLedgerVm *v = p;

	g_free(v->name);
	g_free(v->mode);
	g_free(v);
}

VsLedger *vs_ledger_new(const VsHost *host)
{
	VsLedger *l = g_new0(VsLedger, 1);

	l->host = host ? vs_host_describe(host) : g_strdup("");
	l->vms = g_ptr_array_new_with_free_func(ledger_vm_free);
	return l;
}

void vs_ledger_free(VsLedger *l)
{
	if (!l)
		return;
	g_free(l->host);
	g_ptr_array_free(l->vms, TRUE);
	g_free(l);
}

VsLedgerVm *vs_ledger_find(VsLedger *l, const char *name)
{
	for (guint i = 0; i < l->vms->len; i++) {
		VsLedgerVm *v = g_ptr_array_index(l->vms, i);

		if (!strcmp(v->name, name))
			return v;
	}
	return NULL;
}

VsLedgerVm *vs_ledger_add_vm(VsLedger *l, const char *name)
{
	VsLedgerVm *v = g_new0(VsLedgerVm, 1);

	v->name = g_strdup(name);
	v->mode = g_strdup("coop");
	g_ptr_array_add(l->vms, v);
	return v;
}

VsLedger *vs_ledger_copy(const VsLedger *l)
{
	VsLedger *c = vs_ledger_new(NULL);

	g_free(c->host);
	c->host = g_strdup(l->host);
	c->generation = l->generation;
	for (guint i = 0; i < l->vms->len; i++) {
		VsLedgerVm *v = g_ptr_array_index(l->vms, i);
		VsLedgerVm *n = vs_ledger_add_vm(c, v->name);

		g_free(n->mode);
		n->mode = g_strdup(v->mode);
		n->pcpus = v->pcpus;
		n->unmanaged = v->unmanaged;
		memcpy(n->mem, v->mem, sizeof(n->mem));
	}
	return c;
}

const char *vs_ledger_owner(VsLedger *l, guint cpu)
{
	for (guint i = 0; i < l->vms->len; i++) {
		VsLedgerVm *v = g_ptr_array_index(l->vms, i);

		if (!v->unmanaged && vs_cpuset_has(&v->pcpus, cpu))
			return v->name;
	}
	return NULL;
}

gboolean vs_ledger_validate(VsLedger *l, const VsHost *host, GError **error)
{
	VsCpuSet all, seen;
	guint64 used[VS_MAX_NODES] = { 0 };

	vs_cpuset_clear(&all);
	vs_cpuset_clear(&seen);
	for (guint i = 0; i < host->pcpus->len; i++)
		vs_cpuset_add(&all, g_array_index(host->pcpus, guint, i));
	for (guint i = 0; i < l->vms->len; i++) {
		VsLedgerVm *v = g_ptr_array_index(l->vms, i);
		VsCpuSet both;
		int bad;

		if (v->unmanaged)
			continue;
		bad = vs_cpuset_first_outside(&v->pcpus, &all);

		if (bad >= 0)
			return g_set_error(error, VSC_ERROR, VS_EXIT_REFUSED,
					   "pCPU %d is not a CPU of this host",
					   bad),
			       FALSE;
		vs_cpuset_and(&both, &seen, &v->pcpus);
		if (vs_cpuset_count(&both)) {
			int cpu = vs_cpuset_first_outside(&both,
							  &(VsCpuSet){ 0 });

			return g_set_error(error, VSC_ERROR, VS_EXIT_REFUSED,
					   "pCPU %d would be owned by VM %s "
					   "and VM %s",
					   cpu, vs_ledger_owner(l, cpu),
					   v->name),
			       FALSE;
		}
		for (guint c = 0; c < VS_MAX_CPUS; c++)
			if (vs_cpuset_has(&v->pcpus, c))
				vs_cpuset_add(&seen, c);
		for (guint n = 0; n < host->n_nodes; n++)
			used[n] += v->mem[n];
	}
	for (guint n = 0; n < host->n_nodes; n++)
		if (host->node_mem[n] && used[n] > host->node_mem[n])
			return g_set_error(
				       error, VSC_ERROR, VS_EXIT_REFUSED,
				       "host node %u: VMs would hold "
				       "%" G_GUINT64_FORMAT
				       " MiB of virtio-mem, the node's pool "
				       "is %" G_GUINT64_FORMAT " MiB",
				       n, used[n] >> 20,
				       host->node_mem[n] >> 20),
			       FALSE;
	return TRUE;
}

/* ---- JSON ------------------------------------------------------------- */

JsonNode *vs_ledger_to_json(const VsLedger *l)
{
	g_autoptr(JsonBuilder) b = json_builder_new();

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "generation");
	json_builder_add_int_value(b, l->generation);
	json_builder_set_member_name(b, "host");
	json_builder_add_string_value(b, l->host);
	json_builder_set_member_name(b, "vms");
	json_builder_begin_array(b);
	for (guint i = 0; i < l->vms->len; i++) {
		VsLedgerVm *v = g_ptr_array_index(l->vms, i);
		g_autofree char *cpus = vs_cpuset_format(&v->pcpus);

		json_builder_begin_object(b);
		json_builder_set_member_name(b, "name");
		json_builder_add_string_value(b, v->name);
		json_builder_set_member_name(b, "pcpus");
		json_builder_add_string_value(b, cpus);
		json_builder_set_member_name(b, "mode");
		json_builder_add_string_value(b, v->mode);
		if (v->unmanaged) {
			json_builder_set_member_name(b, "unmanaged");
			json_builder_add_boolean_value(b, TRUE);
		}
		json_builder_set_member_name(b, "vmem-bytes");
		json_builder_begin_array(b);
		for (guint n = 0; n < VS_MAX_NODES; n++) {
			guint last = n;

			for (guint k = n; k < VS_MAX_NODES; k++)
				if (v->mem[k])
					last = k + 1;
			if (n >= last)
				break;
			json_builder_add_int_value(b, (gint64)v->mem[n]);
		}
		json_builder_end_array(b);
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
	json_builder_end_object(b);
	return json_builder_get_root(b);
}

static gboolean corrupt(GError **error, const char *what)
{
	g_set_error(error, VSC_ERROR, VS_EXIT_CORRUPT, "%s", what);
	return FALSE;
}

static gboolean vm_from_json(VsLedger *l, JsonNode *n, GError **error)
{
	JsonObject *o =
		JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
	JsonNode *name, *pcpus, *mode, *mem;
	VsLedgerVm *v;
	JsonArray *a;

	if (!o || !(name = json_object_get_member(o, "name")) ||
	    !(pcpus = json_object_get_member(o, "pcpus")) ||
	    !(mode = json_object_get_member(o, "mode")) ||
	    !(mem = json_object_get_member(o, "vmem-bytes")) ||
	    json_node_get_value_type(name) != G_TYPE_STRING ||
	    json_node_get_value_type(pcpus) != G_TYPE_STRING ||
	    json_node_get_value_type(mode) != G_TYPE_STRING ||
	    !JSON_NODE_HOLDS_ARRAY(mem))
		return corrupt(error, "a VM entry lacks name/pcpus/mode/"
				      "vmem-bytes");
	if (!vs_name_valid(json_node_get_string(name), NULL) ||
	    vs_ledger_find(l, json_node_get_string(name)))
		return corrupt(error, "a VM name is invalid or repeated");
	v = vs_ledger_add_vm(l, json_node_get_string(name));
	if (*json_node_get_string(pcpus) && /* "": parked */
	    !vs_cpuset_parse(json_node_get_string(pcpus), &v->pcpus, NULL))
		return corrupt(error, "a VM's pcpus is not a CPU list");
	if (strcmp(json_node_get_string(mode), "coop") &&
	    strcmp(json_node_get_string(mode), "enforce"))
		return corrupt(error,
			       "a VM's mode is neither coop nor enforce");
	g_free(v->mode);
	v->mode = g_strdup(json_node_get_string(mode));
	v->unmanaged = json_object_has_member(o, "unmanaged") &&
		       json_object_get_boolean_member(o, "unmanaged");
	a = json_node_get_array(mem);
	if (json_array_get_length(a) > VS_MAX_NODES)
		return corrupt(error, "too many nodes in vmem-bytes");
	for (guint i = 0; i < json_array_get_length(a); i++) {
		JsonNode *e = json_array_get_element(a, i);

		if (json_node_get_value_type(e) != G_TYPE_INT64 ||
		    json_node_get_int(e) < 0)
			return corrupt(error, "vmem-bytes holds a non-size");
		v->mem[i] = json_node_get_int(e);
	}
	return TRUE;
}

VsLedger *vs_ledger_from_json(JsonNode *node, GError **error)
{
	g_autoptr(VsLedger) l = vs_ledger_new(NULL);
	JsonObject *o = JSON_NODE_HOLDS_OBJECT(node)
				? json_node_get_object(node)
				: NULL;
	JsonNode *gen, *host, *vms;

	if (!o || !(gen = json_object_get_member(o, "generation")) ||
	    !(host = json_object_get_member(o, "host")) ||
	    !(vms = json_object_get_member(o, "vms")) ||
	    json_node_get_value_type(gen) != G_TYPE_INT64 ||
	    json_node_get_value_type(host) != G_TYPE_STRING ||
	    !JSON_NODE_HOLDS_ARRAY(vms)) {
		corrupt(error, "generation/host/vms missing or mistyped");
		return NULL;
	}
	l->generation = json_node_get_int(gen);
	g_free(l->host);
	l->host = g_strdup(json_node_get_string(host));
	for (guint i = 0; i < json_array_get_length(json_node_get_array(vms));
	     i++)
		if (!vm_from_json(
			    l,
			    json_array_get_element(json_node_get_array(vms), i),
			    error))
			return NULL;
	return g_steal_pointer(&l);
}

/* ---- files ------------------------------------------------------------ */

gboolean vs_write_atomic(const char *path, const char *text, GError **error)
{
	g_autofree char *tmp = g_strdup_printf("%s.tmp.%d", path, getpid());
	g_autofree char *dir = g_path_get_dirname(path);
	gsize len = strlen(text);
	int fd, dfd;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		goto fail;
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
		int saved = errno;

		close(fd);
		unlink(tmp);
		errno = saved ? saved : EIO;
		goto fail;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		int saved = errno;

		unlink(tmp);
		errno = saved;
		goto fail;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return TRUE;
fail:
	g_set_error(error, VSC_ERROR, VS_EXIT_FAILED, "cannot write %s: %s",
		    path, g_strerror(errno));
	return FALSE;
}

int vs_state_lock(const VsOpts *o, int wait_ms, GError **error)
{
	g_autofree char *path = g_build_filename(o->state_dir, "lock", NULL);
	gint64 deadline = g_get_monotonic_time() + (gint64)wait_ms * 1000;
	g_autofree char *pid = NULL;
	int fd;

	if (g_mkdir_with_parents(o->state_dir, 0755) < 0) {
		g_set_error(error, VSC_ERROR, VS_EXIT_FAILED, "mkdir %s: %s",
			    o->state_dir, g_strerror(errno));
		return -1;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		g_set_error(error, VSC_ERROR, VS_EXIT_FAILED, "%s: %s", path,
			    g_strerror(errno));
		return -1;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK || g_get_monotonic_time() > deadline) {
			g_autofree char *holder = vs_read_file(path, NULL);

			g_set_error(error, VSC_ERROR, VS_EXIT_BUSY,
				    "another vsharectl (pid %s) holds %s; "
				    "try again when it is done",
				    holder && *holder ? holder : "?", path);
			close(fd);
			return -1;
		}
		g_usleep(20000);
	}
	pid = g_strdup_printf("%d\n", getpid());
	if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, strlen(pid), 0) < 0)
		g_debug("cannot record our pid in %s", path);
	return fd;
}

static char *checksum_of(JsonNode *body)
{
	g_autofree char *text = json_to_string(body, FALSE);

	return g_compute_checksum_for_string(G_CHECKSUM_SHA256, text, -1);
}

VsLedger *vs_ledger_load(const VsOpts *o, const VsHost *host, GError **error)
{
	g_autofree char *path =
		g_build_filename(o->state_dir, "ledger.json", NULL);
	g_autofree char *text = NULL;
	g_autofree char *sum = NULL;
	g_autofree char *want_host = vs_host_describe(host);
	g_autoptr(JsonParser) p = json_parser_new();
	g_autoptr(GError) local = NULL;
	g_autoptr(VsLedger) l = NULL;
	JsonObject *o_root;
	JsonNode *body;
	const char *stored;

	if (!g_file_test(path, G_FILE_TEST_EXISTS))
		return vs_ledger_new(host);
	text = vs_read_file(path, error);
	if (!text)
		return NULL;
	if (!json_parser_load_from_data(p, text, -1, &local) ||
	    !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p))) {
		g_set_error(error, VSC_ERROR, VS_EXIT_CORRUPT,
			    "%s is not valid JSON (%s): refusing to guess who "
			    "owns what. Restore it from a backup or rebuild it "
			    "with `vsharectl ledger reset --force`",
			    path, local ? local->message : "not an object");
		return NULL;
	}
	o_root = json_node_get_object(json_parser_get_root(p));
	body = json_object_get_member(o_root, "ledger");
	stored = json_object_has_member(o_root, "sha256")
			 ? json_object_get_string_member(o_root, "sha256")
			 : NULL;
	if (g_strcmp0(json_object_has_member(o_root, "format")
			      ? json_object_get_string_member(o_root, "format")
			      : NULL,
		      LEDGER_FORMAT) ||
	    !body || !stored || strcmp(stored, (sum = checksum_of(body)))) {
		g_set_error(error, VSC_ERROR, VS_EXIT_CORRUPT,
			    "%s: format or checksum mismatch (edited or "
			    "damaged): refusing to guess who owns what. "
			    "Rebuild it with `vsharectl ledger reset --force`",
			    path);
		return NULL;
	}
	l = vs_ledger_from_json(body, error);
	if (!l) {
		g_prefix_error(error, "%s: ", path);
		return NULL;
	}
	if (strcmp(l->host, want_host)) {
		g_set_error(error, VSC_ERROR, VS_EXIT_CORRUPT,
			    "%s was written for host layout '%s', the host is "
			    "now '%s': refusing to map old ownership onto it. "
			    "Rebuild it with `vsharectl ledger reset --force`",
			    path, l->host, want_host);
		return NULL;
	}
	return g_steal_pointer(&l);
}

char *vs_ledger_file_text(const VsLedger *l)
{
	g_autoptr(JsonNode) body = vs_ledger_to_json(l);
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(JsonGenerator) gen = json_generator_new();
	g_autofree char *sum = checksum_of(body);
	g_autoptr(JsonNode) root = NULL;

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "format");
	json_builder_add_string_value(b, LEDGER_FORMAT);
	json_builder_set_member_name(b, "sha256");
	json_builder_add_string_value(b, sum);
	json_builder_set_member_name(b, "ledger");
	json_builder_add_value(b, json_node_copy(body));
	json_builder_end_object(b);
	root = json_builder_get_root(b);
	json_generator_set_root(gen, root);
	json_generator_set_pretty(gen, TRUE);
	g_autofree char *data = json_generator_to_data(gen, NULL);

	return g_strconcat(data, "\n", NULL);
}

gboolean vs_ledger_save(const VsOpts *o, const VsLedger *l, GError **error)
{
	g_autofree char *path =
		g_build_filename(o->state_dir, "ledger.json", NULL);
	g_autofree char *text = vs_ledger_file_text(l);

	return vs_write_atomic(path, text, error);
}
