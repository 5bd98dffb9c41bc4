//! TUN/TAP devices: the clone-device ioctls (TUNSETIFF, TUNSETPERSIST, TUNSETOWNER,
//! TUNSETGROUP) that tunctl, uml_net, uml_switch (`-tap`) and the kernel's tuntap
//! transport all need, and what sysfs says about an existing device (is it a tap, who
//! owns it), also through a descriptor pinned to one device. The ioctls are nix's
//! wrappers, each call commented.
//!
//! Why not the tun-tap crate: it creates devices but cannot make them persistent or set
//! their owner or group (tunctl's whole job), and it opens the clone device itself, so
//! `tunctl -f` could not name another one; these four ioctls are all there is.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::path::{Path, PathBuf};

/// The usual clone device.
pub const DEFAULT_CLONE_DEVICE: &str = "/dev/net/tun";
/// Where sysfs lists network interfaces.
pub const SYS_CLASS_NET: &str = "/sys/class/net";
/// Longest interface name (IFNAMSIZ without its NUL).
pub const MAX_NAME_LEN: usize = libc::IFNAMSIZ - 1;

/// Layer 2 (tap) or layer 3 (tun).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tap,
    Tun,
}

impl Kind {
    fn flag(self) -> libc::c_short {
        match self {
            Kind::Tap => libc::IFF_TAP as libc::c_short,
            Kind::Tun => libc::IFF_TUN as libc::c_short,
        }
    }
}

/// Which tun ioctl failed; its Display is the name the C tools pass to perror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ioctl {
    SetIff,
    Persist,
    Unpersist,
    Owner,
    Group,
}

impl fmt::Display for Ioctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ioctl::SetIff => "TUNSETIFF",
            Ioctl::Persist => "enabling TUNSETPERSIST",
            Ioctl::Unpersist => "disabling TUNSETPERSIST",
            Ioctl::Owner => "TUNSETOWNER",
            Ioctl::Group => "TUNSETGROUP",
        })
    }
}

/// A failure talking to the clone device.
#[derive(Debug)]
pub enum TapError {
    /// The clone device could not be opened.
    Open { path: PathBuf, err: io::Error },
    /// The interface name does not fit in IFNAMSIZ or holds a NUL.
    BadName(String),
    /// An ioctl failed.
    Ioctl { which: Ioctl, err: io::Error },
}

impl fmt::Display for TapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TapError::Open { path, err } => {
                write!(f, "Failed to open '{}' : {}", path.display(), strerror(err))
            }
            TapError::BadName(n) => write!(
                f,
                "interface name '{n}' is longer than {MAX_NAME_LEN} bytes or holds a NUL"
            ),
            TapError::Ioctl { which, err } => write!(f, "{which}: {}", strerror(err)),
        }
    }
}

impl std::error::Error for TapError {}

/// The C library's text for an error (what perror prints), without Rust's "(os error N)".
pub fn strerror(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => err.to_string(),
    }
}

/// An open clone device attached to one interface. Dropping it closes the fd; a device
/// that was not made persistent disappears then.
#[derive(Debug)]
pub struct TapDevice {
    pub file: File,
    /// The name the kernel gave (a template like `tap%d` is resolved).
    pub name: String,
}

/// Opens `clone` and attaches to (or creates) the interface `name` (empty: the kernel
/// picks `tapN`/`tunN`; a `%d` template is allowed), with IFF_NO_PI.
pub fn attach(clone: &Path, name: &str, kind: Kind) -> Result<TapDevice, TapError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(clone)
        .map_err(|err| TapError::Open {
            path: clone.to_owned(),
            err,
        })?;
    let mut req = ifreq_named(name)?;
    req.ifr_ifru.ifru_flags = kind.flag() | libc::IFF_NO_PI as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes a struct ifreq, which `req` is, and the fd is
    // an open file we own for the duration of the call.
    unsafe { sys::tunsetiff(file.as_raw_fd(), &mut req) }.map_err(|e| TapError::Ioctl {
        which: Ioctl::SetIff,
        err: e.into(),
    })?;
    Ok(TapDevice {
        file,
        name: name_of(&req),
    })
}

impl TapDevice {
    /// Makes the device outlive this fd (true) or die with it (false).
    pub fn set_persist(&self, on: bool) -> Result<(), TapError> {
        let which = if on { Ioctl::Persist } else { Ioctl::Unpersist };
        // SAFETY: TUNSETPERSIST takes its argument by value; the fd is open.
        let r = unsafe { sys::tunsetpersist(self.file.as_raw_fd(), libc::c_int::from(on)) };
        r.map(drop).map_err(|e| TapError::Ioctl {
            which,
            err: e.into(),
        })
    }

