//! A private mount namespace for one test: a holder process made with `unshare
//! --mount --propagation private`, and commands run inside it with `nsenter`. FUSE
//! mounts made in it (uml_mount's) are seen by every command the test runs there and
//! by nothing outside; they go when the holder is killed (by pid) on drop.

use std::process::Command;
use std::time::Duration;

use crate::command::{run, Output};
use crate::holder::Holder;

/// A mount namespace kept alive by a holder process.
pub struct MountNs {
    _holder: Holder,
    /// The holder's pid as /proc numbers it (for `nsenter -t`).
    proc_pid: u32,
}

impl MountNs {
    /// Makes the namespace; panics (with the reason) if that fails within 10 s.
    pub fn new() -> MountNs {
        let holder = Holder::spawn(
            &["--mount", "--propagation", "private"],
            "",
            "mnt",
            "mount namespace",
        );
        MountNs {
            proc_pid: holder.proc_pid,
            _holder: holder,
        }
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
