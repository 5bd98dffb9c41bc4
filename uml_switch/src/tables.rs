//! The switch's state without any I/O: the ports, the ingress lookup (sender address ->
//! port), the MAC learning table with the C switch's aging (checked every 2 s, entries
//! idle for more than 100 s removed), and the forwarding decision for one frame.
//! Every lookup on the packet path is a hash lookup; flooding walks the live ports.
//!
//! Source MACs are chosen by the clients, so the MAC table is bounded (per port and in
//! total: a new address beyond a limit is not learned, only counted, and its frames
//! are flooded as for any unknown address) and hashed with a key random per process
//! (std's SipHash `RandomState`), so no set of addresses can make lookups quadratic.

use std::collections::HashMap;
use std::hash::RandomState;
use std::time::Instant;

use uml_proto::ether::{Frame, MacAddr, MAX_FRAME_LEN};
use uml_proto::switch::DataAddr;

/// How often aging runs, and how long an idle entry lives (the C switch's numbers).
pub const AGING_PERIOD_SECS: u64 = 2;
pub const MAX_AGE_SECS: u64 = 100;

/// How many MACs one port may have in the table, and how many the table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacLimits {
    pub per_port: usize,
    pub total: usize,
}

impl Default for MacLimits {
    /// 4096 per port (a whole LAN behind a tap fits), 16384 in all (under 1 MB).
    fn default() -> Self {
        MacLimits {
            per_port: 4096,
            total: 16384,
        }
    }
}

/// A MAC limit reached for the first time, for the log (once per port, once for the
/// whole table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    Port(PortId),
    Total,
}

/// Index of a port in the port table.
pub type PortId = usize;

/// Where a port's frames go.
#[derive(Debug)]
pub enum PortKind {
    /// A daemon-transport client: frames are sent to its data socket address.
    Unix {
        send_to: DataAddr,
        learned_len: bool,
        /// A path address checked and opened once: frames go there instead.
        pinned: Option<Box<crate::peer::Pinned>>,
    },
    /// The `-tap` device: frames are written to its descriptor.
    Tap { name: String },
    /// A VDE 2 client (`--vde`): frames go through a socket of its own, connected to
    /// the client's data socket (which libvdeplug unlinks once connected).
    Vde { peer: DataAddr },
    /// An `--uplink`: frames go through the overlay socket of uplink `index`.
    Uplink { index: usize, name: String },
}

/// Problems logged once per port (not per frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Problem {
    Runt = 1,
    Oversize = 2,
    SendFailed = 4,
    MacLimit = 8,
    Malformed = 16,
    ReceiveFailed = 32,
    /// A port's receive queue stayed full longer than a send waits.
    Stalled = 64,
}

/// Frame and byte counters of one port.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub runts: u64,
    pub oversize: u64,
    pub tx_errors: u64,
    /// New source MACs not learned because a limit was reached.
    pub macs_refused: u64,
}

#[derive(Debug)]
pub struct Port {
    /// The number shown in messages: the control connection's (or tap's) descriptor.
    pub label: i32,
    pub kind: PortKind,
    pub counters: Counters,
    /// Problems already logged for this port.
    pub logged: u8,
    /// Entries of the MAC table on this port.
    pub macs: usize,
}

impl Port {
    /// True the first time `p` happens on this port.
    pub fn first_time(&mut self, p: Problem) -> bool {
        let new = self.logged & p as u8 == 0;
        self.logged |= p as u8;
        new
    }
}

#[derive(Debug, Clone, Copy)]
pub struct MacEntry {
    pub port: PortId,
    pub last_seen: u64,
}

/// What to do with one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send to this one port.
    To(PortId),
    /// Send to every port except the ingress one.
    Flood,
    /// Do not forward.
    Drop(DropReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Runt,
    Oversize,
    /// Addressed to a MAC that lives on the port it came from.
    SamePort,
}

/// A MAC newly learned or moved, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Learned {
    pub mac: MacAddr,
    pub port: PortId,
    pub old: Option<PortId>,
}