    /// Lets `uid` attach to the device without privileges.
    pub fn set_owner(&self, uid: u32) -> Result<(), TapError> {
        // SAFETY: TUNSETOWNER takes its argument by value; the fd is open.
        let r = unsafe { sys::tunsetowner(self.file.as_raw_fd(), as_int(uid)) };
        r.map(drop).map_err(|e| TapError::Ioctl {
            which: Ioctl::Owner,
            err: e.into(),
        })
    }

    /// Lets members of `gid` attach to the device without privileges.
    pub fn set_group(&self, gid: u32) -> Result<(), TapError> {
        // SAFETY: TUNSETGROUP takes its argument by value; the fd is open.
        let r = unsafe { sys::tunsetgroup(self.file.as_raw_fd(), as_int(gid)) };
        r.map(drop).map_err(|e| TapError::Ioctl {
            which: Ioctl::Group,
            err: e.into(),
        })
    }

    /// Makes reads and writes of frames return at once instead of waiting (for an
    /// event loop).
    pub fn set_nonblocking(&self) -> io::Result<()> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let flags = OFlag::from_bits_truncate(fcntl(&self.file, FcntlArg::F_GETFL)?);
        fcntl(&self.file, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        Ok(())
    }
}

impl From<TapError> for io::Error {
    /// The underlying error (a bad name is InvalidInput), for callers that report
    /// their own context.
    fn from(e: TapError) -> io::Error {
        match e {
            TapError::Open { err, .. } | TapError::Ioctl { err, .. } => err,
            TapError::BadName(_) => io::Error::from(io::ErrorKind::InvalidInput),
        }
    }
}

/// A uid or gid as the int argument nix passes (the kernel takes the low 32 bits).
fn as_int(id: u32) -> libc::c_int {
    libc::c_int::from_ne_bytes(id.to_ne_bytes())
}

/// The tun ioctls, through nix's ioctl wrappers (the request numbers are libc's).
mod sys {
    nix::ioctl_readwrite_bad!(tunsetiff, libc::TUNSETIFF, libc::ifreq);
    nix::ioctl_write_int_bad!(tunsetpersist, libc::TUNSETPERSIST);
    nix::ioctl_write_int_bad!(tunsetowner, libc::TUNSETOWNER);
    nix::ioctl_write_int_bad!(tunsetgroup, libc::TUNSETGROUP);
}

