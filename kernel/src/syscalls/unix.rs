//! AF_UNIX sockets inside the guest: stream (and seqpacket, as a stream) connections
//! made of two byte channels, datagram sockets with an inbox each, socketpair, and the
//! names bound to them (`Registry`: absolute paths and abstract names; no file is made
//! in the VFS for a bound path). Nothing waits here: a call that would wait answers
//! `SockErr::Wait` and the sentry tries it again.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};

use super::fdtable::PIPE_CAPACITY;
use super::sentry::Sentry;
use super::socket::Addr;
use crate::fs::vfs::Loc;
use crate::machine::Machine;
use crate::net::inet::{SockErr, SockResult};

const EINVAL: i64 = 22;
const ENOENT: i64 = 2;
const EPIPE: i64 = 32;
const EADDRINUSE: i64 = 98;
const EISCONN: i64 = 106;
const ENOTCONN: i64 = 107;
const ECONNREFUSED: i64 = 111;
const EOPNOTSUPP: i64 = 95;
/// Datagrams an inbox holds before senders wait.
const INBOX: usize = 64;
/// Bytes an inbox holds before senders wait.
const INBOX_BYTES: usize = 256 * 1024;
/// The largest datagram (EMSGSIZE beyond).
const MAX_DGRAM: usize = 64 * 1024;
const EMSGSIZE: i64 = 90;

fn fail<T>(e: i64) -> SockResult<T> {
    Err(SockErr::Errno(e))
}

/// One direction of a stream connection.
#[derive(Debug, Default)]
pub struct Chan {
    buf: VecDeque<u8>,
    /// The writing end closed (or shut down): readers see end of file.
    write_closed: bool,
    /// The reading end closed: writers get EPIPE.
    read_closed: bool,
}

type ChanRef = Rc<RefCell<Chan>>;

/// A datagram socket's received messages: (data, sender's name).
#[derive(Debug, Default)]
pub struct Inbox {
    msgs: VecDeque<(Vec<u8>, Vec<u8>)>,
}

/// A listening stream socket's connections not accepted yet.
#[derive(Debug)]
pub struct Listener {
    backlog: usize,
    queue: VecDeque<Unix>,
}

/// The names bound in the guest.
#[derive(Debug, Default)]
pub struct Registry {
    stream: HashMap<Vec<u8>, Weak<RefCell<Listener>>>,
    dgram: HashMap<Vec<u8>, Weak<RefCell<Inbox>>>,
    /// Names bound by stream sockets not listening yet.
    reserved: HashMap<Vec<u8>, ()>,
}

impl Registry {
    /// /proc/net/unix: the bound names (listening streams and datagram sockets); an
    /// abstract name shows with `@` for its leading NUL, as Linux prints it. The
    /// listeners' twins of TCP ports are the kernel's own and not shown.
    pub fn listing(&self) -> String {
        let mut out = String::from("Num       RefCount Protocol Flags    Type St Inode Path\n");
        let mut rows: Vec<(&Vec<u8>, u32, u16)> = Vec::new();
        for (name, w) in &self.stream {
            if w.strong_count() > 0 && !name.starts_with(b"\0inet-tcp:") {
                rows.push((name, 0x0001_0000, 1));
            }
        }
        for (name, w) in &self.dgram {
            if w.strong_count() > 0 {
                rows.push((name, 0, 2));
            }
        }
        rows.sort();
        for (i, (name, flags, ty)) in rows.into_iter().enumerate() {
            let mut path = String::from_utf8_lossy(name).into_owned();
            if path.starts_with('\0') {
                path.replace_range(..1, "@");
            }
            out.push_str(&format!(
                "{:016x}: 00000002 00000000 {flags:08x} {ty:04x} 01 {:>5} {path}\n",
                i + 1,
                i + 1
            ));
        }
        out
    }

    fn taken(&self, name: &[u8]) -> bool {
        self.stream.get(name).is_some_and(|w| w.strong_count() > 0)
            || self.dgram.get(name).is_some_and(|w| w.strong_count() > 0)
            || self.reserved.contains_key(name)
    }
}

#[derive(Debug)]
pub enum Stream {
    Idle,
    Listening(Rc<RefCell<Listener>>),
    Connected {
        rx: ChanRef,
        tx: ChanRef,
        rd_shut: bool,
        wr_shut: bool,
    },
}

