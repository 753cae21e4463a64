/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Prometheus text format, grouped by family (prom.c): what vshared's
 * metrics file and the policy engine's metrics are written with.
 */
#pragma once

#include <glib.h>

typedef struct VsProm VsProm;

VsProm *vs_prom_new(void);
void vs_prom_free(VsProm *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VsProm, vs_prom_free)
/* Declare a family (@type: gauge, counter, summary, ...); once, in the
 * order the file lists them; a second declaration is ignored. */
void vs_prom_family(VsProm *p, const char *name, const char *type,
		    const char *help);
/* One sample of @family (@suffix: NULL, or "_sum"/"_count" of a summary):
 * @v, then label name/value pairs, NULL-terminated. */
void vs_prom_add(VsProm *p, const char *family, const char *suffix, double v,
		 ...) G_GNUC_NULL_TERMINATED;
/* The whole exposition, one block per family. */
char *vs_prom_text(VsProm *p);
