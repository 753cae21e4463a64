// SPDX-License-Identifier: GPL-2.0-or-later
#include "channel.h"

#include "vshare-proto.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib-unix.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define PORTS_DIR	 "/dev/virtio-ports"
#define PORTS_SYSFS	 "/sys/class/virtio-ports"
#define WRITE_TIMEOUT_MS 2000

/* The host, as writes in the current session (since the stream was opened
 * or watched again) have seen it. */
enum { PEER_UNKNOWN, PEER_SEEN, PEER_GONE };

struct VsChannel {
	VsChannelKind kind;
	char *where;
	VsChannelDataFunc data;
	VsChannelResetFunc reset;
	gpointer user_data;

	int fd;		/* the open device or connected socket, or -1 */
	guint fd_watch; /* on fd, 0 while asleep */
	int listen_fd;
	guint listen_watch;
	int inotify_fd; /* while waiting for the path to appear */
	guint inotify_watch;
	int sigio_fd; /* signalfd for SIGIO (char devices) */
	guint sigio_watch;
	int peer; /* PEER_*: a write that finds the host gone after it was
		   * there drops its reply at once */
};

static gboolean channel_try_open(VsChannel *ch);
static gboolean on_listen(int fd, GIOCondition cond, gpointer user_data);

/* ---- locating the port ----------------------------------------------- */

/* /dev/virtio-ports/NAME (udev), else the vportNpM whose sysfs name is NAME. */
static char *port_path(const char *name)
{
	g_autofree char *link = g_build_filename(PORTS_DIR, name, NULL);
	g_autoptr(GDir) dir = NULL;
	const char *ent;

	if (g_file_test(link, G_FILE_TEST_EXISTS))
		return g_steal_pointer(&link);
	dir = g_dir_open(PORTS_SYSFS, 0, NULL);
	while (dir && (ent = g_dir_read_name(dir))) {
		g_autofree char *f =
			g_build_filename(PORTS_SYSFS, ent, "name", NULL);
		g_autofree char *n = vs_read_file(f, NULL);
		g_autofree char *dev = g_build_filename("/dev", ent, NULL);

		if (n && strcmp(n, name) == 0 &&
		    g_file_test(dev, G_FILE_TEST_EXISTS))
			return g_steal_pointer(&dev);
	}
	return NULL;
}

/* ---- SIGIO: the kernel's "host (re)opened the port" --------------------- */

static gboolean on_sigio(int fd, GIOCondition cond, gpointer user_data);
static void channel_watch_fd(VsChannel *ch);

static gboolean sigio_setup(VsChannel *ch, GError **error)
{
	sigset_t mask;
	int fl;

	if (ch->sigio_fd < 0) {
		sigemptyset(&mask);
		sigaddset(&mask, SIGIO);
		/* main() blocked SIGIO before any thread could start. */
		ch->sigio_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
		if (ch->sigio_fd < 0) {
			g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
				    "signalfd: %s", g_strerror(errno));
			return FALSE;
		}
		ch->sigio_watch =
			g_unix_fd_add(ch->sigio_fd, G_IO_IN, on_sigio, ch);
	}
	fl = fcntl(ch->fd, F_GETFL);
	if (fcntl(ch->fd, F_SETOWN, getpid()) < 0 || fl < 0 ||
	    fcntl(ch->fd, F_SETFL, fl | O_ASYNC) < 0)
		g_debug("%s: no SIGIO (%s); reconnects are noticed on the next "
			"request",
			ch->where, g_strerror(errno));
	return TRUE;
}

static gboolean on_sigio(int fd, GIOCondition cond, gpointer user_data)
{
	VsChannel *ch = user_data;
	struct signalfd_siginfo si;

	(void)cond;
	while (read(fd, &si, sizeof(si)) == sizeof(si))
		;
	/* The port changed state or got data since a reply was dropped:
	 * the next reply may wait for the host again (channel_wait_open). */
	if (ch->peer == PEER_GONE)
		ch->peer = PEER_UNKNOWN;
	if (ch->fd >= 0 && !ch->fd_watch) {
		g_debug("%s: SIGIO, watching the port again", ch->where);
		channel_watch_fd(ch);
	}
	return G_SOURCE_CONTINUE;
}

