//! The shell's network commands: `ifconfig`, `route`, `arp`, and `ping` and `tcpsend`,
//! which are jobs the event loop drives (they send, then wait for the loop to bring
//! replies and acknowledgements; nothing here waits).

use std::fmt::Write;
use std::time::{Duration, Instant};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::{icmp, tcp};
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress, Ipv4Address, Ipv4Cidr};

use crate::job::{Job, Progress, Run};
use crate::machine::Machine;
use crate::net::ifchange::Change;
use crate::net::tuntap::HelperCall;
use crate::net::{Net, NetDev, NetError};

/// Bytes of ICMP payload a ping carries (the usual 56).
const PING_DATA: usize = 56;

/// `ifconfig [-a] [ethN [ADDR] [netmask M] [up|down]]`. Changes that need uml_net (a
/// helper-made tap) make it a job: the loop goes on while the helper works.
pub fn ifconfig(m: &mut Machine, args: &[&str]) -> Run {
    let args: Vec<&str> = args.iter().copied().filter(|a| *a != "-a").collect();
    let Some((&name, rest)) = args.split_first() else {
        return Run::Done(
            m.net
                .devs
                .iter()
                .flatten()
                .map(describe)
                .collect::<Vec<_>>()
                .join("\n"),
        );
    };
    let (dev, plan) = match ifconfig_dev(&mut m.net, name, rest) {
        Ok(p) => p,
        Err(text) => return Run::Done(text),
    };
    let Some(d) = m.net.devs[dev].as_ref() else {
        return Run::Done(String::new());
    };
    let mut job = Ifconfig {
        dev,
        dev_id: d.id,
        plan: plan.into(),
        call: None,
    };
    let first = job.poll(m);
    if first.done {
        Run::Done(first.output)
    } else {
        Run::Job(Box::new(job))
    }
}

/// A running ifconfig: its remaining changes and the uml_net call in progress.
struct Ifconfig {
    dev: usize,
    dev_id: u64,
    plan: std::collections::VecDeque<Change>,
    call: Option<(Change, HelperCall)>,
}

