//! The guest shell's network commands (`ifconfig`, `route`, `ping`, `arp`) and the
//! text of /proc/net/dev.

use std::fmt::Write;
use std::time::{Duration, Instant};

use smoltcp::socket::{icmp, tcp};
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress, Ipv4Address, Ipv4Cidr};

use super::{Net, NetDev};

/// Bytes of ICMP payload a ping carries (the usual 56).
const PING_DATA: usize = 56;

/// `ifconfig [-a] [ethN [ADDR] [netmask M] [up|down]]`.
pub fn ifconfig(net: &mut Net, args: &[&str]) -> String {
    let args: Vec<&str> = args.iter().copied().filter(|a| *a != "-a").collect();
    let Some((&name, rest)) = args.split_first() else {
        return net
            .devs
            .iter()
            .flatten()
            .map(describe)
            .collect::<Vec<_>>()
            .join("\n");
    };
    let mut log = std::mem::take(&mut net.log);
    let out = ifconfig_dev(net, name, rest, &mut log);
    net.log = log;
    net.dirty = true;
    out
}

fn ifconfig_dev(net: &mut Net, name: &str, rest: &[&str], log: &mut Vec<String>) -> String {
    let Some(dev) = lookup(net, name) else {
        return format!(
            "ifconfig: {name}: error fetching interface information: Device not found\n"
        );
    };
    if rest.is_empty() {
        return describe(dev);
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
                    return "ifconfig: netmask: bad address\n".into();
                };
                match Ipv4Cidr::from_netmask(Ipv4Address::UNSPECIFIED, m) {
                    Ok(c) => prefix = Some(c.prefix_len()),
                    Err(_) => return format!("ifconfig: {m}: bad netmask\n"),
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
                Err(_) => return format!("ifconfig: {a}: unknown host\n"),
            },
        }
        i += 1;
    }
    let cidr = addr.map(|a| Ipv4Cidr::new(a, prefix.unwrap_or_else(|| classful_prefix(a))));
    if cidr != dev.ipv4() {
        dev.set_ipv4(cidr, log);
    }
    if let Some(up) = want_up {
        if let Err(e) = dev.set_up(up, log) {
            log.push(e.clone());
            return format!("ifconfig: SIOCSIFFLAGS: {e}\n");
        }
    }
    String::new()
}

fn classful_prefix(ip: Ipv4Address) -> u8 {
    match ip.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

fn lookup<'a>(net: &'a mut Net, name: &str) -> Option<&'a mut NetDev> {
    net.devs.get_mut(super::dev_index(name)?)?.as_mut()
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
        super::phy::MTU,
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
            let Some(n) = net
                .devs
                .iter()
                .flatten()
                .find(|d| d.up && d.ipv4().is_some_and(|c| c.contains_addr(&gw)))
                .map(|d| d.spec.index)
            else {
                return "route: SIOCADDRT: Network is unreachable\n".into();
            };
            let d = net.devs[n].as_mut().expect("found");
            match d.iface.routes_mut().add_default_ipv4_route(gw) {
                Ok(_) => String::new(),
                Err(_) => "route: SIOCADDRT: No space left on device\n".into(),
            }
        }
        ["del", "default"] => {
            for d in net.devs.iter_mut().flatten() {
                d.iface.routes_mut().remove_default_ipv4_route();
            }
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

/// `ping [-c N] [-i SECS] [-W SECS] ADDR`: echo requests with their round-trip times.
/// Without -c it sends 4.
pub fn ping(net: &mut Net, args: &[&str]) -> String {
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
                _ => return "ping: bad count\n".into(),
            },
            "-i" => match value(&mut it) {
                Some(v) if v >= 0.0 => interval = Duration::from_secs_f64(v),
                _ => return "ping: bad interval\n".into(),
            },
            "-W" => match value(&mut it) {
                Some(v) if v >= 0.0 => wait = Duration::from_secs_f64(v),
                _ => return "ping: bad timeout\n".into(),
            },
            a => match a.parse::<Ipv4Address>() {
                Ok(ip) => target = Some(ip),
                Err(_) => return format!("ping: bad address '{a}'\n"),
            },
        }
    }
    let Some(dst) = target else {
        return "usage: ping [-c COUNT] [-i SECS] [-W SECS] ADDR\n".into();
    };
    let Some(n) = net.route_for(dst) else {
        return "ping: sendto: Network is unreachable\n".into();
    };
    Pinger::new(net, n, dst, count, interval, wait).run(net)
}

struct Pinger {
    dev: usize,
    dst: Ipv4Address,
    count: u32,
    interval: Duration,
    wait: Duration,
    ident: u16,
    handle: smoltcp::iface::SocketHandle,
}

