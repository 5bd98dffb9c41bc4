//! Whether a client may have frames sent to the data address it names. The switch
//! sends with its own credentials, so it accepts an address only if the requesting
//! process could send there itself (issue 15 item 7):
//! - the peer (SO_PEERCRED of its control connection) is root or the switch's own user;
//! - or the address is abstract and carries the peer's pid where linux.uml puts its
//!   own (`{0, pad, pid, usec}`, reference switch.md §3), as linux.uml, uml-kernel and
//!   the C switch's clients name their data sockets;
//! - or the address is a path to a socket the peer may write, in directories the peer
//!   may search (checked as its uid, gid and groups, SO_PEERGROUPS). The socket is then
//!   pinned: opened once (O_PATH) and sent to as `/proc/self/fd/N`, so swapping the
//!   path for a symlink afterwards cannot redirect the frames.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use uml_proto::logline::escape_path;
use uml_proto::switch::DataAddr;

/// Who is at the other end of a control connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (empty when the kernel cannot tell).
    pub groups: Vec<u32>,
}

/// A path data socket opened once: frames go to `addr` (`/proc/self/fd/N`), which
/// names the very socket that was checked for as long as `fd` stays open.
#[derive(Debug)]
pub struct Pinned {
    pub addr: DataAddr,
    _fd: OwnedFd,
}

/// The credentials of the process that connected `stream`.
pub fn peer_of(stream: BorrowedFd<'_>) -> io::Result<Peer> {
    let cred = getsockopt(&stream, PeerCredentials)?;
    Ok(Peer {
        pid: cred.pid(),
        uid: cred.uid(),
        gid: cred.gid(),
        groups: peer_groups(stream),
    })
}

fn peer_groups(stream: BorrowedFd<'_>) -> Vec<u32> {
    let mut groups = vec![0 as libc::gid_t; 1024];
    let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
    // SAFETY: SO_PEERGROUPS writes at most `len` bytes of gid_t values into `groups`,
    // a buffer of that size, and sets `len` to the bytes written. nix has no wrapper.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERGROUPS,
            groups.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    if r < 0 {
        return Vec::new();
    }
    groups.truncate(len as usize / std::mem::size_of::<libc::gid_t>());
    groups
}

/// What the peer may do with a file, by its mode bits as the kernel checks them.
fn may(peer: &Peer, meta: &fs::Metadata, bit: u32) -> bool {
    if peer.uid == 0 {
        return true;
    }
    let mode = meta.mode();
    let shift = if meta.uid() == peer.uid {
        6
    } else if meta.gid() == peer.gid || peer.groups.contains(&meta.gid()) {
        3
    } else {
        0
    };
    mode & (bit << shift) != 0
}

const WRITE: u32 = 0o2;
const SEARCH: u32 = 0o1;

/// Decides whether frames may go to `addr` for `peer`; `own_uid` is the switch's
/// effective uid. Ok(Some) says where to send instead of `addr` (a pinned path).
/// The error is the reason, for the log.
pub fn check(peer: &Peer, addr: &DataAddr, own_uid: u32) -> Result<Option<Pinned>, String> {
    if peer.uid == 0 || peer.uid == own_uid {
        return Ok(None);
    }
    if addr.is_abstract() {
        let path = addr.sun_path();
        let named = path
            .get(4..8)
            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        return if peer.pid > 0 && named == Some(peer.pid) {
            Ok(None)
        } else {
            Err(format!(
                "the abstract data address {addr} does not carry the pid of the requesting \
                 process ({}, uid {})",
                peer.pid, peer.uid
            ))
        };
    }
    let path = addr.sun_path();
    let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
    let path = Path::new(OsStr::from_bytes(&path[..end]));
    if path.as_os_str().is_empty() {
        return Err("an unnamed data address".into());
    }
    pin_path(peer, path)
}

