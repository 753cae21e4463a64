// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A VM's memory profile (vshare-profile.h): classification, JSON, the
 * declared file, libvirt metadata, and the monitor (perf counters on the
 * vCPU threads, resctrl MBM). JSON members and XML attributes share one
 * table of fields and one set of checks, so both refuse the same input.
 */
#include "vshare-profile.h"

#include <errno.h>
#include <linux/perf_event.h>
#include <math.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef enum {
	F_MPKI,
	F_RATIO,
	F_BW,
	F_CLASS,
	F_NODE,
	F_SOURCE,
	F_TIME,
} Field;

typedef enum {
	K_NUMBER,
	K_INT,
	K_STRING,
} Kind;

static const struct {
	const char *key;
	Kind kind;
	double max; /* numbers */
} fields[] = {
	[F_MPKI] = { "mpki", K_NUMBER, VS_PROFILE_MAX_MPKI },
	[F_RATIO] = { "miss-ratio", K_NUMBER, 1.0 },
	[F_BW] = { "bandwidth-mbps", K_NUMBER, VS_PROFILE_MAX_BW },
	[F_CLASS] = { "class", K_STRING, 0 },
	[F_NODE] = { "node", K_INT, 0 },
	[F_SOURCE] = { "source", K_STRING, 0 },
	[F_TIME] = { "time", K_INT, 0 },
};

static const char *const sources[] = { "perf", "resctrl+perf", "declared" };

void vs_profile_init(VsProfile *p)
{
	memset(p, 0, sizeof(*p));
	p->mpki = p->miss_ratio = p->bandwidth_mbps = -1;
	p->klass = VS_PROFILE_UNKNOWN;
	p->node = -1;
}

const char *vs_profile_class_name(VsProfileClass k)
{
	switch (k) {
	case VS_PROFILE_CPU:
		return "cpu";
	case VS_PROFILE_MEMORY:
		return "memory";
	default:
		return "unknown";
	}
}

gboolean vs_profile_class_parse(const char *s, VsProfileClass *k,
				GError **error)
{
	if (!g_strcmp0(s, "cpu"))
		*k = VS_PROFILE_CPU;
	else if (!g_strcmp0(s, "memory"))
		*k = VS_PROFILE_MEMORY;
	else
		return vs_fail(error, VS_HOST_ERROR_CORRUPT,
			       "profile: unknown class '%s' (cpu or memory)",
			       s ? s : "");
	return TRUE;
}

VsProfileClass vs_profile_classify(const VsProfile *p, double mpki_threshold,
				   double bw_threshold)
{
	double mt =
		mpki_threshold > 0 ? mpki_threshold : VS_PROFILE_MPKI_MEMORY;
	double bt = bw_threshold > 0 ? bw_threshold : VS_PROFILE_BW_MEMORY;

	if ((p->mpki >= 0 && p->mpki >= mt) ||
	    (p->bandwidth_mbps >= 0 && p->bandwidth_mbps >= bt))
		return VS_PROFILE_MEMORY;
	if (p->mpki >= 0 || p->bandwidth_mbps >= 0)
		return VS_PROFILE_CPU;
	return VS_PROFILE_UNKNOWN;
}

/* ---- one field, checked -------------------------------------------------- */

static int field_of(const char *key)
{
	for (guint i = 0; i < G_N_ELEMENTS(fields); i++)
		if (!strcmp(fields[i].key, key))
			return (int)i;
	return -1;
}

static gboolean set_number(VsProfile *p, Field f, double v, GError **error)
{
	const char *key = fields[f].key;

	if (!isfinite(v))
		return vs_fail(error, VS_HOST_ERROR_CORRUPT,
			       "profile: %s is not a finite number", key);
	if (v < 0)
		return vs_fail(error, VS_HOST_ERROR_CORRUPT,
			       "profile: %s %g is negative", key, v);
	if (v > fields[f].max)
		return vs_fail(error, VS_HOST_ERROR_CORRUPT,
			       "profile: %s %g is absurd (more than %g)", key,
			       v, fields[f].max);
	if (f == F_MPKI)
		p->mpki = v;
	else if (f == F_RATIO)
		p->miss_ratio = v;
	else
		p->bandwidth_mbps = v;
	return TRUE;
}

