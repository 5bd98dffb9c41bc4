//! The per-process part of /proc: `self` and `PID/` with `stat`, `status`, `cmdline`,
//! `comm`, `maps`, `task/TID/comm` per thread, and the links `exe`, `cwd`, `fd/N`. The procfs serves what it is
//! given, so before a guest syscall looks under /proc (a path starting with `/proc`, a
//! getdents64 of a proc directory) the sentry rebuilds these entries from its process
//! table, `self` pointing at the caller. Everything shown is the guest's view: guest
//! pids, uid 0, the program's guest path (never the host's memfd or pids).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::rc::Rc;

use nix::unistd::Pid;

use super::fdtable::Object;
use super::platform::Syscall;
use super::sentry::{Proc, Sentry};
use crate::machine::Machine;

/// Clock ticks per second as /proc counts them (USER_HZ).
const USER_HZ: f64 = 100.0;

impl Sentry {
    /// Rebuilds /proc's per-process entries when syscall `call` of `pid` is about to
    /// look under /proc.
    pub(super) fn before_proc_access(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        call: &Syscall,
    ) {
        let a = call.args;
        let path_addr = match call.nr {
            libc::SYS_open
            | libc::SYS_stat
            | libc::SYS_lstat
            | libc::SYS_readlink
            | libc::SYS_access
            | libc::SYS_chdir
            | libc::SYS_execve => a[0],
            libc::SYS_openat
            | libc::SYS_newfstatat
            | libc::SYS_statx
            | libc::SYS_readlinkat
            | libc::SYS_faccessat
            | libc::SYS_faccessat2 => a[1],
            libc::SYS_getdents64 => {
                if self.fd_in_proc(m, pid, super::file::fdarg(a[0])) {
                    self.refresh_proc(m, pid);
                }
                return;
            }
            _ => return,
        };
        if path_addr == 0 {
            return;
        }
        let Ok(path) = self.platform.read_cstr(host, path_addr, 4096) else {
            return;
        };
        let cwd_in_proc = !path.starts_with(b"/")
            && self
                .procs
                .get(&pid)
                .and_then(|p| m.files.vfs.fs(p.cwd).ok())
                .is_some_and(|fs| fs.fs_type() == "proc");
        if path.starts_with(b"/proc") || cwd_in_proc {
            crate::proc::refresh(m);
            self.refresh_proc(m, pid);
        }
    }

    fn fd_in_proc(&self, m: &mut Machine, pid: u32, fd: i64) -> bool {
        let Ok(d) = self.desc_of(pid, fd) else {
            return false;
        };
        let d = d.borrow();
        match &d.object {
            Object::File(of) => m
                .files
                .vfs
                .fs(of.loc)
                .is_ok_and(|fs| fs.fs_type() == "proc"),
            _ => false,
        }
    }

    /// Sets `self` and every `PID/` directory of /proc, as seen by `caller`.
    pub(super) fn refresh_proc(&mut self, m: &mut Machine, caller: u32) {
        let mut files = BTreeMap::new();
        let mut links = BTreeMap::new();
        links.insert("self".to_string(), caller.to_string().into_bytes());
        links.insert(
            "thread-self".to_string(),
            format!("{caller}/task/{caller}").into_bytes(),
        );
        for p in self.procs.values() {
            let dir = p.pid.to_string();
            let state = match (p.zombie.is_some(), p.pid == caller) {
                (true, _) => ('Z', "zombie"),
                (_, true) => ('R', "running"),
                _ => ('S', "sleeping"),
            };
            files.insert(format!("{dir}/stat"), stat_line(p, state.0).into_bytes());
            let threads = self.tids_of(p.pid);
            let status = status_text(p, state).replace(
                "\nThreads:\t1\n",
                &format!("\nThreads:\t{}\n", threads.len()),
            );
            files.insert(format!("{dir}/status"), status.into_bytes());
            for tid in threads {
                let comm = format!("{}\n", p.comm).into_bytes();
                files.insert(format!("{dir}/task/{tid}/comm"), comm);
            }
            files.insert(format!("{dir}/comm"), format!("{}\n", p.comm).into_bytes());
            files.insert(format!("{dir}/cmdline"), p.cmdline.clone());
            if p.zombie.is_some() {
                continue;
            }
            files.insert(format!("{dir}/maps"), self.maps(p).into_bytes());
            links.insert(format!("{dir}/exe"), p.exe.clone());
            if let Ok(cwd) = m.files.vfs.path_of(p.cwd) {
                links.insert(format!("{dir}/cwd"), cwd);
            }
            links.insert(format!("{dir}/root"), b"/".to_vec());
            for n in p.fds.numbers() {
                let Some(fd) = p.fds.get(n as i64) else {
                    continue;
                };
                let target = match &fd.desc.borrow().object {
                    Object::File(of) => match self.desc_paths.get(&(Rc::as_ptr(&fd.desc) as usize))
                    {
                        Some(p) => p.clone(),
                        None => m.files.vfs.path_of(of.loc).unwrap_or_default(),
                    },
                    Object::Pipe(end) => format!("pipe:[{}]", end.pipe.borrow().id).into_bytes(),
                    Object::Tty(slot) => super::tty::path_of_slot(*slot).into_bytes(),
                    Object::Socket(_) => {
                        format!("socket:[{}]", Rc::as_ptr(&fd.desc) as usize as u64).into_bytes()
                    }
                    Object::Watchdog(_) => b"/dev/watchdog".to_vec(),
                };
                links.insert(format!("{dir}/fd/{n}"), target);
            }
        }
        m.files.proc.set_processes(files, links);
        m.files.proc.set("net/unix", self.unix.listing());
    }

