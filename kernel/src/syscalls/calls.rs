//! The sentry's syscall table: which Linux syscall number goes to which handler, and
//! the small ones answered here (identity, process groups, signals recorded and passed,
//! time, limits, uname, sysinfo, mount, reboot). File syscalls are in `file`, execve in
//! `exec`, process bookkeeping in `sentry`. An unknown syscall answers ENOSYS (logged
//! once per number in the kernel log).

use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::abi::{self, errno::*};
use super::file::{fdarg, AT_FDCWD};
use super::platform::Syscall;
use super::sentry::{Ret, Sentry};
use crate::fs::node::SetAttr;
use crate::fs::vfs::oflag;
use crate::machine::Machine;

const RLIM_INFINITY: u64 = u64::MAX;

fn val(v: i64) -> Ret {
    Ret::Val(v)
}

/// An open's result: a FIFO open that waits for the other side is tried again later.
fn opened(v: i64) -> Ret {
    if v == super::fifo::OPEN_WAITS {
        Ret::Block(None)
    } else {
        Ret::Val(v)
    }
}

fn timespec(raw: &[u8]) -> Duration {
    let mut s = [0u8; 8];
    let mut n = [0u8; 8];
    s.copy_from_slice(&raw[..8]);
    n.copy_from_slice(&raw[8..16]);
    let secs = i64::from_ne_bytes(s).max(0) as u64;
    let nanos = i64::from_ne_bytes(n).clamp(0, 999_999_999) as u32;
    Duration::new(secs.min(1 << 40), nanos)
}

