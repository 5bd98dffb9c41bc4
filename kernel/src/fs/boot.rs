//! The filesystem side of boot and halt: mount the root filesystem from the root disk
//! (`root=`, `ro`/`rw`, `rootfstype=`, `rootflags=`) or a host directory
//! (`rootfstype=hostfs rootflags=DIR`), falling back to an empty tmpfs
//! root (saying why) so the built-in shell still runs; /dev and /proc on the root's; the
//! shell's file commands; everything written back and marked clean at halt.
//!
//! How the kernel uses it: the machine keeps a `Files` made at boot
//! (`Machine::mount_root`), the shell gives its command lines to `Files::shell` first,
//! the main loop calls `Files::tick` (with `next_writeback` as a deadline) and, on halt
//! and reboot, `Files::halt`.

use super::blockdev::{SectorDevice, Sectors};
use super::chardev::{devfs, UBD_MAJOR};
use super::cmds::{FileShell, Mounter};
use super::ext2::{Ext2Fs, MountError};
use super::hostfs::{HostFs, HostfsSwitch};
use super::node::FileKind;
use super::procfs::{proc_mounts, ProcHandle, FILESYSTEMS};
use super::tmpfs::Tmpfs;
use super::vfs::{Loc, Vfs};

/// How the command line asks for the root filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootOptions {
    pub read_only: bool,
    pub fs_type: Option<String>,
    pub flags: Option<String>,
    /// The `hostfs=` switch, for a root on hostfs.
    pub hostfs: HostfsSwitch,
}

impl RootOptions {
    /// Whether `arg` is one of the root filesystem's switches (not reported as an
    /// unknown kernel parameter).
    pub fn is_root_arg(arg: &str) -> bool {
        matches!(arg, "ro" | "rw")
            || arg.starts_with("rootfstype=")
            || arg.starts_with("rootflags=")
    }

    /// Picks `ro`, `rw`, `rootfstype=` and `rootflags=` out of the kernel's arguments
    /// (the last of `ro`/`rw` wins, as in Linux; `rw` is the default here as in UML).
    pub fn from_args<'a>(args: impl IntoIterator<Item = &'a str>) -> RootOptions {
        let mut o = RootOptions::default();
        for a in args {
            match a {
                "ro" => o.read_only = true,
                "rw" => o.read_only = false,
                _ => {
                    if let Some(v) = a.strip_prefix("rootfstype=") {
                        o.fs_type = Some(v.to_string());
                    } else if let Some(v) = a.strip_prefix("rootflags=") {
                        o.flags = Some(v.to_string());
                    }
                }
            }
        }
        o
    }
}

/// The guest's files: the mounted tree and the shell's current directory.
pub struct Files {
    pub vfs: Vfs,
    pub cwd: Loc,
    /// The contents of /proc (mounted on the root's /proc): the kernel sets its files.
    pub proc: ProcHandle,
    /// When the filesystems were last written back (for the periodic write-back).
    last_sync: std::time::Instant,
}

/// How often dirty cached blocks are written back without a `sync` (Linux's
/// dirty_expire default).
pub const WRITEBACK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

fn disk_name(n: usize) -> String {
    format!("ubd{}", (b'a' + (n % 26) as u8) as char)
}

