//! Setting up the switch's descriptors: the control socket (replacing a stale one,
//! refusing one a live switch uses, never deleting anything that is not a socket), the
//! data socket (abstract name, or a path with `-compat-v0`), and the `-tap` device.

use std::fmt;
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use uml_proto::switch::{bind_dgram, DataAddr};

/// Why the switch cannot start.
#[derive(Debug)]
pub enum SetupError {
    /// A live server answers on the socket path.
    InUse {
        what: &'static str,
        path: PathBuf,
    },
    /// Something that is not a socket sits at the path.
    NotASocket {
        what: &'static str,
        path: PathBuf,
    },
    /// A stale socket could not be removed or bound again.
    CannotReplace {
        what: &'static str,
        path: PathBuf,
        err: io::Error,
    },
    Bind {
        what: &'static str,
        path: PathBuf,
        err: io::Error,
    },
    Tap {
        name: String,
        err: io::Error,
    },
    Other(String),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::InUse { what, path } => {
                let p = path.display();
                write!(
                    f,
                    "The {what} socket '{p}' has another server attached to it\n\
                     You can either\n\tremove '{p}'\n\tor rerun with a different, unused filename for a socket"
                )
            }
            SetupError::NotASocket { what, path } => write!(
                f,
                "the {what} socket path '{}' is taken by something that is not a socket; \
                 it was left alone: choose another path",
                path.display()
            ),
            SetupError::CannotReplace { what, path, err } => write!(
                f,
                "bind: {err}\nThe {what} socket '{}' exists, isn't used, but couldn't be removed",
                path.display()
            ),
            SetupError::Bind { what, path, err } => {
                write!(
                    f,
                    "cannot bind the {what} socket '{}': {err}",
                    path.display()
                )
            }
            SetupError::Tap { name, err } => write!(f, "cannot attach tap device '{name}': {err}"),
            SetupError::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for SetupError {}

/// What sits at `path` when binding it said EADDRINUSE.
fn probe_existing(what: &'static str, path: &Path) -> Result<(), SetupError> {
    let meta = fs::symlink_metadata(path).map_err(|err| SetupError::Bind {
        what,
        path: path.to_owned(),
        err,
    })?;
    if !meta.file_type().is_socket() {
        return Err(SetupError::NotASocket {
            what,
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// Replaces a socket file at `path` that nobody serves any more: `connect` tries to
/// reach a server there (a live one is refused); on ECONNREFUSED the file is removed
/// and `bind` runs again.
fn replace_stale<T>(
    what: &'static str,
    path: &Path,
    connect: impl FnOnce() -> io::Result<()>,
    bind: impl FnOnce() -> io::Result<T>,
) -> Result<T, SetupError> {
    probe_existing(what, path)?;
    match connect() {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
        _ => {
            return Err(SetupError::InUse {
                what,
                path: path.to_owned(),
            })
        }
    }
    let again = |err| SetupError::CannotReplace {
        what,
        path: path.to_owned(),
        err,
    };
    fs::remove_file(path).map_err(again)?;
    bind().map_err(again)
}

/// Binds the control socket at `path` (non-blocking). A socket nobody listens on is
/// replaced; one with a live server is refused.
pub fn bind_control(path: &Path) -> Result<UnixListener, SetupError> {
    bind_listener("control", path)
}

/// Binds a stream socket (the control or `--mgmt` socket) at `path`, non-blocking, as
/// `bind_control` does.
pub fn bind_listener(what: &'static str, path: &Path) -> Result<UnixListener, SetupError> {
    let listener = match UnixListener::bind(path) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => replace_stale(
            what,
            path,
            || UnixStream::connect(path).map(drop),
            || UnixListener::bind(path),
        )?,
        Err(err) => {
            return Err(SetupError::Bind {
                what,
                path: path.to_owned(),
                err,
            })
        }
    };
    listener
        .set_nonblocking(true)
        .map_err(|e| SetupError::Other(format!("{what} socket: {e}")))?;
    Ok(listener)
}

/// The abstract data-socket name of this process: `{0, pad, pid, usec}`.
pub fn default_data_addr() -> DataAddr {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    DataAddr::abstract_name(std::process::id(), now.subsec_micros())
}

/// Binds the data socket: at `addr` (abstract), or at the path `path` for -compat-v0,
/// replacing a stale socket there.
pub fn bind_data(addr: &DataAddr, path: Option<&Path>) -> Result<OwnedFd, SetupError> {
    let what = "data";
    match bind_dgram(addr) {
        Ok(fd) => Ok(fd),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse && path.is_some() => {
            let path = path.expect("checked");
            replace_stale(
                what,
                path,
                || std::os::unix::net::UnixDatagram::unbound().and_then(|s| s.connect(path)),
                || bind_dgram(addr),
            )
        }
        Err(err) => Err(SetupError::Bind {
            what,
            path: path.map_or_else(|| PathBuf::from(addr.to_string()), Path::to_owned),
            err,
        }),
    }
}

/// Attaches to the tap device `name` (IFF_TAP|IFF_NO_PI) through the usual clone
/// device, non-blocking: frames are read and written as they are.
pub fn open_tap(name: &str) -> Result<OwnedFd, SetupError> {
    let fail = |err| SetupError::Tap {
        name: name.to_owned(),
        err,
    };
    if name.is_empty() {
        return Err(fail(io::Error::from(io::ErrorKind::InvalidInput)));
    }
    let clone = Path::new(uml_proto::tap::DEFAULT_CLONE_DEVICE);
    let dev = uml_proto::tap::attach(clone, name, uml_proto::tap::Kind::Tap)
        .map_err(|e| fail(e.into()))?;
    dev.set_nonblocking().map_err(fail)?;
    Ok(OwnedFd::from(dev.file))
}

/// `--vde DIR`: the directory layout of vde_switch, whose clients (libvdeplug) connect
/// to DIR/ctl and bind their own data sockets inside DIR. The directory is made if
/// missing (and removed again at exit when it is empty).
pub struct VdeDir {
    pub listener: UnixListener,
    dir: PathBuf,
    made: bool,
}

impl VdeDir {
    pub fn bind(dir: &Path) -> Result<VdeDir, SetupError> {
        let made = match fs::create_dir(dir) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(err) => {
                return Err(SetupError::Bind {
                    what: "VDE directory",
                    path: dir.to_owned(),
                    err,
                })
            }
        };
        if !fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
            return Err(SetupError::Other(format!(
                "VDE directory '{}' is not a directory",
                dir.display()
            )));
        }
        match bind_listener("VDE control", &dir.join("ctl")) {
            Ok(listener) => Ok(VdeDir {
                listener,
                dir: dir.to_owned(),
                made,
            }),
            Err(e) => {
                if made {
                    let _ = fs::remove_dir(dir);
                }
                Err(e)
            }
        }
    }

    /// Removes DIR/ctl, and DIR if this switch made it and nothing else is left in it.
    pub fn cleanup(&self) {
        let _ = fs::remove_file(self.dir.join("ctl"));
        if self.made {
            let _ = fs::remove_dir(&self.dir);
        }
    }
}

/// How long a send to a port whose receive queue is full waits for room before the
/// port counts as stalled (then its frames are dropped at once until it has room).
pub const PORT_SEND_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// A socket of its own for a client's port: bound to a fresh abstract name of this
/// process (what the reply names) and connected to the client's data socket `peer`, so
/// that only that socket can send to it and sends resolve no address. An abstract
/// `peer` the client bound shorter than it said is tried trimmed too; the address that
/// worked comes back third.
///
/// The socket is blocking with a send timeout of PORT_SEND_WAIT: a send to a full
/// receiver waits for room as the C switch's does, but never for long. Receives pass
/// MSG_DONTWAIT.
pub fn port_socket(peer: &DataAddr) -> io::Result<(OwnedFd, DataAddr, DataAddr)> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use nix::sys::socket::{setsockopt, sockopt::SendTimeout};
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    // The names of the shared data socket use microseconds (< 1,000,000): stay above.
    let n = 1_000_000 + NEXT.fetch_add(1, Ordering::Relaxed);
    let addr = DataAddr::abstract_name(std::process::id(), n);
    let fd = uml_proto::switch::bind_dgram(&addr)?;
    let to = match uml_proto::switch::connect_dgram(fd.as_fd(), peer) {
        Ok(()) => *peer,
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) && peer.is_abstract() => {
            let short = peer.trimmed();
            uml_proto::switch::connect_dgram(fd.as_fd(), &short)?;
            short
        }
        Err(e) => return Err(e),
    };
    fcntl(&fd, FcntlArg::F_SETFL(OFlag::empty())).map_err(io::Error::from)?;
    let wait = nix::sys::time::TimeVal::new(0, PORT_SEND_WAIT.as_micros() as i64);
    setsockopt(&fd, SendTimeout, &wait).map_err(io::Error::from)?;
    Ok((fd, addr, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_socket_is_replaced_and_a_live_one_refused() {
        let dir = std::env::temp_dir().join(format!("umlsw-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("ctl");
        let first = bind_control(&p).unwrap();
        assert!(matches!(bind_control(&p), Err(SetupError::InUse { .. })));
        drop(first); // the file stays, nobody listens
        assert!(p.exists());
        let second = bind_control(&p).unwrap();
        drop(second);
        fs::remove_file(&p).unwrap();
        fs::write(&p, b"precious").unwrap();
        let e = bind_control(&p).unwrap_err();
        assert!(matches!(e, SetupError::NotASocket { .. }), "{e}");
        assert_eq!(fs::read(&p).unwrap(), b"precious");
        fs::remove_dir_all(&dir).unwrap();
    }
}