/// An ifreq with `name` in ifr_name (checked: at most 15 bytes, no NUL).
pub fn ifreq_named(name: &str) -> Result<libc::ifreq, TapError> {
    if name.len() > MAX_NAME_LEN || name.contains('\0') {
        return Err(TapError::BadName(name.to_owned()));
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

fn name_of(req: &libc::ifreq) -> String {
    let bytes: Vec<u8> = req
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// What sysfs says about a tun/tap interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunInfo {
    pub kind: Kind,
    pub persistent: bool,
    /// None when unowned (sysfs shows -1).
    pub owner: Option<u32>,
    pub group: Option<u32>,
}

/// Reads `<sys_class_net>/<name>/{tun_flags,owner,group}`. Ok(None) when the interface
/// exists but is not a tun/tap device; Err when there is no such interface (or the name
/// is not a plain interface name).
pub fn inspect(sys_class_net: &Path, name: &str) -> io::Result<Option<TunInfo>> {
    if !plain_name(name) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let dir = sys_class_net.join(name);
    std::fs::metadata(&dir)?;
    let flags = match std::fs::read_to_string(dir.join("tun_flags")) {
        Ok(s) => parse_hex(&s).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let id = |file: &str| -> io::Result<Option<u32>> {
        let s = std::fs::read_to_string(dir.join(file))?;
        let n: i64 = s
            .trim()
            .parse()
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        Ok(u32::try_from(n).ok().filter(|&v| v != u32::MAX))
    };
    Ok(Some(tun_info(flags, id("owner")?, id("group")?)))
}

/// A network interface pinned by its sysfs directory: the directory descriptor stays
/// bound to this one device, so reading through it after the device is gone fails
/// instead of describing a namesake made later. Root-run code resolves a name once
/// into a PinnedIface and acts only on its index.
#[derive(Debug)]
pub struct PinnedIface {
    dir: OwnedFd,
    pub name: String,
    pub index: u32,
}

impl PinnedIface {
    /// Opens `<sys_class_net>/<name>` and reads its ifindex through the descriptor.
    pub fn open(sys_class_net: &Path, name: &str) -> io::Result<PinnedIface> {
        if !plain_name(name) {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let class = nix::fcntl::open(
            sys_class_net,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // The class entry is sysfs's own symlink to the device directory: follow it.
        let dir = nix::fcntl::openat(
            &class,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut pinned = PinnedIface {
            dir,
            name: name.to_owned(),
            index: 0,
        };
        pinned.index = pinned.read_index()?;
        Ok(pinned)
    }

    fn read_attr(&self, attr: &str) -> io::Result<String> {
        let fd = nix::fcntl::openat(
            &self.dir,
            attr,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )?;
        let mut text = String::new();
        File::from(fd).read_to_string(&mut text)?;
        Ok(text)
    }

    fn read_index(&self) -> io::Result<u32> {
        self.read_attr("ifindex")?
            .trim()
            .parse()
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
    }

    /// What the device is now: Err once it is gone (or its index changed), Ok(None)
    /// when it is not a tun/tap device.
    pub fn inspect(&self) -> io::Result<Option<TunInfo>> {
        if self.read_index()? != self.index {
            return Err(io::Error::from_raw_os_error(libc::ENODEV));
        }
        let flags = match self.read_attr("tun_flags") {
            Ok(s) => parse_hex(&s).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Gone, or never a tun device: tell the two apart.
                self.read_index()?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let id = |file: &str| -> io::Result<Option<u32>> {
            let n: i64 = self
                .read_attr(file)?
                .trim()
                .parse()
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
            Ok(u32::try_from(n).ok().filter(|&v| v != u32::MAX))
        };
        Ok(Some(tun_info(flags, id("owner")?, id("group")?)))
    }
}

fn tun_info(flags: u32, owner: Option<u32>, group: Option<u32>) -> TunInfo {
    TunInfo {
        kind: if flags & libc::IFF_TAP as u32 != 0 {
            Kind::Tap
        } else {
            Kind::Tun
        },
        persistent: flags & 0x0800 != 0, // IFF_PERSIST
        owner,
        group,
    }
}

/// True for a name that is a single path component an interface could have.
pub fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == 0 || b.is_ascii_whitespace() || b == b':')
}

fn parse_hex(s: &str) -> Option<u32> {
    u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_refused_before_any_ioctl() {
        assert!(matches!(
            ifreq_named("abcdefghijklmnop"),
            Err(TapError::BadName(_))
        ));
        let req = ifreq_named("tap%d").unwrap();
        assert_eq!(name_of(&req), "tap%d");
    }

    #[test]
    fn ioctl_errors_read_like_perror() {
        let e = TapError::Ioctl {
            which: Ioctl::Persist,
            err: io::Error::from_raw_os_error(libc::EPERM),
        };
        assert_eq!(
            e.to_string(),
            "enabling TUNSETPERSIST: Operation not permitted"
        );
        let e = TapError::Open {
            path: "/nonexist".into(),
            err: io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert_eq!(
            e.to_string(),
            "Failed to open '/nonexist' : No such file or directory"
        );
    }

    #[test]
    fn sysfs_attributes_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let dev = dir.path().join("tap7");
        std::fs::create_dir(&dev).unwrap();
        std::fs::write(dev.join("tun_flags"), "0x1802\n").unwrap();
        std::fs::write(dev.join("owner"), "1000\n").unwrap();
        std::fs::write(dev.join("group"), "-1\n").unwrap();
        let info = inspect(dir.path(), "tap7").unwrap().unwrap();
        assert_eq!(
            info,
            TunInfo {
                kind: Kind::Tap,
                persistent: true,
                owner: Some(1000),
                group: None
            }
        );
        std::fs::create_dir(dir.path().join("eth0")).unwrap();
        assert_eq!(inspect(dir.path(), "eth0").unwrap(), None);
        assert!(inspect(dir.path(), "nosuch").is_err());
        assert!(inspect(dir.path(), "../tap7").is_err());
    }

    #[test]
    fn a_pinned_interface_reads_through_its_descriptor() {
        let lo = PinnedIface::open(Path::new(SYS_CLASS_NET), "lo").unwrap();
        assert_eq!(lo.index, nix::net::if_::if_nametoindex("lo").unwrap());
        assert_eq!(lo.inspect().unwrap(), None, "lo is no tun device");
        assert!(PinnedIface::open(Path::new(SYS_CLASS_NET), "../lo").is_err());
        assert!(PinnedIface::open(Path::new(SYS_CLASS_NET), "nosuchdev0").is_err());
    }
}