/* ---- waiting for a path to appear (inotify) --------------------------- */

static gboolean on_inotify(int fd, GIOCondition cond, gpointer user_data)
{
	VsChannel *ch = user_data;
	char buf[4096] __attribute__((aligned(8)));

	(void)cond;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	if (channel_try_open(ch)) {
		ch->inotify_watch = 0;
		close(ch->inotify_fd);
		ch->inotify_fd = -1;
		return G_SOURCE_REMOVE;
	}
	return G_SOURCE_CONTINUE;
}

static gboolean channel_wait_path(VsChannel *ch, GError **error)
{
	g_autofree char *dir = NULL;
	const guint32 events = IN_CREATE | IN_MOVED_TO | IN_ATTRIB;

	if (ch->inotify_fd >= 0)
		return TRUE;
	ch->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ch->inotify_fd < 0) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC, "inotify: %s",
			    g_strerror(errno));
		return FALSE;
	}
	if (ch->kind == VS_CHANNEL_PORT) {
		/* devtmpfs creates /dev/vportNpM; udev adds the by-name link. */
		inotify_add_watch(ch->inotify_fd, "/dev", events);
		inotify_add_watch(ch->inotify_fd, PORTS_DIR, events);
	} else {
		dir = g_path_get_dirname(ch->where);
		if (inotify_add_watch(ch->inotify_fd, dir, events) < 0) {
			g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
				    "cannot watch %s: %s", dir,
				    g_strerror(errno));
			return FALSE;
		}
	}
	ch->inotify_watch =
		g_unix_fd_add(ch->inotify_fd, G_IO_IN, on_inotify, ch);
	/* It may have appeared between the first try and the watch. */
	if (channel_try_open(ch)) {
		g_source_remove(ch->inotify_watch);
		ch->inotify_watch = 0;
		close(ch->inotify_fd);
		ch->inotify_fd = -1;
	}
	return TRUE;
}

/* ---- the open stream -------------------------------------------------- */

static void channel_close_fd(VsChannel *ch)
{
	if (ch->fd_watch)
		g_source_remove(ch->fd_watch);
	ch->fd_watch = 0;
	if (ch->fd >= 0)
		close(ch->fd);
	ch->fd = -1;
}

/* Called with the fd watch already gone. */
static void channel_lost(VsChannel *ch)
{
	g_autoptr(GError) error = NULL;

	ch->reset(FALSE, ch->user_data);
	if (ch->kind == VS_CHANNEL_UNIX_LISTEN) {
		channel_close_fd(ch);
		ch->listen_watch =
			g_unix_fd_add(ch->listen_fd, G_IO_IN, on_listen, ch);
		return;
	}
	if (ch->sigio_fd >= 0 && ch->fd >= 0 &&
	    (fcntl(ch->fd, F_GETFL) & O_ASYNC)) {
		/* virtio-serial: POLLHUP until the host reopens the port;
		 * keep the fd and sleep until the kernel's SIGIO. */
		return;
	}
	channel_close_fd(ch);
	if (!channel_try_open(ch) && !channel_wait_path(ch, &error))
		g_warning("%s", error->message);
}

static gboolean on_fd(int fd, GIOCondition cond, gpointer user_data)
{
	VsChannel *ch = user_data;
	guint8 buf[4096];
	ssize_t n;

	if (cond & G_IO_IN) {
		n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			ch->data(buf, (gsize)n, ch->user_data);
			return G_SOURCE_CONTINUE;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return G_SOURCE_CONTINUE;
	}
	g_debug("%s: peer gone (cond 0x%x)", ch->where, cond);
	ch->fd_watch = 0;
	channel_lost(ch);
	return G_SOURCE_REMOVE;
}

