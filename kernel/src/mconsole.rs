//! The mconsole server: the socket in the umid directory, request validation and the
//! replies as linux.uml sends them (reference mconsole.md §3-§6), and the command table
//! matched by prefix in the kernel's order, plus `umlfs` (uml_mount's hand-over of a
//! /dev/fuse descriptor, which comes with the request as SCM_RIGHTS). What each
//! command does to the machine is decided by the kernel loop (`kernel.rs`); this
//! module speaks the protocol.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};

use uml_proto::mconsole::{Reply, Request, WireError, REQUEST_LEN, VERSION, VERSION0_REPLY};

/// The exact `help` text (722 bytes).
pub const HELP: &str = "Commands: \n    version - Get kernel version \n    help - Print this message \n    halt - Halt UML \n    reboot - Reboot UML \n    config <dev>=<config> - Add a new device to UML;  \n\tsame syntax as command line \n    config <dev> - Query the configuration of a device \n    remove <dev> - Remove a device from UML \n    sysrq <letter> - Performs the SysRq action controlled by the letter \n    cad - invoke the Ctrl-Alt-Del handler \n    stop - pause the UML; it will do nothing until it receives a 'go' \n    go - continue the UML after a 'stop' \n    log <string> - make UML enter <string> into the kernel log\n    proc <file> - returns the contents of the UML's /proc/<file>\n    stack <pid> - returns the stack of the specified pid\n";

/// A parsed mconsole command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Version,
    Halt,
    Reboot,
    /// The text after `config`, leading spaces removed.
    Config(String),
    Remove(String),
    /// The key: first character after spaces (None: empty).
    Sysrq(Option<char>),
    Help,
    Cad,
    Stop,
    Go,
    /// The bytes after the first four (`log `).
    Log(Vec<u8>),
    Proc(String),
    Stack(String),
    /// `umlfs FD`: serve the filesystem over the FUSE descriptor sent with it (the
    /// text is the sender's descriptor number, meaningless here).
    Umlfs(String),
}

const TABLE: [&str; 14] = [
    "version", "halt", "reboot", "config", "remove", "sysrq", "help", "cad", "stop", "go", "log",
    "proc", "stack", "umlfs",
];

/// The first table entry that is a prefix of the request, as the kernel matches.
/// A device family's answer to `config` or `remove`: the error value (0 = OK, else 1
/// or a negative errno, as the kernel's drivers reply) and the text.
pub type Answer = (i32, String);

pub fn lookup(data: &[u8]) -> Option<Command> {
    let name = TABLE.iter().find(|n| data.starts_with(n.as_bytes()))?;
    let rest = String::from_utf8_lossy(&data[name.len()..]).into_owned();
    let args = rest.trim_start().to_owned();
    Some(match *name {
        "version" => Command::Version,
        "halt" => Command::Halt,
        "reboot" => Command::Reboot,
        "config" => Command::Config(args),
        "remove" => Command::Remove(args),
        "sysrq" => Command::Sysrq(args.chars().next()),
        "help" => Command::Help,
        "cad" => Command::Cad,
        "stop" => Command::Stop,
        "go" => Command::Go,
        "log" => Command::Log(data.get(4..).unwrap_or_default().to_vec()),
        "proc" => Command::Proc(args),
        "umlfs" => Command::Umlfs(args),
        _ => Command::Stack(args),
    })
}

/// What a datagram asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A command to run; `wrong_version` means the error reply goes first.
    Run {
        command: Option<Command>,
        wrong_version: bool,
    },
    /// Answer with this packet list and nothing else.
    Refuse(Vec<Reply>),
    /// A version-0 client: the raw headerless text.
    Version0,
    /// Not worth an answer.
    Ignore,
}

/// Classifies a request datagram as the kernel does.
pub fn classify(datagram: &[u8]) -> Incoming {
    match Request::parse(datagram) {
        Ok(req) => Incoming::Run {
            command: lookup(&req.command),
            wrong_version: req.version != VERSION,
        },
        Err(WireError::BadMagic(_)) => Incoming::Version0,
        Err(WireError::TooLarge(_)) => Incoming::Refuse(error("Request too large")),
        Err(_) => Incoming::Ignore,
    }
}

/// A one-packet error reply (err = 1).
pub fn error(text: &str) -> Vec<Reply> {
    Reply::pieces(1, text.as_bytes(), false)
}

/// A reply with an error value (0 = OK) and text, chunked.
pub fn answer(err: i32, text: &str) -> Vec<Reply> {
    Reply::pieces(err, text.as_bytes(), false)
}

