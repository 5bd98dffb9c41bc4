/* LD_PRELOAD wrapper of ptrace for Debian's linux.uml 6.1 on hosts with a large XSAVE
 * area (AMX): the host takes PTRACE_SETREGSET NT_X86_XSTATE only with its full xstate
 * size, linux.uml passes a smaller buffer and every guest process dies ("ptrace set fp
 * regs failed, errno = 14"). Such a SETREGSET reads the full state first and writes it
 * back with linux.uml's part laid over it. Used by tests::xstate and scripts/lab. */
#define _GNU_SOURCE
#include <elf.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

long ptrace(enum __ptrace_request req, ...) {
    va_list ap;
    va_start(ap, req);
    pid_t pid = va_arg(ap, pid_t);
    void *addr = va_arg(ap, void *);
    void *data = va_arg(ap, void *);
    va_end(ap);
    if (req == PTRACE_SETREGSET && (long)addr == NT_X86_XSTATE) {
        static unsigned char full[65536] __attribute__((aligned(64)));
        struct iovec *iov = data;
        struct iovec big = { full, sizeof full };
        if (syscall(SYS_ptrace, PTRACE_GETREGSET, pid, addr, &big) == 0
            && big.iov_len > iov->iov_len) {
            memcpy(full, iov->iov_base, iov->iov_len);
            return syscall(SYS_ptrace, PTRACE_SETREGSET, pid, addr, &big);
        }
    }
    if (req == PTRACE_PEEKTEXT || req == PTRACE_PEEKDATA || req == PTRACE_PEEKUSER) {
        long word;
        long r = syscall(SYS_ptrace, req, pid, addr, &word);
        return r < 0 ? r : word;
    }
    return syscall(SYS_ptrace, req, pid, addr, data);
}