impl Sentry {
    /// Performs syscall `call` of guest `pid` (host process `host`). `retry` holds the
    /// deadline of a call tried again after it waited.
    pub(super) fn syscall(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        call: Syscall,
        retry: Option<Option<Instant>>,
    ) -> Ret {
        let a = call.args;
        let fd0 = fdarg(a[0]);
        if retry.is_none() {
            self.before_proc_access(m, pid, host, &call);
        }
        match call.nr {
            // Descriptors and data.
            libc::SYS_read if self.tty_fd(pid, fd0).is_some() => {
                self.tty_read(pid, host, fd0, a[1], a[2], retry)
            }
            libc::SYS_read => self.read(m, pid, host, fd0, a[1], a[2], None),
            libc::SYS_write => self.write(m, pid, host, fd0, a[1], a[2], None),
            libc::SYS_pread64 => self.read(m, pid, host, fd0, a[1], a[2], Some(a[3])),
            libc::SYS_pwrite64 => self.write(m, pid, host, fd0, a[1], a[2], Some(a[3])),
            libc::SYS_readv => self.readv(m, pid, host, fd0, a[1], a[2]),
            libc::SYS_writev => self.writev(m, pid, host, fd0, a[1], a[2]),
            libc::SYS_open => opened(self.openat(m, pid, host, AT_FDCWD, a[0], a[1], a[2])),
            libc::SYS_creat => {
                let flags = (oflag::O_CREAT | oflag::O_WRONLY | oflag::O_TRUNC) as u64;
                val(self.openat(m, pid, host, AT_FDCWD, a[0], flags, a[1]))
            }
            libc::SYS_openat => opened(self.openat(m, pid, host, fd0, a[1], a[2], a[3])),
            libc::SYS_close => val(self.close(m, pid, fd0)),
            libc::SYS_close_range => {
                let last = (a[1] as u32).min(super::fdtable::MAX_FDS as u32);
                for fd in (a[0] as u32)..=last {
                    self.close(m, pid, fd as i64);
                }
                val(0)
            }
            libc::SYS_dup => val(self.dup(m, pid, fd0, None, 0, 0)),
            libc::SYS_dup2 if fd0 == fdarg(a[1]) => {
                val(self.desc_of(pid, fd0).map_or(-EBADF, |_| fd0))
            }
            libc::SYS_dup2 => val(self.dup(m, pid, fd0, Some(fdarg(a[1])), 0, 0)),
            libc::SYS_dup3 if fd0 == fdarg(a[1]) => val(-EINVAL),
            libc::SYS_dup3 => val(self.dup(m, pid, fd0, Some(fdarg(a[1])), a[2], 0)),
            libc::SYS_fcntl => val(self.fcntl(m, pid, host, fd0, a[1], a[2])),
            libc::SYS_pipe => val(self.pipe2(m, pid, host, a[0], 0)),
            libc::SYS_pipe2 => val(self.pipe2(m, pid, host, a[0], a[1])),
            libc::SYS_lseek => val(self.lseek(m, pid, fd0, a[1] as i64, a[2])),
            libc::SYS_getdents64 => val(self.getdents64(m, pid, host, fd0, a[1], a[2])),
            libc::SYS_ioctl if self.tty_background_change(pid, fd0, a[1]) => Ret::Block(None),
            libc::SYS_ioctl => val(self.ioctl(m, pid, host, fd0, a[1], a[2])),
            libc::SYS_sendfile => val(-EINVAL), // callers fall back to read and write
            libc::SYS_fsync | libc::SYS_fdatasync => {
                val(self.desc_of(pid, fd0).map_or(-EBADF, |_| 0))
            }
            libc::SYS_fallocate => val(self.fallocate(m, pid, fd0, a[1], a[2], a[3])),
            libc::SYS_sync | libc::SYS_syncfs => {
                m.sync_disks();
                val(0)
            }
            // Metadata and names.
            libc::SYS_stat => val(self.stat(m, pid, host, AT_FDCWD, Some(a[0]), a[1], 0)),
            libc::SYS_lstat => val(self.stat(m, pid, host, AT_FDCWD, Some(a[0]), a[1], 0x100)),
            libc::SYS_fstat => val(self.stat(m, pid, host, fd0, None, a[1], 0)),
            libc::SYS_newfstatat => val(self.stat(m, pid, host, fd0, Some(a[1]), a[2], a[3])),
            libc::SYS_statx => val(self.statx(m, pid, host, a)),
            libc::SYS_statfs => val(self.statfs(m, pid, host, Some(a[0]), -1, a[1])),
            libc::SYS_fstatfs => {
                let r = self.statfs_fd(m, pid, host, fd0, a[1]);
                val(r)
            }
            libc::SYS_readlink => val(self.readlinkat(m, pid, host, AT_FDCWD, a[0], a[1], a[2])),
            libc::SYS_readlinkat => val(self.readlinkat(m, pid, host, fd0, a[1], a[2], a[3])),
            libc::SYS_access => val(self.faccessat(m, pid, host, AT_FDCWD, a[0], a[1])),
            libc::SYS_faccessat | libc::SYS_faccessat2 => {
                val(self.faccessat(m, pid, host, fd0, a[1], a[2]))
            }
            libc::SYS_mkdir => val(self.mkdirat(m, pid, host, AT_FDCWD, a[0], a[1])),
            libc::SYS_mkdirat => val(self.mkdirat(m, pid, host, fd0, a[1], a[2])),
            libc::SYS_mknod => val(self.mknodat(m, pid, host, AT_FDCWD, a[0], a[1], a[2])),
            libc::SYS_mknodat => val(self.mknodat(m, pid, host, fd0, a[1], a[2], a[3])),
            libc::SYS_rmdir => val(self.unlinkat(m, pid, host, AT_FDCWD, a[0], 0x200)),
            libc::SYS_unlink => val(self.unlinkat(m, pid, host, AT_FDCWD, a[0], 0)),
            libc::SYS_unlinkat => val(self.unlinkat(m, pid, host, fd0, a[1], a[2])),
            libc::SYS_rename => {
                let args = [AT_FDCWD as u64, a[0], AT_FDCWD as u64, a[1], 0, 0];
                val(self.two_paths(m, pid, host, args, false))
            }
            libc::SYS_renameat => {
                let args = [a[0], a[1], a[2], a[3], 0, 0];
                val(self.two_paths(m, pid, host, args, false))
            }
            libc::SYS_renameat2 => val(self.two_paths(m, pid, host, a, false)),
            libc::SYS_link => {
                let args = [AT_FDCWD as u64, a[0], AT_FDCWD as u64, a[1], 0, 0];
                val(self.two_paths(m, pid, host, args, true))
            }
            libc::SYS_linkat => val(self.two_paths(m, pid, host, a, true)),
            libc::SYS_symlink => val(self.symlinkat(m, pid, host, a[0], AT_FDCWD, a[1])),
            libc::SYS_symlinkat => val(self.symlinkat(m, pid, host, a[0], fdarg(a[1]), a[2])),
            libc::SYS_chmod => val(self.chmod(m, pid, host, AT_FDCWD, Some(a[0]), a[1])),
            libc::SYS_fchmod => val(self.chmod(m, pid, host, fd0, None, a[1])),
            libc::SYS_fchmodat => val(self.chmod(m, pid, host, fd0, Some(a[1]), a[2])),
            libc::SYS_chown => {
                val(self.chown(m, pid, host, AT_FDCWD, Some(a[0]), a[1], a[2], true))
            }
            libc::SYS_lchown => {
                val(self.chown(m, pid, host, AT_FDCWD, Some(a[0]), a[1], a[2], false))
            }
            libc::SYS_fchown => val(self.chown(m, pid, host, fd0, None, a[1], a[2], true)),
            libc::SYS_fchownat => {
                let follow = a[4] & 0x100 == 0;
                val(self.chown(m, pid, host, fd0, Some(a[1]), a[2], a[3], follow))
            }
            libc::SYS_utimensat => val(self.utimensat(m, pid, host, a)),
            libc::SYS_truncate | libc::SYS_ftruncate => {
                let set = SetAttr {
                    size: Some(a[1]),
                    ..SetAttr::default()
                };
                let (dirfd, path) = match call.nr {
                    libc::SYS_truncate => (AT_FDCWD, Some(a[0])),
                    _ => (fd0, None),
                };
                val(self.setattr(m, pid, host, dirfd, path, true, set))
            }
            libc::SYS_chdir => val(self.chdir(m, pid, host, Some(a[0]), 0)),
            libc::SYS_fchdir => val(self.chdir(m, pid, host, None, fd0)),
            libc::SYS_getcwd => val(self.getcwd(m, pid, host, a[0], a[1])),
            libc::SYS_umask => match self.procs.get_mut(&pid) {
                Some(p) => val(std::mem::replace(&mut p.umask, a[0] as u32 & 0o777) as i64),
                None => val(-ESRCH),
            },
            libc::SYS_mount => val(self.mount(m, pid, host, a)),
            libc::SYS_umount2 => val(self.umount(m, pid, host, a[0])),
            // Waiting.
            libc::SYS_poll => {
                let ms = a[2] as i32;
                let deadline = match retry {
                    Some(d) => d,
                    None if ms < 0 => None,
                    None => Some(Instant::now() + Duration::from_millis(ms as u64)),
                };
                self.poll(m, pid, host, a[0], a[1], deadline, ms < 0)
            }
            libc::SYS_ppoll => {
                let deadline = match retry {
                    Some(d) => d,
                    None if a[2] == 0 => None,
                    None => match self.read_timespec(host, a[2]) {
                        Ok(t) => Some(Instant::now() + t),
                        Err(e) => return val(e),
                    },
                };
                self.poll(m, pid, host, a[0], a[1], deadline, a[2] == 0)
            }
            libc::SYS_select | libc::SYS_pselect6 => {
                let deadline = match retry {
                    Some(d) => d,
                    None if a[4] == 0 => None,
                    None => {
                        let t = match call.nr {
                            libc::SYS_select => self.get(host, a[4], 16).map(|raw| {
                                let mut b = raw.clone();
                                // A timeval: microseconds to nanoseconds.
                                let us =
                                    i64::from_ne_bytes(raw[8..16].try_into().unwrap_or([0; 8]));
                                b[8..16]
                                    .copy_from_slice(&(us.clamp(0, 999_999) * 1000).to_ne_bytes());
                                timespec(&b)
                            }),
                            _ => self.read_timespec(host, a[4]),
                        };
                        match t {
                            Ok(t) => Some(Instant::now() + t),
                            Err(e) => return val(e),
                        }
                    }
                };
                self.select(m, pid, host, a[0], [a[1], a[2], a[3]], deadline, a[4] == 0)
            }
            libc::SYS_nanosleep | libc::SYS_clock_nanosleep => {
                let deadline = match retry {
                    Some(Some(d)) => d,
                    _ => {
                        let (ts, abs) = match call.nr {
                            libc::SYS_nanosleep => (a[0], false),
                            _ => (a[2], a[1] & 1 != 0),
                        };
                        let t = match self.read_timespec(host, ts) {
                            Ok(t) => t,
                            Err(e) => return val(e),
                        };
                        let t = if abs {
                            let now = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .unwrap_or_default();
                            let base = if a[0] == 0 {
                                now
                            } else {
                                self.started_monotonic()
                            };
                            t.saturating_sub(base)
                        } else {
                            t
                        };
                        Instant::now() + t
                    }
                };
                if Instant::now() >= deadline {
                    val(0)
                } else {
                    Ret::Block(Some(deadline))
                }
            }
            libc::SYS_wait4 => self.wait4(pid, host, a[0] as i32, a[1], a[2], a[3]),
            libc::SYS_waitid => self.waitid(pid, host, a),
            // Processes.
            libc::SYS_clone | libc::SYS_fork | libc::SYS_vfork => self.fork(host, call),
            libc::SYS_clone3 => val(-ENOSYS), // the C library falls back to clone
            libc::SYS_execve => self.execve(m, pid, host, [a[0], a[1], a[2], 0, 0, 0]),
            libc::SYS_execveat if fd0 == AT_FDCWD && a[4] == 0 => {
                self.execve(m, pid, host, [a[1], a[2], a[3], 0, 0, 0])
            }
            libc::SYS_exit | libc::SYS_exit_group => self.pass(host),
            libc::SYS_getpid | libc::SYS_gettid => val(pid as i64),
            libc::SYS_getppid => val(self.procs.get(&pid).map_or(0, |p| p.ppid) as i64),
            libc::SYS_getuid | libc::SYS_geteuid | libc::SYS_getgid | libc::SYS_getegid => val(0),
            libc::SYS_setuid
            | libc::SYS_setgid
            | libc::SYS_setreuid
            | libc::SYS_setregid
            | libc::SYS_setresuid
            | libc::SYS_setresgid
            | libc::SYS_setfsuid
            | libc::SYS_setfsgid
            | libc::SYS_setgroups => val(0),
            libc::SYS_getgroups => val(0),
            // Guest root holds every capability inside the guest (none on the host).
            libc::SYS_capget if a[1] != 0 => {
                let mut caps = [0u8; 24];
                for set in 0..2 {
                    let word: u32 = if set == 0 { u32::MAX } else { 0x1ff };
                    caps[set * 12..set * 12 + 4].copy_from_slice(&word.to_ne_bytes());
                    caps[set * 12 + 4..set * 12 + 8].copy_from_slice(&word.to_ne_bytes());
                }
                val(self
                    .platform
                    .write_mem(host, a[1], &caps)
                    .map_or(-EFAULT, |()| 0))
            }
            libc::SYS_capget | libc::SYS_capset => val(0),
            libc::SYS_getresuid | libc::SYS_getresgid => {
                for addr in [a[0], a[1], a[2]] {
                    if self
                        .platform
                        .write_mem(host, addr, &0u32.to_ne_bytes())
                        .is_err()
                    {
                        return val(-EFAULT);
                    }
                }
                val(0)
            }
            libc::SYS_getpgrp => val(self.procs.get(&pid).map_or(0, |p| p.pgid) as i64),
            libc::SYS_getpgid | libc::SYS_getsid => {
                let target = if a[0] == 0 { pid } else { a[0] as u32 };
                match self.procs.get(&target) {
                    Some(p) if call.nr == libc::SYS_getpgid => val(p.pgid as i64),
                    Some(p) => val(p.sid as i64),
                    None => val(-ESRCH),
                }
            }
            libc::SYS_setpgid => val(self.setpgid(pid, a[0] as u32, a[1] as u32)),
            libc::SYS_setsid => val(self.setsid(pid)),
            libc::SYS_kill => val(self.kill(pid, a[0] as i32, a[1] as i32)),
            libc::SYS_tkill => val(self.kill(pid, a[0] as i32, a[1] as i32)),
            libc::SYS_tgkill => val(self.kill(pid, a[0] as i32, a[2] as i32)),
            libc::SYS_rt_sigaction => {
                let sig = a[0] as usize;
                if a[1] != 0 && (1..=64).contains(&sig) {
                    let mut act = [0u8; 16];
                    if self.platform.read_mem(host, a[1], &mut act).is_err() {
                        return val(-EFAULT);
                    }
                    let mut h = [0u8; 8];
                    let mut f = [0u8; 8];
                    h.copy_from_slice(&act[..8]);
                    f.copy_from_slice(&act[8..]);
                    if let Some(p) = self.procs.get_mut(&pid) {
                        p.actions[sig - 1] = (u64::from_ne_bytes(h), u64::from_ne_bytes(f));
                    }
                }
                self.pass(host)
            }
            libc::SYS_rt_sigprocmask => {
                if a[1] != 0 {
                    let mut set = [0u8; 8];
                    if self.platform.read_mem(host, a[1], &mut set).is_err() {
                        return val(-EFAULT);
                    }
                    let set = u64::from_ne_bytes(set);
                    if let Some(p) = self.procs.get_mut(&pid) {
                        match a[0] {
                            0 => p.mask |= set,
                            1 => p.mask &= !set,
                            2 => p.mask = set,
                            _ => {}
                        }
                    }
                }
                self.pass(host)
            }
            libc::SYS_rt_sigreturn
            | libc::SYS_sigaltstack
            | libc::SYS_rt_sigsuspend
            | libc::SYS_pause
            | libc::SYS_rt_sigtimedwait
            | libc::SYS_rt_sigpending => self.pass(host),
            libc::SYS_reboot => val(self.reboot(m, a)),
            libc::SYS_prctl => match a[0] as i32 {
                libc::PR_SET_NAME => {
                    if let Ok(name) = self.platform.read_cstr(host, a[1], 16) {
                        if let Some(p) = self.procs.get_mut(&pid) {
                            p.comm = String::from_utf8_lossy(&name).into_owned();
                        }
                    }
                    val(0)
                }
                libc::PR_GET_NAME => {
                    let mut name = self
                        .procs
                        .get(&pid)
                        .map_or(Vec::new(), |p| p.comm.clone().into_bytes());
                    name.resize(16, 0);
                    val(self
                        .platform
                        .write_mem(host, a[1], &name)
                        .map_or(-EFAULT, |()| 0))
                }
                libc::PR_SET_PDEATHSIG | libc::PR_SET_DUMPABLE => val(0),
                _ => val(-EINVAL),
            },
            // The machine.
            libc::SYS_uname => {
                let fields = [
                    crate::machine::SYSNAME,
                    &self.nodename.clone(),
                    crate::machine::RELEASE,
                    crate::machine::VERSION,
                    crate::machine::machine_arch(),
                    "(none)",
                ];
                let buf = abi::utsname(fields);
                val(self
                    .platform
                    .write_mem(host, a[0], &buf)
                    .map_or(-EFAULT, |()| 0))
            }
            libc::SYS_sethostname => {
                let mut name = vec![0u8; (a[1] as usize).min(64)];
                if self.platform.read_mem(host, a[0], &mut name).is_err() {
                    return val(-EFAULT);
                }
                {
                    self.nodename = String::from_utf8_lossy(&name).into_owned();
                    val(0)
                }
            }
            libc::SYS_sysinfo => {
                let (used, total) = m.memory_kb();
                let procs = self.procs.len() as u16;
                let buf = abi::sysinfo(
                    m.uptime_secs() as i64,
                    total * 1024,
                    total.saturating_sub(used) * 1024,
                    procs,
                );
                val(self
                    .platform
                    .write_mem(host, a[0], &buf)
                    .map_or(-EFAULT, |()| 0))
            }
            libc::SYS_syslog => val(self.syslog(m, host, a[0], a[1], a[2])),
            // No guest traces or reads another: its tracer is the kernel (TRACEME is
            // EPERM, as for any traced process); a guest pid gives EPERM, any other
            // number ESRCH (never a host process).
            libc::SYS_ptrace if a[0] == libc::PTRACE_TRACEME as u64 => val(-EPERM),
            libc::SYS_ptrace => val(self.refuse_on_pid(a[1])),
            libc::SYS_process_vm_readv | libc::SYS_process_vm_writev => {
                val(self.refuse_on_pid(a[0]))
            }
            libc::SYS_getrlimit => val(self.rlimit(host, a[0], a[1])),
            libc::SYS_prlimit64 if a[3] != 0 => val(self.rlimit(host, a[1], a[3])),
            libc::SYS_prlimit64 | libc::SYS_setrlimit => val(0), // limits are the kernel's to set
            libc::SYS_getrusage => val(self
                .platform
                .write_mem(host, a[1], &[0u8; 144])
                .map_or(-EFAULT, |()| 0)),
            libc::SYS_times => {
                if a[0] != 0 && self.platform.write_mem(host, a[0], &[0u8; 32]).is_err() {
                    return val(-EFAULT);
                }
                val((m.uptime_secs() * 100.0) as i64)
            }
            libc::SYS_sched_getaffinity => {
                let mut mask = vec![0u8; (a[1] as usize).min(128)];
                if let Some(b) = mask.first_mut() {
                    *b = 1;
                }
                val(self
                    .platform
                    .write_mem(host, a[2], &mask)
                    .map_or(-EFAULT, |()| mask.len() as i64))
            }
            libc::SYS_getpriority => val(self.getpriority(pid, a[0], a[1])),
            libc::SYS_setpriority => val(self.setpriority(pid, a[0], a[1], a[2])),
            libc::SYS_mmap => self.mmap_file(m, pid, host, a), // anonymous ones never stop
            // Sockets (socket.rs, unix.rs).
            libc::SYS_socket => val(self.sys_socket(m, pid, a[0], a[1], a[2])),
            libc::SYS_socketpair => val(self.sys_socketpair(m, pid, host, a[0], a[1], a[2], a[3])),
            libc::SYS_bind => val(self.sys_bind(m, pid, host, fd0, a[1], a[2])),
            libc::SYS_listen => val(self.sys_listen(m, pid, fd0, a[1])),
            libc::SYS_accept => self.sys_accept(m, pid, host, fd0, a[1], a[2], 0),
            libc::SYS_accept4 => self.sys_accept(m, pid, host, fd0, a[1], a[2], a[3]),
            libc::SYS_connect => self.sys_connect(m, pid, host, fd0, a[1], a[2], retry.is_some()),
            libc::SYS_sendto => self.sys_sendto(m, pid, host, fd0, a[1], a[2], a[3], a[4], a[5]),
            libc::SYS_recvfrom => {
                self.sys_recvfrom(m, pid, host, fd0, a[1], a[2], a[3], a[4], a[5])
            }
            libc::SYS_sendmsg => self.sys_sendmsg(m, pid, host, fd0, a[1], a[2]),
            libc::SYS_recvmsg => self.sys_recvmsg(m, pid, host, fd0, a[1], a[2]),
            libc::SYS_shutdown => val(self.sys_shutdown(m, pid, fd0, a[1])),
            libc::SYS_getsockname => val(self.sys_sockname(m, pid, host, fd0, a[1], a[2], false)),
            libc::SYS_getpeername => val(self.sys_sockname(m, pid, host, fd0, a[1], a[2], true)),
            libc::SYS_setsockopt => {
                val(self.sys_setsockopt(m, pid, host, fd0, a[1], a[2], a[3], a[4]))
            }
            libc::SYS_getsockopt => {
                val(self.sys_getsockopt(m, pid, host, fd0, a[1], a[2], a[3], a[4]))
            }
            // ITIMER_REAL is the sentry's (SIGALRM sent when due).
            libc::SYS_alarm => {
                let (left, _) =
                    self.set_alarm(pid, Duration::from_secs(a[0] as u32 as u64), Duration::ZERO);
                val(left.as_secs() as i64 + i64::from(left.subsec_nanos() >= 500_000_000))
            }
            libc::SYS_setitimer | libc::SYS_getitimer => val(self.itimer(pid, host, call.nr, a)),
            nr => self.unknown(m, pid, nr),
        }
    }