/// A streamed reply: the pieces with `more` set, then an empty final packet.
pub fn streamed(lead: &[u8], body: &[u8]) -> Vec<Reply> {
    let mut out = Vec::new();
    if !lead.is_empty() {
        out.extend(Reply::pieces(0, lead, true));
    }
    if !body.is_empty() {
        out.extend(Reply::pieces(0, body, true));
    }
    out.push(Reply {
        err: 0,
        more: false,
        text: Vec::new(),
    });
    out
}

/// The bound socket.
#[derive(Debug)]
pub struct Server {
    sock: UnixDatagram,
    pub path: PathBuf,
}

impl Server {
    pub fn bind(path: &Path) -> io::Result<Server> {
        let _ = std::fs::remove_file(path);
        let sock = UnixDatagram::bind(path)?;
        sock.set_nonblocking(true)?;
        Ok(Server {
            sock,
            path: path.to_owned(),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// The next waiting request, if any, with the descriptor that came with it
    /// (SCM_RIGHTS: `umlfs` sends one; any other is closed by the caller dropping
    /// it). An unbound sender gets an unnamed address, which is never answered.
    pub fn receive(&self) -> Option<(Vec<u8>, SocketAddr, Option<OwnedFd>)> {
        let mut buf = [0u8; REQUEST_LEN];
        loop {
            let (n, from, fd) = match uml_proto::fdpass::recv_fd_from(self.sock.as_fd(), &mut buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            };
            let from = match from {
                Some(a) => a,
                // std has no constructor for an unnamed address: an unbound socket's own.
                None => match UnixDatagram::unbound().and_then(|s| s.local_addr()) {
                    Ok(a) => a,
                    Err(_) => continue,
                },
            };
            return Some((buf[..n].to_vec(), from, fd));
        }
    }

    /// Sends packets to the client; an unbound client gets nothing, and a full client
    /// queue drops the rest of the reply, as with linux.uml.
    pub fn send(&self, to: &SocketAddr, replies: &[Reply]) {
        if to.is_unnamed() {
            return;
        }
        for r in replies {
            let Ok(bytes) = r.to_vec() else { return };
            if self.sock.send_to_addr(&bytes, to).is_err() {
                return;
            }
        }
    }

    pub fn send_version0(&self, to: &SocketAddr) {
        if !to.is_unnamed() {
            let _ = self.sock.send_to_addr(VERSION0_REPLY, to);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &[u8], version: u32) -> Vec<u8> {
        let mut r = Request::new(text).unwrap();
        r.version = version;
        let mut buf = [0u8; REQUEST_LEN];
        let n = r.emit(&mut buf).unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn help_is_722_bytes() {
        assert_eq!(HELP.len(), 722);
    }

    #[test]
    fn prefix_lookup_in_kernel_order() {
        assert_eq!(lookup(b"versionXYZ"), Some(Command::Version));
        assert_eq!(lookup(b" version"), None);
        assert_eq!(lookup(b"sysrq   h"), Some(Command::Sysrq(Some('h'))));
        assert_eq!(lookup(b"sysrq"), Some(Command::Sysrq(None)));
        assert_eq!(lookup(b"log hello"), Some(Command::Log(b"hello".to_vec())));
        assert_eq!(lookup(b"config ubd0"), Some(Command::Config("ubd0".into())));
        assert_eq!(lookup(b"gone"), Some(Command::Go));
    }

    #[test]
    fn classify_requests() {
        assert_eq!(classify(b"\0\0\0\0junk"), Incoming::Version0);
        assert_eq!(
            classify(&req(b"help", 2)),
            Incoming::Run {
                command: Some(Command::Help),
                wrong_version: false
            }
        );
        assert_eq!(
            classify(&req(b"help", 3)),
            Incoming::Run {
                command: Some(Command::Help),
                wrong_version: true
            }
        );
        let mut big = req(b"x", 2);
        big[8..12].copy_from_slice(&600u32.to_ne_bytes());
        assert_eq!(classify(&big), Incoming::Refuse(error("Request too large")));
        assert_eq!(
            classify(&req(b"umlfs 7", 2)),
            Incoming::Run {
                command: Some(Command::Umlfs("7".into())),
                wrong_version: false
            }
        );
    }

    #[test]
    fn streamed_ends_with_empty_packet() {
        let r = streamed(b"\n", &[b'a'; 600]);
        assert_eq!(r.len(), 4);
        assert!(r[..3].iter().all(|p| p.more));
        assert!(!r[3].more && r[3].text.is_empty());
    }
}
