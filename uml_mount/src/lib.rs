//! uml_mount's logic: find the UML, open a FUSE connection and mount it, hand the
//! /dev/fuse descriptor to the UML through `uml_mconsole UMID umlfs FD`, and take the
//! mount down again when the UML does not take it.

pub mod cli;

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::{umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use uml_proto::umid::{self, ResolveError};

/// Why uml_mount failed; each names what it is about.
#[derive(Debug)]
pub enum Error {
    /// No UML by that name.
    Umid(ResolveError),
    /// The mount point cannot be used.
    Mountpoint(PathBuf, Errno),
    /// Mounting needs root here.
    NotRoot,
    /// /dev/fuse could not be opened.
    Fuse(Errno),
    /// mount(2) refused.
    Mount(PathBuf, Errno),
    /// uml_mconsole could not be started.
    Spawn(PathBuf, io::Error),
    /// The UML did not take the connection (the mount is gone again).
    NotTaken {
        umid: String,
        mountpoint: PathBuf,
        why: String,
    },
    /// Unmounting after a failure failed too.
    Unmount(PathBuf, Errno),
    /// SIGINT, SIGTERM or SIGHUP could not be caught.
    Signals(Errno),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Umid(e) => write!(f, "{e}"),
            Error::Mountpoint(p, e) => write!(f, "{}: {}", p.display(), e.desc()),
            Error::NotRoot => write!(
                f,
                "mounting needs root (a FUSE mount made with mount(2); fusermount is not used)"
            ),
            Error::Fuse(e) => write!(f, "/dev/fuse: {}", e.desc()),
            Error::Mount(p, Errno::EINVAL) => write!(
                f,
                "mount {}: Invalid argument (an unknown -o option?)",
                p.display()
            ),
            Error::Mount(p, e) => write!(f, "mount {}: {}", p.display(), e.desc()),
            Error::Spawn(p, e) => write!(f, "cannot run {}: {e}", p.display()),
            Error::NotTaken {
                umid,
                mountpoint,
                why,
            } => write!(
                f,
                "{umid} did not take the filesystem ({why}); {} is unmounted again",
                mountpoint.display()
            ),
            Error::Unmount(p, e) => write!(f, "umount {}: {}", p.display(), e.desc()),
            Error::Signals(e) => write!(f, "cannot catch SIGINT/SIGTERM/SIGHUP: {}", e.desc()),
        }
    }
}

impl std::error::Error for Error {}

/// What to mount and whom to ask.
#[derive(Debug, Clone)]
pub struct Request {
    pub umid: String,
    pub mountpoint: PathBuf,
    /// `-o` options, comma-separated lists.
    pub options: Vec<String>,
    pub uml_dir: Option<PathBuf>,
    pub home: Option<PathBuf>,
    /// The uml_mconsole program (looked up in PATH when it has no slash).
    pub mconsole: PathBuf,
    /// How long the hand-over may take.
    pub timeout: Duration,
}

/// A FUSE mount this process made and still holds the connection of.
#[derive(Debug)]
pub struct Mounted {
    pub fuse: OwnedFd,
    /// The mount point's absolute path (what is unmounted).
    pub target: PathBuf,
}

impl Mounted {
    /// Takes the mount down (lazily: nobody serves it, so nothing may wait on it),
    /// then drops the connection.
    pub fn unmount(self) -> Result<(), Error> {
        let r = umount2(
            &self.target,
            MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW,
        );
        drop(self.fuse);
        r.map_err(|e| Error::Unmount(self.target.clone(), e))
    }
}

/// The mount data: the connection, the root's mode, the owner, then the user's
/// options.
pub fn mount_data(fd: i32, uid: u32, gid: u32, options: &[String]) -> String {
    let mut data = format!("fd={fd},rootmode=40000,user_id={uid},group_id={gid}");
    for o in options.iter().filter(|o| !o.is_empty()) {
        data.push(',');
        data.push_str(o);
    }
    data
}