    /// setitimer and getitimer: ITIMER_REAL only (the others are accepted and idle).
    fn itimer(&mut self, pid: u32, host: Pid, nr: i64, a: [u64; 6]) -> i64 {
        let tv = |b: &[u8]| {
            let mut s = [0u8; 8];
            let mut u = [0u8; 8];
            s.copy_from_slice(&b[..8]);
            u.copy_from_slice(&b[8..16]);
            let secs = i64::from_ne_bytes(s).clamp(0, 1 << 40) as u64;
            let usec = i64::from_ne_bytes(u).clamp(0, 999_999) as u32;
            Duration::new(secs, usec * 1000)
        };
        let enc = |d: Duration| {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&(d.as_secs() as i64).to_ne_bytes());
            b[8..].copy_from_slice(&(i64::from(d.subsec_micros())).to_ne_bytes());
            b
        };
        if a[0] != 0 {
            if nr == libc::SYS_setitimer && a[2] != 0 {
                let _ = self.platform.write_mem(host, a[2], &[0u8; 32]);
            }
            return if a[0] > 2 { -EINVAL } else { 0 };
        }
        let old = if nr == libc::SYS_getitimer {
            let now = Instant::now();
            self.procs
                .get(&pid)
                .and_then(|p| p.alarm)
                .map_or((Duration::ZERO, Duration::ZERO), |(at, e)| {
                    (at.saturating_duration_since(now), e)
                })
        } else {
            let mut raw = [0u8; 32];
            if self.platform.read_mem(host, a[1], &mut raw).is_err() {
                return -EFAULT;
            }
            self.set_alarm(pid, tv(&raw[16..]), tv(&raw[..16]))
        };
        let out_addr = if nr == libc::SYS_getitimer {
            a[1]
        } else {
            a[2]
        };
        if out_addr != 0 {
            let mut b = [0u8; 32];
            b[..16].copy_from_slice(&enc(old.1));
            b[16..].copy_from_slice(&enc(old.0));
            if self.platform.write_mem(host, out_addr, &b).is_err() {
                return -EFAULT;
            }
        }
        0
    }

    fn pass(&mut self, host: Pid) -> Ret {
        let _ = self.platform.pass(host);
        Ret::Resumed
    }

    /// EPERM for a live guest pid, ESRCH for any other number.
    fn refuse_on_pid(&self, target: u64) -> i64 {
        let live = u32::try_from(target)
            .ok()
            .and_then(|t| self.procs.get(&t))
            .is_some_and(|p| p.zombie.is_none());
        if live {
            -EPERM
        } else {
            -ESRCH
        }
    }

    /// syslog(2) (busybox `dmesg`): the kernel log's size, or its last `len` bytes read
    /// into the guest's buffer; the other actions do nothing.
    fn syslog(&mut self, m: &Machine, host: Pid, action: u64, buf: u64, len: u64) -> i64 {
        const READ_ALL: u64 = 3;
        const READ_CLEAR: u64 = 4;
        const SIZE_BUFFER: u64 = 10;
        match action {
            READ_ALL | READ_CLEAR => {
                let Ok(want) = usize::try_from(len as i32) else {
                    return -EINVAL;
                };
                let text = m.log.dmesg();
                let bytes = text.as_bytes();
                let n = bytes.len().min(want);
                let tail = &bytes[bytes.len() - n..];
                self.platform
                    .write_mem(host, buf, tail)
                    .map_or(-EFAULT, |()| n as i64)
            }
            SIZE_BUFFER => m.log.dmesg().len() as i64,
            0..=10 => 0,
            _ => -EINVAL,
        }
    }

    fn read_timespec(&self, host: Pid, addr: u64) -> Result<Duration, i64> {
        let mut raw = [0u8; 16];
        self.platform
            .read_mem(host, addr, &mut raw)
            .map_err(|_| -EFAULT)?;
        Ok(timespec(&raw))
    }

    /// CLOCK_MONOTONIC now (for an absolute clock_nanosleep on it).
    fn started_monotonic(&self) -> Duration {
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(Duration::from)
            .unwrap_or_default()
    }

    fn rlimit(&self, host: Pid, resource: u64, addr: u64) -> i64 {
        let (cur, max) = match resource as u32 {
            libc::RLIMIT_NOFILE => (
                super::fdtable::MAX_FDS as u64,
                super::fdtable::MAX_FDS as u64,
            ),
            libc::RLIMIT_STACK => (8 << 20, RLIM_INFINITY),
            libc::RLIMIT_NPROC => (
                super::sentry::MAX_PROCS as u64,
                super::sentry::MAX_PROCS as u64,
            ),
            libc::RLIMIT_CORE => (0, RLIM_INFINITY),
            _ => (RLIM_INFINITY, RLIM_INFINITY),
        };
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&cur.to_ne_bytes());
        b[8..].copy_from_slice(&max.to_ne_bytes());
        self.platform
            .write_mem(host, addr, &b)
            .map_or(-EFAULT, |()| 0)
    }

    fn chmod(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        dirfd: i64,
        path: Option<u64>,
        mode: u64,
    ) -> i64 {
        let set = SetAttr {
            perm: Some(mode as u32 & 0o7777),
            ..SetAttr::default()
        };
        self.setattr(m, pid, host, dirfd, path, true, set)
    }

    #[allow(clippy::too_many_arguments)] // chown's own arguments
    fn chown(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        dirfd: i64,
        path: Option<u64>,
        uid: u64,
        gid: u64,
        follow: bool,
    ) -> i64 {
        let id = |v: u64| (v as u32 != u32::MAX).then_some(v as u32);
        let set = SetAttr {
            uid: id(uid),
            gid: id(gid),
            ..SetAttr::default()
        };
        self.setattr(m, pid, host, dirfd, path, follow, set)
    }

    fn statfs_fd(&mut self, m: &mut Machine, pid: u32, host: Pid, fd: i64, buf: u64) -> i64 {
        let loc = match self.desc_of(pid, fd) {
            Ok(d) => match &d.borrow().object {
                super::fdtable::Object::File(of) => of.loc,
                _ => return -EINVAL,
            },
            Err(e) => return e,
        };
        match m.files.vfs.fs(loc).and_then(|f| f.statfs()) {
            Ok(s) => self
                .platform
                .write_mem(host, buf, &abi::statfs(&s))
                .map_or(-EFAULT, |()| 0),
            Err(e) => super::file::fe(e),
        }
    }

    fn setpgid(&mut self, pid: u32, target: u32, pgid: u32) -> i64 {
        let target = if target == 0 { pid } else { target };
        let pgid = if pgid == 0 { target } else { pgid };
        let Some(me_sid) = self.procs.get(&pid).map(|p| p.sid) else {
            return -ESRCH;
        };
        // Joining a group: it must exist in the caller's session.
        let exists = self
            .procs
            .values()
            .any(|p| p.pgid == pgid && p.sid == me_sid);
        if pgid != target && !exists {
            return -EPERM;
        }
        match self.procs.get_mut(&target) {
            Some(p) if p.pid == pid || p.ppid == pid => {
                if p.sid != me_sid || p.pid == p.sid {
                    return -EPERM;
                }
                p.pgid = pgid;
                0
            }
            _ => -ESRCH,
        }
    }

    fn setsid(&mut self, pid: u32) -> i64 {
        let leader = self.procs.values().any(|p| p.pgid == pid && p.pid != pid);
        match self.procs.get_mut(&pid) {
            Some(p) if p.pgid != pid && !leader => {
                p.sid = pid;
                p.pgid = pid;
                pid as i64
            }
            Some(_) => -EPERM,
            None => -ESRCH,
        }
    }

    /// mount(2) of the filesystem types the VFS has: proc, tmpfs, devtmpfs and ext2
    /// (ext3/ext4 names too) on a ubd disk.
    fn mount(&mut self, m: &mut Machine, pid: u32, host: Pid, a: [u64; 6]) -> i64 {
        const MS_REMOUNT: u64 = 32;
        const MS_BIND: u64 = 4096;
        const MS_RDONLY: u64 = 1;
        let r = (|| {
            let target = self.path_arg(host, a[1])?;
            if a[3] & MS_REMOUNT != 0 {
                return Ok(0);
            }
            if a[3] & MS_BIND != 0 {
                return Err(-EINVAL);
            }
            let source = if a[0] == 0 {
                b"none".to_vec()
            } else {
                self.path_arg(host, a[0])?
            };
            let fstype = String::from_utf8_lossy(&self.path_arg(host, a[2])?).into_owned();
            let source = String::from_utf8_lossy(&source).into_owned();
            let fs: Box<dyn crate::fs::node::FileSystem> = match fstype.as_str() {
                "proc" => Box::new(m.files.proc.fs()),
                // Linux's default tmpfs size, half the memory: a guest cannot fill the
                // kernel's (host) memory through a tmpfs.
                "tmpfs" | "ramfs" => Box::new(crate::fs::tmpfs::Tmpfs::new(m.config.mem / 2)),
                "devtmpfs" => Box::new(
                    crate::fs::chardev::devfs(6, &m.disks.open_indexes())
                        .map_err(super::file::fe)?,
                ),
                "ext2" | "ext3" | "ext4" | "hostfs" | "humfs" => {
                    let data = if a[4] == 0 {
                        String::new()
                    } else {
                        String::from_utf8_lossy(&self.path_arg(host, a[4])?).into_owned()
                    };
                    use crate::fs::cmds::Mounter;
                    crate::fs::blockdev::UbdMounter::new(&m.disks, &m.config, m.files.cache.clone())
                        .make(&fstype, &source, a[3] & MS_RDONLY != 0, &data)
                        .map_err(|_| -EINVAL)?
                }
                _ => return Err(-ENODEV),
            };
            let cwd = self.procs.get(&pid).map(|p| p.cwd).ok_or(-ESRCH)?;
            m.files
                .vfs
                .mount(cwd, &target, fs, &source)
                .map_err(super::file::fe)?;
            m.files.refresh_mounts();
            Ok(0)
        })();
        r.unwrap_or_else(|e| e)
    }

    fn umount(&mut self, m: &mut Machine, pid: u32, host: Pid, target: u64) -> i64 {
        let r = (|| {
            let target = self.path_arg(host, target)?;
            let cwd = self.procs.get(&pid).map(|p| p.cwd).ok_or(-ESRCH)?;
            m.files.vfs.umount(cwd, &target).map_err(super::file::fe)?;
            m.files.refresh_mounts();
            Ok(0)
        })();
        r.unwrap_or_else(|e| e)
    }
}