static void channel_watch_fd(VsChannel *ch)
{
	ch->peer = PEER_UNKNOWN; /* a new session */
	ch->fd_watch =
		g_unix_fd_add(ch->fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_fd, ch);
}

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Open the port/device/socket if it is there; FALSE if not (yet). */
static gboolean channel_try_open(VsChannel *ch)
{
	g_autofree char *path = NULL;
	g_autoptr(GError) error = NULL;
	struct stat st;

	path = ch->kind == VS_CHANNEL_PORT ? port_path(ch->where)
					   : g_strdup(ch->where);
	if (!path || stat(path, &st) < 0)
		return FALSE;
	if (S_ISSOCK(st.st_mode))
		ch->fd = unix_connect(path);
	else
		ch->fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (ch->fd < 0) {
		g_debug("%s: %s", path, g_strerror(errno));
		return FALSE;
	}
	g_message("channel open: %s", path);
	if (S_ISCHR(st.st_mode) && !sigio_setup(ch, &error))
		g_warning("%s", error->message);
	channel_watch_fd(ch);
	ch->reset(TRUE, ch->user_data);
	return TRUE;
}

/* ---- listening socket ------------------------------------------------- */

static gboolean on_listen(int fd, GIOCondition cond, gpointer user_data)
{
	VsChannel *ch = user_data;
	int c;

	(void)cond;
	c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (c < 0)
		return G_SOURCE_CONTINUE;
	ch->fd = c;
	channel_watch_fd(ch);
	ch->reset(TRUE, ch->user_data);
	/* One client at a time: the next waits in the backlog until this
	 * one leaves (channel_lost watches the socket again). */
	ch->listen_watch = 0;
	return G_SOURCE_REMOVE;
}

static gboolean channel_listen(VsChannel *ch, GError **error)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(ch->where) >= sizeof(sa.sun_path)) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "socket path too long: %s", ch->where);
		return FALSE;
	}
	strcpy(sa.sun_path, ch->where);
	unlink(ch->where);
	ch->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ch->listen_fd < 0 ||
	    bind(ch->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(ch->listen_fd, 4) < 0) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
			    "cannot listen on %s: %s", ch->where,
			    g_strerror(errno));
		return FALSE;
	}
	ch->listen_watch = g_unix_fd_add(ch->listen_fd, G_IO_IN, on_listen, ch);
	return TRUE;
}

/* ---- public ----------------------------------------------------------- */

VsChannel *vs_channel_new(VsChannelKind kind, const char *where,
			  VsChannelDataFunc data, VsChannelResetFunc reset,
			  gpointer user_data, GError **error)
{
	g_autoptr(VsChannel) ch = g_new0(VsChannel, 1);

	ch->kind = kind;
	ch->where = g_strdup(where);
	ch->data = data;
	ch->reset = reset;
	ch->user_data = user_data;
	ch->fd = ch->listen_fd = ch->inotify_fd = ch->sigio_fd = -1;

	if (kind == VS_CHANNEL_UNIX_LISTEN) {
		if (!channel_listen(ch, error))
			return NULL;
	} else if (!channel_try_open(ch)) {
		g_message("waiting for %s to appear", where);
		if (!channel_wait_path(ch, error))
			return NULL;
	}
	return g_steal_pointer(&ch);
}

static void set_hung_up(VsChannel *ch, GError **error)
{
	ch->peer = PEER_GONE;
	g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE,
			    "peer hung up");
}

static int ms_left(gint64 deadline)
{
	gint64 left = (deadline - g_get_monotonic_time()) / 1000;

	return (int)CLAMP(left, 0, G_MAXINT);
}

