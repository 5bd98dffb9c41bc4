//! A private network (and mount) namespace for one test: a holder process made with
//! `unshare --net --mount` (lo up, a fresh sysfs, a tmpfs that allows setuid at
//! /run/umltest), and commands run inside it with `nsenter`. Tests that change network
//! state use one each so they can run in parallel. The holder is killed (by pid) on drop.

use std::process::Command;
use std::time::Duration;

use crate::command::{run, Output};
use crate::holder::Holder;

/// Inside every namespace: a tmpfs mounted with `suid`, for setuid copies of helpers.
pub const SUID_DIR: &str = "/run/umltest";

/// A network + mount namespace kept alive by a holder process.
pub struct NetNs {
    _holder: Holder,
    /// The holder's pid as /proc numbers it (under `unshare --pid` without a fresh
    /// /proc this differs from `holder.id()`, so it is read from /proc/self).
    proc_pid: u32,
}

impl NetNs {
    /// Makes the namespace; panics (with the reason) if that fails within 10 s.
    pub fn new() -> NetNs {
        let setup = format!(
            "set -e; ip link set lo up; mount -t sysfs sysfs /sys; \
             mkdir -p {SUID_DIR}; mount -t tmpfs -o suid,mode=0755 umltest {SUID_DIR};"
        );
        let holder = Holder::spawn(&["--net", "--mount"], &setup, "net", "network namespace");
        NetNs {
            proc_pid: holder.proc_pid,
            _holder: holder,
        }
    }

    /// The holder's pid as /proc numbers it (for `nsenter -t`).
    pub fn pid(&self) -> u32 {
        self.proc_pid
    }

    /// The argument prefix that runs a program inside the namespace.
    pub fn prefix(&self) -> Vec<String> {
        vec![
            "nsenter".into(),
            "-t".into(),
            self.pid().to_string(),
            "-n".into(),
            "-m".into(),
            "--".into(),
        ]
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let p = self.prefix();
        let mut c = Command::new(&p[0]);
        c.args(&p[1..]).arg(program);
        c
    }

    /// Runs a shell script inside the namespace (30 s limit).
    pub fn sh(&self, script: &str) -> Output {
        run(
            self.command("sh").args(["-c", script]),
            Duration::from_secs(30),
        )
    }

    /// Two "hosts": namespaces joined by a veth pair, a with 10.9.0.1/24 on `va`, b with
    /// 10.9.0.2/24 on `vb`.
    pub fn two_hosts() -> (NetNs, NetNs) {
        let (a, b) = (NetNs::new(), NetNs::new());
        a.sh_ok(&format!(
            "ip link add va type veth peer name vb && ip link set vb netns /proc/{}/ns/net && \
             ip addr add 10.9.0.1/24 dev va && ip link set va up",
            b.pid()
        ));
        b.sh_ok("ip addr add 10.9.0.2/24 dev vb && ip link set vb up");
        (a, b)
    }

    /// Runs a shell script inside the namespace and panics unless it succeeds.
    pub fn sh_ok(&self, script: &str) -> Output {
        let out = self.sh(script);
        assert!(
            out.success(),
            "in netns: {script}\nstdout: {}\nstderr: {}",
            out.stdout,
            out.stderr
        );
        out
    }
}

impl Default for NetNs {
    fn default() -> Self {
        Self::new()
    }
}