impl Pinger {
    fn new(
        net: &mut Net,
        dev: usize,
        dst: Ipv4Address,
        count: u32,
        interval: Duration,
        wait: Duration,
    ) -> Pinger {
        let buf =
            || icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; 8 * 256]);
        let mut socket = icmp::Socket::new(buf(), buf());
        let ident = (std::process::id() as u16) ^ 0x5a5a;
        let _ = socket.bind(icmp::Endpoint::Ident(ident));
        let d = net.devs[dev].as_mut().expect("routed");
        let handle = d.sockets.add(socket);
        Pinger {
            dev,
            dst,
            count,
            interval,
            wait,
            ident,
            handle,
        }
    }

    fn run(self, net: &mut Net) -> String {
        let mut out = format!("PING {0} ({0}): {PING_DATA} data bytes\n", self.dst);
        let mut sent_at: Vec<Instant> = Vec::new();
        let mut times: Vec<f64> = Vec::new();
        let mut next_send = Instant::now();
        let mut give_up: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if sent_at.len() < self.count as usize
                && now >= next_send
                && self.send(net, sent_at.len() as u16)
            {
                sent_at.push(now);
                next_send = now + self.interval;
                if sent_at.len() == self.count as usize {
                    give_up = Some(now + self.wait);
                }
            }
            while let Some(seq) = self.receive(net) {
                if let Some(t) = sent_at.get(seq as usize) {
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    let _ = writeln!(
                        out,
                        "{} bytes from {}: seq={seq} time={ms:.3} ms",
                        PING_DATA + 8,
                        self.dst
                    );
                    times.push(ms);
                }
            }
            let done_sending = sent_at.len() == self.count as usize;
            if done_sending
                && (times.len() == sent_at.len() || give_up.is_some_and(|g| Instant::now() >= g))
            {
                break;
            }
            let until = if done_sending {
                give_up.unwrap_or(now)
            } else {
                next_send
            };
            let wait = until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            net.wait_io(wait.max(Duration::from_micros(50)));
        }
        if let Some(d) = net.devs[self.dev].as_mut() {
            d.sockets.remove(self.handle);
        }
        let sent = sent_at.len();
        let got = times.len();
        let _ = writeln!(out, "\n--- {} ping statistics ---", self.dst);
        let _ = writeln!(
            out,
            "{sent} packets transmitted, {got} packets received, {}% packet loss",
            (sent - got) * 100 / sent.max(1)
        );
        if got > 0 {
            let min = times.iter().cloned().fold(f64::MAX, f64::min);
            let max = times.iter().cloned().fold(0.0, f64::max);
            let avg = times.iter().sum::<f64>() / got as f64;
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
        let Some(d) = net.devs[self.dev].as_mut() else {
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
        let d = net.devs[self.dev].as_mut()?;
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

/// /proc/net/dev.
pub fn proc_net_dev(net: &Net) -> String {
    let mut s = String::from(
        "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n",
    );
    for d in net.devs.iter().flatten() {
        let st = &d.stats;
        let _ = writeln!(
            s,
            "{:>6}:{:>8} {:>7} {:>4} {:>4} {:>4} {:>5} {:>10} {:>9} {:>8} {:>7} {:>4} {:>4} {:>4} {:>5} {:>7} {:>10}",
            d.name(),
            st.rx_bytes,
            st.rx_packets,
            0,
            st.rx_dropped,
            0,
            0,
            0,
            0,
            st.tx_bytes,
            st.tx_packets,
            st.tx_errors,
            0,
            0,
            0,
            0,
            0
        );
    }
    s
}

/// `tcpsend [-n BYTES] ADDR [PORT]`: connects, sends BYTES zeros (1 MiB by default),
/// closes, and reports the time until the peer acknowledged everything.
pub fn tcpsend(net: &mut Net, args: &[&str]) -> String {
    let mut total: usize = 1 << 20;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(&a) = it.next() {
        if a == "-n" {
            match it.next().and_then(|v| v.parse().ok()) {
                Some(n) => total = n,
                None => return "tcpsend: bad byte count\n".into(),
            }
        } else {
            rest.push(a);
        }
    }
    let (dst, port) = match rest.as_slice() {
        [a] => (a.parse::<Ipv4Address>().ok(), Some(9)),
        [a, p] => (a.parse().ok(), p.parse::<u16>().ok()),
        _ => return "usage: tcpsend [-n BYTES] ADDR [PORT]\n".into(),
    };
    let (Some(dst), Some(port)) = (dst, port) else {
        return "tcpsend: bad address or port\n".into();
    };
    let Some(n) = net.route_for(dst) else {
        return "tcpsend: Network is unreachable\n".into();
    };
    let handle = {
        let d = net.devs[n].as_mut().expect("routed");
        let mut sock = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; super::services::RX_WINDOW]),
            tcp::SocketBuffer::new(vec![0; 256 * 1024]),
        );
        let local = 49152 + (std::process::id() as u16 % 8192);
        if let Err(e) = sock.connect(d.iface.context(), (dst, port), local) {
            return format!("tcpsend: connect: {e}\n");
        }
        d.sockets.add(sock)
    };
    let start = Instant::now();
    let limit = Duration::from_secs(
        std::env::var("UML_TCPSEND_LIMIT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60),
    );
    let zeros = vec![0u8; 64 * 1024];
    let mut sent = 0usize;
    let mut closed = false;
    let result = loop {
        let d = net.devs[n].as_mut().expect("routed");
        let sock = d.sockets.get_mut::<tcp::Socket>(handle);
        if start.elapsed() > limit {
            break Err(format!(
                "timed out in state {}, {} bytes unacknowledged",
                sock.state(),
                sock.send_queue()
            ));
        }
        match sock.state() {
            tcp::State::Closed if sent == 0 => break Err("Connection refused".into()),
            tcp::State::Closed | tcp::State::TimeWait | tcp::State::FinWait2 if closed => {
                break Ok(())
            }
            tcp::State::Closed => break Err("connection reset".into()),
            _ => {}
        }
        while sent < total && sock.can_send() {
            let k = (total - sent).min(zeros.len());
            match sock.send_slice(&zeros[..k]) {
                Ok(0) | Err(_) => break,
                Ok(w) => sent += w,
            }
        }
        if sent == total && !closed {
            sock.close();
            closed = true;
        }
        net.poll_all();
        net.wait_io(Duration::from_millis(5));
    };
    let secs = start.elapsed().as_secs_f64();
    if let Some(d) = net.devs[n].as_mut() {
        d.sockets.remove(handle);
    }
    match result {
        Ok(()) => format!(
            "sent {sent} bytes in {secs:.3} s ({:.2} MB/s)\n",
            sent as f64 / secs / 1e6
        ),
        Err(e) => format!("tcpsend: {e} after {sent} bytes\n"),
    }
}