fn pin_path(peer: &Peer, path: &Path) -> Result<Option<Pinned>, String> {
    let shown = escape_path(path);
    let refuse = |why: String| Err(format!("data socket '{shown}' (uid {}): {why}", peer.uid));
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => return refuse(e.to_string()),
    };
    let fd = OwnedFd::from(file);
    let proc_path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    let meta = match fs::metadata(&proc_path) {
        Ok(m) => m,
        Err(e) => return refuse(format!("cannot stat: {e}")),
    };
    if !std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
        return refuse("not a socket".into());
    }
    if !may(peer, &meta, WRITE) {
        return refuse("the requesting user may not write to it".into());
    }
    // Where the socket really is (symlinks resolved): every directory above it must be
    // searchable by the peer.
    let real = match fs::read_link(&proc_path) {
        Ok(r) if r.is_absolute() && !r.as_os_str().as_bytes().ends_with(b" (deleted)") => r,
        Ok(r) => return refuse(format!("unreachable ({})", escape_path(&r))),
        Err(e) => return refuse(format!("cannot resolve: {e}")),
    };
    for dir in real.ancestors().skip(1) {
        match fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() && may(peer, &m, SEARCH) => {}
            Ok(_) => {
                return refuse(format!(
                    "the requesting user may not search '{}'",
                    escape_path(dir)
                ))
            }
            Err(e) => return refuse(format!("'{}': {e}", escape_path(dir))),
        }
    }
    let addr = DataAddr::path(&proc_path).ok_or_else(|| "descriptor path too long".to_string())?;
    Ok(Some(Pinned { addr, _fd: fd }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn nobody() -> Peer {
        Peer {
            pid: 4242,
            uid: 65534,
            gid: 65534,
            groups: vec![],
        }
    }

    #[test]
    fn abstract_addresses_must_carry_the_peer_pid() {
        let p = nobody();
        assert!(check(&p, &DataAddr::abstract_name(4242, 7), 0).is_ok());
        let e = check(&p, &DataAddr::abstract_name(4243, 7), 0).unwrap_err();
        assert!(e.contains("does not carry the pid"), "{e}");
        let short = DataAddr::from_raw(&[1, 0, 0, b'x']);
        assert!(check(&p, &short, 0).is_err());
        // Root and the switch's own user are trusted with any address.
        let mut root = p.clone();
        root.uid = 0;
        assert!(check(&root, &DataAddr::abstract_name(1, 1), 0).is_ok());
        assert!(check(&p, &DataAddr::abstract_name(1, 1), 65534).is_ok());
    }

    #[test]
    fn path_addresses_need_write_on_the_socket_and_search_above_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        let sock = open.join("s");
        let _s = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
        let p = nobody();
        let addr = DataAddr::path(&sock).unwrap();
        // Mode 0755 socket owned by root: nobody may not write it.
        fs::set_permissions(&sock, fs::Permissions::from_mode(0o755)).unwrap();
        let e = check(&p, &addr, 0).unwrap_err();
        assert!(e.contains("may not write"), "{e}");
        fs::set_permissions(&sock, fs::Permissions::from_mode(0o777)).unwrap();
        let pinned = check(&p, &addr, 0).unwrap().expect("pinned");
        assert!(pinned.addr.to_string().starts_with("/proc/self/fd/"));
        // The same socket behind a directory nobody may not search.
        fs::set_permissions(&open, fs::Permissions::from_mode(0o700)).unwrap();
        let e = check(&p, &addr, 0).unwrap_err();
        assert!(e.contains("may not search"), "{e}");
        // A symlink to it from a searchable place does not help.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&sock, &link).unwrap();
        let e = check(&p, &DataAddr::path(&link).unwrap(), 0).unwrap_err();
        assert!(e.contains("may not search"), "{e}");
        // A regular file is no socket.
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        let file = open.join("f");
        fs::write(&file, b"x").unwrap();
        let e = check(&p, &DataAddr::path(&file).unwrap(), 0).unwrap_err();
        assert!(e.contains("not a socket"), "{e}");
    }
}