static gboolean set_int(VsProfile *p, Field f, gint64 v, GError **error)
{
	if (f == F_NODE && (v < 0 || v >= VS_MAX_NODES))
		return vs_fail(error, VS_HOST_ERROR_CORRUPT,
			       "profile: node %" G_GINT64_FORMAT
			       " is outside 0..%d",
			       v, VS_MAX_NODES - 1);
	if (f == F_TIME && v < 0)
		return vs_fail(error, VS_HOST_ERROR_CORRUPT,
			       "profile: time %" G_GINT64_FORMAT " is negative",
			       v);
	if (f == F_NODE)
		p->node = (int)v;
	else
		p->time = v;
	return TRUE;
}

static gboolean set_string(VsProfile *p, Field f, const char *s, GError **error)
{
	if (f == F_CLASS)
		return vs_profile_class_parse(s, &p->klass, error);
	for (guint i = 0; i < G_N_ELEMENTS(sources); i++) {
		if (strcmp(s, sources[i]))
			continue;
		g_strlcpy(p->source, s, sizeof(p->source));
		return TRUE;
	}
	return vs_fail(error, VS_HOST_ERROR_CORRUPT,
		       "profile: unknown source '%s' (perf, resctrl+perf or "
		       "declared)",
		       s);
}

/* A field given as text (an XML attribute). */
static gboolean set_text(VsProfile *p, Field f, const char *s, GError **error)
{
	const char *key = fields[f].key;
	char *end = NULL;
	gint64 i;
	double d;

	if (fields[f].kind == K_STRING)
		return set_string(p, f, s, error);
	if (fields[f].kind == K_INT) {
		if (!g_ascii_string_to_signed(s, 10, G_MININT64, G_MAXINT64, &i,
					      NULL))
			return vs_fail(error, VS_HOST_ERROR_CORRUPT,
				       "profile: %s '%s' is not an integer",
				       key, s);
		return set_int(p, f, i, error);
	}
	d = g_ascii_strtod(s, &end);
	if (!*s || end == s || *end)
		return vs_fail(error, VS_HOST_ERROR_CORRUPT,
			       "profile: %s '%s' is not a number", key, s);
	return set_number(p, f, d, error);
}

/* A field given as a JSON member. */
static gboolean set_json(VsProfile *p, Field f, JsonNode *n, GError **error)
{
	GType t = JSON_NODE_HOLDS_VALUE(n) ? json_node_get_value_type(n)
					   : G_TYPE_INVALID;
	const char *key = fields[f].key;

	switch (fields[f].kind) {
	case K_STRING:
		if (t != G_TYPE_STRING)
			break;
		return set_string(p, f, json_node_get_string(n), error);
	case K_INT:
		if (t != G_TYPE_INT64)
			break;
		return set_int(p, f, json_node_get_int(n), error);
	case K_NUMBER:
		if (t == G_TYPE_INT64)
			return set_number(p, f, (double)json_node_get_int(n),
					  error);
		if (t != G_TYPE_DOUBLE)
			break;
		return set_number(p, f, json_node_get_double(n), error);
	}
	return vs_fail(error, VS_HOST_ERROR_CORRUPT, "profile: %s must be %s",
		       key,
		       fields[f].kind == K_STRING ? "a string"
		       : fields[f].kind == K_INT  ? "an integer"
						  : "a number");
}

/* After every field: something to go by; the class when not given. */
static gboolean finish(VsProfile *p, guint seen, GError **error)
{
	if (!(seen & (1u << F_MPKI | 1u << F_BW | 1u << F_CLASS)))
		return vs_fail(error, VS_HOST_ERROR_CORRUPT,
			       "profile: none of mpki, bandwidth-mbps, class");
	if (!(seen & (1u << F_CLASS)))
		p->klass = vs_profile_classify(p, 0, 0);
	return TRUE;
}

