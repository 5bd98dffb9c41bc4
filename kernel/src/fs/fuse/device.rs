//! The /dev/fuse descriptor uml_mount hands over: checked to be the FUSE device,
//! made non-blocking (the kernel's loop polls it with everything else), read one
//! request at a time and written one reply at a time. The host kernel ends the
//! connection with ENODEV (unmounted or aborted); a descriptor that was never mounted
//! reads EPERM.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno as NixErrno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::stat::{fstat, major, minor, SFlag};

/// /dev/fuse's device number (misc major 10, minor 229).
pub const FUSE_MAJOR: u64 = 10;
pub const FUSE_MINOR: u64 = 229;

/// Why the descriptor cannot be served, or stopped being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceError {
    /// Not /dev/fuse: what it is instead.
    NotFuse(String),
    /// A FUSE descriptor without a mount (nothing will ever come).
    NotMounted,
    /// The host ended the connection (unmounted, or aborted).
    Ended,
    /// Another failure of a system call on it.
    Sys(&'static str, NixErrno),
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::NotFuse(what) => {
                write!(
                    f,
                    "the descriptor is not a FUSE device (/dev/fuse) but {what}"
                )
            }
            DeviceError::NotMounted => write!(f, "the FUSE descriptor is not mounted"),
            DeviceError::Ended => write!(f, "the host ended the FUSE connection"),
            DeviceError::Sys(call, e) => write!(f, "{call} on the FUSE descriptor: {}", e.desc()),
        }
    }
}

/// What a file mode says it is, for the message.
fn kind_name(mode: u32) -> &'static str {
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFCHR => "another character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFIFO => "a pipe",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFLNK => "a symlink",
        _ => "something else",
    }
}

/// An open FUSE connection.
#[derive(Debug)]
pub struct Device {
    fd: OwnedFd,
}

impl Device {
    /// Takes `fd` if it is /dev/fuse, and makes it non-blocking.
    pub fn adopt(fd: OwnedFd) -> Result<Device, DeviceError> {
        let st = fstat(fd.as_fd()).map_err(|e| DeviceError::Sys("fstat", e))?;
        let chr = st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFCHR.bits();
        let rdev = st.st_rdev;
        if !chr || major(rdev) != FUSE_MAJOR || minor(rdev) != FUSE_MINOR {
            let what = if chr {
                format!("character device {}:{}", major(rdev), minor(rdev))
            } else {
                kind_name(st.st_mode).to_string()
            };
            return Err(DeviceError::NotFuse(what));
        }
        let flags =
            fcntl(fd.as_fd(), FcntlArg::F_GETFL).map_err(|e| DeviceError::Sys("fcntl", e))?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags)).map_err(|e| DeviceError::Sys("fcntl", e))?;
        Ok(Device { fd })
    }

    /// The descriptor, for the event loop.
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads the next request into `buf`: its length, or None when none is waiting.
    pub fn read(&self, buf: &mut [u8]) -> Result<Option<usize>, DeviceError> {
        loop {
            return match nix::unistd::read(self.fd.as_fd(), buf) {
                Ok(n) => Ok(Some(n)),
                Err(NixErrno::EINTR) => continue,
                Err(NixErrno::EAGAIN) => Ok(None),
                Err(NixErrno::ENODEV) => Err(DeviceError::Ended),
                Err(NixErrno::EPERM) => Err(DeviceError::NotMounted),
                Err(e) => Err(DeviceError::Sys("read", e)),
            };
        }
    }

    /// Writes one reply. A request the host gave up on meanwhile (ENOENT) is fine.
    pub fn write(&self, reply: &[u8]) -> Result<(), DeviceError> {
        loop {
            return match nix::unistd::write(self.fd.as_fd(), reply) {
                Ok(_) | Err(NixErrno::ENOENT) => Ok(()),
                Err(NixErrno::EINTR) => continue,
                Err(NixErrno::ENODEV) => Err(DeviceError::Ended),
                Err(e) => Err(DeviceError::Sys("write", e)),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_descriptors_are_refused_by_kind() {
        let file: OwnedFd = tempfile::tempfile().unwrap().into();
        assert_eq!(
            Device::adopt(file).unwrap_err(),
            DeviceError::NotFuse("a regular file".into())
        );
        let null: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        assert_eq!(
            Device::adopt(null).unwrap_err().to_string(),
            "the descriptor is not a FUSE device (/dev/fuse) but character device 1:3"
        );
    }
}