impl Job for Ifconfig {
    fn poll(&mut self, m: &mut Machine) -> Progress {
        let mut log = Vec::new();
        let result = self.advance(m, &mut log);
        for line in log {
            m.log.info(line.trim_end());
        }
        m.net.dirty = true;
        match result {
            Ok(false) => Progress::default(),
            Ok(true) => Progress::finished(String::new()),
            Err(e) => {
                m.log.info(e.to_string());
                self.plan.clear();
                Progress::finished(format!("ifconfig: SIOCSIFFLAGS: {e}\n"))
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.call.as_ref().map(|(_, c)| c.deadline())
    }

    fn fd(&self) -> Option<std::os::fd::RawFd> {
        self.call.as_ref().map(|(_, c)| c.fd())
    }

    fn cancel(&mut self, _: &mut Machine) {
        // Dropping the call reaps (or kills) the helper; the rest is not done.
        self.call = None;
        self.plan.clear();
    }
}

impl Ifconfig {
    /// Runs changes until one waits for uml_net; true when all are done.
    fn advance(&mut self, m: &mut Machine, log: &mut Vec<String>) -> Result<bool, NetError> {
        let Some(d) = m.net.dev_mut(self.dev, self.dev_id) else {
            return Ok(true);
        };
        if let Some((change, call)) = &mut self.call {
            let Some(done) = call.poll() else {
                return Ok(false);
            };
            let change = change.clone();
            self.call = None;
            d.finish(&change, done, log)?;
        }
        while let Some(change) = self.plan.pop_front() {
            if let Some(call) = d.apply(&change, log)? {
                self.call = Some((change, call));
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The device and the changes an ifconfig asks for, or what it prints at once.
fn ifconfig_dev(net: &mut Net, name: &str, rest: &[&str]) -> Result<(usize, Vec<Change>), String> {
    let Some(dev) = lookup(net, name) else {
        return Err(format!(
            "ifconfig: {name}: error fetching interface information: Device not found\n"
        ));
    };
    if rest.is_empty() {
        return Err(describe(dev));
    }
    let mut addr = dev.ipv4().map(|c| c.address());
    let mut prefix = dev.ipv4().map(|c| c.prefix_len());
    let mut want_up = None;
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            "up" => want_up = Some(true),
            "down" => want_up = Some(false),
            "netmask" => {
                let Some(m) = rest.get(i + 1).and_then(|m| m.parse::<Ipv4Address>().ok()) else {
                    return Err("ifconfig: netmask: bad address\n".into());
                };
                match Ipv4Cidr::from_netmask(Ipv4Address::UNSPECIFIED, m) {
                    Ok(c) => prefix = Some(c.prefix_len()),
                    Err(_) => return Err(format!("ifconfig: {m}: bad netmask\n")),
                }
                i += 1;
            }
            a => match a.parse::<Ipv4Address>() {
                Ok(ip) => {
                    addr = Some(ip);
                    if prefix.is_none() || dev.ipv4().is_none() {
                        prefix = Some(classful_prefix(ip));
                    }
                    want_up.get_or_insert(true);
                }
                Err(_) => return Err(format!("ifconfig: {a}: unknown host\n")),
            },
        }
        i += 1;
    }
    let cidr = addr.map(|a| Ipv4Cidr::new(a, prefix.unwrap_or_else(|| classful_prefix(a))));
    let mut plan = Vec::new();
    if cidr != dev.ipv4() {
        plan.extend(dev.plan_address(cidr));
    }
    if let Some(up) = want_up {
        // Planned against the flag as it is now: the address steps do not change it.
        plan.extend(dev.plan_up(up));
    }
    Ok((dev.spec.index, plan))
}

fn classful_prefix(ip: Ipv4Address) -> u8 {
    match ip.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

fn lookup<'a>(net: &'a mut Net, name: &str) -> Option<&'a mut NetDev> {
    net.devs.get_mut(crate::net::dev_index(name)?)?.as_mut()
}

fn describe(d: &NetDev) -> String {
    let mut s = format!(
        "{:<10}Link encap:Ethernet  HWaddr {}\n",
        d.name(),
        d.mac.to_string().to_uppercase()
    );
    if let Some(c) = d.ipv4() {
        let _ = writeln!(
            s,
            "          inet addr:{}  Bcast:{}  Mask:{}",
            c.address(),
            c.broadcast().unwrap_or(c.address()),
            c.netmask()
        );
    }
    let flags = if d.up {
        "UP BROADCAST RUNNING MULTICAST"
    } else {
        "BROADCAST MULTICAST"
    };
    let st = &d.stats;
    let _ = write!(
        s,
        "          {flags}  MTU:{}  Metric:1\n          RX packets:{} errors:0 dropped:{} overruns:0 frame:0\n          TX packets:{} errors:{} dropped:0 overruns:0 carrier:0\n          collisions:0 txqueuelen:1000\n          RX bytes:{}  TX bytes:{}\n",
        crate::net::phy::MTU,
        st.rx_packets,
        st.rx_dropped,
        st.tx_packets,
        st.tx_errors,
        st.rx_bytes,
        st.tx_bytes
    );
    s
}

/// `route [-n]` shows the table; `route add default gw ADDR`, `route del default`.
pub fn route(net: &mut Net, args: &[&str]) -> String {
    match args {
        [] | ["-n"] => route_table(net),
        ["add", "default", "gw", gw] | ["add", "default", "gw", gw, "dev", _] => {
            let Ok(gw) = gw.parse::<Ipv4Address>() else {
                return format!("route: {gw}: bad address\n");
            };
            match net.add_default_route(gw) {
                Ok(()) => String::new(),
                Err(crate::net::RouteError::Unreachable) => {
                    "route: SIOCADDRT: Network is unreachable\n".into()
                }
                Err(crate::net::RouteError::Full) => {
                    "route: SIOCADDRT: No space left on device\n".into()
                }
            }
        }
        ["del", "default"] => {
            net.del_default_route();
            String::new()
        }
        _ => "usage: route [-n] | route add default gw ADDR | route del default\n".into(),
    }
}

fn route_table(net: &Net) -> String {
    let mut s = String::from(
        "Kernel IP routing table\nDestination     Gateway         Genmask         Flags Metric Ref    Use Iface\n",
    );
    for d in net.devs.iter().flatten().filter(|d| d.up) {
        if let Some(r) = d.iface.routes().get_default_ipv4_route() {
            let _ = writeln!(
                s,
                "{:<16}{:<16}{:<16}UG    0      0        0 {}",
                "0.0.0.0",
                r.via_router.to_string(),
                "0.0.0.0",
                d.name()
            );
        }
        if let Some(c) = d.ipv4() {
            let _ = writeln!(
                s,
                "{:<16}{:<16}{:<16}U     0      0        0 {}",
                c.network().address().to_string(),
                "0.0.0.0",
                c.netmask().to_string(),
                d.name()
            );
        }
    }
    s
}

/// `arp [-n]`: the neighbours seen.
pub fn arp(net: &Net) -> String {
    let mut s = String::new();
    for d in net.devs.iter().flatten() {
        for (ip, mac) in &d.arp {
            let _ = writeln!(s, "? ({ip}) at {mac} [ether]  on {}", d.name());
        }
    }
    s
}

/// `ping [-c N] [-i SECS] [-W SECS] ADDR`: echo requests with their round-trip times,
/// printed as the replies come. Without -c it sends 4.
pub fn ping(net: &mut Net, args: &[&str]) -> Run {
    let done = |text: &str| Run::Done(text.into());
    let mut count = 4u32;
    let mut interval = Duration::from_secs(1);
    let mut wait = Duration::from_secs(2);
    let mut target = None;
    let mut it = args.iter();
    while let Some(&a) = it.next() {
        let value = |it: &mut std::slice::Iter<&str>| it.next().and_then(|v| v.parse::<f64>().ok());
        match a {
            "-c" => match value(&mut it) {
                Some(v) if v >= 1.0 => count = v as u32,
                _ => return done("ping: bad count\n"),
            },
            "-i" => match value(&mut it) {
                Some(v) if v >= 0.0 => interval = Duration::from_secs_f64(v),
                _ => return done("ping: bad interval\n"),
            },
            "-W" => match value(&mut it) {
                Some(v) if v >= 0.0 => wait = Duration::from_secs_f64(v),
                _ => return done("ping: bad timeout\n"),
            },
            a => match a.parse::<Ipv4Address>() {
                Ok(ip) => target = Some(ip),
                Err(_) => return Run::Done(format!("ping: bad address '{a}'\n")),
            },
        }
    }
    let Some(dst) = target else {
        return done("usage: ping [-c COUNT] [-i SECS] [-W SECS] ADDR\n");
    };
    let Some(n) = net.route_for(dst) else {
        return done("ping: sendto: Network is unreachable\n");
    };
    let Some(d) = net.devs[n].as_mut() else {
        return done("ping: sendto: Network is unreachable\n");
    };
    let buf = || icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; 8 * 256]);
    let mut socket = icmp::Socket::new(buf(), buf());
    let ident = (std::process::id() as u16) ^ 0x5a5a;
    let _ = socket.bind(icmp::Endpoint::Ident(ident));
    Run::Job(Box::new(Pinger {
        dev: n,
        dev_id: d.id,
        handle: d.sockets.add(socket),
        dst,
        count,
        interval,
        wait,
        ident,
        sent_at: Vec::new(),
        times: Vec::new(),
        next_send: Instant::now(),
        give_up: None,
        started: false,
    }))
}

/// A running `ping`.
struct Pinger {
    dev: usize,
    dev_id: u64,
    handle: SocketHandle,
    dst: Ipv4Address,
    count: u32,
    interval: Duration,
    wait: Duration,
    ident: u16,
    sent_at: Vec<Instant>,
    times: Vec<f64>,
    next_send: Instant,
    /// After the last request: when to stop waiting for replies.
    give_up: Option<Instant>,
    started: bool,
}

impl Job for Pinger {
    fn poll(&mut self, m: &mut Machine) -> Progress {
        let mut out = String::new();
        if !std::mem::replace(&mut self.started, true) {
            let _ = writeln!(out, "PING {0} ({0}): {PING_DATA} data bytes", self.dst);
        }
        if m.net.dev_mut(self.dev, self.dev_id).is_none() {
            return Progress::finished(out + "ping: network device removed\n" + &self.summary());
        }
        while let Some(seq) = self.receive(&mut m.net) {
            if let Some(t) = self.sent_at.get(seq as usize) {
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                let _ = writeln!(
                    out,
                    "{} bytes from {}: seq={seq} time={ms:.3} ms",
                    PING_DATA + 8,
                    self.dst
                );
                self.times.push(ms);
            }
        }
        let now = Instant::now();
        if self.sent_at.len() < self.count as usize
            && now >= self.next_send
            && self.send(&mut m.net, self.sent_at.len() as u16)
        {
            self.sent_at.push(now);
            self.next_send = now + self.interval;
            if self.sent_at.len() == self.count as usize {
                self.give_up = Some(now + self.wait);
            }
        }
        let done_sending = self.sent_at.len() == self.count as usize;
        if done_sending
            && (self.times.len() == self.sent_at.len()
                || self.give_up.is_some_and(|g| Instant::now() >= g))
        {
            self.cancel(m);
            return Progress::finished(out + &self.summary());
        }
        Progress::more(out)
    }