#[derive(Debug)]
pub enum Peer {
    Name(Vec<u8>),
    /// The other end of a socketpair.
    Pair(Weak<RefCell<Inbox>>),
}

/// A unix socket.
#[derive(Debug)]
pub enum Unix {
    Stream {
        name: Option<Vec<u8>>,
        peer_name: Option<Vec<u8>>,
        st: Stream,
    },
    Dgram {
        name: Option<Vec<u8>>,
        inbox: Rc<RefCell<Inbox>>,
        peer: Option<Peer>,
    },
}

/// The abstract name under which a TCP listener on `port` takes connections from the
/// guest itself.
pub fn inet_name(port: u16) -> Vec<u8> {
    format!("\0inet-tcp:{port}").into_bytes()
}

/// A bound name: absolute (from the caller's cwd) or abstract (leading NUL) as given.
pub fn full_path(m: &mut Machine, cwd: Option<Loc>, path: &[u8]) -> Result<Vec<u8>, i64> {
    if path.is_empty() {
        return Err(-EINVAL);
    }
    if path[0] == 0 || path[0] == b'/' {
        return Ok(path.to_vec());
    }
    let cwd = cwd.ok_or(-EINVAL)?;
    Sentry::absolute(m, cwd, path)
}

fn connected(rx: ChanRef, tx: ChanRef, peer_name: Option<Vec<u8>>, name: Option<Vec<u8>>) -> Unix {
    Unix::Stream {
        name,
        peer_name,
        st: Stream::Connected {
            rx,
            tx,
            rd_shut: false,
            wr_shut: false,
        },
    }
}

impl Unix {
    pub fn stream() -> Unix {
        Unix::Stream {
            name: None,
            peer_name: None,
            st: Stream::Idle,
        }
    }

    pub fn dgram() -> Unix {
        Unix::Dgram {
            name: None,
            inbox: Rc::default(),
            peer: None,
        }
    }

    pub fn stream_pair() -> (Unix, Unix) {
        let a: ChanRef = Rc::default();
        let b: ChanRef = Rc::default();
        (
            connected(a.clone(), b.clone(), None, None),
            connected(b, a, None, None),
        )
    }

    pub fn dgram_pair() -> (Unix, Unix) {
        let (a, b) = (Unix::dgram(), Unix::dgram());
        let (Unix::Dgram { inbox: ia, .. }, Unix::Dgram { inbox: ib, .. }) = (&a, &b) else {
            unreachable!("both are datagram sockets");
        };
        let (wa, wb) = (Rc::downgrade(ia), Rc::downgrade(ib));
        let set = |u: Unix, w| match u {
            Unix::Dgram { name, inbox, .. } => Unix::Dgram {
                name,
                inbox,
                peer: Some(Peer::Pair(w)),
            },
            other => other,
        };
        (set(a, wb), set(b, wa))
    }

    pub fn bind(&mut self, reg: &mut Registry, _m: &mut Machine, path: Vec<u8>) -> Result<(), i64> {
        if reg.taken(&path) {
            return Err(-EADDRINUSE);
        }
        match self {
            Unix::Stream { name: n @ None, .. } => {
                reg.reserved.insert(path.clone(), ());
                *n = Some(path);
            }
            Unix::Dgram {
                name: n @ None,
                inbox,
                ..
            } => {
                reg.dgram.insert(path.clone(), Rc::downgrade(inbox));
                *n = Some(path);
            }
            _ => return Err(-EINVAL),
        }
        Ok(())
    }

    pub fn listen(&mut self, reg: &mut Registry, backlog: usize) -> Result<(), i64> {
        let Unix::Stream { name, st, .. } = self else {
            return Err(-EOPNOTSUPP);
        };
        match st {
            Stream::Listening(l) => {
                l.borrow_mut().backlog = backlog;
                Ok(())
            }
            Stream::Idle => {
                let Some(n) = name.clone() else {
                    return Err(-EINVAL); // autobind is not done
                };
                let l = Rc::new(RefCell::new(Listener {
                    backlog,
                    queue: VecDeque::new(),
                }));
                reg.reserved.remove(&n);
                reg.stream.insert(n, Rc::downgrade(&l));
                *st = Stream::Listening(l);
                Ok(())
            }
            Stream::Connected { .. } => Err(-EINVAL),
        }
    }

