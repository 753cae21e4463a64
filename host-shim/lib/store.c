// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The ledger on disk (STATE/ledger.json): JSON with a SHA-256 of its body,
 * so a truncated or edited file is refused instead of guessed at; written
 * privately and atomically (files.c) under an exclusive flock of
 * STATE/lock. STATE is 0700: no other user can open the lock, so none can
 * hold it; /proc/locks names the real holder when one does.
 */
#include "vshare-host.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LEDGER_FORMAT	"vshare-ledger-1"
#define LEDGER_MAX_SIZE (16 * 1024 * 1024)

/* The pid holding a flock on @st's inode, from /proc/locks; 0 if none. */
static gint64 lock_holder(const VsConfig *c, const struct stat *st)
{
	g_autofree char *path = g_build_filename(c->proc, "locks", NULL);
	g_autofree char *text = vs_read_file(path, NULL);
	g_auto(GStrv) lines = g_strsplit(text ? text : "", "\n", -1);
	g_autofree char *want =
		g_strdup_printf(":%" G_GUINT64_FORMAT, (guint64)st->st_ino);

	for (guint i = 0; lines[i]; i++) {
		g_auto(GStrv) f = g_strsplit_set(lines[i], " ", -1);
		g_autoptr(GPtrArray) w = g_ptr_array_new();

		for (guint k = 0; f[k]; k++)
			if (*f[k] && strcmp(f[k], "->"))
				g_ptr_array_add(w, f[k]);
		if (w->len >= 6 && !strcmp(w->pdata[1], "FLOCK") &&
		    g_str_has_suffix(w->pdata[5], want))
			return g_ascii_strtoll(w->pdata[4], NULL, 10);
	}
	return 0;
}

static gint64 uid_of(const VsConfig *c, gint64 pid)
{
	g_autofree char *path =
		g_strdup_printf("%s/%" G_GINT64_FORMAT "/status", c->proc, pid);
	g_autofree char *text = vs_read_file(path, NULL);
	const char *u = text ? strstr(text, "\nUid:") : NULL;

	return u ? g_ascii_strtoll(u + 5, NULL, 10) : -1;
}

static int busy(const VsConfig *c, int fd, const char *path, GError **error)
{
	struct stat st;
	gint64 pid = fstat(fd, &st) == 0 ? lock_holder(c, &st) : 0;
	gint64 uid = pid ? uid_of(c, pid) : -1;
	g_autofree char *who =
		pid ? g_strdup_printf("%" G_GINT64_FORMAT, pid) : g_strdup("?");

	close(fd);
	if (uid > 0)
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_BUSY,
			    "%s is held by pid %" G_GINT64_FORMAT
			    ", a process of uid %" G_GINT64_FORMAT
			    " (not root): that user should not be able to "
			    "open it; check the state directory's "
			    "permissions",
			    path, pid, uid);
	else
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_BUSY,
			    "another vsharectl or vshared (pid %s) holds %s; "
			    "try again when it is done",
			    who, path);
	return -1;
}

int vs_store_lock(const VsConfig *c, gboolean wait, GError **error)
{
	g_autofree char *path = g_build_filename(c->state_dir, "lock", NULL);
	int fd;

	if (!vs_state_dir_ensure(c->state_dir, error))
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
			    "%s: %s", path, g_strerror(errno));
		return -1;
	}
	fchmod(fd, 0600);
	/* @wait: the caller bounds the wait (a timer signal interrupts
	 * flock with EINTR); the library itself never spins. */
	if (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0)
		return busy(c, fd, path, error);
	return fd;
}

void vs_store_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

static char *checksum_of(JsonNode *body)
{
	g_autofree char *text = json_to_string(body, FALSE);

	return g_compute_checksum_for_string(G_CHECKSUM_SHA256, text, -1);
}