/* ---- JSON ------------------------------------------------------------------ */

gboolean vs_profile_from_json(JsonNode *node, VsProfile *out, GError **error)
{
	g_autoptr(GList) members = NULL;
	JsonObject *o;
	VsProfile p;
	guint seen = 0;

	if (!node || !JSON_NODE_HOLDS_OBJECT(node))
		return vs_fail(error, VS_HOST_ERROR_CORRUPT,
			       "profile: not a JSON object");
	o = json_node_get_object(node);
	members = json_object_get_members(o);
	vs_profile_init(&p);
	for (GList *l = members; l; l = l->next) {
		int f = field_of(l->data);

		if (f < 0)
			return vs_fail(error, VS_HOST_ERROR_CORRUPT,
				       "profile: unknown member '%s'",
				       (const char *)l->data);
		if (!set_json(&p, f, json_object_get_member(o, l->data), error))
			return FALSE;
		seen |= 1u << f;
	}
	if (!finish(&p, seen, error))
		return FALSE;
	*out = p;
	return TRUE;
}

static void member_double(JsonBuilder *b, const char *key, double v)
{
	if (v < 0)
		return;
	json_builder_set_member_name(b, key);
	json_builder_add_double_value(b, v);
}

static void member_string(JsonBuilder *b, const char *key, const char *v)
{
	json_builder_set_member_name(b, key);
	json_builder_add_string_value(b, v);
}

static void member_int(JsonBuilder *b, const char *key, gint64 v)
{
	json_builder_set_member_name(b, key);
	json_builder_add_int_value(b, v);
}

JsonNode *vs_profile_to_json(const VsProfile *p)
{
	g_autoptr(JsonBuilder) b = json_builder_new();

	json_builder_begin_object(b);
	member_double(b, "mpki", p->mpki);
	member_double(b, "miss-ratio", p->miss_ratio);
	member_double(b, "bandwidth-mbps", p->bandwidth_mbps);
	if (p->klass != VS_PROFILE_UNKNOWN)
		member_string(b, "class", vs_profile_class_name(p->klass));
	if (p->node >= 0)
		member_int(b, "node", p->node);
	if (p->source[0])
		member_string(b, "source", p->source);
	member_int(b, "time", p->time);
	json_builder_end_object(b);
	return json_builder_get_root(b);
}

/* ---- the declared file ------------------------------------------------------ */

static gboolean parse_declared(const char *path, const char *text,
			       const struct stat *st, VsProfile *out,
			       GError **error)
{
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autoptr(GError) e = NULL;
	VsProfile p;

	if (!json_parser_load_from_data(parser, text, -1, &e))
		return vs_fail(error, VS_HOST_ERROR_CORRUPT, "%s: %s", path,
			       e->message);
	if (!vs_profile_from_json(json_parser_get_root(parser), &p, &e))
		return vs_fail(error, VS_HOST_ERROR_CORRUPT, "%s: %s", path,
			       e->message);
	g_strlcpy(p.source, "declared", sizeof(p.source));
	if (!p.time)
		p.time = st->st_mtime;
	*out = p;
	return TRUE;
}

gboolean vs_profile_load_declared(const char *conf_dir, const char *vm_name,
				  VsProfile *out, GError **error)
{
	g_autofree char *file = NULL, *path = NULL, *text = NULL;
	struct stat st = { 0 };

	if (!vs_name_valid(vm_name, error))
		return FALSE;
	file = g_strconcat(vm_name, ".json", NULL);
	path = g_build_filename(conf_dir, "profiles", file, NULL);
	if (lstat(path, &st) < 0 && errno == ENOENT)
		return vs_fail(error, VS_PROFILE_ABSENT,
			       "no declared profile %s", path);
	text = vs_read_bounded(path, VS_PROFILE_MAX_FILE, error);
	if (!text)
		return FALSE;
	return parse_declared(path, text, &st, out, error);
}

