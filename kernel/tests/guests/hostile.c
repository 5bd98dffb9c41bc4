/* A hostile guest for the platform tests: tries to reach the host in every way the
 * platform must stop, and prints "NAME RESULT" per attempt (RESULT: the raw syscall's
 * return, -errno on failure). Arguments: VICTIM_PID ADDR_HEX FILE PORT, or "int80"
 * (a foreign-ABI syscall), "bigmap" (64 GiB of anonymous memory), "thread" (a pthread), or "fork" (forks that must stay traced, clones that must not
 * happen).
 * Built with gcc -static by the test. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <errno.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static void report(const char *name, long ret) {
	char line[128];
	int n = snprintf(line, sizeof line, "%s %ld\n", name, ret);
	syscall(SYS_write, 1, line, n);
}

/* The raw syscall's return: -errno on failure. */
static long raw(long nr, long a, long b, long c, long d, long e, long f) {
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
	return ret;
}

static void *thread_main(void *arg) {
	report("thread", raw(SYS_getpid, 0, 0, 0, 0, 0, 0));
	return arg;
}

int main(int argc, char **argv) {
	if (argc == 2 && strcmp(argv[1], "int80") == 0) {
		long ret;
		__asm__ volatile("int $0x80" : "=a"(ret) : "a"(20) : "memory"); /* i386 getpid */
		report("int80", ret);
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "bigmap") == 0) {
		long big = raw(SYS_mmap, 0, 64L << 30, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		report("mmap_64g", big < 0 ? big : 0);
		long cur = raw(SYS_brk, 0, 0, 0, 0, 0, 0);
		long grown = raw(SYS_brk, cur + (64L << 30), 0, 0, 0, 0, 0);
		report("brk_64g", grown == cur ? -ENOMEM : 0);
		report("setrlimit", raw(SYS_setrlimit, RLIMIT_AS, (long)&(long[2]){-1, -1}, 0, 0, 0, 0));
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "thread") == 0) {
		pthread_t t;
		int rc = pthread_create(&t, 0, thread_main, 0);
		report("pthread_create", -rc);
		if (rc == 0)
			report("pthread_join", -pthread_join(t, 0));
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "fork") == 0) {
		long c = raw(SYS_clone, SIGCHLD, 0, 0, 0, 0, 0);
		if (c == 0) {
			report("child", raw(SYS_getpid, 0, 0, 0, 0, 0, 0));
			raw(SYS_exit_group, 0, 0, 0, 0, 0, 0);
		}
		report("parent", c > 0 ? 0 : c);
		report("clone_newuser", raw(SYS_clone, SIGCHLD | CLONE_NEWUSER, 0, 0, 0, 0, 0));
		report("clone_untraced", raw(SYS_clone, SIGCHLD | CLONE_UNTRACED, 0, 0, 0, 0, 0));
		pid_t f = fork();
		if (f == 0) {
			report("glibc_child", raw(SYS_getpid, 0, 0, 0, 0, 0, 0));
			_exit(3);
		}
		report("glibc_fork", f > 0 ? 0 : f);
		return 0;
	}
	if (argc != 5)
		return 2;
	long victim = strtol(argv[1], 0, 10);
	long addr = strtol(argv[2], 0, 16);
	const char *file = argv[3];
	int port = atoi(argv[4]);

	report("open_passwd", raw(SYS_openat, AT_FDCWD, (long)"/etc/passwd", O_RDONLY, 0, 0, 0));
	report("creat", raw(SYS_openat, AT_FDCWD, (long)file, O_CREAT | O_WRONLY, 0666, 0, 0));
	report("socket", raw(SYS_socket, AF_INET, SOCK_STREAM, 0, 0, 0, 0));
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001)};
	for (int fd = 0; fd < 8; fd++) {
		long r = raw(SYS_connect, fd, (long)&sin, sizeof sin, 0, 0, 0);
		if (fd == 3)
			report("connect", r);
	}
	report("kill", raw(SYS_kill, victim, SIGKILL, 0, 0, 0, 0));
	report("kill_all", raw(SYS_kill, -1, 0, 0, 0, 0, 0)); /* signal 0: probes only */
	report("ptrace", raw(SYS_ptrace, PTRACE_ATTACH, victim, 0, 0, 0, 0));
	static char pwn[8] = "PWNED!!!";
	struct iovec local = {pwn, 8}, remote = {(void *)addr, 8};
	report("process_vm_writev", raw(SYS_process_vm_writev, victim, (long)&local, 1, (long)&remote, 1, 0));
	report("mmap_file", raw(SYS_mmap, 0, 4096, PROT_READ, MAP_PRIVATE, 0, 0));
	report("mmap_file_fd3", raw(SYS_mmap, 0, 4096, PROT_READ | PROT_EXEC, MAP_SHARED, 3, 0));
	long anon = raw(SYS_mmap, 0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (anon > 0) {
		((volatile char *)anon)[0] = 1; /* really mapped */
		anon = 0;
	}
	report("mmap_anon", anon);
	report("execve", raw(SYS_execve, (long)"/bin/sh", 0, 0, 0, 0, 0));
	report("chdir", raw(SYS_chdir, (long)"/", 0, 0, 0, 0, 0));
	report("unshare", raw(SYS_unshare, CLONE_NEWUSER, 0, 0, 0, 0, 0));
	report("x32_getpid", raw(0x40000000 | SYS_getpid, 0, 0, 0, 0, 0, 0));
	report("done", 0);
	return 0;
}
