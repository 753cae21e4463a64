// SPDX-License-Identifier: GPL-2.0-or-later
/* CPU and node sets in the kernel's list ("0-3,8") and mask formats. */
#include "vshare-proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void vs_cpuset_clear(VsCpuSet *set)
{
	memset(set, 0, sizeof(*set));
}

void vs_cpuset_add(VsCpuSet *set, guint cpu)
{
	g_return_if_fail(cpu < VS_MAX_CPUS);
	set->bits[cpu / 64] |= G_GUINT64_CONSTANT(1) << (cpu % 64);
}

gboolean vs_cpuset_has(const VsCpuSet *set, guint cpu)
{
	if (cpu >= VS_MAX_CPUS)
		return FALSE;
	return (set->bits[cpu / 64] >> (cpu % 64)) & 1;
}

guint vs_cpuset_count(const VsCpuSet *set)
{
	guint n = 0;

	for (gsize i = 0; i < G_N_ELEMENTS(set->bits); i++)
		n += __builtin_popcountll(set->bits[i]);
	return n;
}

gboolean vs_cpuset_is_subset(const VsCpuSet *sub, const VsCpuSet *super)
{
	return vs_cpuset_first_outside(sub, super) < 0;
}

int vs_cpuset_first_outside(const VsCpuSet *set, const VsCpuSet *super)
{
	for (gsize i = 0; i < G_N_ELEMENTS(set->bits); i++) {
		guint64 extra = set->bits[i] & ~super->bits[i];

		if (extra)
			return (int)(i * 64 + __builtin_ctzll(extra));
	}
	return -1;
}

gboolean vs_cpuset_equal(const VsCpuSet *a, const VsCpuSet *b)
{
	return memcmp(a->bits, b->bits, sizeof(a->bits)) == 0;
}

void vs_cpuset_and(VsCpuSet *dst, const VsCpuSet *a, const VsCpuSet *b)
{
	for (gsize i = 0; i < G_N_ELEMENTS(dst->bits); i++)
		dst->bits[i] = a->bits[i] & b->bits[i];
}

static gboolean parse_number(const char **p, guint *out, GError **error)
{
	char *end = NULL;
	unsigned long v;

	if (!g_ascii_isdigit(**p))
		return FALSE;
	errno = 0;
	v = strtoul(*p, &end, 10);
	if (errno || v >= VS_MAX_CPUS) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "number out of range (at most %u)",
			    VS_MAX_CPUS - 1);
		return FALSE;
	}
	*out = (guint)v;
	*p = end;
	return TRUE;
}

gboolean vs_cpuset_parse(const char *text, VsCpuSet *set, GError **error)
{
	const char *p = text;
	g_autoptr(GError) local = NULL;

	vs_cpuset_clear(set);
	if (!text || !*text) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "empty CPU/node list");
		return FALSE;
	}
	for (;;) {
		guint lo, hi;

		if (!parse_number(&p, &lo, &local))
			goto bad;
		hi = lo;
		if (*p == '-') {
			p++;
			if (!parse_number(&p, &hi, &local) || hi < lo)
				goto bad;
		}
		for (guint c = lo; c <= hi; c++)
			vs_cpuset_add(set, c);
		if (*p == '\0')
			return TRUE;
		if (*p != ',')
			goto bad;
		p++;
	}
bad:
	g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
		    "invalid CPU/node list '%s'%s%s", text, local ? ": " : "",
		    local ? local->message : "");
	vs_cpuset_clear(set);
	return FALSE;
}

char *vs_cpuset_format(const VsCpuSet *set)
{
	GString *s = g_string_new(NULL);

	for (guint c = 0; c < VS_MAX_CPUS; c++) {
		guint end = c;

		if (!vs_cpuset_has(set, c))
			continue;
		while (end + 1 < VS_MAX_CPUS && vs_cpuset_has(set, end + 1))
			end++;
		if (s->len)
			g_string_append_c(s, ',');
		if (end == c)
			g_string_append_printf(s, "%u", c);
		else
			g_string_append_printf(s, "%u-%u", c, end);
		c = end;
	}
	return g_string_free(s, FALSE);
}

/* The kernel's bitmap_parse() format: 32-bit hex groups, most significant
 * first, separated by commas. */
char *vs_cpuset_format_mask(const VsCpuSet *set)
{
	GString *s = g_string_new(NULL);
	int top = -1;

	for (int w = VS_MAX_CPUS / 32 - 1; w >= 0; w--) {
		guint32 word = (guint32)(set->bits[w / 2] >> ((w % 2) * 32));

		if (word) {
			top = w;
			break;
		}
	}
	if (top < 0) {
		g_string_free(s, TRUE);
		return g_strdup("0");
	}
	for (int w = top; w >= 0; w--) {
		guint32 word = (guint32)(set->bits[w / 2] >> ((w % 2) * 32));

		if (w == top)
			g_string_append_printf(s, "%x", word);
		else
			g_string_append_printf(s, ",%08x", word);
	}
	return g_string_free(s, FALSE);
}

gboolean vs_cpuset_parse_mask(const char *text, VsCpuSet *set, GError **error)
{
	g_auto(GStrv) groups = g_strsplit(text, ",", -1);
	guint n = g_strv_length(groups);

	vs_cpuset_clear(set);
	if (n == 0 || n > VS_MAX_CPUS / 32)
		goto bad;
	for (guint i = 0; i < n; i++) {
		const char *g = g_strstrip(groups[i]);
		char *end = NULL;
		guint64 v;
		guint base = (n - 1 - i) * 32;

		if (!*g || strlen(g) > 8)
			goto bad;
		v = g_ascii_strtoull(g, &end, 16);
		if (*end)
			goto bad;
		for (guint b = 0; b < 32; b++)
			if (v & (G_GUINT64_CONSTANT(1) << b))
				vs_cpuset_add(set, base + b);
	}
	return TRUE;
bad:
	g_set_error(error, VS_ERROR, VS_ERROR_GENERIC, "invalid CPU mask '%s'",
		    text);
	return FALSE;
}