/* ---- libvirt metadata ------------------------------------------------------- */

static void add_attr(GString *s, const char *key, const char *value)
{
	g_autofree char *v = g_markup_escape_text(value, -1);

	g_string_append_printf(s, " %s=\"%s\"", key, v);
}

static void add_number(GString *s, const char *key, double v)
{
	char buf[G_ASCII_DTOSTR_BUF_SIZE];

	if (v >= 0)
		add_attr(s, key, g_ascii_formatd(buf, sizeof(buf), "%.15g", v));
}

char *vs_profile_to_metadata_xml(const VsProfile *p)
{
	GString *s = g_string_new(NULL);
	char buf[32];

	/* no namespace: virDomainSetMetadata puts the element in @uri under
	 * the prefix @key itself (and refuses one that already has it) */
	g_string_append(s, "<profile");
	add_number(s, "mpki", p->mpki);
	add_number(s, "miss-ratio", p->miss_ratio);
	add_number(s, "bandwidth-mbps", p->bandwidth_mbps);
	if (p->klass != VS_PROFILE_UNKNOWN)
		add_attr(s, "class", vs_profile_class_name(p->klass));
	if (p->node >= 0) {
		g_snprintf(buf, sizeof(buf), "%d", p->node);
		add_attr(s, "node", buf);
	}
	if (p->source[0])
		add_attr(s, "source", p->source);
	g_snprintf(buf, sizeof(buf), "%" G_GINT64_FORMAT, p->time);
	add_attr(s, "time", buf);
	g_string_append(s, "/>");
	return g_string_free(s, FALSE);
}

typedef struct {
	char *prefix; /* "" for xmlns= */
	char *uri;
} NsDecl;

typedef struct {
	GArray *ns;	   /* NsDecl in scope, innermost last */
	GArray *marks;	   /* guint: ns->len before each open element */
	guint meta_depth;  /* depth of /domain/metadata, 0 outside */
	guint found;	   /* profile elements met */
	VsProfile profile; /* the one found */
	guint seen;	   /* its fields */
} XCtx;

static void ns_decl_clear(gpointer p)
{
	NsDecl *d = p;

	g_free(d->prefix);
	g_free(d->uri);
}

static void declare(XCtx *c, const char **names, const char **values)
{
	for (guint i = 0; names[i]; i++) {
		NsDecl d;

		if (!strcmp(names[i], "xmlns"))
			d.prefix = g_strdup("");
		else if (g_str_has_prefix(names[i], "xmlns:"))
			d.prefix = g_strdup(names[i] + 6);
		else
			continue;
		d.uri = g_strdup(values[i]);
		g_array_append_val(c->ns, d);
	}
}

/* The namespace URI of element @qname, its local name in *@local. */
static const char *resolve(XCtx *c, const char *qname, const char **local)
{
	const char *colon = strchr(qname, ':');
	gsize plen = colon ? (gsize)(colon - qname) : 0;

	*local = colon ? colon + 1 : qname;
	for (guint i = c->ns->len; i-- > 0;) {
		NsDecl *d = &g_array_index(c->ns, NsDecl, i);

		if (strlen(d->prefix) == plen &&
		    !strncmp(d->prefix, qname, plen))
			return d->uri;
	}
	return NULL;
}

static gboolean profile_attrs(XCtx *c, const char **names, const char **values,
			      GError **error)
{
	if (++c->found > 1)
		return vs_fail(error, VS_HOST_ERROR_CORRUPT,
			       "domain metadata: more than one profile "
			       "element of %s",
			       VS_PROFILE_NS);
	for (guint i = 0; names[i]; i++) {
		int f;

		if (!strcmp(names[i], "xmlns") ||
		    g_str_has_prefix(names[i], "xmlns:"))
			continue;
		f = field_of(names[i]);
		if (f < 0)
			return vs_fail(error, VS_HOST_ERROR_CORRUPT,
				       "profile: unknown attribute '%s'",
				       names[i]);
		if (!set_text(&c->profile, f, values[i], error))
			return FALSE;
		c->seen |= 1u << f;
	}
	return finish(&c->profile, c->seen, error);
}