    fn deadline(&self) -> Option<Instant> {
        if self.sent_at.len() < self.count as usize {
            Some(self.next_send)
        } else {
            self.give_up
        }
    }

    fn cancel(&mut self, m: &mut Machine) {
        if let Some(d) = m.net.dev_mut(self.dev, self.dev_id) {
            d.sockets.remove(self.handle);
        }
        self.dev_id = 0;
    }
}

impl Pinger {
    fn summary(&self) -> String {
        let sent = self.sent_at.len();
        let got = self.times.len();
        let mut out = String::new();
        let _ = writeln!(out, "\n--- {} ping statistics ---", self.dst);
        let _ = writeln!(
            out,
            "{sent} packets transmitted, {got} packets received, {}% packet loss",
            (sent - got) * 100 / sent.max(1)
        );
        if got > 0 {
            let min = self.times.iter().cloned().fold(f64::MAX, f64::min);
            let max = self.times.iter().cloned().fold(0.0, f64::max);
            let avg = self.times.iter().sum::<f64>() / got as f64;
            let _ = writeln!(
                out,
                "round-trip min/avg/max = {min:.3}/{avg:.3}/{max:.3} ms"
            );
        }
        out
    }

    /// Queues echo request `seq` and pushes it out; false if the socket is full.
    fn send(&self, net: &mut Net, seq: u16) -> bool {
        let now = net.now();
        let Some(d) = net.dev_mut(self.dev, self.dev_id) else {
            return false;
        };
        let caps = smoltcp::phy::ChecksumCapabilities::default();
        let socket = d.sockets.get_mut::<icmp::Socket>(self.handle);
        let data = [0x42u8; PING_DATA];
        let repr = Icmpv4Repr::EchoRequest {
            ident: self.ident,
            seq_no: seq,
            data: &data,
        };
        let Ok(buf) = socket.send(repr.buffer_len(), IpAddress::Ipv4(self.dst)) else {
            return false;
        };
        repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
        d.poll(now);
        true
    }