/// Opens /dev/fuse and mounts the connection on the mount point (as root, with
/// mount(2)); the mount point is opened once and mounted on through that descriptor.
pub fn mount(req: &Request) -> Result<Mounted, Error> {
    let dir = open(
        &req.mountpoint,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::Mountpoint(req.mountpoint.clone(), e))?;
    let target = std::fs::canonicalize(&req.mountpoint).map_err(|e| {
        Error::Mountpoint(
            req.mountpoint.clone(),
            Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        )
    })?;
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::NotRoot);
    }
    let fuse =
        open("/dev/fuse", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()).map_err(Error::Fuse)?;
    let data = mount_data(
        fuse.as_raw_fd(),
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
        &req.options,
    );
    let via = format!("/proc/self/fd/{}", dir.as_raw_fd());
    nix::mount::mount(
        Some(format!("umlfs:{}", req.umid).as_str()),
        via.as_str(),
        Some("fuse.umlfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(|e| Error::Mount(req.mountpoint.clone(), e))?;
    Ok(Mounted { fuse, target })
}

/// How the hand-over ended.
#[derive(Debug)]
pub enum HandOver {
    /// uml_mconsole exited.
    Exited(ExitStatus),
    /// No answer within the timeout (uml_mconsole was killed).
    TimedOut,
    /// We were asked to stop (uml_mconsole was killed).
    Interrupted(nix::sys::signal::Signal),
}

/// SIGINT, SIGTERM and SIGHUP, blocked while a mount exists and read from a signalfd,
/// so that a stop request takes the mount down instead of leaving it dead. (A
/// spawned child starts with no signal blocked.)
pub struct Stops(nix::sys::signalfd::SignalFd);

impl Stops {
    pub fn catch() -> Result<Stops, Error> {
        use nix::sys::signal::{SigSet, SigmaskHow, Signal};
        use nix::sys::signalfd::{SfdFlags, SignalFd};
        let mut set = SigSet::empty();
        for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            set.add(s);
        }
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
            .map_err(Error::Signals)?;
        SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map(Stops)
            .map_err(Error::Signals)
    }

    /// A stop request that arrived, if any.
    pub fn pending(&self) -> Option<nix::sys::signal::Signal> {
        let info = self.0.read_signal().ok().flatten()?;
        nix::sys::signal::Signal::try_from(info.ssi_signo as i32).ok()
    }
}

/// Runs `uml_mconsole [--uml-dir DIR] UMID umlfs N` with the connection inherited as
/// descriptor N, waiting at most `timeout` (then it is killed) or until a stop request.
pub fn hand_over(req: &Request, mounted: &Mounted, stops: &Stops) -> Result<HandOver, Error> {
    // A copy without close-on-exec: the one descriptor the child inherits on purpose.
    let inherited = nix::unistd::dup(&mounted.fuse)
        .map_err(|e| Error::Spawn(req.mconsole.clone(), e.into()))?;
    let mut cmd = Command::new(&req.mconsole);
    if let Some(dir) = &req.uml_dir {
        cmd.arg("--uml-dir").arg(dir);
    }
    cmd.arg(&req.umid)
        .arg("umlfs")
        .arg(inherited.as_raw_fd().to_string());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Spawn(req.mconsole.clone(), e))?;
    drop(inherited);
    let start = Instant::now();
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::Spawn(req.mconsole.clone(), e))?
        {
            return Ok(HandOver::Exited(status));
        }
        let stop = stops.pending();
        if stop.is_some() || start.elapsed() >= req.timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(stop.map_or(HandOver::TimedOut, HandOver::Interrupted));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The whole job: check the UML, mount, hand over; on any failure after mounting, the
/// mount is taken down before the error is returned.
pub fn run(req: &Request) -> Result<(), Error> {
    umid::resolve(&req.umid, req.home.as_deref(), req.uml_dir.as_deref()).map_err(Error::Umid)?;
    let stops = Stops::catch()?;
    let mounted = mount(req)?;
    let outcome = hand_over(req, &mounted, &stops);
    let why = match outcome {
        Ok(HandOver::Exited(status)) if status.success() => {
            // The UML holds the connection now; ours goes, the mount stays.
            drop(mounted.fuse);
            return Ok(());
        }
        Ok(HandOver::Exited(status)) => match status.code() {
            Some(code) => format!("uml_mconsole exited with status {code}"),
            None => "uml_mconsole was killed".to_owned(),
        },
        Ok(HandOver::TimedOut) => format!("no answer within {} s", req.timeout.as_secs()),
        Ok(HandOver::Interrupted(sig)) => format!("interrupted by {sig}"),
        Err(e) => e.to_string(),
    };
    let mountpoint = req.mountpoint.clone();
    mounted.unmount()?;
    Err(Error::NotTaken {
        umid: req.umid.clone(),
        mountpoint,
        why,
    })
}

/// True when `path` (absolute) is a mount point in this process's mount namespace.
pub fn is_mounted(path: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| Path::new(m) == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_data_lists_the_connection_then_the_options() {
        assert_eq!(
            mount_data(5, 1000, 100, &["allow_other,ro".into(), String::new()]),
            "fd=5,rootmode=40000,user_id=1000,group_id=100,allow_other,ro"
        );
    }

    #[test]
    fn a_missing_mount_point_is_named() {
        let req = Request {
            umid: "x".into(),
            mountpoint: "/nonexistent/mnt".into(),
            options: vec![],
            uml_dir: None,
            home: None,
            mconsole: "uml_mconsole".into(),
            timeout: Duration::from_secs(1),
        };
        let e = mount(&req).unwrap_err();
        assert_eq!(e.to_string(), "/nonexistent/mnt: No such file or directory");
    }
}
