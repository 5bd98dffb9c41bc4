//! The `port:PORT` channel, as linux.uml runs it (reference helpers.md §5): listen on
//! TCP PORT; for each connection run `in.telnetd -L <port-helper>` with the connection
//! on fds 0-2 and one end of a datagram socketpair on fd 3; port-helper sends back its
//! pid and its terminal (the pty telnetd made) with SCM_RIGHTS, and that terminal
//! becomes the line. Several lines may share one port: each connection goes to the
//! first line still waiting.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Where linux.uml looks for port-helper when `UML_PORT_HELPER` is not set.
const DEFAULT_HELPER: &str = "/usr/lib/uml/port-helper";
/// Appended to PATH when looking for in.telnetd, as linux.uml does.
const UML_LIB: &str = "/usr/lib/uml";

/// Listens on `port` on every address.
pub fn listen(port: u16) -> io::Result<TcpListener> {
    let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// The port-helper to run: `$UML_PORT_HELPER` or the library path.
pub fn helper_path(env_helper: Option<OsString>) -> PathBuf {
    env_helper
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_HELPER))
}

/// A helper program (in.telnetd, or a terminal emulator) whose port-helper will send a
/// terminal over `sock`.
#[derive(Debug)]
pub struct Connection {
    child: Child,
    sock: UnixDatagram,
    helper_pid: Option<i32>,
    /// A filesystem socket to remove when done (the xterm channel's).
    socket_path: Option<PathBuf>,
}

impl Connection {
    /// Runs `in.telnetd -L helper` on the accepted connection.
    pub fn start(
        stream: TcpStream,
        helper: &std::path::Path,
        path_env: Option<OsString>,
    ) -> io::Result<Connection> {
        std::fs::metadata(helper).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "error accessing port-helper executable at {}: {e}",
                    helper.display()
                ),
            )
        })?;
        stream.set_nonblocking(false)?;
        let (ours, theirs) = UnixDatagram::pair()?;
        theirs.shutdown(std::net::Shutdown::Read)?;
        ours.set_nonblocking(true)?;
        let mut path = path_env.unwrap_or_default();
        if !path.is_empty() {
            path.push(":");
        }
        path.push(UML_LIB);
        // in.telnetd is found through PATH with /usr/lib/uml appended.
        let program = which("in.telnetd", &path).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("in.telnetd not found in {}", path.to_string_lossy()),
            )
        })?;
        let fd3 = theirs.as_raw_fd();
        let mut cmd = Command::new(program);
        cmd.arg0("in.telnetd")
            .arg("-L")
            .arg(helper)
            .env("PATH", &path)
            .stdin(Stdio::from(OwnedFd::from(stream.try_clone()?)))
            .stdout(Stdio::from(OwnedFd::from(stream.try_clone()?)))
            .stderr(Stdio::from(OwnedFd::from(stream)));
        // SAFETY: between fork and exec only dup2, which is async-signal-safe, runs; it
        // puts the socketpair end on fd 3 without close-on-exec.
        unsafe {
            cmd.pre_exec(move || {
                let rc = if fd3 == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd3, 3)
                };
                if rc < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let telnetd = cmd.spawn()?;
        drop(theirs);
        Ok(Connection::new(telnetd, ours, None))
    }

    /// Wraps a started helper program and the socket its port-helper sends to.
    pub fn new(child: Child, sock: UnixDatagram, socket_path: Option<PathBuf>) -> Connection {
        Connection {
            child,
            sock,
            helper_pid: None,
            socket_path,
        }
    }

    /// The socket to poll for port-helper's message.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.sock.as_raw_fd()
    }

    /// Takes port-helper's message: its pid and the terminal. Ok(None) until it came.
    pub fn receive_terminal(&mut self) -> io::Result<Option<File>> {
        let mut buf = [0u8; 16];
        match uml_proto::fdpass::recv_fd(self.sock.as_fd(), &mut buf) {
            Ok((n, fd)) => {
                self.helper_pid =
                    (n == 4).then(|| i32::from_ne_bytes(buf[..4].try_into().expect("4 bytes")));
                match fd {
                    Some(fd) => Ok(Some(File::from(fd))),
                    None => Err(io::Error::other("rcv_fd didn't receive anything")),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(pid) = self.helper_pid.filter(|&p| p > 0) {
            // port-helper pauses until the kernel kills it; the pid is the one it sent.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(p) = &self.socket_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The first `name` in the colon-separated `path`.
fn which(name: &str, path: &OsString) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
