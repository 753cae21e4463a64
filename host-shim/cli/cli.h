/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vsharectl, the command-line front end of libvshare-host: options,
 * rendering, and the one place an error becomes an exit code.
 */
#pragma once

#include "vshare-host.h"

/* Exit codes (documented in vsharectl(8) and docs/vsharectl.md). */
enum {
	VS_EXIT_OK = 0,
	VS_EXIT_FAILED = 1,	 /* failed or unreachable; state kept */
	VS_EXIT_USAGE = 2,	 /* bad command line */
	VS_EXIT_REFUSED = 3,	 /* the ledger forbids it (owner, capacity) */
	VS_EXIT_PARTIAL = 4,	 /* memory: the guest reached less */
	VS_EXIT_CORRUPT = 5,	 /* ledger or journal unreadable */
	VS_EXIT_UNSUPPORTED = 6, /* host lacks the feature (PLE, tracefs) */
	VS_EXIT_BUSY = 7,	 /* another vsharectl/vshared holds the lock */
};

typedef struct {
	VsConfig cfg;
	gboolean json;
	int lock_wait_ms;
	char *inline_qmp, *inline_agent;
	gboolean recovered; /* a VS_EV_RECOVER was rendered */
	char *socket;	    /* vshared's control socket (--socket) */
} Cli;

int cli_exit_code(const GError *error);
/* Print "vsharectl: MESSAGE" and return the exit code. */
int cli_fail(const GError *error);
#define cli_usage_error(error, ...) \
	vs_fail((error), VS_HOST_ERROR_USAGE, __VA_ARGS__)
/* @entries plus the common options (--json, --conf-dir, --state-dir,
 * --qmp, --agent, --timeout, --qmp-timeout, --wait, --mem-timeout). */
gboolean cli_parse(Cli *c, int *argc, char ***argv, const char *usage,
		   const char *summary, GOptionEntry *entries, GError **error);
gboolean cli_want_args(int argc, char **argv, int n, const char *what,
		       GError **error);
void cli_print_json(JsonNode *node);
/* Progress of a change, as text. */
void cli_render_event(const VsEvent *ev, gpointer data);
/* Open a session: with @lock, wait up to --wait for the ledger lock (a
 * timer interrupts the wait; nothing spins). */
gboolean cli_session_open(Cli *c, VsSession *s, gboolean lock, GError **error);
/* Run a change through vshared when it runs, else here under the lock. */
int cli_change(Cli *c, const VsChangeReq *req, const char *done);

/* daemon-client.c: through vshared when it runs. *handled FALSE: no
 * daemon, do it here. @req NULL: recover. */
int cli_daemon_change(Cli *c, const VsChangeReq *req, const char *done,
		      gboolean *handled);
/* Any control-socket command; an error when vshared does not run.
 * @args consumed. */
JsonNode *cli_daemon_call(Cli *c, const char *cmd, JsonObject *args,
			  GError **error);
JsonNode *cli_daemon_status(Cli *c, char **names, gboolean *handled,
			    GError **error);

int cmd_status(Cli *c, int argc, char **argv);
int cmd_ple(Cli *c, int argc, char **argv);
int cmd_host_check(Cli *c, int argc, char **argv);
/* host-check DOMAIN (domain-check.c) */
int cli_domain_check(Cli *o, const char *domain, const char *uri);
int cmd_cpus(Cli *c, int argc, char **argv);
int cmd_mem(Cli *c, int argc, char **argv);
int cmd_lend(Cli *c, int argc, char **argv);
int cmd_recover(Cli *c, int argc, char **argv);
int cmd_forget(Cli *c, int argc, char **argv);
int cmd_tune(Cli *c, int argc, char **argv);
int cmd_policy(Cli *c, int argc, char **argv);
int cmd_place(Cli *c, int argc, char **argv);
int cmd_migrate(Cli *c, int argc, char **argv);
int cmd_ledger(Cli *c, int argc, char **argv);
int cmd_add(Cli *c, int argc, char **argv);
int cmd_remove(Cli *c, int argc, char **argv);
int cmd_list(Cli *c, int argc, char **argv);
