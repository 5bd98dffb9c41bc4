/* LD_PRELOAD shim for linux.uml on hosts whose XSAVE area is larger than UML's buffer
 * (AMX): the host's PTRACE_SETREGSET NT_X86_XSTATE wants the whole standard-format
 * area; UML passes its smaller one. Pad it with zeros (the header's xstate_bv names no
 * component beyond UML's buffer, so the padding is never read). */
#define _GNU_SOURCE
#include <cpuid.h>
#include <dlfcn.h>
#include <elf.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <unistd.h>
#include <sys/syscall.h>

static unsigned xsave_size(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(0xd, 0, &a, &b, &c, &d)) return 0;
  return c > b ? c : b;
}

long ptrace(enum __ptrace_request req, ...) {
  va_list ap;
  va_start(ap, req);
  pid_t pid = va_arg(ap, pid_t);
  void *addr = va_arg(ap, void *);
  void *data = va_arg(ap, void *);
  va_end(ap);
  if (req == PTRACE_SETREGSET && (long)addr == NT_X86_XSTATE && data) {
    struct iovec *iov = data;
    static unsigned need;
    static _Alignas(64) unsigned char buf[65536];
    if (!need) need = xsave_size();
    if (need && iov->iov_len < need && need <= sizeof buf) {
      memcpy(buf, iov->iov_base, iov->iov_len);
      memset(buf + iov->iov_len, 0, need - iov->iov_len);
      struct iovec big = {buf, need};
      return syscall(SYS_ptrace, req, pid, addr, &big);
    }
  }
  static long (*real)(enum __ptrace_request, ...);
  if (!real) real = dlsym(RTLD_NEXT, "ptrace");
  return real(req, pid, addr, data);
}
