//! Guest TCP services a user can reach from outside: an echo service and a plain line
//! shell (telnetd-like, no option negotiation). Each listens on every device; a
//! connected socket is served until the peer closes, and a fresh listener takes its
//! place so further clients get in.

use std::collections::HashMap;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};

/// TCP buffer sizes per connection. The receive buffer is the window peers get: a few
/// frames, because a unix datagram socket queues only 10 (net.unix.max_dgram_qlen) and
/// frames beyond that are dropped on the way.
const BUF: usize = 64 * 1024;
pub const RX_WINDOW: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Echo,
    /// Reads and drops everything (a sink for throughput tests).
    Discard,
    Shell,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Echo => "echo",
            Kind::Discard => "discard",
            Kind::Shell => "telnetd",
        }
    }
}

/// One service on one device: its sockets and, for the shell, partial input lines.
pub struct Service {
    pub port: u16,
    pub kind: Kind,
    pub handles: Vec<SocketHandle>,
    partial: HashMap<SocketHandle, Vec<u8>>,
    greeted: Vec<SocketHandle>,
    /// Shell lines handed to the kernel whose command has not ended yet, per session:
    /// a session half-closed by its peer stays open until they are all answered.
    unanswered: HashMap<SocketHandle, usize>,
    /// The echo service also answers UDP datagrams on its port.
    udp: Option<SocketHandle>,
}

impl Service {
    pub fn new(port: u16, kind: Kind, sockets: &mut SocketSet<'static>) -> Service {
        let mut s = Service {
            port,
            kind,
            handles: Vec::new(),
            partial: HashMap::new(),
            greeted: Vec::new(),
            unanswered: HashMap::new(),
            udp: None,
        };
        s.add_listener(sockets);
        if kind == Kind::Echo {
            let buf =
                || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0; 16 * 1536]);
            let mut sock = udp::Socket::new(buf(), buf());
            if sock.bind(port).is_ok() {
                s.udp = Some(sockets.add(sock));
            }
        }
        s
    }

    /// Sends every waiting UDP datagram back to where it came from.
    fn echo_udp(&self, sockets: &mut SocketSet<'static>) {
        let Some(h) = self.udp else { return };
        let sock = sockets.get_mut::<udp::Socket>(h);
        while let Ok((data, meta)) = sock.recv() {
            let (data, to) = (data.to_vec(), meta.endpoint);
            let _ = sock.send_slice(&data, to);
        }
    }

    fn add_listener(&mut self, sockets: &mut SocketSet<'static>) {
        let mut sock = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; RX_WINDOW]),
            tcp::SocketBuffer::new(vec![0; BUF]),
        );
        if sock.listen(self.port).is_ok() {
            self.handles.push(sockets.add(sock));
        }
    }

    /// Moves data for every connection; returns complete shell lines to run, with the
    /// socket to answer on.
    /// Shell sessions that ended are added to `ended`.
    pub fn serve(
        &mut self,
        sockets: &mut SocketSet<'static>,
        ended: &mut Vec<SocketHandle>,
    ) -> Vec<(SocketHandle, String)> {
        self.echo_udp(sockets);
        let mut lines = Vec::new();
        let mut closed = Vec::new();
        let mut buf = vec![0u8; BUF];
        for &h in &self.handles {
            let sock = sockets.get_mut::<tcp::Socket>(h);
            if sock.state() == tcp::State::Closed {
                closed.push(h);
                continue;
            }
            if self.kind == Kind::Shell && sock.may_send() && !self.greeted.contains(&h) {
                let _ = sock.send_slice(crate::chan::ldisc::PROMPT.as_bytes());
                self.greeted.push(h);
            }
            while sock.can_recv() {
                let room = match self.kind {
                    Kind::Echo => sock.send_capacity() - sock.send_queue(),
                    Kind::Shell | Kind::Discard => BUF,
                };
                if room == 0 {
                    break;
                }
                let n = sock.recv_slice(&mut buf[..room]).unwrap_or(0);
                if n == 0 {
                    break;
                }
                match self.kind {
                    Kind::Echo => {
                        let _ = sock.send_slice(&buf[..n]);
                    }
                    Kind::Discard => {}
                    Kind::Shell => {
                        let part = self.partial.entry(h).or_default();
                        for &b in &buf[..n] {
                            match b {
                                b'\n' => {
                                    *self.unanswered.entry(h).or_default() += 1;
                                    lines.push((
                                        h,
                                        String::from_utf8_lossy(&std::mem::take(part))
                                            .trim_end_matches('\r')
                                            .to_owned(),
                                    ))
                                }
                                _ => part.push(b),
                            }
                        }
                    }
                }
            }
            // The peer is done sending and has all our data: close, unless lines
            // it sent still wait for their answers (this call's or earlier ones').
            let answering = self.unanswered.get(&h).is_some_and(|&n| n > 0);
            if !sock.may_recv() && sock.may_send() && sock.send_queue() == 0 && !answering {
                sock.close();
            }
        }
        for h in closed {
            if self.kind == Kind::Shell {
                ended.push(h);
            }
            sockets.remove(h);
            self.handles.retain(|&x| x != h);
            self.partial.remove(&h);
            self.unanswered.remove(&h);
            self.greeted.retain(|&x| x != h);
        }
        let listening = self
            .handles
            .iter()
            .any(|&h| sockets.get::<tcp::Socket>(h).state() == tcp::State::Listen);
        if !listening {
            self.add_listener(sockets);
        }
        lines
    }

    /// A command typed on session `h` has ended (its prompt or the close follows).
    pub fn answered(&mut self, h: SocketHandle) {
        if let Some(n) = self.unanswered.get_mut(&h) {
            *n = n.saturating_sub(1);
        }
    }

    /// Sends a shell command's output on `h`; when the command is over (`end` is
    /// Some(close)) a new prompt follows, or the session is closed.
    pub fn write(sockets: &mut SocketSet<'static>, h: SocketHandle, text: &str, end: Option<bool>) {
        let sock = sockets.get_mut::<tcp::Socket>(h);
        let text = text.replace('\n', "\r\n");
        let _ = sock.send_slice(text.as_bytes());
        match end {
            Some(true) => sock.close(),
            Some(false) => {
                let _ = sock.send_slice(crate::chan::ldisc::PROMPT.as_bytes());
            }
            None => {}
        }
    }

    /// `netstat` lines for this service's sockets.
    pub fn describe(&self, sockets: &SocketSet<'static>, out: &mut String) {
        for &h in &self.handles {
            let s = sockets.get::<tcp::Socket>(h);
            let local = s
                .local_endpoint()
                .map_or(format!("0.0.0.0:{}", self.port), |e| e.to_string());
            let remote = s
                .remote_endpoint()
                .map_or("0.0.0.0:*".to_string(), |e| e.to_string());
            out.push_str(&format!(
                "tcp  {:>6} {:>6} {:<22} {:<22} {:<11} {}\n",
                s.recv_queue(),
                s.send_queue(),
                local,
                remote,
                state_name(s.state()),
                self.kind.name()
            ));
        }
    }
}

fn state_name(s: tcp::State) -> &'static str {
    use tcp::State::*;
    match s {
        Closed => "CLOSE",
        Listen => "LISTEN",
        SynSent => "SYN_SENT",
        SynReceived => "SYN_RECV",
        Established => "ESTABLISHED",
        FinWait1 => "FIN_WAIT1",
        FinWait2 => "FIN_WAIT2",
        CloseWait => "CLOSE_WAIT",
        Closing => "CLOSING",
        LastAck => "LAST_ACK",
        TimeWait => "TIME_WAIT",
    }
}