    /// The sequence number of the next echo reply waiting on the socket.
    fn receive(&self, net: &mut Net) -> Option<u16> {
        let d = net.dev_mut(self.dev, self.dev_id)?;
        let socket = d.sockets.get_mut::<icmp::Socket>(self.handle);
        loop {
            let (payload, _) = socket.recv().ok()?;
            let Ok(packet) = Icmpv4Packet::new_checked(payload) else {
                continue;
            };
            if let Ok(Icmpv4Repr::EchoReply { ident, seq_no, .. }) =
                Icmpv4Repr::parse(&packet, &Default::default())
            {
                if ident == self.ident {
                    return Some(seq_no);
                }
            }
        }
    }
}

/// `tcpsend [-n BYTES] ADDR [PORT]`: connects, sends BYTES zeros (1 MiB by default),
/// closes, and reports the time until the peer acknowledged everything.
pub fn tcpsend(net: &mut Net, args: &[&str]) -> Run {
    let done = |text: &str| Run::Done(text.into());
    let mut total: usize = 1 << 20;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(&a) = it.next() {
        if a == "-n" {
            match it.next().and_then(|v| v.parse().ok()) {
                Some(n) => total = n,
                None => return done("tcpsend: bad byte count\n"),
            }
        } else {
            rest.push(a);
        }
    }
    let (dst, port) = match rest.as_slice() {
        [a] => (a.parse::<Ipv4Address>().ok(), Some(9)),
        [a, p] => (a.parse().ok(), p.parse::<u16>().ok()),
        _ => return done("usage: tcpsend [-n BYTES] ADDR [PORT]\n"),
    };
    let (Some(dst), Some(port)) = (dst, port) else {
        return done("tcpsend: bad address or port\n");
    };
    let Some(n) = net.route_for(dst) else {
        return done("tcpsend: Network is unreachable\n");
    };
    let Some(d) = net.devs[n].as_mut() else {
        return done("tcpsend: Network is unreachable\n");
    };
    let mut sock = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; crate::net::services::RX_WINDOW]),
        tcp::SocketBuffer::new(vec![0; 256 * 1024]),
    );
    let local = 49152 + (std::process::id() as u16 % 8192);
    if let Err(e) = sock.connect(d.iface.context(), (dst, port), local) {
        return Run::Done(format!("tcpsend: connect: {e}\n"));
    }
    let limit = Duration::from_secs(
        std::env::var("UML_TCPSEND_LIMIT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60),
    );
    let start = Instant::now();
    Run::Job(Box::new(TcpSend {
        dev: n,
        dev_id: d.id,
        handle: d.sockets.add(sock),
        total,
        sent: 0,
        closed: false,
        start,
        give_up: start + limit,
    }))
}

