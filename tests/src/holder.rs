//! The process that keeps a test's namespace alive: `unshare` with the options the
//! namespace needs runs a setup script, prints its pid as /proc numbers it, and sleeps.
//! `NetNs` and `MountNs` hold one each; it is killed (by pid) on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A sleeping process inside new namespaces.
pub struct Holder {
    child: Child,
    /// Its pid as /proc numbers it (for `nsenter -t`; under `unshare --pid` without a
    /// fresh /proc this differs from the child's id, so the holder reads it itself).
    pub proc_pid: u32,
}

impl Holder {
    /// Runs `unshare UNSHARE_ARGS -- sh -c "SETUP; ..."` and waits up to 10 s for it to
    /// report; panics (naming `what`) unless its /proc/PID/ns/`ns` differs from ours.
    pub fn spawn(unshare_args: &[&str], setup: &str, ns: &str, what: &str) -> Holder {
        let script = format!(
            "{setup} read pid rest < /proc/self/stat; echo \"ready $pid\"; exec sleep 100000"
        );
        let mut child = Command::new("unshare")
            .args(unshare_args)
            .args(["--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn unshare (util-linux)");
        let out = child.stdout.take().expect("holder stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        // From here the holder is killed on drop, also when the checks below panic.
        let mut holder = Holder { child, proc_pid: 0 };
        let line = rx.recv_timeout(Duration::from_secs(10));
        let pid = match line.as_deref().map(|l| l.trim().strip_prefix("ready ")) {
            Ok(Some(p)) => p.parse::<u32>().expect("holder pid"),
            other => panic!("{what} setup failed: {other:?}"),
        };
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).expect("holder's ns");
        let mine = std::fs::read_link(format!("/proc/self/ns/{ns}")).expect("own ns");
        assert_ne!(theirs, mine, "holder {pid} is not in a new {what}");
        holder.proc_pid = pid;
        holder
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