/// The switch's tables.
#[derive(Debug)]
pub struct Tables {
    pub hub: bool,
    ports: Vec<Option<Port>>,
    free: Vec<PortId>,
    /// Live ports in attach order, for flooding.
    live: Vec<PortId>,
    /// Keyed too: a client chooses most bytes of its data address.
    by_addr: HashMap<[u8; uml_proto::switch::SOCKADDR_LEN], PortId, RandomState>,
    macs: HashMap<u64, MacEntry, RandomState>,
    limits: MacLimits,
    /// New MACs refused by any limit, and whether the total limit was logged.
    pub macs_refused: u64,
    total_limit_logged: bool,
    limit_hit: Option<LimitHit>,
    start: Instant,
}

impl Tables {
    pub fn new(hub: bool) -> Tables {
        Tables::with_limits(hub, MacLimits::default())
    }

    pub fn with_limits(hub: bool, limits: MacLimits) -> Tables {
        Tables {
            hub,
            ports: Vec::new(),
            free: Vec::new(),
            live: Vec::new(),
            by_addr: HashMap::with_hasher(RandomState::new()),
            macs: HashMap::with_hasher(RandomState::new()),
            limits,
            macs_refused: 0,
            total_limit_logged: false,
            limit_hit: None,
            start: Instant::now(),
        }
    }

    /// The MAC limit reached for the first time since the last call, if any.
    pub fn take_limit_hit(&mut self) -> Option<LimitHit> {
        self.limit_hit.take()
    }

    pub fn limits(&self) -> MacLimits {
        self.limits
    }

