//! A private mount namespace for one test: a holder process made with `unshare
//! --mount --propagation private`, and commands run inside it with `nsenter`. FUSE
//! mounts made in it (uml_mount's) are seen by every command the test runs there and
//! by nothing outside; they go when the holder is killed (by pid) on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::command::{run, Output};

/// A mount namespace kept alive by a holder process.
pub struct MountNs {
    holder: Child,
    /// The holder's pid as /proc numbers it (for `nsenter -t`).
    proc_pid: u32,
}

impl MountNs {
    /// Makes the namespace; panics (with the reason) if that fails within 10 s.
    pub fn new() -> MountNs {
        let script = "read pid rest < /proc/self/stat; echo \"ready $pid\"; exec sleep 100000";
        let mut holder = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                script,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn unshare (util-linux)");
        let out = holder.stdout.take().expect("holder stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut ns = MountNs {
            holder,
            proc_pid: 0,
        };
        let line = rx.recv_timeout(Duration::from_secs(10));
        let pid = match line.as_deref().map(|l| l.trim().strip_prefix("ready ")) {
            Ok(Some(p)) => p.parse::<u32>().expect("holder pid"),
            other => panic!("mount namespace setup failed: {other:?}"),
        };
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).expect("holder mntns");
        let mine = std::fs::read_link("/proc/self/ns/mnt").expect("own mntns");
        assert_ne!(theirs, mine, "holder {pid} is not in a new mount namespace");
        ns.proc_pid = pid;
        ns
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.proc_pid.to_string(), "-m", "--"])
            .arg(program);
        c
    }

    /// Runs a shell script inside the namespace, for at most `limit`.
    pub fn sh(&self, script: &str, limit: Duration) -> Output {
        run(self.command("sh").args(["-c", script]), limit)
    }

    /// Whether `path` is a mount point in the namespace.
    pub fn is_mounted(&self, path: &std::path::Path) -> bool {
        std::fs::read_to_string(format!("/proc/{}/mountinfo", self.proc_pid))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .any(|m| std::path::Path::new(m) == path)
    }
}

impl Default for MountNs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for MountNs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
