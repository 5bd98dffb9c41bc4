//! The seccomp allow-list every guest process runs under: the syscalls that only touch
//! the calling process's own memory or thread state run on the host at native speed;
//! everything else stops the guest for the tracer (SECCOMP_RET_TRACE), which answers it
//! from the kernel's own state. A syscall from another ABI (int 0x80, i386) kills the
//! process: the sentry only speaks x86_64.
//!
//! The same list, as [`host_may_run`], lets the PTRACE_SYSEMU mode (where seccomp never
//! runs) make the same decision in the tracer.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::Error;

/// The data word of SECCOMP_RET_TRACE that marks our filter's stops.
pub const TRACE_DATA: u32 = 0x5e5e;

/// Syscalls the host runs for the guest unconditionally: they act on the caller's own
/// address space, thread-local state or clock, and take no descriptor or path.
pub const ALWAYS_ALLOWED: &[i64] = &[
    libc::SYS_brk,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_mremap,
    libc::SYS_arch_prctl,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_futex,
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_gettimeofday,
    libc::SYS_time,
    libc::SYS_getrandom,
    libc::SYS_sched_yield,
];

/// mmap runs on the host only with MAP_ANONYMOUS in its flags (argument 3): the kernel
/// then ignores the descriptor, so no host file can be mapped.
pub const MMAP_REQUIRED_FLAGS: u64 = libc::MAP_ANONYMOUS as u64;

/// True when the allow-list lets the host run syscall `nr` with these arguments.
pub fn host_may_run(nr: i64, args: &[u64; 6]) -> bool {
    if nr == libc::SYS_mmap {
        return args[3] & MMAP_REQUIRED_FLAGS != 0;
    }
    ALWAYS_ALLOWED.contains(&nr)
}

/// clone flags a sentry may let the host perform: fork, vfork and threads. Namespaces,
/// CLONE_UNTRACED (a child outside the tracer's reach), CLONE_PTRACE, CLONE_PARENT (a
/// child of the kernel's parent) and CLONE_PIDFD (a host descriptor) are refused.
pub const HOST_CLONE_FLAGS: u64 = (libc::CSIGNAL
    | libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_FILES
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD
    | libc::CLONE_SYSVSEM
    | libc::CLONE_SETTLS
    | libc::CLONE_PARENT_SETTID
    | libc::CLONE_CHILD_CLEARTID
    | libc::CLONE_CHILD_SETTID
    | libc::CLONE_VFORK) as u64;

/// True when a clone with these flags only makes a traced child or thread of the guest.
pub fn clone_is_host_safe(flags: u64) -> bool {
    flags & !HOST_CLONE_FLAGS == 0
}

/// Compiles the allow-list into a BPF program (done before fork: the child only installs
/// it).
pub fn compile() -> Result<BpfProgram, Error> {
    let bad = |e: seccompiler::BackendError| Error::Filter(e.to_string());
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        ALWAYS_ALLOWED.iter().map(|&nr| (nr, Vec::new())).collect();
    let anonymous = SeccompCondition::new(
        3,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::MaskedEq(MMAP_REQUIRED_FLAGS),
        MMAP_REQUIRED_FLAGS,
    )
    .map_err(bad)?;
    rules.insert(
        libc::SYS_mmap,
        vec![SeccompRule::new(vec![anonymous]).map_err(bad)?],
    );
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Trace(TRACE_DATA),
        SeccompAction::Allow,
        TargetArch::x86_64,
    )
    .map_err(bad)?;
    filter.try_into().map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmap_of_a_file_is_not_allowed() {
        let anon = [
            0,
            4096,
            3,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
            0,
            0,
        ];
        let file = [0, 4096, 1, libc::MAP_PRIVATE as u64, 3, 0];
        assert!(host_may_run(libc::SYS_mmap, &anon));
        assert!(!host_may_run(libc::SYS_mmap, &file));
        assert!(!host_may_run(libc::SYS_openat, &[0; 6]));
        assert!(!host_may_run(libc::SYS_getpid, &[0; 6]));
        assert!(host_may_run(libc::SYS_brk, &[0; 6]));
    }

    #[test]
    fn clone_flags_that_escape_are_refused() {
        let fork = (libc::SIGCHLD | libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID) as u64;
        assert!(clone_is_host_safe(fork));
        for bad in [
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWNS,
            libc::CLONE_NEWNET,
            libc::CLONE_UNTRACED,
            libc::CLONE_PTRACE,
            libc::CLONE_PARENT,
            libc::CLONE_PIDFD,
        ] {
            assert!(!clone_is_host_safe(fork | bad as u64), "{bad:#x}");
        }
    }

    #[test]
    fn the_filter_compiles() {
        let prog = compile().unwrap();
        assert!(prog.len() > ALWAYS_ALLOWED.len());
    }
}
