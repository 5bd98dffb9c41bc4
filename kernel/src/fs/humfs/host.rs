//! humfs's access to the host tree, by descriptor only. The tree belongs to a user who
//! may plant symlinks or swap directories while the kernel runs, so every path is
//! opened from the descriptor held for the mount's top directory with openat2
//! (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS: no `..` out, no symlink or magic link
//! followed anywhere on the way), and the last component is then acted on relative to
//! its directory's descriptor without following it. Nothing that is not a regular file
//! is ever opened for reading or writing (a device node or fifo left in data/ stays
//! shut).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{openat2, readlinkat, renameat, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, utimensat, FileStat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{linkat, mkfifoat, symlinkat, unlinkat, UnlinkatFlags};

/// Longest metadata or superblock file read (they are one or four short lines).
const SMALL_FILE_MAX: usize = 4096;

fn beneath() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS
}

/// The host kind bits of a stat.
pub fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

fn io_err(e: nix::Error) -> io::Error {
    io::Error::from(e)
}

/// `rel` split into its directory (relative to the top, `.` for the top itself) and
/// its last component.
fn split(rel: &Path) -> io::Result<(&Path, &OsStr)> {
    let name = rel
        .file_name()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let dir = rel.parent().filter(|p| !p.as_os_str().is_empty());
    Ok((dir.unwrap_or(Path::new(".")), name))
}

/// The top directory of a humfs tree, held open for the mount.
pub struct Top {
    fd: OwnedFd,
}

