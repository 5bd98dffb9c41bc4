//! The FUSE kernel protocol on the wire, as /dev/fuse speaks it (Linux's uapi
//! `fuse.h`, version 7.x): the request and reply headers, INIT negotiation, the
//! argument and reply structs of the operations a filesystem server answers, and
//! directory entries. Parse and emit only, no I/O: the guest kernel's umlfs (which
//! serves its VFS to uml_mount's mount) reads a request from the device, parses it
//! here, and writes back what this module emits.
//!
//! Everything is in the host's byte order. One read of /dev/fuse returns exactly one
//! request: a 40-byte `InHeader` whose `len` counts the whole message, then the
//! operation's argument struct and NUL-terminated names or data. One write answers
//! it: a 16-byte `OutHeader` (`error` 0 or a negative errno) and the reply struct.

mod wire;

pub mod args;
pub mod dirent;
pub mod reply;
pub mod request;

pub use args::*;
pub use dirent::Dirent;
pub use reply::{OutHeader, Reply};
pub use request::{InHeader, Operation, Request};

use std::fmt;

/// The protocol's major version; a kernel offering another major is answered with
/// ours (a larger one then retries with 7) or refused (a smaller one).
pub const KERNEL_VERSION: u32 = 7;
/// The newest minor version whose layouts this module speaks.
pub const KERNEL_MINOR_VERSION: u32 = 31;
/// The oldest minor version accepted (Linux 2.6.29): older kernels use shorter
/// structs this module does not parse.
pub const MIN_MINOR_VERSION: u32 = 12;
/// The node id of the filesystem's root.
pub const ROOT_ID: u64 = 1;
/// The smallest read buffer the kernel accepts for one request.
pub const MIN_READ_BUFFER: usize = 8192;

/// Operation codes.
pub mod opcode {
    pub const LOOKUP: u32 = 1;
    pub const FORGET: u32 = 2;
    pub const GETATTR: u32 = 3;
    pub const SETATTR: u32 = 4;
    pub const READLINK: u32 = 5;
    pub const SYMLINK: u32 = 6;
    pub const MKNOD: u32 = 8;
    pub const MKDIR: u32 = 9;
    pub const UNLINK: u32 = 10;
    pub const RMDIR: u32 = 11;
    pub const RENAME: u32 = 12;
    pub const LINK: u32 = 13;
    pub const OPEN: u32 = 14;
    pub const READ: u32 = 15;
    pub const WRITE: u32 = 16;
    pub const STATFS: u32 = 17;
    pub const RELEASE: u32 = 18;
    pub const FSYNC: u32 = 20;
    pub const SETXATTR: u32 = 21;
    pub const GETXATTR: u32 = 22;
    pub const LISTXATTR: u32 = 23;
    pub const REMOVEXATTR: u32 = 24;
    pub const FLUSH: u32 = 25;
    pub const INIT: u32 = 26;
    pub const OPENDIR: u32 = 27;
    pub const READDIR: u32 = 28;
    pub const RELEASEDIR: u32 = 29;
    pub const FSYNCDIR: u32 = 30;
    pub const GETLK: u32 = 31;
    pub const SETLK: u32 = 32;
    pub const SETLKW: u32 = 33;
    pub const ACCESS: u32 = 34;
    pub const CREATE: u32 = 35;
    pub const INTERRUPT: u32 = 36;
    pub const BMAP: u32 = 37;
    pub const DESTROY: u32 = 38;
    pub const IOCTL: u32 = 39;
    pub const POLL: u32 = 40;
    pub const NOTIFY_REPLY: u32 = 41;
    pub const BATCH_FORGET: u32 = 42;
    pub const FALLOCATE: u32 = 43;
    pub const READDIRPLUS: u32 = 44;
    pub const RENAME2: u32 = 45;
    pub const LSEEK: u32 = 46;
    pub const COPY_FILE_RANGE: u32 = 47;
}

