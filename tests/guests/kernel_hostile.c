/* A hostile guest program for uml-kernel's isolation table (tests/tests/kernel_isolation.rs):
 * each mode tries one way out of the guest and prints "ROW NAME RESULT" per attempt, where
 * RESULT is the raw syscall's return (-errno on failure). Raw syscalls by number (no C
 * library wrapper decides anything). The host facts come from the environment, which
 * uml-kernel fills from its command line: KPID (the kernel's host pid), VICTIM (a host
 * process beside it), MARKER (a host file), HOSTBIN (a host program), PORT (a host TCP
 * listener on 127.0.0.1), ABSTRACT (a host abstract unix socket name), MCONSOLE (the
 * kernel's mconsole socket path), GUEST_VICTIM and GUEST_VICTIM_HOST (another guest process's guest
 * and host pids).
 * Modes: "all" (the calls that only return), "sleeper" (asks for root, then sleeps), "kill_all", "uretprobe", "int80", "tmpfs_fill", "pipe_fill", "forkbomb SECONDS",
 * "memhog", "flood COUNT".
 * Built with gcc -static by the test. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void report(const char *name, long ret) {
	char line[160];
	int n = snprintf(line, sizeof line, "ROW %s %ld\n", name, ret);
	syscall(SYS_write, 1, line, n);
}

static long raw(long nr, long a, long b, long c, long d, long e, long f) {
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
	return ret;
}
#define R0(n) raw(n, 0, 0, 0, 0, 0, 0)
#define R1(n, a) raw(n, (long)(a), 0, 0, 0, 0, 0)
#define R2(n, a, b) raw(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define R3(n, a, b, c) raw(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define R4(n, a, b, c, d) raw(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define R5(n, a, b, c, d, e) raw(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

static const char *env(const char *k) {
	const char *v = getenv(k);
	return v ? v : "";
}

static long openp(const char *path, int flags) {
	return R4(SYS_openat, AT_FDCWD, path, flags, 0600);
}

static char *cat(const char *a, const char *b) {
	static char bufs[8][512];
	static int i;
	char *s = bufs[i++ % 8];
	snprintf(s, 512, "%s%s", a, b);
	return s;
}

static long now_s(void) {
	struct timespec t;
	raw(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&t, 0, 0, 0, 0);
	return t.tv_sec;
}

static long connect_unix(const char *path, int abstract) {
	long fd = R3(SYS_socket, AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	size_t n = strlen(path);
	if (n > sizeof sun.sun_path - 2)
		n = sizeof sun.sun_path - 2;
	memcpy(sun.sun_path + abstract, path, n);
	long r = R3(SYS_connect, fd < 0 ? 3 : fd, &sun, offsetof(struct sockaddr_un, sun_path) + abstract + n);
	if (fd >= 0)
		R1(SYS_close, fd);
	return r;
}

/* A clone with odd flags: -errno when refused; a child made anyway exits at once and
 * is reaped, and the row says 1 (it ran as an ordinary guest child). */
static long clone_probe(long flags) {
	long c = R2(SYS_clone, flags, 0);
	if (c == 0)
		raw(SYS_exit_group, 0, 0, 0, 0, 0, 0);
	if (c < 0)
		return c;
	int st;
	raw(SYS_wait4, c, (long)&st, 0, 0, 0, 0);
	return 1;
}