    pub fn is_listening(&self) -> bool {
        matches!(
            self,
            Unix::Stream {
                st: Stream::Listening(_),
                ..
            }
        )
    }

    pub fn accept(&mut self) -> SockResult<Unix> {
        let Unix::Stream {
            st: Stream::Listening(l),
            ..
        } = self
        else {
            return fail(EINVAL);
        };
        l.borrow_mut().queue.pop_front().ok_or(SockErr::Wait)
    }

    pub fn connect(&mut self, reg: &mut Registry, path: &[u8]) -> SockResult<()> {
        match self {
            Unix::Stream {
                name,
                peer_name,
                st,
            } => {
                match st {
                    Stream::Idle => {}
                    Stream::Connected { .. } => return fail(EISCONN),
                    Stream::Listening(_) => return fail(EINVAL),
                }
                let Some(l) = reg.stream.get(path).and_then(Weak::upgrade) else {
                    return fail(if reg.taken(path) {
                        ECONNREFUSED
                    } else {
                        ENOENT
                    });
                };
                let mut l = l.borrow_mut();
                if l.queue.len() >= l.backlog {
                    return Err(SockErr::Wait);
                }
                let (c2s, s2c): (ChanRef, ChanRef) = (Rc::default(), Rc::default());
                l.queue.push_back(connected(
                    c2s.clone(),
                    s2c.clone(),
                    name.clone(),
                    Some(path.to_vec()),
                ));
                *peer_name = Some(path.to_vec());
                *st = Stream::Connected {
                    rx: s2c,
                    tx: c2s,
                    rd_shut: false,
                    wr_shut: false,
                };
                Ok(())
            }
            Unix::Dgram { peer, .. } => {
                if reg.dgram.get(path).and_then(Weak::upgrade).is_none() {
                    return fail(if reg.taken(path) {
                        ECONNREFUSED
                    } else {
                        ENOENT
                    });
                }
                *peer = Some(Peer::Name(path.to_vec()));
                Ok(())
            }
        }
    }

    pub fn send(&mut self, reg: &mut Registry, data: &[u8], to: Option<Addr>) -> SockResult<usize> {
        match self {
            Unix::Stream { st, .. } => {
                let Stream::Connected { tx, wr_shut, .. } = st else {
                    return fail(ENOTCONN);
                };
                let mut c = tx.borrow_mut();
                if c.read_closed || *wr_shut {
                    return fail(EPIPE);
                }
                let room = PIPE_CAPACITY.saturating_sub(c.buf.len());
                if room == 0 && !data.is_empty() {
                    return Err(SockErr::Wait);
                }
                let n = room.min(data.len());
                c.buf.extend(&data[..n]);
                Ok(n)
            }
            Unix::Dgram { name, peer, .. } => {
                if data.len() > MAX_DGRAM {
                    return fail(EMSGSIZE);
                }
                let target = match (to, peer) {
                    (Some(Addr::Unix(p)), _) => reg.dgram.get(&p).and_then(Weak::upgrade),
                    (Some(_), _) => return fail(EINVAL),
                    (None, Some(Peer::Name(p))) => reg.dgram.get(p).and_then(Weak::upgrade),
                    (None, Some(Peer::Pair(w))) => w.upgrade(),
                    (None, None) => return fail(ENOTCONN),
                };
                let Some(inbox) = target else {
                    return fail(ECONNREFUSED);
                };
                let mut inbox = inbox.borrow_mut();
                let held: usize = inbox.msgs.iter().map(|m| m.0.len()).sum();
                if inbox.msgs.len() >= INBOX || held + data.len() > INBOX_BYTES {
                    return Err(SockErr::Wait);
                }
                inbox
                    .msgs
                    .push_back((data.to_vec(), name.clone().unwrap_or_default()));
                Ok(data.len())
            }
        }
    }

