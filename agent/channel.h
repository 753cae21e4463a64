/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The agent's transport. Opaque; four calls (as qga's GAChannel).
 *
 * Kinds: a virtio-serial port found by name (waits for it to appear, and
 * when the host side closes the port, sleeps until the kernel's SIGIO says
 * it reopened: no polling, no spinning on POLLHUP), any character device, a
 * unix socket to connect to, or a unix socket to listen on.
 */
#pragma once

#include <glib.h>

typedef enum {
	VS_CHANNEL_PORT,	/* virtio-serial port by name */
	VS_CHANNEL_DEVICE,	/* char device or unix socket path */
	VS_CHANNEL_UNIX_LISTEN, /* listen on a unix socket */
} VsChannelKind;

typedef struct VsChannel VsChannel;

/* Data arrived. */
typedef void (*VsChannelDataFunc)(const guint8 *buf, gsize len,
				  gpointer user_data);
/* The peer went away or came (back): the stream restarts. */
typedef void (*VsChannelResetFunc)(gboolean connected, gpointer user_data);

VsChannel *vs_channel_new(VsChannelKind kind, const char *where,
			  VsChannelDataFunc data, VsChannelResetFunc reset,
			  gpointer user_data, GError **error);
/* Write all of @buf within a deadline (a host that does not read gets an
 * error after 2 s). A host that hung up after this session saw it fails at
 * once with G_IO_ERROR_BROKEN_PIPE: nothing waits (or spins) for a host
 * that is gone. A port whose host this session has not seen yet (its
 * "port open" may reach the guest after its first request) sleeps until
 * the next SIGIO or the deadline. */
gboolean vs_channel_write_all(VsChannel *ch, const guint8 *buf, gsize len,
			      GError **error);
void vs_channel_free(VsChannel *ch);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VsChannel, vs_channel_free)
