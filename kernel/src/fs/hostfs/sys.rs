//! The host calls hostfs makes, through nix but for one (fchmodat2, which nix does not
//! wrap): opening a path beneath a mount's directory descriptor with openat2 (never a
//! joined path string), chmod of a name that never follows a symlink, stat results
//! turned into the VFS's attributes, and host errno values turned into the guest's.
//!
//! Every path handed to [`open_beneath`] is relative to the mount's directory fd and is
//! resolved with RESOLVE_BENEATH (no `..` or absolute path out of it), RESOLVE_NO_SYMLINKS
//! (a host symlink is never followed on the host: the VFS reads it and follows it in
//! guest terms; one swapped in during a walk makes the open fail with ELOOP) and
//! RESOLVE_NO_MAGICLINKS, with O_NOFOLLOW on the last component.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fchmodat, major, minor, FchmodatFlags, FileStat, Mode};

use crate::fs::errno::{Errno, FsResult};
use crate::fs::node::{Attr, FileKind, Ino};

/// How every walk under a mount's directory resolves.
fn beneath() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH
        | ResolveFlag::RESOLVE_NO_SYMLINKS
        | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

/// Opens `path` (relative, `.` for the directory itself) beneath `root` with `flags`
/// (O_NOFOLLOW and O_CLOEXEC are always added).
pub fn open_beneath(root: impl AsFd, path: &[u8], flags: OFlag) -> FsResult<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(beneath());
    openat2(root, OsStr::from_bytes(path), how).map_err(errno)
}

/// Creates a regular file `name` (one component) in the directory `dir`, failing if it
/// exists, and returns it open for reading and writing.
pub fn create_in(dir: impl AsFd, name: &[u8], perm: u32) -> FsResult<OwnedFd> {
    let how = OpenHow::new()
        .flags(
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        )
        .mode(Mode::from_bits_truncate(perm & 0o7777))
        .resolve(beneath());
    openat2(dir, OsStr::from_bytes(name), how).map_err(errno)
}

/// Opens a directory given relative to an already trusted one, for a mount's root:
/// `confined` resolves beneath `base` (a `..` or absolute symlink out of it fails with
/// EXDEV), otherwise as an ordinary open would (symlinks followed).
pub fn open_mount_dir(base: impl AsFd, path: &[u8], confined: bool) -> nix::Result<OwnedFd> {
    let resolve = if confined {
        ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS
    } else {
        ResolveFlag::RESOLVE_NO_MAGICLINKS
    };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(resolve);
    openat2(base, OsStr::from_bytes(path), how)
}

