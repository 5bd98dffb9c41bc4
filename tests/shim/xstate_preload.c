/*
 * Preloaded into linux.uml by the tests (tests::peers::linux_uml) so that Debian's
 * 6.1 UML kernel can run guest programs on hosts with AVX-512 or AMX.
 *
 * Why: UML 6.1 sizes the buffer it hands PTRACE_SETREGSET(NT_X86_XSTATE) for the
 * host's XSAVE area at build time (832 bytes: legacy area, header, AVX). The host
 * kernel accepts only a buffer of exactly its own XSAVE size, which is larger on CPUs
 * with AVX-512 or AMX, so every register restore fails with EFAULT and the guest's
 * first process dies ("userspace - ptrace set fp regs failed, errno = 14"). Newer UML
 * kernels ask the host for the size instead.
 *
 * What: every ptrace call goes to libc's ptrace unchanged. Only when a SETREGSET of
 * the XSAVE area fails with EFAULT, the whole area is read from the traced process,
 * the part UML knows (the first bytes, including the header) is laid over it, and the
 * whole area is written back. On hosts where UML's size is right this never runs.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef long (*ptrace_call)(int, pid_t, void *, void *);

/* Larger than any XSAVE area a host reports today (AMX: about 11 KiB). */
static char whole_area[65536] __attribute__((aligned(64)));

long ptrace(enum __ptrace_request request, ...)
{
	static ptrace_call libc_ptrace;
	va_list args;
	pid_t pid;
	void *addr, *data;
	long result;

	if (!libc_ptrace)
		libc_ptrace = (ptrace_call)dlsym(RTLD_NEXT, "ptrace");
	va_start(args, request);
	pid = va_arg(args, pid_t);
	addr = va_arg(args, void *);
	data = va_arg(args, void *);
	va_end(args);

	result = libc_ptrace(request, pid, addr, data);
	if (result != -1 || errno != EFAULT || request != PTRACE_SETREGSET ||
	    (long)addr != NT_X86_XSTATE || data == NULL)
		return result;

	struct iovec *known = data;
	struct iovec whole = { whole_area, sizeof(whole_area) };
	if (libc_ptrace(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE, &whole) == -1)
		return -1;
	size_t overlay = known->iov_len < whole.iov_len ? known->iov_len : whole.iov_len;
	memcpy(whole_area, known->iov_base, overlay);
	return libc_ptrace(PTRACE_SETREGSET, pid, (void *)NT_X86_XSTATE, &whole);
}
