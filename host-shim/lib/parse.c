// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Pure parsers: text in, values out. No file access, so the unit tests
 * feed them captured text (tests/unit/data/).
 */
#include "vshare-host.h"

#include <errno.h>
#include <string.h>

static gboolean size_suffix(const char *end, guint64 *mul)
{
	static const char units[] = "KMGT";
	const char *u = *end ? strchr(units, g_ascii_toupper(*end)) : NULL;

	*mul = 1;
	if (!*end)
		return TRUE;
	if (!u)
		return FALSE;
	*mul = 1ULL << (10 * (u - units + 1));
	end++;
	return !*end || !g_ascii_strcasecmp(end, "B") ||
	       !g_ascii_strcasecmp(end, "iB");
}

gboolean vs_parse_size(const char *s, guint64 *out, GError **error)
{
	char *end = NULL;
	guint64 v, mul;

	if (!s || !g_ascii_isdigit(*s)) /* no sign, no blank */
		goto bad;
	errno = 0;
	v = g_ascii_strtoull(s, &end, 10);
	if (errno || end == s || !size_suffix(end, &mul) ||
	    v > G_MAXINT64 / mul)
		goto bad;
	*out = v * mul;
	return TRUE;
bad:
	g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
		    "bad size '%s' (e.g. 256M, 1G, 1073741824)", s ? s : "");
	return FALSE;
}

/* Fields of one mountinfo line: mount point, fs type, super options. */
static gboolean mount_fields(const char *line, char **mnt, char **type,
			     char **opts)
{
	g_auto(GStrv) f = g_strsplit(line, " ", -1);
	guint n = g_strv_length(f), sep;

	for (sep = 6; sep < n && strcmp(f[sep], "-"); sep++)
		;
	if (n < 5 || sep + 3 >= n)
		return FALSE;
	*mnt = g_strcompress(f[4]); /* \040 for blanks */
	*type = g_strdup(f[sep + 1]);
	*opts = g_strdup(f[sep + 3]);
	return TRUE;
}

static gboolean word_in(const char *list, const char *sep, const char *w)
{
	g_auto(GStrv) words = g_strsplit(list ? list : "", sep, -1);

	return g_strv_contains((const char *const *)words, w);
}

char *vs_mountinfo_cgroup(const char *mountinfo, const char *controller,
			  char *(*v2_controllers)(const char *mount),
			  int *version)
{
	g_auto(GStrv) lines = g_strsplit(mountinfo ? mountinfo : "", "\n", -1);
	g_autofree char *v2 = NULL;

	*version = 0;
	for (guint i = 0; lines[i]; i++) {
		g_autofree char *mnt = NULL, *type = NULL, *opts = NULL;

		if (!mount_fields(lines[i], &mnt, &type, &opts))
			continue;
		if (!strcmp(type, "cgroup") && word_in(opts, ",", controller)) {
			*version = 1;
			return g_steal_pointer(&mnt);
		}
		if (!strcmp(type, "cgroup2") && !v2 && v2_controllers) {
			g_autofree char *c = v2_controllers(mnt);

			if (c && word_in(g_strstrip(c), " ", controller))
				v2 = g_steal_pointer(&mnt);
		}
	}
	if (v2)
		*version = 2;
	return g_steal_pointer(&v2);
}

static gboolean stat_line(const char *line, GArray *out, GError **error)
{
	g_auto(GStrv) f = g_strsplit_set(line, " ", -1);
	guint64 v[10] = { 0 }, total = 0;
	guint cpu, n = 0;
	char *end;

	cpu = g_ascii_strtoull(line + 3, &end, 10);
	if (end == line + 3 || *end != ' ' || cpu >= VS_MAX_CPUS)
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
				   "/proc/stat: bad line '%.40s'", line),
		       FALSE;
	for (guint i = 1; f[i] && n < 10; i++) {
		if (!*f[i])
			continue;
		v[n++] = g_ascii_strtoull(f[i], NULL, 10);
	}
	if (n < 4)
		return g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
				   "/proc/stat: cpu%u has %u fields", cpu, n),
		       FALSE;
	for (guint i = 0; i < 8; i++) /* guest time is inside user */
		total += v[i];
	if (out->len <= cpu)
		g_array_set_size(out, cpu + 1);
	g_array_index(out, VsCpuTimes, cpu) = (VsCpuTimes){
		.busy = total - v[3] - v[4], /* idle, iowait */
		.total = total,
	};
	return TRUE;
}

GArray *vs_parse_proc_stat(const char *text, GError **error)
{
	g_auto(GStrv) lines = g_strsplit(text ? text : "", "\n", -1);
	g_autoptr(GArray) out = g_array_new(FALSE, TRUE, sizeof(VsCpuTimes));

	for (guint i = 0; lines[i]; i++)
		if (g_str_has_prefix(lines[i], "cpu") &&
		    g_ascii_isdigit(lines[i][3]) &&
		    !stat_line(lines[i], out, error))
			return NULL;
	if (!out->len) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
			    "/proc/stat: no cpuN line");
		return NULL;
	}
	return g_steal_pointer(&out);
}

gint64 vs_parse_schedstat(const char *text)
{
	char *end = NULL;
	gint64 v;

	if (!text || !g_ascii_isdigit(*text))
		return -1;
	v = g_ascii_strtoll(text, &end, 10);
	return (*end == ' ' || *end == '\n' || !*end) && v >= 0 ? v : -1;
}

gint64 vs_parse_status_tgid(const char *text)
{
	const char *t = text ? strstr(text, "\nTgid:") : NULL;
	char *end = NULL;
	gint64 v;

	if (!t)
		return -1;
	t += 6;
	while (*t == ' ' || *t == '\t')
		t++;
	v = g_ascii_strtoll(t, &end, 10);
	return end != t && v > 0 ? v : -1;
}

gint64 vs_parse_cpu_stat_throttled_ns(const char *text)
{
	g_auto(GStrv) lines = g_strsplit(text ? text : "", "\n", -1);

	for (guint i = 0; lines[i]; i++) {
		gboolean us = g_str_has_prefix(lines[i], "throttled_usec ");
		const char *v;
		char *end;
		guint64 n;

		if (!us && !g_str_has_prefix(lines[i], "throttled_time "))
			continue;
		v = strchr(lines[i], ' ') + 1;
		if (!g_ascii_isdigit(*v))
			return -1;
		errno = 0;
		n = g_ascii_strtoull(v, &end, 10);
		if (errno || *end || n > G_MAXINT64 / 1000)
			return -1;
		return us ? (gint64)n * 1000 : (gint64)n;
	}
	return -1;
}