static JsonNode *checked_body(JsonObject *root, GError **error)
{
	JsonNode *body = json_object_get_member(root, "ledger");
	JsonNode *sum = json_object_get_member(root, "sha256");
	JsonNode *fmt = json_object_get_member(root, "format");
	g_autofree char *have = body ? checksum_of(body) : NULL;

	if (!body || !sum || !fmt ||
	    json_node_get_value_type(sum) != G_TYPE_STRING ||
	    json_node_get_value_type(fmt) != G_TYPE_STRING ||
	    strcmp(json_node_get_string(fmt), LEDGER_FORMAT) ||
	    strcmp(json_node_get_string(sum), have)) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_CORRUPT,
			    "format or checksum mismatch (edited or damaged): "
			    "refusing to guess who owns what. Rebuild it "
			    "with `vsharectl ledger reset --force`");
		return NULL;
	}
	return body;
}

VsLedger *vs_store_parse(const char *text, const char *where,
			 const VsHost *host, GError **error)
{
	g_autoptr(JsonParser) p = json_parser_new();
	g_autofree char *want_host = vs_host_describe(host);
	g_autoptr(GError) local = NULL;
	g_autoptr(VsLedger) l = NULL;
	JsonNode *body;

	if (!json_parser_load_from_data(p, text, -1, &local) ||
	    !json_parser_get_root(p) ||
	    !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p))) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_CORRUPT,
			    "%s is not valid JSON (%s): refusing to guess who "
			    "owns what. Restore it from a backup or rebuild it "
			    "with `vsharectl ledger reset --force`",
			    where, local ? local->message : "not an object");
		return NULL;
	}
	body = checked_body(json_node_get_object(json_parser_get_root(p)),
			    error);
	l = body ? vs_ledger_from_json(body, error) : NULL;
	if (!l) {
		g_prefix_error(error, "%s: ", where);
		return NULL;
	}
	if (strcmp(l->host, want_host)) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_CORRUPT,
			    "%s was written for host layout '%s', the host is "
			    "now '%s': refusing to map old ownership onto it. "
			    "Rebuild it with `vsharectl ledger reset --force`",
			    where, l->host, want_host);
		return NULL;
	}
	return g_steal_pointer(&l);
}

VsLedger *vs_store_load(const VsConfig *c, const VsHost *host, GError **error)
{
	g_autofree char *path =
		g_build_filename(c->state_dir, "ledger.json", NULL);
	g_autofree char *text = NULL;

	if (access(path, F_OK) < 0 && errno == ENOENT)
		return vs_ledger_new(host); /* EACCES is not "no ledger" */
	text = vs_read_bounded(path, LEDGER_MAX_SIZE, error);
	if (!text)
		return NULL;
	return vs_store_parse(text, path, host, error);
}

char *vs_store_text(const VsLedger *l)
{
	g_autoptr(JsonNode) body = vs_ledger_to_json(l);
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(JsonGenerator) gen = json_generator_new();
	g_autofree char *sum = checksum_of(body);
	g_autoptr(JsonNode) root = NULL;
	g_autofree char *data = NULL;

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
	data = json_generator_to_data(gen, NULL);
	return g_strconcat(data, "\n", NULL);
}

gboolean vs_store_save(const VsConfig *c, const VsLedger *l, GError **error)
{
	g_autofree char *path =
		g_build_filename(c->state_dir, "ledger.json", NULL);
	g_autofree char *text = vs_store_text(l);

	return vs_state_dir_ensure(c->state_dir, error) &&
	       vs_write_private(path, text, error);
}

gboolean vs_store_reset(const VsConfig *c, const VsHost *host, GError **error)
{
	g_autoptr(VsLedger) fresh = vs_ledger_new(host);
	g_autofree char *journal =
		g_build_filename(c->state_dir, "journal.json", NULL);

	if (unlink(journal) < 0 && errno != ENOENT)
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
				   "%s: %s", journal, g_strerror(errno)),
		       FALSE;
	return vs_store_save(c, fresh, error);
}