/* A virtio-serial port says POLLHUP until the guest kernel handles the
 * host's "port open" control message, and that message may come after the
 * host's first request (data and control travel on different queues). So
 * a request read while the port says POLLHUP may come from a host that is
 * connecting, even one that closed and reconnected in between: vsharectl
 * does so between the steps of a change, and its close and reopen then
 * reach the guest after its next request, inside what looks like the old
 * session (measured: 1 lend in 6-17 lost its reply and waited out the
 * host's 20 s deadline when only a first session's reply could wait).
 * Sleep until the SIGIO that follows a control message (or the deadline),
 * then let the caller retry. A host that stays away costs one wait: its
 * reply is dropped and so are the next ones (PEER_GONE) until the port
 * changes state again. */
static gboolean channel_wait_open(VsChannel *ch, gint64 deadline)
{
	struct pollfd p = { .fd = ch->sigio_fd, .events = POLLIN };
	struct signalfd_siginfo si;
	int left = ms_left(deadline);

	if (ch->sigio_fd < 0 || ch->peer == PEER_GONE || left == 0 ||
	    poll(&p, 1, left) <= 0)
		return FALSE;
	while (read(ch->sigio_fd, &si, sizeof(si)) == sizeof(si))
		;
	return TRUE;
}

/* Wait until @ch may take more bytes. A peer that hung up ends the wait at
 * once: a virtio-serial port whose host side closed refuses writes
 * (EAGAIN) while poll() reports POLLHUP without POLLOUT, so retrying would
 * spin until the deadline. */
static gboolean channel_wait_writable(VsChannel *ch, gint64 deadline,
				      GError **error)
{
	struct pollfd p = { .fd = ch->fd, .events = POLLOUT };
	int left = ms_left(deadline);
	int rc = left > 0 ? poll(&p, 1, left) : 0;

	if (rc < 0 && errno == EINTR)
		return TRUE;
	if (rc < 0) {
		g_set_error(error, VS_ERROR, VS_ERROR_GENERIC, "poll: %s",
			    g_strerror(errno));
		return FALSE;
	}
	if (rc == 0) {
		g_set_error_literal(error, VS_ERROR, VS_ERROR_GENERIC,
				    "write timed out (peer not reading)");
		return FALSE;
	}
	if (!(p.revents & (POLLHUP | POLLERR | POLLNVAL)) ||
	    channel_wait_open(ch, deadline))
		return TRUE;
	set_hung_up(ch, error);
	return FALSE;
}

gboolean vs_channel_write_all(VsChannel *ch, const guint8 *buf, gsize len,
			      GError **error)
{
	gint64 deadline = g_get_monotonic_time() + WRITE_TIMEOUT_MS * 1000;

	while (len) {
		ssize_t n;

		if (ch->fd < 0) {
			g_set_error_literal(error, VS_ERROR, VS_ERROR_GENERIC,
					    "channel not connected");
			return FALSE;
		}
		n = write(ch->fd, buf, len);
		if (n > 0) {
			ch->peer = PEER_SEEN;
			buf += n;
			len -= (gsize)n;
			continue;
		}
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			set_hung_up(ch, error);
			return FALSE;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			g_set_error(error, VS_ERROR, VS_ERROR_GENERIC,
				    "write: %s", g_strerror(errno));
			return FALSE;
		}
		if (!channel_wait_writable(ch, deadline, error))
			return FALSE;
	}
	return TRUE;
}

void vs_channel_free(VsChannel *ch)
{
	if (!ch)
		return;
	channel_close_fd(ch);
	if (ch->listen_watch)
		g_source_remove(ch->listen_watch);
	if (ch->listen_fd >= 0) {
		close(ch->listen_fd);
		unlink(ch->where);
	}
	if (ch->inotify_watch)
		g_source_remove(ch->inotify_watch);
	if (ch->inotify_fd >= 0)
		close(ch->inotify_fd);
	if (ch->sigio_watch)
		g_source_remove(ch->sigio_watch);
	if (ch->sigio_fd >= 0)
		close(ch->sigio_fd);
	g_free(ch->where);
	g_free(ch);
}
