/*
 * Preloaded into linux.uml by the tests (tests::peers::linux_uml) and scripts/lab so
 * that Debian's 6.1 UML kernel can run guest programs on hosts with AVX-512 or AMX.
 *
 * Why: UML 6.1 sizes the buffer it hands PTRACE_GETREGSET/SETREGSET(NT_X86_XSTATE) for
 * the host's XSAVE area at build time (832 bytes: legacy area, header, AVX). The host
 * kernel accepts a SETREGSET only with exactly its own XSAVE size, which is larger on
 * CPUs with AVX-512 or AMX, so every register restore fails with EFAULT and the guest's
 * first process dies ("userspace - ptrace set fp regs failed, errno = 14"). A GETREGSET
 * into the small buffer works but drops the AVX-512 registers, which glibc's string
 * functions use. Newer UML kernels ask the host for the size instead.
 *
 * What: every ptrace call goes to libc's ptrace unchanged, except the XSAVE area's:
 * - GETREGSET reads the whole area, gives UML the part it asked for, and remembers the
 *   whole area (a ring of recent ones), keyed by that part;
 * - SETREGSET, when the host refuses UML's short buffer, writes back the whole area
 *   whose remembered part equals UML's buffer (the state UML saved, AVX-512 included),
 *   or else the traced process's current area with UML's part laid over it.
 * On hosts where UML's size is right the host never refuses, and nothing is remembered
 * beyond a copy per read.
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
#define AREA_MAX 16384
/* How many saved areas are remembered (UML saves one per task switch or signal). */
#define RING 64
/* The part UML keys on: at most this many bytes of its buffer. */
#define KEY_MAX 1024

struct saved_area {
	size_t key_len;
	size_t len;
	char bytes[AREA_MAX] __attribute__((aligned(64)));
};

static struct saved_area ring[RING];
static unsigned next_slot;
static char scratch[AREA_MAX] __attribute__((aligned(64)));

static ptrace_call libc_ptrace(void)
{
	static ptrace_call call;
	if (!call)
		call = (ptrace_call)dlsym(RTLD_NEXT, "ptrace");
	return call;
}

/* GETREGSET of the XSAVE area into UML's (maybe short) buffer, remembering it whole. */
static long get_area(pid_t pid, struct iovec *small)
{
	struct iovec whole = { scratch, sizeof(scratch) };
	if (libc_ptrace()(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE, &whole) == -1)
		return -1;
	size_t part = small->iov_len < whole.iov_len ? small->iov_len : whole.iov_len;
	memcpy(small->iov_base, scratch, part);
	small->iov_len = part;
	if (part < whole.iov_len && part <= KEY_MAX) {
		struct saved_area *slot = &ring[next_slot++ % RING];
		slot->key_len = part;
		slot->len = whole.iov_len;
		memcpy(slot->bytes, scratch, whole.iov_len);
	}
	return 0;
}

/* SETREGSET of a short buffer: the remembered whole area it came from, else the
 * current area with it laid over. */
static long set_area(pid_t pid, const struct iovec *small)
{
	for (unsigned i = 0; i < RING; i++) {
		struct saved_area *slot = &ring[(next_slot - 1 - i) % RING];
		if (slot->len && slot->key_len == small->iov_len &&
		    memcmp(slot->bytes, small->iov_base, small->iov_len) == 0) {
			struct iovec whole = { slot->bytes, slot->len };
			return libc_ptrace()(PTRACE_SETREGSET, pid, (void *)NT_X86_XSTATE, &whole);
		}
	}
	struct iovec whole = { scratch, sizeof(scratch) };
	if (libc_ptrace()(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE, &whole) == -1)
		return -1;
	size_t part = small->iov_len < whole.iov_len ? small->iov_len : whole.iov_len;
	memcpy(scratch, small->iov_base, part);
	return libc_ptrace()(PTRACE_SETREGSET, pid, (void *)NT_X86_XSTATE, &whole);
}

long ptrace(enum __ptrace_request request, ...)
{
	va_list args;
	pid_t pid;
	void *addr, *data;
	long result;

	va_start(args, request);
	pid = va_arg(args, pid_t);
	addr = va_arg(args, void *);
	data = va_arg(args, void *);
	va_end(args);

	int xsave = (long)addr == NT_X86_XSTATE && data != NULL;
	if (xsave && request == PTRACE_GETREGSET)
		return get_area(pid, data);
	result = libc_ptrace()(request, pid, addr, data);
	if (result != -1 || errno != EFAULT || !xsave || request != PTRACE_SETREGSET)
		return result;
	return set_area(pid, data);
}
