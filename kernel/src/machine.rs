//! The guest machine's state that the shell, /proc and the mconsole commands share:
//! configuration, log, disks, the mounted filesystems, tasks, the notify socket and the
//! action (halt/reboot) the main loop carries out.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Instant;

use uml_proto::mconsole::{Notification, NotifyKind, MAX_NOTIFY_LEN};

use crate::block::Disks;
use crate::cmdline::Config;
use crate::fs::boot::{Files, RootOptions};
use crate::klog::KernelLog;
use crate::task::Tasks;

/// What the main loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stop, clean up, exit with this status.
    Halt(i32),
    /// Clean up and start again with the same arguments, in the same process.
    Reboot,
    /// SysRq e (SIGTERM) and i (SIGKILL): the signal to every guest process but init,
    /// or, under the built-in shell, restart every shell.
    KillTasks(i32),
}

/// The names `uname` and mconsole `version` report.
pub const SYSNAME: &str = "Linux";
pub const NODENAME: &str = "(none)";
pub const RELEASE: &str = concat!("6.1.0-uml-kernel-", env!("CARGO_PKG_VERSION"));
pub const VERSION: &str = concat!("#1 uml-kernel ", env!("CARGO_PKG_VERSION"));

pub fn machine_arch() -> &'static str {
    std::env::consts::ARCH
}

/// `uname -a` without the trailing OS name: what mconsole `version` answers.
pub fn uname_line() -> String {
    format!(
        "{SYSNAME} {NODENAME} {RELEASE} {VERSION} {}",
        machine_arch()
    )
}

/// Sends notifications to `mconsole=notify:SOCK` from an unbound socket.
#[derive(Debug)]
pub struct Notifier {
    path: PathBuf,
    sock: UnixDatagram,
}

impl Notifier {
    pub fn new(path: PathBuf) -> std::io::Result<Notifier> {
        let sock = UnixDatagram::unbound()?;
        sock.set_nonblocking(true)?;
        Ok(Notifier { path, sock })
    }

    /// Sends one notification; a listener that is gone is not an error worth more
    /// than a log line, which the caller writes.
    pub fn send(&self, kind: NotifyKind, data: &[u8]) -> std::io::Result<()> {
        let mut buf = [0u8; MAX_NOTIFY_LEN];
        let n = Notification {
            kind,
            data: data.to_vec(),
        }
        .emit(&mut buf)
        .map_err(std::io::Error::other)?;
        self.sock.send_to(&buf[..n], &self.path).map(|_| ())
    }
}

pub struct Machine {
    pub config: Config,
    pub log: KernelLog,
    pub disks: Disks,
    /// The mounted filesystems (the root from the root disk, or an empty tmpfs).
    pub files: Files,
    pub boot: Instant,
    pub notify: Option<Notifier>,
    pub tasks: Tasks,
    pub action: Option<Action>,
    pub socket_path: PathBuf,
    pub net: crate::net::Net,
}

impl Machine {
    pub fn uptime_secs(&self) -> f64 {
        self.boot.elapsed().as_secs_f64()
    }

    /// Sends a notification if a notify socket was given, logging failures.
    pub fn notify(&mut self, kind: NotifyKind, data: &[u8]) {
        if let Some(n) = &self.notify {
            if let Err(e) = n.send(kind, data) {
                self.log.warn(format!(
                    "mconsole: failed to notify {}: {e}",
                    self.config
                        .notify
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ));
            }
        }
    }

    /// Writes the filesystems' dirty blocks back, then flushes every disk, logging
    /// failures; true when all succeeded.
    pub fn sync_disks(&mut self) -> bool {
        let fs_ok = match self.files.vfs.sync_all() {
            Ok(()) => true,
            Err(e) => {
                self.log.err(format!("VFS: sync failed: {e}"));
                false
            }
        };
        let errors = self.disks.sync_all();
        for e in &errors {
            self.log.err(e.to_string());
        }
        fs_ok && errors.is_empty()
    }

    /// Mounts the root filesystem from the root disk (`root=`, `ro`/`rw`,
    /// `rootfstype=`, `rootflags=`), or an empty tmpfs root saying why; /dev and /proc
    /// on it. The block cache is a quarter of `mem=`.
    pub fn mount_root(&mut self) {
        let root = self
            .disks
            .root
            .and_then(|n| Some((n, self.disks.shared(n)?)))
            .map(|(n, d)| (n, Box::new(d) as Box<dyn crate::fs::blockdev::SectorDevice>));
        let mut opts = RootOptions::from_args(self.config.unknown.iter().map(String::as_str));
        opts.hostfs = self.config.hostfs.clone();
        let cache = usize::try_from(self.config.mem / 4).unwrap_or(usize::MAX);
        let (mut files, lines) = Files::boot(root, &opts, cache, &self.disks.open_indexes());
        if let Some(every) = self.config.fs_writeback {
            files.set_writeback_interval(every);
        }
        self.files = files;
        for line in lines {
            self.log.info(line);
        }
    }

    /// Writes everything back and marks the filesystems clean (halt and reboot).
    pub fn unmount_all(&mut self) {
        for line in self.files.halt() {
            self.log.err(line);
        }
        self.sync_disks();
    }

    /// Used and free guest memory in kB (the guest is tiny: a fixed kernel share plus
    /// the disk bitmaps and the filesystems' block cache).
    pub fn memory_kb(&self) -> (u64, u64) {
        let total = self.config.mem / 1024;
        let bitmaps: u64 = self
            .disks
            .slots
            .iter()
            .flatten()
            .filter_map(|s| s.open.as_ref())
            .filter_map(|d| d.borrow().cow().map(|c| c.image.geometry.bitmap_len / 1024))
            .sum();
        let cache = (self.files.cache.used() / 1024) as u64;
        let used = (2048 + bitmaps + cache).min(total);
        (used, total - used)
    }
}