impl Files {
    /// Mounts the root from `disk` (its ubd index and device) with a block cache of
    /// `cache_bytes`, or an empty tmpfs when there is none or it does not mount.
    /// Returns the boot log lines. `disks` are the ubd indexes for /dev.
    pub fn boot(
        disk: Option<(usize, Box<dyn SectorDevice>)>,
        opts: &RootOptions,
        cache_bytes: usize,
        disks: &[usize],
    ) -> (Files, Vec<String>) {
        let mut log = Vec::new();
        let hostfs_root = opts.fs_type.as_deref() == Some("hostfs");
        let mounted = match disk {
            _ if hostfs_root => Self::mount_hostfs_root(opts, &mut log),
            None => {
                log.push(
                    "VFS: no root disk: running the built-in shell on an empty tmpfs root".into(),
                );
                None
            }
            Some((n, dev)) => Self::mount_root(n, dev, opts, cache_bytes, &mut log),
        };
        let fresh = mounted.is_none();
        let vfs = match mounted {
            Some((vfs, _)) => vfs,
            None => Vfs::new(Box::new(Tmpfs::new(0)), "rootfs"),
        };
        let cwd = vfs.root();
        let mut files = Files {
            vfs,
            cwd,
            proc: ProcHandle::new(),
            last_sync: std::time::Instant::now(),
        };
        if fresh {
            for d in ["/dev", "/proc", "/tmp", "/mnt"] {
                let _ = files.vfs.mkdir(cwd, d.as_bytes(), 0o755, 0, 0);
            }
        }
        let has_dev = files
            .vfs
            .stat(cwd, b"/dev", true)
            .is_ok_and(|a| a.kind == FileKind::Dir);
        if has_dev {
            match devfs(6, disks) {
                Ok(fs) => {
                    if let Err(e) = files.vfs.mount(cwd, b"/dev", Box::new(fs), "devtmpfs") {
                        log.push(format!("devtmpfs: error mounting {e}"));
                    }
                }
                Err(e) => log.push(format!("devtmpfs: {e}")),
            }
        }
        let has_proc = files
            .vfs
            .stat(cwd, b"/proc", true)
            .is_ok_and(|a| a.kind == FileKind::Dir);
        if has_proc {
            files.proc.set("filesystems", FILESYSTEMS);
            if let Err(e) = files
                .vfs
                .mount(cwd, b"/proc", Box::new(files.proc.fs()), "proc")
            {
                log.push(format!("proc: error mounting {e}"));
            }
        }
        files.refresh_mounts();
        (files, log)
    }

    /// Sets /proc/mounts from the mount table (after mount and umount).
    pub fn refresh_mounts(&mut self) {
        self.proc.set("mounts", proc_mounts(&self.vfs));
    }

    /// `rootfstype=hostfs rootflags=DIR`: the root is the host directory DIR (under the
    /// `hostfs=` switch; without `rootflags=`, that directory or the host's `/`).
    fn mount_hostfs_root(opts: &RootOptions, log: &mut Vec<String>) -> Option<(Vfs, bool)> {
        let data = opts.flags.as_deref().unwrap_or("");
        match HostFs::mount(&opts.hostfs, data, opts.read_only) {
            Ok(fs) => {
                let ro = super::node::FileSystem::read_only(&fs);
                log.push(format!(
                    "VFS: Mounted root (hostfs filesystem){}.",
                    if ro { " readonly" } else { "" }
                ));
                Some((Vfs::new(Box::new(fs), "/dev/root"), ro))
            }
            Err(e) => {
                log.push(e.to_string());
                log.push(format!(
                    "VFS: Cannot open root device \"root\" or unknown-block(0,0): error -{}: \
                     running the built-in shell on an empty tmpfs root",
                    e.errno().code()
                ));
                None
            }
        }
    }

    fn mount_root(
        n: usize,
        dev: Box<dyn SectorDevice>,
        opts: &RootOptions,
        cache_bytes: usize,
        log: &mut Vec<String>,
    ) -> Option<(Vfs, bool)> {
        let name = disk_name(n);
        let fs_type = opts.fs_type.as_deref().unwrap_or("ext2");
        if !matches!(fs_type, "ext2" | "ext3" | "ext4") {
            log.push(format!(
                "VFS: Cannot open root device \"{name}\": unknown filesystem type '{fs_type}': \
                 running the built-in shell on an empty tmpfs root"
            ));
            return None;
        }
        let device = (UBD_MAJOR, 16 * n as u32);
        let read_only = match ext2_flags(opts) {
            Ok(ro) => ro,
            Err(flag) => {
                log.push(format!(
                    "EXT2-fs ({name}): error: unrecognized mount option \"{flag}\" or missing value"
                ));
                log.push(format!(
                    "VFS: Cannot open root device \"{name}\" or unknown-block({}:{}): error -22: \
                     running the built-in shell on an empty tmpfs root",
                    device.0, device.1
                ));
                return None;
            }
        };
        let source = format!("/dev/{name}");
        let shared = std::rc::Rc::new(std::cell::RefCell::new(dev));
        let attempt = |ro: bool| {
            Ext2Fs::mount(
                Box::new(Sectors(BoxedSectors(shared.clone()))),
                ro,
                cache_bytes,
            )
        };
        let result = match attempt(read_only) {
            Err(MountError::ReadOnly(_)) if !read_only => {
                log.push(format!(
                    "EXT2-fs ({name}): warning: unsupported features for writing: mounting read-only"
                ));
                attempt(true)
            }
            other => other,
        };
        match result {
            Ok(fs) => {
                let ro = fs.read_only_mount();
                log.push(format!(
                    "VFS: Mounted root (ext2 filesystem){} on device {}:{}.",
                    if ro { " readonly" } else { "" },
                    device.0,
                    device.1
                ));
                Some((Vfs::new(Box::new(fs), &source), ro))
            }
            Err(e) => {
                log.push(format!("EXT2-fs ({name}): {e}"));
                log.push(format!(
                    "VFS: Cannot open root device \"{name}\" or unknown-block({}:{}): \
                     running the built-in shell on an empty tmpfs root",
                    device.0, device.1
                ));
                None
            }
        }
    }

