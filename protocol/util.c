// SPDX-License-Identifier: GPL-2.0-or-later
/* Small file helpers for sysfs, procfs and cgroupfs. */
#include "vshare-proto.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

char *vs_read_file(const char *path, GError **error)
{
	g_autofree char *text = NULL;
	gsize len = 0;
	g_autoptr(GError) local = NULL;

	if (!g_file_get_contents(path, &text, &len, &local)) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC, "%s",
			    local->message);
		return NULL;
	}
	if (len && text[len - 1] == '\n')
		text[len - 1] = '\0';
	return g_steal_pointer(&text);
}

gboolean vs_write_file(const char *path, const char *text, GError **error)
{
	gsize len = strlen(text);
	ssize_t n;
	int fd, saved;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		saved = errno;
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "cannot open %s: %s", path, g_strerror(saved));
		errno = saved;
		return FALSE;
	}
	n = write(fd, text, len);
	saved = errno;
	close(fd);
	if (n < 0 || (gsize)n != len) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "cannot write '%s' to %s: %s", text, path,
			    n < 0 ? g_strerror(saved) : "short write");
		errno = n < 0 ? saved : EIO; /* callers triage errno */
		return FALSE;
	}
	return TRUE;
}
