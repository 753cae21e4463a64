// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * In-guest workloads of `make bench-kernel`, in the spirit of NPB run with
 * GOMP_SPINCOUNT=0 (threads block in the kernel at every barrier):
 *
 *   omp-wake wake ROUNDS WORK   ROUNDS x (WORK units per thread, barrier;
 *                               every 4th round a short critical section)
 *   omp-wake cpu ROUNDS WORK    the same total work, one barrier at the end
 *   omp-wake lock ROUNDS WORK   ROUNDS x open+close of one file per thread:
 *                               the threads share files->file_lock and the
 *                               dentry's lockref (kernel spinlocks)
 *
 * Prints the elapsed seconds. Built statically on the host (libgomp.a) and
 * put in the test initramfs.
 */
#include <fcntl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned long work(unsigned long units, unsigned long seed)
{
	unsigned long x = seed | 1;

	for (unsigned long i = 0; i < units * 64; i++)
		x = x * 6364136223846793005UL + 1442695040888963407UL;
	return x;
}

int main(int argc, char **argv)
{
	unsigned long rounds, units, shared = 0;
	volatile unsigned long sink = 0;
	int wake, lock;
	double t0;

	if (argc != 4 || (strcmp(argv[1], "wake") && strcmp(argv[1], "cpu") &&
			  strcmp(argv[1], "lock"))) {
		fprintf(stderr, "usage: omp-wake wake|cpu|lock ROUNDS WORK\n");
		return 2;
	}
	wake = !strcmp(argv[1], "wake");
	lock = !strcmp(argv[1], "lock");
	rounds = strtoul(argv[2], NULL, 10);
	units = strtoul(argv[3], NULL, 10);
	t0 = now();
#pragma omp parallel
	{
		unsigned long me = omp_get_thread_num(), acc = 0;

		if (lock) {
			for (unsigned long r = 0; r < rounds; r++) {
				int fd = open("/tmp/omp-wake.lock",
					      O_RDONLY | O_CREAT, 0600);

				if (fd >= 0)
					close(fd);
				acc += work(units, me + r);
			}
#pragma omp barrier
		} else if (wake) {
			for (unsigned long r = 0; r < rounds; r++) {
				acc += work(units, me + r);
#pragma omp barrier
				if (r % 4 == 0) {
#pragma omp critical
					shared += acc & 0xff;
				}
			}
		} else {
			acc += work(units * rounds, me);
#pragma omp barrier
		}
#pragma omp critical
		sink += acc;
	}
	printf("%.4f %d %lu\n", now() - t0, omp_get_max_threads(),
	       (unsigned long)(sink + shared) & 1);
	return 0;
}