    /// The host's maps of the guest's host process, with the program image named by
    /// its guest path.
    fn maps(&self, p: &Proc) -> String {
        let text = super::platform::host_proc_dir(p.host)
            .and_then(|d| std::fs::read_to_string(d.join("maps")).ok())
            .unwrap_or_default();
        let exe = String::from_utf8_lossy(&p.exe);
        let mut out = String::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 5 {
                continue;
            }
            let name = fields.get(5).copied().unwrap_or("");
            let (dev, ino, name) = if name.starts_with("/memfd:") {
                ("62:00", "0", exe.as_ref())
            } else if name.starts_with('[') || name.is_empty() {
                ("00:00", "0", name)
            } else {
                continue; // a host file: not the guest's business
            };
            let _ = writeln!(
                out,
                "{} {} {} {dev} {ino}{}{name}",
                fields[0],
                fields[1],
                fields[2],
                if name.is_empty() {
                    ""
                } else {
                    "                          "
                }
            );
        }
        out
    }
}

/// /proc/PID/stat: the 52 fields Linux writes, with what the sentry knows (times and
/// memory sizes it does not count are 0).
fn stat_line(p: &Proc, state: char) -> String {
    let start = (p.started * USER_HZ) as u64;
    format!(
        "{} ({}) {state} {} {} {} 0 -1 4194560 0 0 0 0 0 0 0 0 {} {} 1 0 {start} 0 0 18446744073709551615 0 0 0 0 0 0 {} 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 {}\n",
        p.pid,
        p.comm,
        p.ppid,
        p.pgid,
        p.sid,
        20 + p.nice,
        p.nice,
        p.mask,
        p.zombie.unwrap_or(0),
    )
}

/// /proc/PID/status.
fn status_text(p: &Proc, state: (char, &str)) -> String {
    let ignored = p.ignored_signals();
    let caught = p
        .actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.0 > 1)
        .fold(0u64, |acc, (i, _)| acc | 1 << i);
    format!(
        "Name:\t{}\nUmask:\t{:04o}\nState:\t{} ({})\nTgid:\t{pid}\nNgid:\t0\nPid:\t{pid}\nPPid:\t{}\nTracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nFDSize:\t64\nGroups:\t \nNStgid:\t{pid}\nNSpid:\t{pid}\nNSpgid:\t{}\nNSsid:\t{}\nThreads:\t1\nSigQ:\t0/1024\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\nSigBlk:\t{:016x}\nSigIgn:\t{ignored:016x}\nSigCgt:\t{caught:016x}\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\nSeccomp:\t0\n",
        p.comm,
        p.umask,
        state.0,
        state.1,
        p.ppid,
        p.pgid,
        p.sid,
        p.mask,
        pid = p.pid,
    )
}

/// argv as /proc/PID/cmdline shows it: each argument followed by a NUL.
pub(super) fn cmdline(argv: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for a in argv {
        out.extend_from_slice(a);
        out.push(0);
    }
    out
}
