//! `--mgmt SOCKET`: a management socket in the spirit of vde_switch's console, for
//! programs rather than people. A client writes one command per line and gets one JSON
//! object per line back: `show` (everything), `ports`, `macs`, `uplinks`, `help`.
//! Nothing here blocks the switch: replies wait in a per-client buffer until the socket
//! takes them, a client whose backlog passes a limit is disconnected, and so is one that
//! sends a line longer than any command.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};

use crate::fasthash::FastMap;
use crate::sockets::{bind_listener, SetupError};

/// Longest command line accepted.
const MAX_LINE: usize = 256;
/// Replies a client has not read yet, at most (a full MAC table fits many times).
const MAX_BACKLOG: usize = 16 << 20;
/// At most this many management clients at once.
const MAX_CLIENTS: usize = 64;

struct Client {
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
}

/// The management listener and its clients.
pub struct Mgmt {
    listener: UnixListener,
    path: PathBuf,
    clients: FastMap<RawFd, Client>,
}

/// What the switch answers a command with (a JSON text, no newline).
pub type Answer<'a> = dyn FnMut(&str) -> String + 'a;

impl Mgmt {
    pub fn bind(path: &Path) -> Result<Mgmt, SetupError> {
        Ok(Mgmt {
            listener: bind_listener("management", path)?,
            path: path.to_owned(),
            clients: FastMap::default(),
        })
    }

    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }

    /// Accepts waiting clients and registers them with `epoll` under `base + fd`.
    pub fn accept(&mut self, epoll: &Epoll, base: u64) {
        while let Ok((stream, _)) = self.listener.accept() {
            if self.clients.len() >= MAX_CLIENTS || stream.set_nonblocking(true).is_err() {
                continue;
            }
            let fd = stream.as_raw_fd();
            let ev = EpollEvent::new(
                EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP,
                base + fd as u64,
            );
            if epoll.add(&stream, ev).is_ok() {
                self.clients.insert(
                    fd,
                    Client {
                        stream,
                        input: Vec::new(),
                        output: Vec::new(),
                    },
                );
            }
        }
    }

    /// Serves client `fd`: reads its commands, queues the answers, writes what the
    /// socket takes.
    pub fn serve(&mut self, fd: RawFd, epoll: &Epoll, base: u64, answer: &mut Answer<'_>) {
        let Some(c) = self.clients.get_mut(&fd) else {
            return;
        };
        let mut open = read_commands(c, answer);
        if open {
            open = flush(c);
        }
        if !open {
            if let Some(c) = self.clients.remove(&fd) {
                let _ = epoll.delete(&c.stream);
            }
            return;
        }
        let mut flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
        if !c.output.is_empty() {
            flags |= EpollFlags::EPOLLOUT;
        }
        let mut ev = EpollEvent::new(flags, base + fd as u64);
        let _ = epoll.modify(&c.stream, &mut ev);
    }

    /// Removes the socket file.
    pub fn cleanup(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads what the client sent and queues one answer per complete line. False when the
/// client is gone or misbehaves.
fn read_commands(c: &mut Client, answer: &mut Answer<'_>) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => c.input.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    while let Some(end) = c.input.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = c.input.drain(..=end).collect();
        let command = String::from_utf8_lossy(&line[..end]);
        c.output
            .extend_from_slice(answer(command.trim()).as_bytes());
        c.output.push(b'\n');
    }
    c.input.len() <= MAX_LINE && c.output.len() <= MAX_BACKLOG
}

/// Writes as much of the queued output as the socket takes. False when it is gone.
fn flush(c: &mut Client) -> bool {
    while !c.output.is_empty() {
        match c.stream.write(&c.output) {
            Ok(n) => {
                c.output.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}