    /// Runs a shell command if it is a file command.
    pub fn shell(&mut self, words: &[&str], mounter: &mut dyn Mounter) -> Option<String> {
        let out = FileShell {
            vfs: &mut self.vfs,
            cwd: &mut self.cwd,
            mounter,
        }
        .run(words);
        if matches!(words.first(), Some(&"mount") | Some(&"umount")) {
            self.refresh_mounts();
        }
        out
    }

    /// The periodic write-back: call from the event loop; syncs when
    /// [`WRITEBACK_INTERVAL`] has passed since the last write-back. Returns log lines.
    pub fn tick(&mut self, now: std::time::Instant) -> Vec<String> {
        if now.duration_since(self.last_sync) < WRITEBACK_INTERVAL {
            return Vec::new();
        }
        self.last_sync = now;
        match self.vfs.sync_all() {
            Ok(()) => Vec::new(),
            Err(e) => vec![format!("VFS: periodic write-back failed: {e}")],
        }
    }

    /// When the next periodic write-back is due (for the loop's timeout).
    pub fn next_writeback(&self) -> std::time::Instant {
        self.last_sync + WRITEBACK_INTERVAL
    }

    /// Writes everything back and marks the filesystems clean (halt, reboot); returns
    /// log lines for failures.
    pub fn halt(&mut self) -> Vec<String> {
        match self.vfs.unmount_all() {
            Ok(()) => Vec::new(),
            Err(e) => vec![format!("VFS: writing back at halt failed: {e}")],
        }
    }
}

/// Whether `rootflags=` (with `ro`/`rw`) makes an ext2 root read-only; the first flag
/// ext2 does not know otherwise.
fn ext2_flags(opts: &RootOptions) -> Result<bool, String> {
    let mut read_only = opts.read_only;
    for flag in opts.flags.as_deref().unwrap_or("").split(',') {
        match flag {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "" => {}
            other => return Err(other.to_string()),
        }
    }
    Ok(read_only)
}

/// A boxed sector device shared between attempts.
struct BoxedSectors(std::rc::Rc<std::cell::RefCell<Box<dyn SectorDevice>>>);

impl SectorDevice for BoxedSectors {
    fn sectors(&self) -> u64 {
        self.0.borrow().sectors()
    }
    fn read_sectors(&self, first: u64, count: u64) -> std::io::Result<Vec<u8>> {
        self.0.borrow().read_sectors(first, count)
    }
    fn write_sectors(&mut self, first: u64, data: &[u8]) -> std::io::Result<()> {
        self.0.borrow_mut().write_sectors(first, data)
    }
    fn flush(&self) -> std::io::Result<()> {
        self.0.borrow().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_options() {
        let o = RootOptions::from_args(["quiet", "ro", "rootfstype=ext4", "rootflags=noatime"]);
        assert_eq!(
            o,
            RootOptions {
                read_only: true,
                fs_type: Some("ext4".into()),
                flags: Some("noatime".into()),
                hostfs: HostfsSwitch::default(),
            }
        );
        assert!(!RootOptions::from_args(["ro", "rw"]).read_only);
    }

    #[test]
    fn no_disk_gives_a_tmpfs_root_with_dev() {
        let (mut files, log) = Files::boot(None, &RootOptions::default(), 1 << 20, &[0]);
        assert!(log[0].contains("empty tmpfs root"), "{log:?}");
        let out = files
            .shell(&["ls", "/"], &mut crate::fs::cmds::NoDevices)
            .expect("ls");
        assert_eq!(out, "dev\nmnt\nproc\ntmp\n");
        let out = files
            .shell(&["ls", "/dev"], &mut crate::fs::cmds::NoDevices)
            .expect("ls");
        assert!(out.contains("null\n") && out.contains("ubda\n"), "{out}");
        assert!(files.halt().is_empty());
    }
}