static void x_start(GMarkupParseContext *pc, const char *el, const char **names,
		    const char **values, gpointer data, GError **error)
{
	XCtx *c = data;
	guint depth = c->marks->len + 1;
	const char *local, *uri;

	g_array_append_val(c->marks, c->ns->len);
	declare(c, names, values);
	if (depth == 2 && !strcmp(el, "metadata") && !c->meta_depth) {
		c->meta_depth = depth;
		return;
	}
	if (!c->meta_depth || depth <= c->meta_depth)
		return;
	uri = resolve(c, el, &local);
	if (!g_strcmp0(uri, VS_PROFILE_NS) && !strcmp(local, "profile"))
		profile_attrs(c, names, values, error);
}

static void x_end(GMarkupParseContext *pc, const char *el, gpointer data,
		  GError **error)
{
	XCtx *c = data;
	guint mark = g_array_index(c->marks, guint, c->marks->len - 1);

	if (c->marks->len == c->meta_depth)
		c->meta_depth = 0;
	g_array_set_size(c->ns, mark);
	g_array_set_size(c->marks, c->marks->len - 1);
}

gboolean vs_profile_from_domain_xml(const char *domain_xml, VsProfile *out,
				    GError **error)
{
	static const GMarkupParser parser = {
		.start_element = x_start,
		.end_element = x_end,
	};
	XCtx c = {
		.ns = g_array_new(FALSE, FALSE, sizeof(NsDecl)),
		.marks = g_array_new(FALSE, FALSE, sizeof(guint)),
	};
	g_autoptr(GMarkupParseContext) pc =
		g_markup_parse_context_new(&parser, 0, &c, NULL);
	g_autoptr(GError) e = NULL;
	gboolean ok;

	g_array_set_clear_func(c.ns, ns_decl_clear);
	vs_profile_init(&c.profile);
	ok = g_markup_parse_context_parse(pc, domain_xml ? domain_xml : "", -1,
					  &e) &&
	     g_markup_parse_context_end_parse(pc, &e);
	g_array_unref(c.ns);
	g_array_unref(c.marks);
	if (!ok && e->domain == VS_HOST_ERROR) {
		g_propagate_error(error, g_steal_pointer(&e));
		return FALSE;
	}
	if (!ok)
		return vs_fail(error, VS_HOST_ERROR_FAILED, "domain XML: %s",
			       e->message);
	if (!c.found)
		return vs_fail(error, VS_PROFILE_ABSENT,
			       "domain XML: no profile element of %s under "
			       "<metadata>",
			       VS_PROFILE_NS);
	*out = c.profile;
	return TRUE;
}

/* ---- perf ------------------------------------------------------------------------ */

static const struct {
	guint64 config;
	const char *name;
} events[] = {
	{ PERF_COUNT_HW_CACHE_MISSES, "LLC misses" },
	{ PERF_COUNT_HW_CACHE_REFERENCES, "LLC references" },
	{ PERF_COUNT_HW_INSTRUCTIONS, "instructions" },
	{ PERF_COUNT_HW_CPU_CYCLES, "cycles" },
};

#define N_EVENTS G_N_ELEMENTS(events)

typedef struct {
	guint64 nr, enabled, running;
	guint64 v[N_EVENTS];
} GroupRead;

