//! Source of `/bin/sysinfo-probe`, the containers' helper for `sysinfo(2)`: what busybox
//! `free`, glibc's `sysconf(_SC_PHYS_PAGES)` and a JVM ask the kernel, called every way the
//! seccomp agent must answer (native, 32-bit `int 0x80`, a bad pointer, many threads).

/// The C source (built with `gcc -static -pthread`).
pub(super) const SYSINFO_PROBE_C: &str = r##"/* sysinfo-probe: prints `key value` lines.
 *
 *   sysinfo-probe show       the native struct's fields, then phys_bytes
 *                            (sysconf(_SC_PHYS_PAGES) * page size) and avphys_bytes
 *   sysinfo-probe compat     the 32-bit call (int 0x80, nr 116) into a buffer below 4 GiB:
 *                            ret, errno, totalram, mem_unit, uptime
 *   sysinfo-probe badptr     sysinfo on an unmapped address: ret, errno
 *   sysinfo-probe threads N M
 *                            N threads calling M times each at once: calls, failed,
 *                            differing (totalram unlike the first call's), tids (distinct)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <unistd.h>

static unsigned long first_total;
static int per_thread;
static long failed, differing, calls;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t start;

static void *hammer(void *arg)
{
	long f = 0, d = 0;

	(void)arg;
	pthread_barrier_wait(&start);
	for (int i = 0; i < per_thread; i++) {
		struct sysinfo s;

		if (syscall(SYS_sysinfo, &s) != 0)
			f++;
		else if (s.totalram * s.mem_unit != first_total)
			d++;
	}
	pthread_mutex_lock(&lock);
	failed += f;
	differing += d;
	calls += per_thread;
	pthread_mutex_unlock(&lock);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "show")) {
		struct sysinfo s;
		long r = syscall(SYS_sysinfo, &s);

		printf("ret %ld\nerrno %d\n", r, r ? errno : 0);
		if (r)
			return 0;
		printf("uptime %ld\nload1 %lu\ntotalram %lu\nfreeram %lu\nsharedram %lu\n"
		       "bufferram %lu\ntotalswap %lu\nfreeswap %lu\nprocs %u\nmem_unit %u\n",
		       s.uptime, s.loads[0], s.totalram, s.freeram, s.sharedram, s.bufferram,
		       s.totalswap, s.freeswap, (unsigned)s.procs, s.mem_unit);
		printf("phys_bytes %lld\navphys_bytes %lld\n",
		       (long long)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE),
		       (long long)sysconf(_SC_AVPHYS_PAGES) * sysconf(_SC_PAGESIZE));
	} else if (argc == 2 && !strcmp(argv[1], "compat")) {
#if defined(__x86_64__)
		/* The 64-byte compat_sysinfo, in a buffer int 0x80's 32-bit pointer can reach. */
		uint32_t *b = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
		long r;

		if (b == MAP_FAILED) {
			perror("mmap");
			return 2;
		}
		memset(b, 0xff, 4096);
		__asm__ volatile("int $0x80" : "=a"(r) : "a"(116), "b"(b) : "memory");
		printf("ret %ld\nerrno %ld\nuptime %u\ntotalram %u\nfreeram %u\nmem_unit %u\n"
		       "tail %u\n", r < 0 ? -1 : r, r < 0 ? -r : 0, b[0], b[4], b[5], b[13], b[16]);
#else
		printf("ret -1\nerrno %d\n", ENOSYS);
#endif
	} else if (argc == 2 && !strcmp(argv[1], "badptr")) {
		long r = syscall(SYS_sysinfo, (void *)8);

		printf("ret %ld\nerrno %d\n", r, r ? errno : 0);
	} else if (argc == 4 && !strcmp(argv[1], "threads")) {
		int n = atoi(argv[2]);
		pthread_t *t = calloc((size_t)n, sizeof(*t));
		struct sysinfo s;

		per_thread = atoi(argv[3]);
		if (syscall(SYS_sysinfo, &s) != 0) {
			perror("sysinfo");
			return 2;
		}
		first_total = s.totalram * s.mem_unit;
		pthread_barrier_init(&start, NULL, (unsigned)n);
		for (int i = 0; i < n; i++)
			pthread_create(&t[i], NULL, hammer, NULL);
		for (int i = 0; i < n; i++)
			pthread_join(t[i], NULL);
		printf("calls %ld\nfailed %ld\ndiffering %ld\n", calls, failed, differing);
	} else {
		fprintf(stderr, "usage: sysinfo-probe show | compat | badptr | threads N M\n");
		return 2;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
"##;