    pub fn recv(&mut self, max: usize, peek: bool) -> SockResult<(Vec<u8>, Option<Addr>, usize)> {
        match self {
            Unix::Stream { st, .. } => {
                let Stream::Connected { rx, rd_shut, .. } = st else {
                    return fail(ENOTCONN);
                };
                let mut c = rx.borrow_mut();
                if c.buf.is_empty() {
                    if c.write_closed || *rd_shut {
                        return Ok((Vec::new(), None, 0));
                    }
                    return Err(SockErr::Wait);
                }
                let n = c.buf.len().min(max);
                let data: Vec<u8> = if peek {
                    c.buf.iter().take(n).copied().collect()
                } else {
                    c.buf.drain(..n).collect()
                };
                Ok((data, None, n))
            }
            Unix::Dgram { inbox, .. } => {
                let mut ib = inbox.borrow_mut();
                let msg = if peek {
                    ib.msgs.front().cloned()
                } else {
                    ib.msgs.pop_front()
                };
                let Some((mut data, from)) = msg else {
                    return Err(SockErr::Wait);
                };
                let full = data.len();
                data.truncate(max);
                Ok((data, Some(Addr::Unix(from)), full))
            }
        }
    }

    pub fn shutdown(&mut self, how: u64) -> Result<(), i64> {
        let Unix::Stream {
            st:
                Stream::Connected {
                    rx,
                    tx,
                    rd_shut,
                    wr_shut,
                },
            ..
        } = self
        else {
            return match self {
                Unix::Dgram { .. } => Ok(()),
                _ => Err(-ENOTCONN),
            };
        };
        if how != 1 {
            *rd_shut = true;
            rx.borrow_mut().read_closed = true;
        }
        if how != 0 {
            *wr_shut = true;
            tx.borrow_mut().write_closed = true;
        }
        Ok(())
    }

    /// poll's bits.
    pub fn readiness(&self) -> i16 {
        match self {
            Unix::Stream { st, .. } => match st {
                Stream::Idle => 4,
                Stream::Listening(l) => {
                    if l.borrow().queue.is_empty() {
                        0
                    } else {
                        1
                    }
                }
                Stream::Connected {
                    rx, tx, rd_shut, ..
                } => {
                    let (r, t) = (rx.borrow(), tx.borrow());
                    let mut bits = 0;
                    if !r.buf.is_empty() || r.write_closed || *rd_shut {
                        bits |= 1;
                    }
                    if t.read_closed {
                        bits |= 4 | 8;
                    } else if t.buf.len() < PIPE_CAPACITY {
                        bits |= 4;
                    }
                    if r.write_closed && t.read_closed {
                        bits |= 16;
                    }
                    bits
                }
            },
            Unix::Dgram { inbox, .. } => {
                if inbox.borrow().msgs.is_empty() {
                    4
                } else {
                    5
                }
            }
        }
    }

    pub fn queued(&self) -> usize {
        match self {
            Unix::Stream {
                st: Stream::Connected { rx, .. },
                ..
            } => rx.borrow().buf.len(),
            Unix::Stream { .. } => 0,
            Unix::Dgram { inbox, .. } => inbox.borrow().msgs.front().map_or(0, |m| m.0.len()),
        }
    }

    /// getsockname (`peer` false) and getpeername.
    pub fn name(&self, peer: bool) -> Result<Addr, i64> {
        let n = match (self, peer) {
            (Unix::Stream { name, .. }, false) | (Unix::Dgram { name, .. }, false) => name.clone(),
            (
                Unix::Stream {
                    peer_name,
                    st: Stream::Connected { .. },
                    ..
                },
                true,
            ) => peer_name.clone(),
            (
                Unix::Dgram {
                    peer: Some(Peer::Name(p)),
                    ..
                },
                true,
            ) => Some(p.clone()),
            (
                Unix::Dgram {
                    peer: Some(Peer::Pair(_)),
                    ..
                },
                true,
            ) => None,
            _ => return Err(-ENOTCONN),
        };
        Ok(Addr::Unix(n.unwrap_or_default()))
    }