/// INIT flags (`InitIn::flags` offered by the kernel, `InitOut::flags` accepted).
pub mod init_flags {
    pub const ASYNC_READ: u32 = 1 << 0;
    pub const POSIX_LOCKS: u32 = 1 << 1;
    pub const FILE_OPS: u32 = 1 << 2;
    pub const ATOMIC_O_TRUNC: u32 = 1 << 3;
    pub const EXPORT_SUPPORT: u32 = 1 << 4;
    pub const BIG_WRITES: u32 = 1 << 5;
    pub const DONT_MASK: u32 = 1 << 6;
    pub const DO_READDIRPLUS: u32 = 1 << 13;
    pub const WRITEBACK_CACHE: u32 = 1 << 16;
    pub const MAX_PAGES: u32 = 1 << 22;
}

/// SETATTR's `valid` bits: which fields to change.
pub mod fattr {
    pub const MODE: u32 = 1 << 0;
    pub const UID: u32 = 1 << 1;
    pub const GID: u32 = 1 << 2;
    pub const SIZE: u32 = 1 << 3;
    pub const ATIME: u32 = 1 << 4;
    pub const MTIME: u32 = 1 << 5;
    pub const FH: u32 = 1 << 6;
    pub const ATIME_NOW: u32 = 1 << 7;
    pub const MTIME_NOW: u32 = 1 << 8;
    pub const LOCKOWNER: u32 = 1 << 9;
    pub const CTIME: u32 = 1 << 10;
}

/// OPEN reply flags.
pub mod fopen {
    pub const DIRECT_IO: u32 = 1 << 0;
    pub const KEEP_CACHE: u32 = 1 << 1;
    pub const NONSEEKABLE: u32 = 1 << 2;
}

/// RENAME2 flags (renameat2's).
pub mod rename_flags {
    pub const NOREPLACE: u32 = 1 << 0;
    pub const EXCHANGE: u32 = 1 << 1;
    pub const WHITEOUT: u32 = 1 << 2;
}

/// A device number as FUSE carries it (Linux's `new_encode_dev`).
pub fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

/// (major, minor) of a device number FUSE carries (Linux's `new_decode_dev`).
pub fn decode_dev(dev: u32) -> (u32, u32) {
    ((dev & 0xfff00) >> 8, (dev & 0xff) | ((dev >> 12) & 0xfff00))
}

/// Why bytes are not a valid FUSE message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FuseError {
    /// Fewer bytes than a part of the message needs.
    Short {
        what: &'static str,
        need: usize,
        got: usize,
    },
    /// The header's length disagrees with the bytes read.
    BadLength { len: u32, got: usize },
    /// A name or link target without its terminating NUL.
    NoNul(&'static str),
    /// A WRITE whose `size` disagrees with the data that follows.
    WriteSize { size: u32, got: usize },
    /// BATCH_FORGET announces more entries than it carries.
    ForgetCount { count: u32, got: usize },
    /// A reply's error field that is not 0 or a negative errno above -512.
    BadError(i32),
    /// An error reply that carries a payload.
    ErrorWithPayload(usize),
}

impl fmt::Display for FuseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FuseError::Short { what, need, got } => {
                write!(f, "FUSE {what} too short ({got} bytes, need {need})")
            }
            FuseError::BadLength { len, got } => {
                write!(f, "FUSE header says {len} bytes but {got} came")
            }
            FuseError::NoNul(what) => write!(f, "FUSE {what} is not NUL-terminated"),
            FuseError::WriteSize { size, got } => {
                write!(f, "FUSE WRITE of {size} bytes carries {got}")
            }
            FuseError::ForgetCount { count, got } => write!(
                f,
                "FUSE BATCH_FORGET announces {count} entries but carries {got} bytes"
            ),
            FuseError::BadError(e) => write!(f, "FUSE reply error {e} is not 0 or -errno"),
            FuseError::ErrorWithPayload(n) => {
                write!(f, "FUSE error reply carries {n} bytes of payload")
            }
        }
    }
}

impl std::error::Error for FuseError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_as_linux_encodes_them() {
        // /dev/fuse is 10:229; a large minor spreads over both fields.
        assert_eq!(encode_dev(10, 229), 0x0ae5);
        assert_eq!(decode_dev(0x0ae5), (10, 229));
        assert_eq!(encode_dev(8, 0x12345), 0x1230_0845);
        assert_eq!(decode_dev(0x1230_0845), (8, 0x12345));
        assert_eq!(decode_dev(encode_dev(4095, 0xfffff)), (4095, 0xfffff));
    }
}
