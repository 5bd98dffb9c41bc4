//! Starting a guest process: the ELF goes into a memfd (no host path is needed or
//! exposed), the child is forked with everything prepared (see `sys`), and the parent
//! walks it through the start: its SIGSTOP after PTRACE_TRACEME (set the ptrace options),
//! the seccomp stop of its own execveat (the only host exec a guest ever gets: checked to
//! be the memfd), and the exec event. Then the guest runs its first instruction.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::ptrace::{self, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{pipe2, Pid};

use super::sys::{self, ChildPlan};
use super::{trace_err, Creds, Error, Platform, State};

/// Signal state a new guest program starts with (bit N-1 stands for signal N).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignalState {
    pub mask: u64,
    pub ignored: u64,
}

/// A guest program image: an ELF in a sealed-off memfd.
pub struct Image {
    fd: OwnedFd,
}

impl Image {
    /// Copies the ELF bytes into a new memfd.
    pub fn from_bytes(name: &str, elf: &[u8]) -> Result<Image, Error> {
        if name.contains('\0') {
            return Err(Error::BadString(name.into()));
        }
        let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC).map_err(Error::Image)?;
        let mut file = File::from(fd);
        file.write_all(elf)
            .map_err(|e| Error::Image(Errno::from_raw(e.raw_os_error().unwrap_or(0))))?;
        Ok(Image { fd: file.into() })
    }

    /// Reads an ELF from a host file (tests and benchmarks; the kernel reads its VFS).
    pub fn from_host_file(path: &std::path::Path) -> Result<Image, Error> {
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| Error::Image(Errno::from_raw(e.raw_os_error().unwrap_or(0))))?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("guest");
        Image::from_bytes(name, &bytes)
    }
}

fn cstrings<S: AsRef<OsStr>>(items: &[S]) -> Result<Vec<CString>, Error> {
    items
        .iter()
        .map(|s| {
            CString::new(s.as_ref().as_bytes())
                .map_err(|_| Error::BadString(s.as_ref().to_string_lossy().into_owned()))
        })
        .collect()
}

fn null_terminated(strings: &[CString]) -> Vec<*const std::ffi::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

impl Platform {
    /// Starts `image` as a new guest process with this argv and environment; returns its
    /// host pid, running.
    pub fn spawn<A: AsRef<OsStr>, E: AsRef<OsStr>>(
        &mut self,
        image: &Image,
        argv: &[A],
        envp: &[E],
    ) -> Result<Pid, Error> {
        self.spawn_with(image, argv, envp, SignalState::default())
    }

    /// [`Platform::spawn`] with the signal mask and ignored signals the new program
    /// keeps from the one it replaces (an execve).
    pub fn spawn_with<A: AsRef<OsStr>, E: AsRef<OsStr>>(
        &mut self,
        image: &Image,
        argv: &[A],
        envp: &[E],
        signals: SignalState,
    ) -> Result<Pid, Error> {
        let args = cstrings(argv)?;
        let env = cstrings(envp)?;
        let (argv_ptrs, envp_ptrs) = (null_terminated(&args), null_terminated(&env));
        let (report_r, report_w) = pipe2(OFlag::O_CLOEXEC).map_err(|errno| Error::Spawn {
            step: "pipe2",
            errno,
        })?;
        let mut strings = args;
        strings.extend(env);
        let plan = ChildPlan {
            image: image.fd.as_raw_fd(),
            report: report_w.as_raw_fd(),
            pgid: self.pgid.map_or(0, Pid::as_raw),
            creds: match self.creds {
                Creds::Keep => None,
                Creds::Drop { uid, gid } => Some((uid, gid)),
            },
            address_space: self.address_space.unwrap_or(libc::RLIM_INFINITY),
            parent: std::process::id() as libc::pid_t,
            filter: self.filter.clone(),
            sigmask: signals.mask,
            ignored: signals.ignored,
            _strings: strings,
            argv: argv_ptrs,
            envp: envp_ptrs,
        };
        let pid = sys::fork_guest(&plan).map_err(|errno| Error::Spawn {
            step: "fork",
            errno,
        })?;
        drop(report_w);
        if let Err(e) = self.start(pid, &image.fd) {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, Some(WaitPidFlag::__WALL));
            return Err(child_report(report_r).unwrap_or(e));
        }
        if self.pgid.is_none() {
            self.pgid = Some(pid);
        }
        self.guests.insert(pid, State::Running);
        self.resume_raw(pid, None)?;
        Ok(pid)
    }

    /// Walks a new child from its SIGSTOP to its exec event.
    fn start(&mut self, pid: Pid, image: &OwnedFd) -> Result<(), Error> {
        let unexpected = |what: String| Error::Start { pid, what };
        let wait = || waitpid(pid, Some(WaitPidFlag::__WALL)).map_err(trace_err("waitpid", pid));
        match wait()? {
            WaitStatus::Stopped(_, Signal::SIGSTOP) => {}
            other => return Err(unexpected(format!("{other:?} before its SIGSTOP"))),
        }
        let options = Options::PTRACE_O_TRACESECCOMP
            | Options::PTRACE_O_EXITKILL
            | Options::PTRACE_O_TRACEEXEC
            | Options::PTRACE_O_TRACESYSGOOD
            | Options::PTRACE_O_TRACEFORK
            | Options::PTRACE_O_TRACEVFORK
            | Options::PTRACE_O_TRACECLONE;
        ptrace::setoptions(pid, options).map_err(trace_err("PTRACE_SETOPTIONS", pid))?;
        ptrace::cont(pid, None).map_err(trace_err("PTRACE_CONT", pid))?;
        match wait()? {
            WaitStatus::PtraceEvent(_, _, ev) if ev == libc::PTRACE_EVENT_SECCOMP => {}
            other => return Err(unexpected(format!("{other:?} instead of its execveat"))),
        }
        let regs = ptrace::getregs(pid).map_err(trace_err("PTRACE_GETREGS", pid))?;
        let own_exec = regs.orig_rax == libc::SYS_execveat as u64
            && regs.rdi == image.as_raw_fd() as u64
            && regs.r8 == libc::AT_EMPTY_PATH as u64;
        if !own_exec {
            return Err(unexpected(format!("syscall {} instead of its execveat", {
                regs.orig_rax as i64
            })));
        }
        // Stop at the syscall's exit too: reached only when the exec failed (a successful
        // one reports its exec event first, and is resumed from there).
        ptrace::syscall(pid, None).map_err(trace_err("PTRACE_SYSCALL", pid))?;
        match wait()? {
            WaitStatus::PtraceEvent(_, _, ev) if ev == libc::PTRACE_EVENT_EXEC => Ok(()),
            WaitStatus::PtraceSyscall(_) => {
                let regs = ptrace::getregs(pid).map_err(trace_err("PTRACE_GETREGS", pid))?;
                Err(Error::Spawn {
                    step: "execveat",
                    errno: Errno::from_raw(-(regs.rax as i64) as i32),
                })
            }
            other => Err(unexpected(format!("{other:?} instead of its exec"))),
        }
    }
}

/// The failed step the child wrote on the report pipe, if any.
fn child_report(read_end: OwnedFd) -> Option<Error> {
    let mut msg = [0u8; 8];
    File::from(read_end).read_exact(&mut msg).ok()?;
    let step = u32::from_ne_bytes(msg[..4].try_into().ok()?);
    let errno = i32::from_ne_bytes(msg[4..].try_into().ok()?);
    Some(Error::Spawn {
        step: sys::step_name(step),
        errno: Errno::from_raw(errno),
    })
}