static int perf_open(guint64 config, int tid, int group)
{
	struct perf_event_attr a;

	memset(&a, 0, sizeof(a));
	a.type = PERF_TYPE_HARDWARE;
	a.size = sizeof(a);
	a.config = config;
	a.disabled = group < 0;
	a.exclude_kernel = 1;
	a.exclude_hv = 1;
	a.read_format = PERF_FORMAT_GROUP | PERF_FORMAT_TOTAL_TIME_ENABLED |
			PERF_FORMAT_TOTAL_TIME_RUNNING;
	return (int)syscall(SYS_perf_event_open, &a, tid, -1, group,
			    PERF_FLAG_FD_CLOEXEC);
}

gboolean vs_pmu_probe(GError **error)
{
	int fd = perf_open(PERF_COUNT_HW_CACHE_MISSES, 0, -1);

	if (fd < 0)
		return vs_fail(error, VS_PROFILE_ABSENT,
			       "no usable PMU: perf_event_open(LLC misses): "
			       "%s; using declared profiles "
			       "(CONF/profiles/VM.json)",
			       g_strerror(errno));
	close(fd);
	return TRUE;
}

static void close_fd(gpointer p)
{
	int *fd = p;

	if (*fd >= 0)
		close(*fd);
}

/* One group on @tid: its leader first in @fds. */
static gboolean open_group(int tid, GArray *fds, GError **error)
{
	int leader = -1;

	for (guint i = 0; i < N_EVENTS; i++) {
		int fd = perf_open(events[i].config, tid, leader);

		if (fd < 0 && errno == ESRCH)
			return vs_fail(error, VS_HOST_ERROR_GONE,
				       "thread %d is gone", tid);
		if (fd < 0)
			return vs_fail(error, VS_HOST_ERROR_FAILED,
				       "perf_event_open(%s) on thread %d: %s",
				       events[i].name, tid, g_strerror(errno));
		g_array_append_val(fds, fd);
		if (leader < 0)
			leader = fd;
	}
	return TRUE;
}

static gboolean group_ioctl(GArray *fds, unsigned long req, GError **error)
{
	for (guint i = 0; i < fds->len; i += N_EVENTS)
		if (ioctl(g_array_index(fds, int, i), req,
			  PERF_IOC_FLAG_GROUP) < 0)
			return vs_fail(error, VS_HOST_ERROR_FAILED,
				       "perf ioctl: %s", g_strerror(errno));
	return TRUE;
}

/* Add one group's counts, scaled when it was multiplexed. */
static gboolean read_group(int fd, guint64 sum[N_EVENTS], GError **error)
{
	GroupRead r;
	ssize_t n = read(fd, &r, sizeof(r));

	if (n != (ssize_t)sizeof(r) || r.nr != N_EVENTS)
		return vs_fail(error, VS_HOST_ERROR_FAILED, "perf read: %s",
			       n < 0 ? g_strerror(errno) : "short read");
	for (guint i = 0; i < N_EVENTS && r.running; i++) {
		double scale = r.running < r.enabled
				       ? (double)r.enabled / (double)r.running
				       : 1.0;

		sum[i] += (guint64)((double)r.v[i] * scale);
	}
	return TRUE;
}

gboolean vs_pmu_sample(const int *tids, guint n, guint interval_ms,
		       VsPmuCounts *out, GError **error)
{
	g_autoptr(GArray) fds = g_array_new(FALSE, FALSE, sizeof(int));
	guint64 sum[N_EVENTS] = { 0 };
	gint64 t0;

	g_array_set_clear_func(fds, close_fd);
	if (!n || !interval_ms || interval_ms > 60000)
		return vs_fail(error, VS_HOST_ERROR_USAGE,
			       "sample: want 1 or more threads and 1..60000 "
			       "ms, got %u threads and %u ms",
			       n, interval_ms);
	for (guint i = 0; i < n; i++) {
		if (tids[i] <= 0)
			return vs_fail(error, VS_HOST_ERROR_USAGE,
				       "sample: thread id %d", tids[i]);
		if (!open_group(tids[i], fds, error))
			return FALSE;
	}
	t0 = g_get_monotonic_time();
	if (!group_ioctl(fds, PERF_EVENT_IOC_ENABLE, error))
		return FALSE;
	g_usleep((gulong)interval_ms * 1000);
	if (!group_ioctl(fds, PERF_EVENT_IOC_DISABLE, error))
		return FALSE;
	out->elapsed_us = g_get_monotonic_time() - t0;
	for (guint i = 0; i < fds->len; i += N_EVENTS)
		if (!read_group(g_array_index(fds, int, i), sum, error))
			return FALSE;
	out->llc_misses = sum[0];
	out->llc_refs = sum[1];
	out->instructions = sum[2];
	out->cycles = sum[3];
	return TRUE;
}