/// Why a `tcpsend` ended early.
#[derive(Debug)]
enum SendError {
    TimedOut { state: tcp::State, unacked: usize },
    Refused,
    Reset,
    DeviceGone,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::TimedOut { state, unacked } => write!(
                f,
                "timed out in state {state}, {unacked} bytes unacknowledged"
            ),
            SendError::Refused => f.write_str("Connection refused"),
            SendError::Reset => f.write_str("connection reset"),
            SendError::DeviceGone => f.write_str("network device removed"),
        }
    }
}

/// A running `tcpsend`.
struct TcpSend {
    dev: usize,
    dev_id: u64,
    handle: SocketHandle,
    total: usize,
    sent: usize,
    closed: bool,
    start: Instant,
    give_up: Instant,
}

impl Job for TcpSend {
    fn poll(&mut self, m: &mut Machine) -> Progress {
        let now = m.net.now();
        let result = match m.net.dev_mut(self.dev, self.dev_id) {
            None => Some(Err(SendError::DeviceGone)),
            Some(d) => {
                let result = self.step(d.sockets.get_mut::<tcp::Socket>(self.handle));
                d.poll(now);
                result
            }
        };
        let Some(result) = result else {
            return Progress::default();
        };
        self.cancel(m);
        let sent = self.sent;
        let secs = self.start.elapsed().as_secs_f64();
        Progress::finished(match result {
            Ok(()) => format!(
                "sent {sent} bytes in {secs:.3} s ({:.2} MB/s)\n",
                sent as f64 / secs / 1e6
            ),
            Err(e) => format!("tcpsend: {e} after {sent} bytes\n"),
        })
    }

    fn deadline(&self) -> Option<Instant> {
        Some(self.give_up)
    }

    fn cancel(&mut self, m: &mut Machine) {
        if let Some(d) = m.net.dev_mut(self.dev, self.dev_id) {
            d.sockets.remove(self.handle);
        }
        self.dev_id = 0;
    }
}

impl TcpSend {
    /// Fills the socket and closes it once everything is queued; Some when over.
    fn step(&mut self, sock: &mut tcp::Socket) -> Option<Result<(), SendError>> {
        if Instant::now() > self.give_up {
            return Some(Err(SendError::TimedOut {
                state: sock.state(),
                unacked: sock.send_queue(),
            }));
        }
        match sock.state() {
            tcp::State::Closed if self.sent == 0 => return Some(Err(SendError::Refused)),
            tcp::State::Closed | tcp::State::TimeWait | tcp::State::FinWait2 if self.closed => {
                return Some(Ok(()))
            }
            tcp::State::Closed => return Some(Err(SendError::Reset)),
            _ => {}
        }
        const ZEROS: [u8; 16 * 1024] = [0; 16 * 1024];
        while self.sent < self.total && sock.can_send() {
            let k = (self.total - self.sent).min(ZEROS.len());
            match sock.send_slice(&ZEROS[..k]) {
                Ok(0) | Err(_) => break,
                Ok(w) => self.sent += w,
            }
        }
        if self.sent == self.total && !self.closed {
            sock.close();
            self.closed = true;
        }
        None
    }
}
