/* The readers of the systemd VM test (scripts/sysvm/payload), built by scripts/sysvm/vm with
 * gcc -static so that it runs in the guest whatever its libraries.
 *
 *   reader now                CLOCK_MONOTONIC in microseconds, the clock of the logs below
 *   reader loop LOG FILE...   open, read to the end and close each FILE in turn, 5 ms apart
 *                             between rounds, until SIGTERM (a container's tools reading their
 *                             /proc files)
 *   reader hold LOG FILE      open FILE once, then pread it at offset 0 every 10 ms until
 *                             SIGTERM (top keeping /proc/stat open)
 *   reader once FILE          one open, read, close of FILE, its log line on stdout
 *   reader drain TTY          wait until what was written to TTY has left it (tcdrain), so
 *                             that a power-off does not cut the results short
 *
 * LOG gets one line per operation, written as it ends (a reader killed halfway loses
 * nothing it did before):
 *
 *   START_US DURATION_US FILE_INDEX RESULT BYTES
 *
 * RESULT is OK, or the errno's name and the call that failed (ENOTCONN@open); a read of 0
 * bytes is EMPTY@read. FILE_INDEX counts FILE arguments from 0. An operation that SIGTERM
 * cut short is not logged.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static char buf[1 << 16];

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void pause_ms(int ms)
{
	struct timespec ts = { 0, ms * 1000000L };
	nanosleep(&ts, NULL);
}

static void record(int log, long long start, int index, const char *err, const char *call,
		   long long bytes)
{
	long long dur = now_us() - start;
	if (stop)
		return;
	if (err)
		dprintf(log, "%lld %lld %d %s@%s %lld\n", start, dur, index, err, call, bytes);
	else
		dprintf(log, "%lld %lld %d OK %lld\n", start, dur, index, bytes);
}

static const char *errname(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "EUNKNOWN";
}

/* One open, read-to-the-end, close of path. */
static void read_once(int log, int index, const char *path)
{
	long long start = now_us(), total = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		record(log, start, index, errname(errno), "open", 0);
		return;
	}
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0) {
			int e = errno;
			close(fd);
			record(log, start, index, errname(e), "read", total);
			return;
		}
		if (n == 0)
			break;
		total += n;
	}
	if (close(fd) < 0) {
		record(log, start, index, errname(errno), "close", total);
		return;
	}
	record(log, start, index, total ? NULL : "EMPTY", "read", total);
}

static int open_log(const char *path)
{
	int log = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (log < 0) {
		perror(path);
		exit(1);
	}
	return log;
}

int main(int argc, char **argv)
{
	/* No SA_RESTART: SIGTERM ends a pause at once. */
	struct sigaction sa = { .sa_handler = on_term };
	sigaction(SIGTERM, &sa, NULL);

	if (argc == 2 && !strcmp(argv[1], "now")) {
		printf("%lld\n", now_us());
		return 0;
	}
	if (argc >= 4 && !strcmp(argv[1], "loop")) {
		int log = open_log(argv[2]);
		while (!stop) {
			for (int i = 3; i < argc && !stop; i++)
				read_once(log, i - 3, argv[i]);
			pause_ms(5);
		}
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "hold")) {
		int log = open_log(argv[2]);
		int fd = open(argv[3], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			perror(argv[3]);
			return 1;
		}
		while (!stop) {
			long long start = now_us();
			ssize_t n = pread(fd, buf, sizeof buf, 0);
			if (n < 0)
				record(log, start, 0, errname(errno), "pread", 0);
			else
				record(log, start, 0, n ? NULL : "EMPTY", "pread", n);
			pause_ms(10);
		}
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "once")) {
		read_once(STDOUT_FILENO, 0, argv[2]);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "drain")) {
		int fd = open(argv[2], O_WRONLY | O_NOCTTY);
		if (fd < 0 || tcdrain(fd) < 0) {
			perror(argv[2]);
			return 1;
		}
		return 0;
	}
	fprintf(stderr, "usage: reader now | loop LOG FILE... | hold LOG FILE | once FILE | drain TTY\n");
	return 2;
}