void vs_profile_from_counts(const VsPmuCounts *c, VsProfile *out)
{
	double miss = (double)c->llc_misses;

	vs_profile_init(out);
	if (c->instructions)
		out->mpki = MIN(miss * 1000.0 / (double)c->instructions,
				VS_PROFILE_MAX_MPKI);
	if (c->llc_refs)
		out->miss_ratio = MIN(miss / (double)c->llc_refs, 1.0);
	/* 64 bytes a miss; bytes per us is MB/s */
	if (c->elapsed_us > 0)
		out->bandwidth_mbps = MIN(miss * 64.0 / (double)c->elapsed_us,
					  VS_PROFILE_MAX_BW);
	out->klass = vs_profile_classify(out, 0, 0);
	g_strlcpy(out->source, "perf", sizeof(out->source));
	out->time = g_get_real_time() / G_USEC_PER_SEC;
}

gboolean vs_profile_sample(const int *tids, guint n, guint interval_ms,
			   VsProfile *out, GError **error)
{
	VsPmuCounts c;

	if (!vs_pmu_sample(tids, n, interval_ms, &c, error))
		return FALSE;
	vs_profile_from_counts(&c, out);
	return TRUE;
}

/* ---- resctrl ------------------------------------------------------------------------ */

gboolean vs_resctrl_probe(const char *sysfs)
{
	g_autofree char *path = g_build_filename(
		sysfs, "fs/resctrl/info/L3_MON/mon_features", NULL);
	g_autofree char *text = vs_read_bounded(path, 4096, NULL);
	g_auto(GStrv) lines = NULL;

	if (!text)
		return FALSE;
	lines = g_strsplit(text, "\n", -1);
	return g_strv_contains((const char *const *)lines, "mbm_total_bytes");
}

static gboolean mbm_add(const char *dir, guint64 *sum, GError **error)
{
	g_autofree char *path = g_build_filename(dir, "mbm_total_bytes", NULL);
	g_autofree char *text = vs_read_bounded(path, 64, error);
	guint64 v;

	if (!text)
		return FALSE;
	if (!g_ascii_string_to_unsigned(g_strstrip(text), 10, 0, G_MAXUINT64,
					&v, NULL))
		return vs_fail(error, VS_HOST_ERROR_FAILED, "%s: '%s'", path,
			       text);
	if (v > G_MAXUINT64 - *sum)
		return vs_fail(error, VS_HOST_ERROR_FAILED, "%s: overflow",
			       path);
	*sum += v;
	return TRUE;
}

gboolean vs_resctrl_mbm_bytes(const char *group_dir, guint64 *bytes,
			      GError **error)
{
	g_autofree char *mon = g_build_filename(group_dir, "mon_data", NULL);
	g_autoptr(GDir) d = g_dir_open(mon, 0, NULL);
	const char *name;
	guint64 sum = 0;
	guint n = 0;

	while (d && (name = g_dir_read_name(d))) {
		g_autofree char *sub = NULL;

		if (!g_str_has_prefix(name, "mon_L3_"))
			continue;
		sub = g_build_filename(mon, name, NULL);
		if (!mbm_add(sub, &sum, error))
			return FALSE;
		n++;
	}
	if (!n)
		return vs_fail(error, VS_PROFILE_ABSENT,
			       "no %s/mon_L3_*/mbm_total_bytes", mon);
	*bytes = sum;
	return TRUE;
}
