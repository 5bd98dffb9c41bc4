/* The trapped-syscall benchmark's guest: N raw getpid syscalls, timed with
 * CLOCK_MONOTONIC (vDSO), printing "getpid N NS_PER_CALL". Built with gcc -static by
 * platform_bench; runs natively, under the platform and as a linux.uml guest. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long raw_getpid(void) {
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(SYS_getpid) : "rcx", "r11", "memory");
	return ret;
}

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 100000;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	long sum = 0;
	for (long i = 0; i < n; i++)
		sum += raw_getpid();
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
	char line[128];
	int len = snprintf(line, sizeof line, "getpid %ld %.1f %ld\n", n, n ? ns / n : 0.0, sum / (n ? n : 1));
	return write(1, line, len) == len ? 0 : 1;
}
