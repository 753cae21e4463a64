// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Files root writes: the state directory (0700, ours, not a symlink) and
 * private files (temp created O_EXCL|O_NOFOLLOW 0600, fsync, rename, fsync
 * of the directory), so a local user can neither read the ledger, swap a
 * file under us nor hold the lock.
 */
#include "vshare-host.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static gboolean fail_errno(GError **error, int err, const char *what,
			   const char *path)
{
	g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED, "%s %s: %s",
		    what, path, g_strerror(err));
	return FALSE;
}

gboolean vs_state_dir_ensure(const char *dir, GError **error)
{
	g_autofree char *parent = g_path_get_dirname(dir);
	struct stat st;

	if (g_mkdir_with_parents(parent, 0755) < 0)
		return fail_errno(error, errno, "mkdir", parent);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return fail_errno(error, errno, "mkdir", dir);
	if (lstat(dir, &st) < 0)
		return fail_errno(error, errno, "stat", dir);
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
			    "state directory %s is not a directory owned by "
			    "uid %u (a symlink or another user's?): refusing "
			    "to use it",
			    dir, (unsigned)geteuid());
		return FALSE;
	}
	if ((st.st_mode & 07777) != 0700 && chmod(dir, 0700) < 0)
		return fail_errno(error, errno, "chmod", dir);
	return TRUE;
}

static gboolean write_all(int fd, const char *text, gsize len)
{
	while (len) {
		ssize_t n = write(fd, text, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return FALSE;
		text += n;
		len -= n;
	}
	return TRUE;
}

gboolean vs_write_private(const char *path, const char *text, GError **error)
{
	return vs_write_file_mode(path, text, 0600, error);
}

gboolean vs_write_file_mode(const char *path, const char *text, mode_t mode,
			    GError **error)
{
	g_autofree char *dir = g_path_get_dirname(path);
	g_autofree char *tmp = NULL;
	int fd = -1, dfd, saved;

	for (int tries = 0; fd < 0 && tries < 16; tries++) {
		g_free(tmp);
		tmp = g_strdup_printf("%s.tmp.%08x", path, g_random_int());
		fd = open(tmp,
			  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			  0600);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0)
		return fail_errno(error, errno, "cannot create", tmp);
	if (fchmod(fd, mode) < 0 || !write_all(fd, text, strlen(text)) ||
	    fsync(fd) < 0) {
		saved = errno ? errno : EIO;
		close(fd);
		unlink(tmp);
		return fail_errno(error, saved, "cannot write", tmp);
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		saved = errno;
		unlink(tmp);
		return fail_errno(error, saved, "cannot rename to", path);
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return TRUE;
}

/* A regular file, never a link, a FIFO or a device: opened without
 * blocking (a FIFO's open would wait for a writer) and checked with fstat
 * before a read (a read of a FIFO or a tty would wait for ever). */
static int open_regular(const char *path, GError **error)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK |
				    O_NOCTTY);
	struct stat st;

	if (fd < 0) {
		fail_errno(error, errno, "cannot read", path);
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_CORRUPT,
			    "%s is not a regular file: not read", path);
		return -1;
	}
	return fd;
}

char *vs_read_bounded(const char *path, gsize max, GError **error)
{
	g_autofree char *buf = NULL;
	gsize got = 0;
	int fd = open_regular(path, error);

	if (fd < 0)
		return NULL;
	buf = g_malloc(max + 1);
	while (got <= max) {
		ssize_t n = read(fd, buf + got, max + 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int saved = errno;

			close(fd);
			fail_errno(error, saved, "cannot read", path);
			return NULL;
		}
		if (n == 0)
			break;
		got += n;
	}
	close(fd);
	if (got > max) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_CORRUPT,
			    "%s is larger than %" G_GSIZE_FORMAT " bytes", path,
			    max);
		return NULL;
	}
	buf[got] = '\0';
	return g_steal_pointer(&buf);
}
