/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vsharectl ple simulate / advise: the PLE model (host-shim/plesim) run
 * from vsharectl; hostinfo.c's cmd_ple hands these two subcommands over.
 */
#pragma once

#include "cli.h"

/* argv[0] is "simulate" or "advise". */
int cmd_ple_model(Cli *o, int argc, char **argv);