    /// The last descriptor went: the peer sees end of file (or EPIPE), the name is free.
    pub fn release(&mut self, reg: &mut Registry) {
        match self {
            Unix::Stream { name, st, .. } => match std::mem::replace(st, Stream::Idle) {
                Stream::Connected { rx, tx, .. } => {
                    rx.borrow_mut().read_closed = true;
                    tx.borrow_mut().write_closed = true;
                }
                Stream::Listening(l) => {
                    let waiting: Vec<Unix> = l.borrow_mut().queue.drain(..).collect();
                    for mut c in waiting {
                        c.release(reg);
                    }
                    if let Some(n) = name {
                        if reg
                            .stream
                            .get(n)
                            .is_some_and(|w| w.ptr_eq(&Rc::downgrade(&l)))
                        {
                            reg.stream.remove(n);
                        }
                    }
                }
                Stream::Idle => {
                    if let Some(n) = name {
                        reg.reserved.remove(n);
                    }
                }
            },
            Unix::Dgram { name, inbox, .. } => {
                if let Some(n) = name {
                    if reg
                        .dgram
                        .get(n)
                        .is_some_and(|w| w.ptr_eq(&Rc::downgrade(inbox)))
                    {
                        reg.dgram.remove(n);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_pair_carries_bytes_both_ways_and_sees_the_close() {
        let mut reg = Registry::default();
        let (mut a, mut b) = Unix::stream_pair();
        assert_eq!(a.send(&mut reg, b"ping", None), Ok(4));
        assert_eq!(b.readiness() & 1, 1);
        let (data, _, _) = b.recv(16, false).unwrap();
        assert_eq!(data, b"ping");
        assert_eq!(b.recv(16, false), Err(SockErr::Wait));
        a.release(&mut reg);
        assert_eq!(b.recv(16, false).unwrap().0, b"");
        assert_eq!(b.send(&mut reg, b"x", None), Err(SockErr::Errno(EPIPE)));
    }

    #[test]
    fn datagrams_reach_a_bound_name_with_the_senders_name() {
        let mut reg = Registry::default();
        let mut server = Unix::dgram();
        let mut m = None::<()>;
        let _ = &mut m;
        // bind without a Machine: the name goes straight into the registry.
        if let Unix::Dgram { name, inbox, .. } = &mut server {
            reg.dgram.insert(b"/dev/log".to_vec(), Rc::downgrade(inbox));
            *name = Some(b"/dev/log".to_vec());
        }
        let mut client = Unix::dgram();
        assert_eq!(
            client.connect(&mut reg, b"/nope"),
            Err(SockErr::Errno(ENOENT))
        );
        client.connect(&mut reg, b"/dev/log").unwrap();
        assert_eq!(client.send(&mut reg, b"<13>hello", None), Ok(9));
        let (data, from, full) = server.recv(4, false).unwrap();
        assert_eq!((data.as_slice(), full), (&b"<13>"[..], 9));
        assert_eq!(from, Some(Addr::Unix(Vec::new())));
        server.release(&mut reg);
        assert_eq!(
            client.send(&mut reg, b"x", None),
            Err(SockErr::Errno(ECONNREFUSED))
        );
    }

    #[test]
    fn proc_net_unix_lists_the_bound_names() {
        let mut reg = Registry::default();
        let d = Unix::dgram();
        if let Unix::Dgram { inbox, .. } = &d {
            reg.dgram.insert(b"/dev/log".to_vec(), Rc::downgrade(inbox));
            reg.dgram.insert(b"\0hidden".to_vec(), Rc::downgrade(inbox));
        }
        let text = reg.listing();
        assert!(text.starts_with("Num       RefCount Protocol Flags    Type St Inode Path\n"));
        assert!(
            text.contains(" 00000000 0002 01 ") && text.contains(" /dev/log\n"),
            "{text}"
        );
        assert!(text.contains(" @hidden\n"), "{text}");
        drop(d);
        assert_eq!(reg.listing().lines().count(), 1);
    }

    #[test]
    fn a_listener_queues_connections_up_to_its_backlog() {
        let mut reg = Registry::default();
        let mut l = Unix::stream();
        reg.reserved.insert(b"/s".to_vec(), ());
        if let Unix::Stream { name, .. } = &mut l {
            *name = Some(b"/s".to_vec());
        }
        l.listen(&mut reg, 1).unwrap();
        let mut c1 = Unix::stream();
        let mut c2 = Unix::stream();
        c1.connect(&mut reg, b"/s").unwrap();
        assert_eq!(c2.connect(&mut reg, b"/s"), Err(SockErr::Wait));
        let mut s1 = l.accept().unwrap();
        c1.send(&mut reg, b"hi", None).unwrap();
        assert_eq!(s1.recv(8, false).unwrap().0, b"hi");
        assert_eq!(s1.name(false), Ok(Addr::Unix(b"/s".to_vec())));
        c2.connect(&mut reg, b"/s").unwrap();
    }
}