static void all(void) {
	long kpid = atol(env("KPID")), victim = atol(env("VICTIM"));
	const char *marker = env("MARKER");
	char buf[64];
	/* Host paths. */
	report("open_host_path", openp(marker, O_RDWR));
	report("creat_host_path", openp(cat(marker, ".created"), O_CREAT | O_WRONLY));
	report("proc_1_root", openp(cat("/proc/1/root", marker), O_RDWR));
	report("proc_self_root", openp(cat("/proc/self/root", marker), O_RDWR));
	report("proc_self_cwd", openp(cat("/proc/self/cwd/../../../../..", marker), O_RDWR));
	report("dotdot_above_root", openp(cat("/../../../..", marker), O_RDWR));
	report("execve_host_binary", R3(SYS_execve, env("HOSTBIN"), 0, 0));
	R2(SYS_mkdir, "/tmp/jail", 0700);
	long ch = R1(SYS_chroot, "/tmp/jail");
	R1(SYS_chdir, "/tmp/jail");
	long esc = openp(cat("../../../../..", marker), O_RDWR);
	report("chroot_escape", ch >= 0 && esc >= 0 ? 0 : (esc >= 0 ? esc : ch));
	R1(SYS_chdir, "/");
	report("pivot_root", R2(SYS_pivot_root, "/tmp", "/tmp/jail"));
	/* hostfs (mounted by the script on /mnt/host): symlinks out of it, a mount of "/". */
	report("hostfs_symlink_abs", openp("/mnt/host/abs-link", O_RDWR | O_TRUNC));
	report("hostfs_symlink_rel", openp("/mnt/host/rel-link", O_RDWR | O_TRUNC));
	report("hostfs_dotdot", openp(cat("/mnt/host/../../../../..", marker), O_RDWR | O_TRUNC));
	R2(SYS_mkdir, "/mnt/hroot", 0755);
	long m = R5(SYS_mount, "none", "/mnt/hroot", "hostfs", 0, marker);
	long o = openp(cat("/mnt/hroot", marker), O_RDWR | O_TRUNC);
	report("hostfs_mount_outside", m < 0 ? m : o);
	/* A FIFO on the host through hostfs: opening or reading it must not block the kernel.
	 * O_NONBLOCK: a FIFO's blocking open rightly waits (in the guest) for the other end. */
	R4(SYS_mknodat, AT_FDCWD, "/mnt/host/fifo", S_IFIFO | 0600, 0);
	long ff = openp("/mnt/host/fifo", O_RDONLY | O_NONBLOCK);
	report("hostfs_fifo_read", ff < 0 ? ff : R3(SYS_read, ff, buf, 8));
	long fw = openp("/mnt/host/fifo", O_WRONLY | O_NONBLOCK);
	report("hostfs_fifo_open_write", fw >= 0 ? 0 : fw);
	R1(SYS_unlink, "/mnt/host/fifo");
	/* Kernel memory and devices. */
	report("proc_1_mem", openp("/proc/1/mem", O_RDWR));
	report("proc_self_mem", openp("/proc/self/mem", O_RDWR));
	report("proc_kernel_mem", openp(cat(cat("/proc/", env("KPID")), "/mem"), O_RDWR));
	report("dev_mem", openp("/dev/mem", O_RDWR));
	report("dev_kmem", openp("/dev/kmem", O_RDWR));
	R4(SYS_mknodat, AT_FDCWD, "/tmp/mem", S_IFCHR | 0600, makedev(1, 1));
	long memfd = openp("/tmp/mem", O_RDWR);
	report("mknod_dev_mem", memfd < 0 ? memfd : R3(SYS_read, memfd, buf, sizeof buf));
	/* Tracing and memory of other processes. */
	report("ptrace_attach_kernel", R4(SYS_ptrace, PTRACE_ATTACH, kpid, 0, 0));
	report("ptrace_seize_victim", R4(SYS_ptrace, PTRACE_SEIZE, victim, 0, 0));
	report("ptrace_attach_init", R4(SYS_ptrace, PTRACE_ATTACH, 1, 0, 0));
	report("ptrace_traceme", R4(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0));
	static char pwn[8] = "PWNED!!!";
	struct iovec local = {pwn, 8}, remote = {(void *)0x400000, 8};
	report("process_vm_writev_kernel", raw(SYS_process_vm_writev, kpid, (long)&local, 1, (long)&remote, 1, 0));
	report("process_vm_readv_kernel", raw(SYS_process_vm_readv, kpid, (long)&local, 1, (long)&remote, 1, 0));
	report("process_vm_writev_init", raw(SYS_process_vm_writev, 1, (long)&local, 1, (long)&remote, 1, 0));
	report("kcmp_kernel", R5(SYS_kcmp, kpid, kpid, 0, 0, 0));
	/* Signals out of the guest. */
	report("kill_kernel", R2(SYS_kill, kpid, SIGKILL));
	report("tgkill_kernel", R3(SYS_tgkill, kpid, kpid, SIGKILL));
	report("kill_victim", R2(SYS_kill, victim, SIGKILL));
	siginfo_t si = {0};
	si.si_signo = SIGKILL;
	si.si_code = SI_QUEUE;
	report("sigqueue_kernel", R3(SYS_rt_sigqueueinfo, kpid, SIGKILL, &si));
	report("pidfd_open_kernel", R2(SYS_pidfd_open, kpid, 0));
	report("setpriority_kernel", R3(SYS_setpriority, PRIO_PROCESS, kpid, 19));
	long one[2] = {1, 1};
	report("prlimit_kernel", R4(SYS_prlimit64, kpid, RLIMIT_NOFILE, one, 0));
	/* Kernel interfaces a guest must not reach. */
	report("io_uring_setup", R2(SYS_io_uring_setup, 8, buf));
	report("bpf", R3(SYS_bpf, 5 /* BPF_PROG_LOAD */, buf, 64));
	report("perf_event_open", R5(SYS_perf_event_open, buf, 0, -1, -1, 0));
	report("userfaultfd", R1(SYS_userfaultfd, 0));
	report("open_by_handle_at", R3(SYS_open_by_handle_at, AT_FDCWD, buf, O_RDONLY));
	report("keyctl", R2(SYS_keyctl, 0, 0));
	report("init_module", R3(SYS_init_module, buf, 64, ""));
	report("iopl", R1(SYS_iopl, 3));
	report("modify_ldt", R3(SYS_modify_ldt, 1, buf, 16));
	/* Namespaces and mounts. */
	report("unshare_newuser_newns", R1(SYS_unshare, CLONE_NEWUSER | CLONE_NEWNS));
	report("setns", R2(SYS_setns, 0, 0));
	report("clone_newuser", clone_probe(SIGCHLD | CLONE_NEWUSER));
	report("clone_newpid_newnet", clone_probe(SIGCHLD | CLONE_NEWPID | CLONE_NEWNET));
	report("clone_parent", clone_probe(SIGCHLD | CLONE_PARENT));
	report("clone_untraced", clone_probe(SIGCHLD | CLONE_UNTRACED));
	report("clone3", R2(SYS_clone3, buf, 64));
	report("mount_bind_root", R5(SYS_mount, "/", "/tmp/jail", 0, MS_BIND, 0));
	/* Programs from outside the guest's filesystem. */
	report("memfd_create", R2(SYS_memfd_create, "x", 0));
	long bb = openp("/bin/busybox", O_RDONLY);
	char *argv[] = {"true", 0};
	report("execveat_fd", raw(SYS_execveat, bb, (long)"", (long)argv, (long)argv + 8, AT_EMPTY_PATH, 0));
	/* Process attributes that would loosen the jail. */
	report("personality", R1(SYS_personality, 0x0400000 /* READ_IMPLIES_EXEC */));
	report("seccomp_strict", R3(SYS_seccomp, 0, 0, 0));
	report("prctl_set_seccomp", R2(SYS_prctl, PR_SET_SECCOMP, 1));
	report("prctl_set_ptracer_any", R2(SYS_prctl, PR_SET_PTRACER, -1));
	report("prctl_cap_ambient_raise", R3(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, 21));
	report("ioctl_tiocsti", R3(SYS_ioctl, 0, TIOCSTI, "x"));
	/* Sockets to the host. */
	report("connect_host_unix_path", connect_unix(env("MCONSOLE"), 0));
	report("connect_host_abstract", connect_unix(env("ABSTRACT"), 1));
	long s = R3(SYS_socket, AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(atoi(env("PORT"))), .sin_addr.s_addr = htonl(0x7f000001)};
	report("connect_host_tcp", R3(SYS_connect, s < 0 ? 3 : s, &sin, sizeof sin));
	/* Memory. */
	report("mmap_64g", R5(SYS_mmap, 0, 64L << 30, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1) < 0 ? -ENOMEM : 0);
	long cur = R1(SYS_brk, 0);
	report("brk_64g", R1(SYS_brk, cur + (64L << 30)) == cur ? -ENOMEM : 0);
	long inf[2] = {-1, -1};
	R4(SYS_prlimit64, 0, RLIMIT_AS, inf, 0);
	long big = R5(SYS_mmap, 0, 16L << 30, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	report("rlimit_raise_then_mmap_16g", big < 0 ? big : 0);
	/* openat2 and /proc/self/fd tricks, fds the guest never opened. */
	struct { unsigned long long flags, mode, resolve; } how = {O_RDWR, 0, 0};
	report("openat2_host_path", R4(437 /* openat2 */, AT_FDCWD, marker, &how, sizeof how));
	report("openat2_proc_root", R4(437, AT_FDCWD, cat("/proc/self/root/../../..", marker), &how, sizeof how));
	report("execve_proc_kernel_exe", R3(SYS_execve, cat(cat("/proc/", env("KPID")), "/exe"), 0, 0));
	report("execve_proc_self_fd_999", R3(SYS_execve, "/proc/self/fd/999", 0, 0));
	report("write_fd_1000", R3(SYS_write, 1000, "x", 1));
	report("fstat_fd_200", R2(SYS_fstat, 200, buf));
	long bbfd = openp("/bin/busybox", O_RDONLY);
	long map = R5(SYS_mmap, 0, 4096, PROT_READ, MAP_SHARED, bbfd);
	report("mmap_file_shared", map < 0 && map > -4096 ? map : 0);
	/* More of the kernel's interfaces. */
	report("socket_netlink", R3(SYS_socket, AF_NETLINK, SOCK_RAW, 0));
	report("socket_packet", R3(SYS_socket, AF_PACKET, SOCK_RAW, 0));
	report("mount_sysfs", R5(SYS_mount, "none", "/tmp/jail", "sysfs", 0, 0));
	report("mount_cgroup2", R5(SYS_mount, "none", "/tmp/jail", "cgroup2", 0, 0));
	report("mount_ext4_host_disk", R5(SYS_mount, "/dev/sda1", "/tmp/jail", "ext4", 0, 0));
	report("proc_guest_victim_mem", openp(cat(cat("/proc/", env("GUEST_VICTIM")), "/mem"), O_RDWR));
	report("ptrace_attach_guest_host_pid", R4(SYS_ptrace, PTRACE_ATTACH, atol(env("GUEST_VICTIM_HOST")), 0, 0));
	report("process_vm_readv_guest_host_pid", raw(SYS_process_vm_readv, atol(env("GUEST_VICTIM_HOST")), (long)&local, 1, (long)&remote, 1, 0));
	report("kill_guest_host_pid", R2(SYS_kill, atol(env("GUEST_VICTIM_HOST")), SIGKILL));
	report("rt_tgsigqueueinfo_kernel", R4(SYS_rt_tgsigqueueinfo, kpid, kpid, SIGKILL, &si));
	report("prctl_set_mm", R3(SYS_prctl, PR_SET_MM, PR_SET_MM_START_CODE, 0));
	report("process_madvise", R5(SYS_process_madvise, 3, (long)&local, 1, 0, 0));
	report("name_to_handle_at", R5(SYS_name_to_handle_at, AT_FDCWD, "/", buf, buf, 0));
	report("fanotify_init", R2(SYS_fanotify_init, 0, 0));
	report("kexec_load", R4(SYS_kexec_load, 0, 0, 0, 0));
	report("swapon", R2(SYS_swapon, "/dev/ubda", 0));
	/* A sparse 8 GiB "program": the kernel must not read it whole into its memory. */
	long huge = openp("/root/huge", O_CREAT | O_WRONLY | O_TRUNC);
	R3(SYS_write, huge, "\177ELF", 4);
	report("huge_sparse_ftruncate", R2(SYS_ftruncate, huge, 8L << 30));
	R1(SYS_close, huge);
	R2(SYS_chmod, "/root/huge", 0755);
	report("execve_huge_sparse", R3(SYS_execve, "/root/huge", argv, argv + 1));
	R1(SYS_unlink, "/root/huge");
	/* Syscall numbers outside the table. */
	report("nr_unused_1000", R0(1000));
	report("nr_huge", R0(0x7fffffff));
	report("nr_x32_getpid", R0(0x40000000 | SYS_getpid));
	report("done", 0);
}

/* Forks until the deadline, each child too; then each reaps its children and exits. */
static void forkbomb(long seconds) {
	long deadline = now_s() + seconds, made = 0, failed = 0;
	while (now_s() < deadline) {
		long c = R2(SYS_clone, SIGCHLD, 0);
		if (c == 0) {
			made = failed = 0;
			continue;
		}
		if (c > 0)
			made++;
		else
			failed++;
	}
	int st;
	while (raw(SYS_wait4, -1, (long)&st, 0, 0, 0, 0) > 0)
		;
	if (getenv("BOMB_ROOT") && atol(getenv("BOMB_ROOT")) == R0(SYS_getpid)) {
		report("forkbomb_refused", failed > 0 ? -EAGAIN : 0);
	}
	raw(SYS_exit_group, 0, 0, 0, 0, 0, 0);
}

int main(int argc, char **argv) {
	const char *mode = argc > 1 ? argv[1] : "";
	if (strcmp(mode, "all") == 0) {
		all();
	} else if (strcmp(mode, "sleeper") == 0) {
		/* Guest root asks for everything; the host process must stay unprivileged. */
		report("setuid_0", R1(SYS_setuid, 0));
		report("setresuid_0", R3(SYS_setresuid, 0, 0, 0));
		struct { unsigned version; int pid; } hdr = {0x20080522, 0};
		struct { unsigned eff, perm, inh; } caps[2] = {{~0u, ~0u, ~0u}, {~0u, ~0u, ~0u}};
		report("capset_all", R2(SYS_capset, &hdr, caps));
		report("sleeping", 0);
		struct timespec t = {1000, 0};
		R2(SYS_nanosleep, &t, 0);
	} else if (strcmp(mode, "kill_all") == 0) {
		report("kill_all", R2(SYS_kill, -1, SIGKILL));
	} else if (strcmp(mode, "uretprobe") == 0) {
		/* 335 is uretprobe on hosts since Linux 6.11, which seccomp passes through
		 * unfiltered (6.12): outside a uretprobe trampoline the host kills the caller
		 * with SIGILL. On older hosts: ENOSYS from the sentry. */
		report("uretprobe_335", R0(335));
	} else if (strcmp(mode, "int80") == 0) {
		long ret;
		__asm__ volatile("int $0x80" : "=a"(ret) : "a"(20) : "memory");
		report("int80_survived", ret);
	} else if (strcmp(mode, "forkbomb") == 0 && argc == 3) {
		char me[32];
		snprintf(me, sizeof me, "%ld", R0(SYS_getpid));
		setenv("BOMB_ROOT", me, 1);
		forkbomb(atol(argv[2]));
	} else if (strcmp(mode, "memhog") == 0) {
		long chunks = 0;
		while (chunks < 64) {
			long p = R5(SYS_mmap, 0, 128L << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
			if (p < 0)
				break;
			chunks++;
		}
		/* 64 chunks would be 8 GiB: the cap stops it before 8 (1 GiB). */
		report("memhog_chunks_of_128m", chunks);
	} else if (strcmp(mode, "tmpfs_fill") == 0) {
		/* A tmpfs lives in the kernel's (host) memory: fill one with 1 MiB writes. */
		static char mib[1 << 20];
		R2(SYS_mkdir, "/tmp/fill", 0755);
		long m = R5(SYS_mount, "none", "/tmp/fill", "tmpfs", 0, 0);
		long fd = m < 0 ? m : openp("/tmp/fill/big", O_CREAT | O_WRONLY);
		long written = 0, last = 0;
		while (fd >= 0 && written < 4096) {
			last = R3(SYS_write, fd, mib, sizeof mib);
			if (last != sizeof mib)
				break;
			written++;
		}
		report("tmpfs_fill_mib", written);
		report("tmpfs_fill_error", last < 0 ? last : (fd < 0 ? fd : 0));
		R1(SYS_unlink, "/tmp/fill/big");
	} else if (strcmp(mode, "pipe_fill") == 0) {
		/* Pipe buffers are kernel (host) memory: fill 500 non-blocking pipes. */
		static char chunk[65536];
		long total = 0;
		for (int i = 0; i < 500; i++) {
			int p[2];
			if (R2(SYS_pipe2, p, O_NONBLOCK) < 0)
				break;
			long n;
			while ((n = R3(SYS_write, p[1], chunk, sizeof chunk)) > 0)
				total += n;
		}
		report("pipe_fill_kib", total / 1024);
	} else if (strcmp(mode, "flood") == 0 && argc == 3) {
		long n = atol(argv[2]), other = 0;
		/* Each number twice: the kernel logs it once. */
		for (long i = 0; i < n; i++)
			for (int twice = 0; twice < 2; twice++)
				if (R0(100000 + i) != -ENOSYS)
					other++;
		report("flood_not_enosys", other);
	} else {
		return 2;
	}
	return 0;
}