    /// Seconds since the tables were made (the aging clock).
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_secs()
    }

    /// Adds a port; unix ports become reachable by their (full-length) address.
    /// Returns None when a live port already has that data address.
    pub fn add_port(&mut self, label: i32, kind: PortKind) -> Option<PortId> {
        let key = match &kind {
            PortKind::Unix { send_to, .. } => Some(send_to.full_length().bytes),
            PortKind::Tap { .. } | PortKind::Uplink { .. } | PortKind::Vde { .. } => None,
        };
        if let Some(k) = key {
            if self.by_addr.contains_key(&k) {
                return None;
            }
        }
        let port = Port {
            label,
            kind,
            counters: Counters::default(),
            logged: 0,
            macs: 0,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.ports[id] = Some(port);
                id
            }
            None => {
                self.ports.push(Some(port));
                self.ports.len() - 1
            }
        };
        if let Some(k) = key {
            self.by_addr.insert(k, id);
        }
        self.live.push(id);
        Some(id)
    }

    /// Removes a port and every MAC learned on it.
    pub fn remove_port(&mut self, id: PortId) -> Option<Port> {
        let port = self.ports.get_mut(id)?.take()?;
        if let PortKind::Unix { send_to, .. } = &port.kind {
            self.by_addr.remove(&send_to.full_length().bytes);
        }
        self.live.retain(|&p| p != id);
        self.macs.retain(|_, e| e.port != id);
        self.free.push(id);
        Some(port)
    }

    pub fn port(&self, id: PortId) -> Option<&Port> {
        self.ports.get(id)?.as_ref()
    }

    pub fn port_mut(&mut self, id: PortId) -> Option<&mut Port> {
        self.ports.get_mut(id)?.as_mut()
    }

    pub fn live_ports(&self) -> &[PortId] {
        &self.live
    }

    /// The port a datagram from `from` belongs to. A client that bound a shorter name
    /// than the 110 bytes its request named is matched too, and from then on is sent
    /// to with the length it really has.
    pub fn port_for_sender(&mut self, from: &DataAddr) -> Option<PortId> {
        if from.len <= 2 {
            // An unbound sender has no name: it cannot be anybody's port.
            return None;
        }
        let id = if from.len as usize == uml_proto::switch::SOCKADDR_LEN {
            *self.by_addr.get(&from.bytes)?
        } else {
            *self.by_addr.get(&from.full_length().bytes)?
        };
        if let Some(Port {
            kind:
                PortKind::Unix {
                    send_to,
                    learned_len,
                    ..
                },
            ..
        }) = self.ports[id].as_mut()
        {
            if !*learned_len || send_to.len != from.len {
                send_to.len = from.len;
                *learned_len = true;
            }
        }
        Some(id)
    }

    /// Decides where a frame from port `src` goes, learning its source MAC and
    /// counting it on the ingress port.
    pub fn decide(&mut self, src: PortId, bytes: &[u8], now: u64) -> (Verdict, Option<Learned>) {
        let Some(port) = self.ports[src].as_mut() else {
            return (Verdict::Drop(DropReason::Runt), None);
        };
        let frame = match Frame::parse(bytes) {
            Ok(f) if bytes.len() <= MAX_FRAME_LEN => f,
            Ok(_) => {
                port.counters.oversize += 1;
                return (Verdict::Drop(DropReason::Oversize), None);
            }
            Err(_) => {
                port.counters.runts += 1;
                return (Verdict::Drop(DropReason::Runt), None);
            }
        };
        port.counters.rx_frames += 1;
        port.counters.rx_bytes += bytes.len() as u64;
        let learned = self.learn(frame.src(), src, now);
        if self.hub {
            return (Verdict::Flood, learned);
        }
        let dst = frame.dst();
        if dst.is_multicast() {
            return (Verdict::Flood, learned);
        }
        let verdict = match self.macs.get(&dst.to_u64()) {
            Some(e) if e.port == src => Verdict::Drop(DropReason::SamePort),
            Some(e) => Verdict::To(e.port),
            None => Verdict::Flood,
        };
        (verdict, learned)
    }

    fn learn(&mut self, mac: MacAddr, port: PortId, now: u64) -> Option<Learned> {
        if mac.is_multicast() {
            return None;
        }
        let key = mac.to_u64();
        let old = match self.macs.get_mut(&key) {
            Some(e) if e.port == port => {
                e.last_seen = now;
                return None;
            }
            Some(e) => {
                // Moved: it leaves the old port's count, and must fit the new one's.
                let old = e.port;
                self.macs.remove(&key);
                if let Some(p) = self.ports.get_mut(old).and_then(Option::as_mut) {
                    p.macs -= 1;
                }
                Some(old)
            }
            None => None,
        };
        let total_full = self.macs.len() >= self.limits.total;
        let p = self.ports.get_mut(port).and_then(Option::as_mut)?;
        if total_full || p.macs >= self.limits.per_port {
            p.counters.macs_refused += 1;
            self.macs_refused += 1;
            if total_full && !self.total_limit_logged {
                self.total_limit_logged = true;
                self.limit_hit = Some(LimitHit::Total);
            } else if !total_full && p.first_time(Problem::MacLimit) {
                self.limit_hit = Some(LimitHit::Port(port));
            }
            return None;
        }
        p.macs += 1;
        self.macs.insert(
            key,
            MacEntry {
                port,
                last_seen: now,
            },
        );
        Some(Learned { mac, port, old })
    }

    /// Drops entries idle for more than MAX_AGE_SECS; returns how many went.
    pub fn age(&mut self, now: u64) -> usize {
        let before = self.macs.len();
        let ports = &mut self.ports;
        self.macs.retain(|_, e| {
            let keep = e.last_seen + MAX_AGE_SECS >= now;
            if !keep {
                if let Some(p) = ports.get_mut(e.port).and_then(Option::as_mut) {
                    p.macs -= 1;
                }
            }
            keep
        });
        before - self.macs.len()
    }

    /// The MAC table, sorted by address, for SIGUSR1.
    pub fn mac_table(&self) -> Vec<(MacAddr, MacEntry)> {
        let mut v: Vec<(MacAddr, MacEntry)> = self
            .macs
            .iter()
            .map(|(&k, &e)| {
                let b = k.to_le_bytes();
                (MacAddr([b[0], b[1], b[2], b[3], b[4], b[5]]), e)
            })
            .collect();
        v.sort_by_key(|(m, _)| *m);
        v
    }

    /// Where the MAC lives now, if known.
    pub fn lookup(&self, mac: MacAddr) -> Option<PortId> {
        self.macs.get(&mac.to_u64()).map(|e| e.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(pid: u32) -> PortKind {
        PortKind::Unix {
            send_to: DataAddr::abstract_name(pid, 7),
            learned_len: false,
            pinned: None,
        }
    }

    fn frame(dst: [u8; 6], src: [u8; 6], len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len.max(14)];
        uml_proto::ether::emit_header(MacAddr(dst), MacAddr(src), 0x0800, &mut f).unwrap();
        f.truncate(len);
        f
    }

    const A: [u8; 6] = [0xfe, 0xfd, 0, 0, 0, 0xa];
    const B: [u8; 6] = [0xfe, 0xfd, 0, 0, 0, 0xb];
    const BCAST: [u8; 6] = [0xff; 6];

    #[test]
    fn learns_then_forwards_unicast_only_to_its_port() {
        let mut t = Tables::new(false);
        let a = t.add_port(5, unix(1)).unwrap();
        let b = t.add_port(6, unix(2)).unwrap();
        let (v, l) = t.decide(a, &frame(BCAST, A, 42), 0);
        assert_eq!(v, Verdict::Flood);
        assert_eq!(
            l,
            Some(Learned {
                mac: MacAddr(A),
                port: a,
                old: None
            })
        );
        // B unknown yet: flooded; then B answers and is learned.
        assert_eq!(t.decide(a, &frame(B, A, 60), 0).0, Verdict::Flood);
        assert_eq!(t.decide(b, &frame(A, B, 60), 0).0, Verdict::To(a));
        assert_eq!(t.decide(a, &frame(B, A, 60), 0).0, Verdict::To(b));
        // To one's own MAC: not echoed.
        assert_eq!(
            t.decide(a, &frame(A, A, 60), 0).0,
            Verdict::Drop(DropReason::SamePort)
        );
        assert_eq!(t.port(a).unwrap().counters.rx_frames, 4);
    }

    #[test]
    fn hub_floods_everything_and_bad_sizes_are_dropped() {
        let mut t = Tables::new(true);
        let a = t.add_port(5, unix(1)).unwrap();
        let b = t.add_port(6, unix(2)).unwrap();
        t.decide(b, &frame(A, B, 60), 0);
        assert_eq!(t.decide(a, &frame(B, A, 60), 0).0, Verdict::Flood);
        assert_eq!(
            t.decide(a, &frame(B, A, 13), 0).0,
            Verdict::Drop(DropReason::Runt)
        );
        assert_eq!(
            t.decide(a, &frame(B, A, 1515), 0).0,
            Verdict::Drop(DropReason::Oversize)
        );
        assert_eq!(t.decide(a, &frame(B, A, 1514), 0).0, Verdict::Flood);
        let c = t.port(a).unwrap().counters;
        assert_eq!((c.runts, c.oversize, c.rx_frames), (1, 1, 2));
    }

    #[test]
    fn moves_ages_and_forgets_with_the_port() {
        let mut t = Tables::new(false);
        let a = t.add_port(5, unix(1)).unwrap();
        let b = t.add_port(6, unix(2)).unwrap();
        t.decide(a, &frame(BCAST, A, 60), 0);
        let (_, l) = t.decide(b, &frame(BCAST, A, 60), 1);
        assert_eq!(
            l,
            Some(Learned {
                mac: MacAddr(A),
                port: b,
                old: Some(a)
            })
        );
        // Still there after 100 s idle, gone after 101.
        assert_eq!(t.age(101), 0);
        assert_eq!(t.lookup(MacAddr(A)), Some(b));
        assert_eq!(t.age(102), 1);
        assert_eq!(t.lookup(MacAddr(A)), None);
        t.decide(b, &frame(BCAST, A, 60), 200);
        t.decide(b, &frame(BCAST, B, 60), 200);
        t.remove_port(b).unwrap();
        assert!(t.mac_table().is_empty());
        assert_eq!(t.live_ports(), &[a]);
        // The slot is reused.
        assert_eq!(t.add_port(7, unix(3)), Some(b));
    }

    #[test]
    fn senders_are_found_by_full_or_shorter_address() {
        let mut t = Tables::new(false);
        let short = DataAddr::from_raw(&[1, 0, 0, b'c', b'l', b'i']);
        let id = t
            .add_port(
                5,
                PortKind::Unix {
                    send_to: short.full_length(),
                    learned_len: false,
                    pinned: None,
                },
            )
            .unwrap();
        assert!(t
            .add_port(
                6,
                PortKind::Unix {
                    send_to: short.full_length(),
                    learned_len: false,
                    pinned: None
                }
            )
            .is_none());
        assert_eq!(t.port_for_sender(&short), Some(id));
        match &t.port(id).unwrap().kind {
            PortKind::Unix { send_to, .. } => assert_eq!(send_to.len, 6),
            k => panic!("{k:?}"),
        }
        assert_eq!(t.port_for_sender(&DataAddr::abstract_name(9, 9)), None);
        let zero = DataAddr::from_raw(&[1, 0]);
        t.add_port(
            7,
            PortKind::Unix {
                send_to: zero.full_length(),
                learned_len: false,
                pinned: None,
            },
        )
        .unwrap();
        assert_eq!(
            t.port_for_sender(&zero),
            None,
            "an unnamed sender matches no port"
        );
    }

    fn port_macs(t: &Tables, id: PortId) -> usize {
        t.port(id).unwrap().macs
    }

    #[test]
    fn mac_limits_are_counted_per_port_and_in_total() {
        let limits = MacLimits {
            per_port: 3,
            total: 5,
        };
        let mut t = Tables::with_limits(false, limits);
        let a = t.add_port(5, unix(1)).unwrap();
        let b = t.add_port(6, unix(2)).unwrap();
        let mac = |i: u8| [0x02, 0, 0, 0, 0, i];
        for i in 0..5 {
            t.decide(a, &frame(BCAST, mac(i), 60), 0);
        }
        assert_eq!((port_macs(&t, a), t.macs_refused), (3, 2));
        assert_eq!(t.take_limit_hit(), Some(LimitHit::Port(a)));
        assert_eq!(t.take_limit_hit(), None, "logged once");
        // A refused address is flooded to, not learned.
        assert_eq!(t.decide(b, &frame(mac(4), B, 60), 0).0, Verdict::Flood);
        for i in 10..14 {
            t.decide(b, &frame(BCAST, mac(i), 60), 0);
        }
        // b got 2 (its own B and mac 10), then the table (5) was full.
        assert_eq!((port_macs(&t, b), t.mac_table().len()), (2, 5));
        assert_eq!(t.take_limit_hit(), Some(LimitHit::Total));
        assert_eq!(t.port(b).unwrap().counters.macs_refused, 3);
        // A move keeps the counts right; aging and port removal give room back.
        t.decide(b, &frame(BCAST, mac(0), 60), 1);
        assert_eq!((port_macs(&t, a), port_macs(&t, b)), (2, 3));
        assert_eq!(t.lookup(MacAddr(mac(0))), Some(b));
        assert_eq!(t.age(101), 4);
        assert_eq!((port_macs(&t, a), port_macs(&t, b)), (0, 1));
        t.remove_port(b);
        assert!(t.mac_table().is_empty());
        for i in 20..23 {
            t.decide(a, &frame(BCAST, mac(i), 60), 200);
        }
        assert_eq!(port_macs(&t, a), 3);
    }

    fn thread_cpu() -> std::time::Duration {
        let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
        std::time::Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32)
    }

    /// Learns `macs` on one port of an unlimited table; returns the CPU time it took.
    fn learn_all(macs: impl Iterator<Item = [u8; 6]>) -> (std::time::Duration, usize) {
        let limits = MacLimits {
            per_port: usize::MAX,
            total: usize::MAX,
        };
        let mut t = Tables::with_limits(false, limits);
        let a = t.add_port(5, unix(1)).unwrap();
        let mut f = frame(BCAST, A, 60);
        let start = thread_cpu();
        for m in macs {
            f[6..12].copy_from_slice(&m);
            t.decide(a, &f, 0);
        }
        (thread_cpu() - start, t.mac_table().len())
    }

    #[test]
    fn addresses_sharing_their_low_bits_cost_no_more_than_random_ones() {
        const N: u32 = 60_000;
        // The key is the MAC as a little-endian integer: bytes 0-2 are its low 24 bits.
        let shared = (0..N).map(|i| {
            let b = i.to_le_bytes();
            [0x02, 0x11, 0x22, b[0], b[1], b[2]]
        });
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let random = (0..N).map(move |_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            [b[0] & 0xfe, b[1], b[2], b[3], b[4], b[5]]
        });
        let (base, n_random) = learn_all(random);
        let (worst, n_shared) = learn_all(shared);
        assert_eq!((n_random, n_shared), (N as usize, N as usize));
        assert!(
            worst < base * 5 + std::time::Duration::from_millis(200),
            "{N} addresses sharing their low 24 bits took {worst:?}, random ones {base:?}"
        );
    }
}