/// Sets the mode of `name` (one component) in `dir`, never following a symlink there (a
/// symlink: EOPNOTSUPP). Linux 6.6's fchmodat2 does it in one call; on older hosts
/// the C library's fchmodat does the same through an O_PATH descriptor and /proc.
pub fn chmod_nofollow(dir: impl AsFd, name: &[u8], mode: Mode) -> FsResult<()> {
    let cname = CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: fchmodat2 reads the NUL-terminated string `cname`, which lives until the
    // call returns, and takes plain integers otherwise; it writes no memory of ours. The
    // descriptor is borrowed for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            dir.as_fd().as_raw_fd(),
            cname.as_ptr(),
            mode.bits(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    match nix::errno::Errno::result(r) {
        Ok(_) => Ok(()),
        Err(nix::errno::Errno::ENOSYS) => fchmodat(
            dir,
            OsStr::from_bytes(name),
            mode,
            FchmodatFlags::NoFollowSymlink,
        )
        .map_err(errno),
        Err(e) => Err(errno(e)),
    }
}

/// The kind in a stat's mode.
pub fn kind(st: &FileStat) -> Option<FileKind> {
    FileKind::from_mode(st.st_mode)
}

/// The VFS's attributes of a host file known as `ino`.
pub fn attr(st: &FileStat, ino: Ino) -> FsResult<Attr> {
    Ok(Attr {
        ino,
        kind: kind(st).ok_or(Errno::EIO)?,
        perm: st.st_mode & 0o7777,
        nlink: u32::try_from(st.st_nlink).unwrap_or(u32::MAX),
        uid: st.st_uid,
        gid: st.st_gid,
        size: u64::try_from(st.st_size).unwrap_or(0),
        blocks: u64::try_from(st.st_blocks).unwrap_or(0),
        atime: st.st_atime,
        mtime: st.st_mtime,
        ctime: st.st_ctime,
        rdev: (major(st.st_rdev) as u32, minor(st.st_rdev) as u32),
        blksize: u32::try_from(st.st_blksize).unwrap_or(4096),
    })
}

/// A host errno as the guest's (EIO for one the guest's list lacks).
pub fn errno(e: nix::errno::Errno) -> Errno {
    use nix::errno::Errno as H;
    match e {
        H::EPERM => Errno::EPERM,
        H::ENOENT => Errno::ENOENT,
        H::ENXIO => Errno::ENXIO,
        H::EBADF => Errno::EBADF,
        H::EACCES => Errno::EACCES,
        H::EBUSY | H::ETXTBSY => Errno::EBUSY,
        H::EEXIST => Errno::EEXIST,
        H::EXDEV => Errno::EXDEV,
        H::ENODEV => Errno::ENODEV,
        H::ENOTDIR => Errno::ENOTDIR,
        H::EISDIR => Errno::EISDIR,
        H::EINVAL => Errno::EINVAL,
        H::EFBIG => Errno::EFBIG,
        H::ENOSPC | H::EDQUOT => Errno::ENOSPC,
        H::EROFS => Errno::EROFS,
        H::EMLINK => Errno::EMLINK,
        H::ENAMETOOLONG => Errno::ENAMETOOLONG,
        H::ENOTEMPTY => Errno::ENOTEMPTY,
        H::ELOOP => Errno::ELOOP,
        H::EOPNOTSUPP => Errno::EOPNOTSUPP,
        _ => Errno::EIO,
    }
}

/// An I/O error's errno as the guest's.
pub fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error()
        .map_or(Errno::EIO, |n| errno(nix::errno::Errno::from_raw(n)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn nothing_resolves_out_of_the_directory() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("marker"), "outside").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("in");
        std::fs::create_dir(&inner).unwrap();
        std::fs::create_dir(inner.join("sub")).unwrap();
        symlink(outside.path().join("marker"), inner.join("abs")).unwrap();
        symlink("../../marker", inner.join("rel")).unwrap();
        symlink(outside.path(), inner.join("dirlink")).unwrap();
        let root = std::fs::File::open(&inner).unwrap();
        for (path, want) in [
            (&b"../in/sub"[..], Errno::EXDEV),
            (b"sub/../..", Errno::EXDEV),
            (b"dirlink/marker", Errno::ELOOP),
            (b"abs", Errno::ELOOP),
            (b"rel", Errno::ELOOP),
        ] {
            let got = open_beneath(&root, path, OFlag::O_RDONLY).map(|_| ());
            assert_eq!(got, Err(want), "{}", String::from_utf8_lossy(path));
        }
        // A final symlink opened O_PATH is the link itself.
        let fd = open_beneath(&root, b"abs", OFlag::O_PATH).unwrap();
        let st = nix::sys::stat::fstat(&fd).unwrap();
        assert_eq!(kind(&st), Some(FileKind::Symlink));
        assert!(open_beneath(&root, b"sub/..", OFlag::O_PATH).is_ok());
        assert_eq!(
            open_mount_dir(&root, b"../..", true).map(|_| ()),
            Err(nix::errno::Errno::EXDEV)
        );
        // chmod of a symlink's name leaves its target alone.
        let before = std::fs::metadata(outside.path().join("marker")).unwrap();
        let mode = Mode::from_bits_truncate(0o600);
        assert_eq!(chmod_nofollow(&root, b"abs", mode), Err(Errno::EOPNOTSUPP));
        let after = std::fs::metadata(outside.path().join("marker")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&before.permissions()),
            std::os::unix::fs::PermissionsExt::mode(&after.permissions())
        );
        chmod_nofollow(&root, b"sub", Mode::from_bits_truncate(0o700)).unwrap();
        let sub = std::fs::metadata(inner.join("sub")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&sub.permissions()) & 0o777,
            0o700
        );
    }
}
