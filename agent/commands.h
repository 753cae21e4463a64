/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include "alloc.h"
#include "cgroup.h"
#include "channel.h"
#include "vshare-proto.h"

typedef struct {
	VsDispatcher *disp;
	VsChannel *chan;
	VsFramer *framer;
	VsCgroup *cg;
	VsAlloc *alloc;
	GMainLoop *loop;
	guint dropped; /* replies dropped since the host last came or went */
} VsAgent;

/* Bind every vshare-* schema command to its handler; fails if the schema
 * has a command nobody implements. */
gboolean vs_commands_register(VsAgent *agent, GError **error);
