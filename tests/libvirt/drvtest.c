// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * drvtest: the libvirt VM driver against a running domain, step by step,
 * for checking each effect with virsh and /proc (tests/README.md).
 *
 *   drvtest URI DOMAIN [PIDFILE]          open, print, pin vCPU 1 to pCPU
 *                                         1, throttle vCPU 1, read back,
 *                                         grow node 1's virtio-mem by one
 *                                         block and wait for the guest
 *   drvtest URI DOMAIN [PIDFILE] --undo   unthrottle, shrink back a block
 *   --blocks=N                            N blocks instead of one
 *   --pause                               after pinning, print PAUSED and
 *                                         wait for a line on stdin (a test
 *                                         restarts libvirtd meanwhile)
 *
 * Exit 0 when every step did what it says; messages on stderr.
 */
#include "vmdrv-libvirt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gboolean step(const char *what, gboolean ok, GError **error)
{
	g_print("%-32s %s%s\n", what,
		ok ? "ok" : "FAILED: ", ok ? "" : (*error)->message);
	if (!ok)
		g_print("  (error code %s)\n",
			vs_host_error_name((*error)->code));
	return ok;
}

static void show(VsVm *vm)
{
	g_print("uuid %s qemu pid %" G_GINT64_FORMAT "\nagent %s\n"
		"throttle backend: %s\n",
		vm->uuid, vm->qemu_pid, vm->agent_path,
		vm->drv->throttle_backend(vm));
	for (guint i = 0; i < vm->vcpus->len; i++) {
		VsVcpu *v = &g_array_index(vm->vcpus, VsVcpu, i);

		g_print("vCPU %u node %d tid %" G_GINT64_FORMAT "\n", v->index,
			v->node, v->tid);
	}
	for (guint i = 0; i < vm->vmems->len; i++) {
		VsVmem *m = g_ptr_array_index(vm->vmems, i);

		g_print("virtio-mem %s node %d requested %" G_GUINT64_FORMAT
			" current %" G_GUINT64_FORMAT " max %" G_GUINT64_FORMAT
			" block %" G_GUINT64_FORMAT "\n",
			m->id, m->node, m->requested, m->size, m->max,
			m->block);
	}
}

static VsVmem *vmem_on(VsVm *vm, int node)
{
	for (guint i = 0; i < vm->vmems->len; i++) {
		VsVmem *m = g_ptr_array_index(vm->vmems, i);

		if (m->node == node)
			return m;
	}
	return NULL;
}

/* Ask node 1's device for @delta blocks more and wait for the guest. */
static gboolean resize(VsVm *vm, int delta, GError **error)
{
	VsVmem *d = vmem_on(vm, 1);
	g_autofree char *id = NULL;
	gint64 t0 = g_get_monotonic_time(), deadline = t0 + 30 * G_USEC_PER_SEC;
	guint64 want;
	guint waits = 0;

	if (!d) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_USAGE,
			    "no virtio-mem device on node 1");
		return FALSE;
	}
	id = g_strdup(d->id);
	want = d->requested + (guint64)delta * d->block;
	g_print("%s: requested %" G_GUINT64_FORMAT " -> %" G_GUINT64_FORMAT
		"\n",
		id, d->requested, want);
	if (!vm->drv->mem_request(vm, d, want, error))
		return FALSE;
	for (;;) {
		if (!vm->drv->refresh_mem(vm, error))
			return FALSE;
		d = vmem_on(vm, 1);
		if (d->size == want || g_get_monotonic_time() >= deadline)
			break;
		vm->drv->wait(vm, deadline);
		waits++;
	}
	g_print("%s: current %" G_GUINT64_FORMAT " after %.0f ms, %u "
		"wait(s)\n",
		id, d->size, (g_get_monotonic_time() - t0) / 1000.0, waits);
	if (d->size != want)
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_PARTIAL,
			    "reached %" G_GUINT64_FORMAT, d->size);
	return d->size == want;
}

static int blocks = 1;
static gboolean pause_after_pin;

static void pause_here(void)
{
	char line[16];

	g_print("PAUSED\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		g_print("(stdin closed)\n");
}

static gboolean run(VsVm *vm, gboolean undo, GError **error)
{
	VsCpuSet want, got;
	g_autofree char *txt = NULL;

	vs_cpuset_clear(&want);
	if (!undo) {
		if (!step("pin vCPU 1 -> pCPU 1", vm->drv->pin(vm, 1, 1, error),
			  error))
			return FALSE;
		vs_cpuset_add(&want, 1);
	}
	if (pause_after_pin)
		pause_here();
	if (!step(undo ? "unthrottle all" : "throttle vCPU 1",
		  vm->drv->throttle(vm, &want, error), error) ||
	    !step("read back", vm->drv->throttled(vm, &got, error), error))
		return FALSE;
	txt = vs_cpuset_format(&got);
	g_print("throttled vCPUs: \"%s\"\n", txt);
	if (!vs_cpuset_equal(&want, &got)) {
		g_set_error(error, VS_HOST_ERROR, VS_HOST_ERROR_FAILED,
			    "read back differs");
		return step("throttled == asked", FALSE, error);
	}
	return step(undo ? "shrink node 1's virtio-mem"
			 : "grow node 1's virtio-mem",
		    resize(vm, undo ? -blocks : blocks, error), error);
}

int main(int argc, char **argv)
{
	g_autoptr(GError) e = NULL;
	gboolean undo = FALSE;
	VsConfig cfg = { 0 };
	VsVmConf *conf;
	g_autoptr(VsVm) vm = NULL;
	gboolean ok;
	int n = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--undo"))
			undo = TRUE;
		else if (!strcmp(argv[i], "--pause"))
			pause_after_pin = TRUE;
		else if (g_str_has_prefix(argv[i], "--blocks="))
			blocks = atoi(argv[i] + strlen("--blocks="));
		else
			argv[++n] = argv[i];
	}
	n++;
	if (n < 3 || n > 4 || blocks < 1) {
		g_printerr("usage: drvtest URI DOMAIN [PIDFILE] [--undo] "
			   "[--blocks=N] [--pause]\n");
		return 2;
	}
	conf = g_new0(VsVmConf, 1);
	conf->name = g_strdup(argv[2]);
	conf->driver = VS_DRIVER_LIBVIRT;
	conf->uri = g_strdup(argv[1]);
	conf->domain = g_strdup(argv[2]);
	conf->pidfile = n == 4 ? g_strdup(argv[3]) : NULL;
	vm = vs_vm_alloc(conf, &cfg);
	vm->drv = &vs_vmdrv_libvirt;
	if (!step("open", vm->drv->open(vm, &cfg, &e), &e))
		return 1;
	show(vm);
	ok = run(vm, undo, &e);
	g_print("alive: %s\n", vm->drv->alive(vm) ? "yes" : "no");
	return ok ? 0 : 1;
}
