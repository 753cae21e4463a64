// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Prometheus text exposition (format 0.0.4), grouped: samples are added in
 * any order and come out one block per family, HELP and TYPE first, in
 * the order families were declared; label values escaped. A sample of an
 * undeclared family is a programming error (g_critical, dropped): every
 * family has its HELP and TYPE.
 */
#include "vshare-prom.h"

#include <stdarg.h>
#include <string.h>

typedef struct {
	char *name, *type, *help;
	GString *samples;
} Family;

struct VsProm {
	GPtrArray *families; /* Family, declaration order */
	GHashTable *by_name; /* name -> Family */
};

static void family_free(Family *f)
{
	g_free(f->name);
	g_free(f->type);
	g_free(f->help);
	g_string_free(f->samples, TRUE);
	g_free(f);
}

VsProm *vs_prom_new(void)
{
	VsProm *p = g_new0(VsProm, 1);

	p->families =
		g_ptr_array_new_with_free_func((GDestroyNotify)family_free);
	p->by_name = g_hash_table_new(g_str_hash, g_str_equal);
	return p;
}

void vs_prom_free(VsProm *p)
{
	if (!p)
		return;
	g_hash_table_destroy(p->by_name);
	g_ptr_array_unref(p->families);
	g_free(p);
}

void vs_prom_family(VsProm *p, const char *name, const char *type,
		    const char *help)
{
	Family *f;

	if (g_hash_table_contains(p->by_name, name))
		return;
	f = g_new0(Family, 1);
	f->name = g_strdup(name);
	f->type = g_strdup(type);
	f->help = g_strdup(help);
	f->samples = g_string_new(NULL);
	g_ptr_array_add(p->families, f);
	g_hash_table_insert(p->by_name, f->name, f);
}

/* HELP text: backslash and newline escaped; label values: also '"'. */
static void escape(GString *s, const char *v, gboolean quote)
{
	for (; *v; v++) {
		if (*v == '\\')
			g_string_append(s, "\\\\");
		else if (*v == '\n')
			g_string_append(s, "\\n");
		else if (*v == '"' && quote)
			g_string_append(s, "\\\"");
		else
			g_string_append_c(s, *v);
	}
}

static void value(GString *s, double v)
{
	char buf[G_ASCII_DTOSTR_BUF_SIZE];

	if (v != v)
		g_string_append(s, "NaN");
	else if (v > G_MAXDOUBLE)
		g_string_append(s, "+Inf");
	else if (v < -G_MAXDOUBLE)
		g_string_append(s, "-Inf");
	else
		g_string_append(s, g_ascii_dtostr(buf, sizeof(buf), v));
}

void vs_prom_add(VsProm *p, const char *family, const char *suffix, double v,
		 ...)
{
	Family *f = g_hash_table_lookup(p->by_name, family);
	const char *k;
	gboolean first = TRUE;
	va_list ap;

	if (!f) {
		g_critical("metrics: family %s not declared", family);
		return;
	}
	g_string_append(f->samples, family);
	if (suffix)
		g_string_append(f->samples, suffix);
	va_start(ap, v);
	while ((k = va_arg(ap, const char *))) {
		const char *val = va_arg(ap, const char *);

		g_string_append(f->samples, first ? "{" : ",");
		g_string_append_printf(f->samples, "%s=\"", k);
		escape(f->samples, val ? val : "", TRUE);
		g_string_append_c(f->samples, '"');
		first = FALSE;
	}
	va_end(ap);
	g_string_append(f->samples, first ? " " : "} ");
	value(f->samples, v);
	g_string_append_c(f->samples, '\n');
}

char *vs_prom_text(VsProm *p)
{
	GString *s = g_string_new(NULL);

	for (guint i = 0; i < p->families->len; i++) {
		Family *f = p->families->pdata[i];

		g_string_append_printf(s, "# HELP %s ", f->name);
		escape(s, f->help, FALSE);
		g_string_append_printf(s, "\n# TYPE %s %s\n%s", f->name,
				       f->type, f->samples->str);
	}
	return g_string_free(s, FALSE);
}