impl Top {
    /// Opens the tree's top directory (the path the mount was given; it is the
    /// mounting user's choice, so it may go through symlinks).
    pub fn open(path: &Path) -> io::Result<Top> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err)?;
        Ok(Top { fd })
    }

    fn open_beneath(&self, rel: &Path, flags: OFlag, mode: Mode) -> io::Result<OwnedFd> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .mode(mode)
            .resolve(beneath());
        openat2(&self.fd, rel, how).map_err(io_err)
    }

    /// Directory `rel` (relative to the top; empty for the top).
    pub fn dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        self.open_beneath(rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())
    }

    /// The directory holding `rel`, and `rel`'s last component.
    fn parent<'a>(&self, rel: &'a Path) -> io::Result<(OwnedFd, &'a OsStr)> {
        let (dir, name) = split(rel)?;
        Ok((self.dir(dir)?, name))
    }

    /// lstat of `rel` (the top itself when empty).
    pub fn lstat(&self, rel: &Path) -> io::Result<FileStat> {
        if rel.as_os_str().is_empty() {
            return fstat(&self.fd).map_err(io_err);
        }
        let (dir, name) = self.parent(rel)?;
        fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(io_err)
    }

    /// Opens regular file `rel` for reading (and writing when it can), refusing
    /// anything else without opening it.
    pub fn open_file(&self, rel: &Path, write: bool) -> io::Result<File> {
        let st = self.lstat(rel)?;
        if kind(&st) != SFlag::S_IFREG {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        let access = if write {
            OFlag::O_RDWR
        } else {
            OFlag::O_RDONLY
        };
        let fd = self.open_beneath(rel, access | OFlag::O_NONBLOCK, Mode::empty())?;
        let now = fstat(&fd).map_err(io_err)?;
        if kind(&now) != SFlag::S_IFREG || (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(File::from(fd))
    }

    /// The whole of small regular file `rel`; None when it does not exist, EFBIG when
    /// it is over [`SMALL_FILE_MAX`] bytes.
    pub fn read_small(&self, rel: &Path) -> io::Result<Option<Vec<u8>>> {
        let file = match self.open_file(rel, false) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut buf = vec![0u8; SMALL_FILE_MAX + 1];
        let mut len = 0;
        while len < buf.len() {
            match file.read_at(&mut buf[len..], len as u64)? {
                0 => break,
                n => len += n,
            }
        }
        if len > SMALL_FILE_MAX {
            return Err(io::Error::from_raw_os_error(libc::EFBIG));
        }
        buf.truncate(len);
        Ok(Some(buf))
    }

    /// Makes `rel` a regular file holding exactly `bytes`, in place (so a metadata
    /// file shared by hard links stays shared); never follows or opens anything else.
    pub fn write_small(&self, rel: &Path, bytes: &[u8]) -> io::Result<()> {
        let file = match self.open_file(rel, true) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => self.create_file(rel)?,
            Err(e) => return Err(e),
        };
        // Written over the old text, then cut: a crash in between leaves no empty file.
        file.write_all_at(bytes, 0)?;
        file.set_len(bytes.len() as u64)
    }

    /// Replaces regular file `rel` (not shared by hard links) with one holding
    /// `bytes`, atomically: written beside it under a temporary name, then renamed.
    pub fn replace_small(&self, rel: &Path, bytes: &[u8]) -> io::Result<()> {
        let (dir, name) = split(rel)?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(".humfs-new");
        let tmp = dir.join(tmp_name);
        match self.unlink(&tmp) {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(e),
            _ => {}
        }
        let file = self.create_file(&tmp)?;
        let written = file.write_all_at(bytes, 0).and_then(|()| file.sync_data());
        let renamed = written.and_then(|()| self.rename(&tmp, rel));
        if renamed.is_err() {
            let _ = self.unlink(&tmp);
        }
        renamed
    }

    /// Creates regular file `rel` (it must not exist).
    pub fn create_file(&self, rel: &Path) -> io::Result<File> {
        let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL;
        let fd = self.open_beneath(rel, flags, Mode::from_bits_truncate(0o644))?;
        Ok(File::from(fd))
    }

    pub fn mkdir(&self, rel: &Path) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        mkdirat(&dir, name, Mode::from_bits_truncate(0o755)).map_err(io_err)
    }

    pub fn mkfifo(&self, rel: &Path) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        mkfifoat(&dir, name, Mode::from_bits_truncate(0o644)).map_err(io_err)
    }

    pub fn symlink(&self, target: &[u8], rel: &Path) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        symlinkat(OsStr::from_bytes(target), &dir, name).map_err(io_err)
    }

    pub fn readlink(&self, rel: &Path) -> io::Result<Vec<u8>> {
        let (dir, name) = self.parent(rel)?;
        Ok(readlinkat(&dir, name).map_err(io_err)?.as_bytes().to_vec())
    }

    /// Removes non-directory `rel`.
    pub fn unlink(&self, rel: &Path) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir).map_err(io_err)
    }

    /// Removes empty directory `rel`.
    pub fn rmdir(&self, rel: &Path) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        unlinkat(&dir, name, UnlinkatFlags::RemoveDir).map_err(io_err)
    }

    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (odir, oname) = self.parent(from)?;
        let (ndir, nname) = self.parent(to)?;
        renameat(&odir, oname, &ndir, nname).map_err(io_err)
    }

    /// Hard link `to` to `from` (not following a symlink).
    pub fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (odir, oname) = self.parent(from)?;
        let (ndir, nname) = self.parent(to)?;
        linkat(&odir, oname, &ndir, nname, AtFlags::empty()).map_err(io_err)
    }

    /// Sets `rel`'s access and modification times (seconds; None leaves one alone),
    /// not following a symlink.
    pub fn set_times(&self, rel: &Path, atime: Option<i64>, mtime: Option<i64>) -> io::Result<()> {
        let spec = |t: Option<i64>| match t {
            Some(s) => TimeSpec::new(s, 0),
            None => TimeSpec::UTIME_OMIT,
        };
        if rel.as_os_str().is_empty() {
            return utimensat(
                &self.fd,
                ".",
                &spec(atime),
                &spec(mtime),
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(io_err);
        }
        let (dir, name) = self.parent(rel)?;
        utimensat(
            &dir,
            name,
            &spec(atime),
            &spec(mtime),
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(io_err)
    }

    /// The names in directory `rel` (without `.` and `..`).
    pub fn list(&self, rel: &Path) -> io::Result<Vec<Vec<u8>>> {
        let fd = self.dir(rel)?;
        let mut dir = nix::dir::Dir::from_fd(fd).map_err(io_err)?;
        let mut names = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(io_err)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        Ok(names)
    }
}

/// `base` joined with `rel` (for data/ and the metadata trees).
pub fn under(base: &str, rel: &Path) -> PathBuf {
    Path::new(base).join(rel)
}

/// Whether a descriptor refers to host file (device, inode) `id`.
pub fn same_file(file: &impl AsFd, id: (u64, u64)) -> bool {
    fstat(file.as_fd()).is_ok_and(|now| (now.st_dev, now.st_ino) == id)
}
