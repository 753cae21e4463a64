/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Captured text for the unit tests: tests/unit/data/NAME (VSHARE_TEST_DATA
 * moves the directory), and edits of it.
 */
#pragma once

#include <glib.h>
#include <string.h>

static inline char *sample(const char *name)
{
	const char *dir = g_getenv("VSHARE_TEST_DATA");
	g_autofree char *path =
		g_build_filename(dir ? dir : "tests/unit/data", name, NULL);
	char *text = NULL;

	g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
	return text;
}

/* @text with the first @from replaced by @to. */
static inline char *edit(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);

	g_assert_nonnull(at);
	return g_strdup_printf("%.*s%s%s", (int)(at - text), text, to,
			       at + strlen(from));
}
