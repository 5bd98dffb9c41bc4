//! The guest's network: eth<N> devices on host transports, each with a smoltcp
//! interface (ARP, IPv4, ICMP echo, UDP, TCP), the counters /proc/net/dev shows, an ARP
//! table learned from the frames seen, and the I/O the event loop and `ping` drive.

pub mod daemon;
pub mod error;
pub mod hotplug;
pub mod ifchange;
pub mod inet;
pub mod mcast;
pub mod packet;
pub mod pcap;
pub mod phy;
pub mod services;
pub mod slirp;
pub mod spec;
pub mod tuntap;
pub mod vector;
pub mod vnet;

use std::collections::VecDeque;
use std::io::Read;
use std::os::fd::RawFd;
use std::time::Duration;

use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet};
use smoltcp::time::Instant as NetInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};
use uml_proto::ether::MacAddr;

use self::pcap::Pcap;
use crate::klog::KernelLog;
use daemon::Daemon;
use mcast::Mcast;
use phy::{Queues, MAX_FRAME};
use services::Service;
use smoltcp::iface::SocketHandle;
pub use spec::{EthSpec, Transport, MAX_ETH};
use tuntap::Tap;

pub use error::{NetError, SpecError};

/// How soon a device retries frames the host queue had no room for.
const TX_RETRY: Duration = Duration::from_micros(100);
/// A host queue that stays full is retried less and less often, down to this.
const TX_RETRY_MAX: Duration = Duration::from_millis(10);
/// Frames a device holds back at most (TCP windows keep it far below).
const MAX_BACKLOG: usize = 1024;
use vector::Vector;

/// Most neighbours the `arp` table keeps (the oldest goes first): any host on the LAN
/// can send ARP frames from made-up addresses. smoltcp's own neighbour cache, which
/// routing uses, is a fixed 8 entries (its IFACE_NEIGHBOR_CACHE_COUNT default).
pub const ARP_TABLE_MAX: usize = 256;

/// Interface counters (the columns of /proc/net/dev that can be nonzero here).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
}

/// The host side of a device.
pub enum Link {
    Daemon(Daemon),
    /// A tap; a helper-made one (`gate`) exists only while the device is up.
    Tap {
        tap: Option<Tap>,
        gate: Option<String>,
    },
    Mcast(Mcast),
    Pcap(Pcap),
    Vector(Vector),
    Slirp(slirp::Slirp),
}

impl Link {
    fn data_fd(&self) -> Option<RawFd> {
        match self {
            Link::Daemon(d) => Some(d.data_fd()),
            Link::Tap { tap, .. } => tap.as_ref().map(Tap::fd),
            Link::Mcast(m) => Some(m.fd()),
            Link::Pcap(p) => Some(p.fd()),
            Link::Vector(v) => Some(v.fd()),
            Link::Slirp(s) => Some(s.fd()),
        }
    }

    fn recv(&self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        match self {
            Link::Daemon(d) => d.recv(buf),
            Link::Tap { tap: Some(t), .. } => t.recv(buf),
            Link::Tap { tap: None, .. } => Ok(None),
            Link::Mcast(m) => m.recv(buf),
            Link::Pcap(p) => p.recv(buf),
            Link::Vector(v) => v.recv(buf),
            Link::Slirp(s) => s.recv(buf),
        }
    }

    fn send(&self, frame: &[u8]) -> std::io::Result<()> {
        match self {
            Link::Daemon(d) => d.send(frame),
            Link::Tap { tap: Some(t), .. } => t.send(frame),
            Link::Tap { tap: None, .. } => Err(std::io::ErrorKind::NotConnected.into()),
            Link::Mcast(m) => m.send(frame),
            Link::Vector(v) => v.send(frame),
            Link::Slirp(s) => s.send(frame),
            // Read-only: what the guest sends goes nowhere.
            Link::Pcap(_) => Ok(()),
        }
    }

    /// The helper-made tap's name, when there is one.
    fn helper_tap(&self) -> Option<&str> {
        match self {
            Link::Tap {
                tap: Some(t),
                gate: Some(_),
            } => Some(&t.name),
            _ => None,
        }
    }
}

pub struct NetDev {
    /// Unique for the kernel's life: a job holding one of this device's sockets checks
    /// it is still the same device (a removed and re-added ethN is another).
    pub id: u64,
    pub spec: EthSpec,
    pub mac: MacAddr,
    pub link: Link,
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    queues: Queues,
    /// Frames the host queue had no room for yet, oldest first (a unix datagram peer
    /// accepts only a few queued frames, and poll cannot tell when it has room again:
    /// the loop retries after `TX_RETRY` instead of waiting).
    backlog: VecDeque<Vec<u8>>,
    /// When to retry the backlog: doubles while nothing goes out, back to `TX_RETRY`
    /// once a frame does.
    tx_retry: Duration,
    pub up: bool,
    pub stats: Stats,
    /// IPv4 neighbours seen in ARP frames, oldest first.
    pub arp: Vec<(Ipv4Address, MacAddr)>,
    pub services: Vec<Service>,
    /// Lines typed into TCP shell sessions, waiting for the kernel to run them.
    pub shell_lines: Vec<(SocketHandle, String)>,
    /// TCP shell sessions that ended, for the kernel to drop their jobs.
    pub closed_sessions: Vec<SocketHandle>,
}

impl NetDev {
    pub fn name(&self) -> String {
        dev_name(self.spec.index)
    }

    pub fn ipv4(&self) -> Option<Ipv4Cidr> {
        self.iface
            .ip_addrs()
            .iter()
            .map(|a| match a {
                IpCidr::Ipv4(c) => *c,
            })
            .next()
    }

    /// Reads every waiting frame from the host (dropping them while down), then lets
    /// smoltcp answer and sends what it produced.
    fn service(&mut self, now: NetInstant) {
        let mut buf = vec![0u8; MAX_FRAME + 12];
        while let Ok(Some(n)) = self.link.recv(&mut buf) {
            if !self.up {
                self.stats.rx_dropped += 1;
                continue;
            }
            if n >= 12 && buf[6..12] == self.mac.0 {
                continue; // our own frame, looped back by multicast
            }
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += n as u64;
            self.learn_arp(&buf[..n]);
            self.queues.rx.push_back(buf[..n].to_vec());
        }
        self.poll(now);
    }

    /// Runs the stack once and transmits its frames.
    pub fn poll(&mut self, now: NetInstant) {
        if !self.up {
            self.queues.rx.clear();
            self.backlog.clear();
            return;
        }
        self.iface.poll(now, &mut self.queues, &mut self.sockets);
        if !self.services.is_empty() {
            for s in &mut self.services {
                let lines = s.serve(&mut self.sockets, &mut self.closed_sessions);
                self.shell_lines.extend(lines);
            }
            self.iface.poll(now, &mut self.queues, &mut self.sockets);
        }
        self.backlog.extend(self.queues.tx.drain(..));
        self.transmit();
        // The slirp device answers ARP itself: let the stack see the answer now.
        if matches!(&self.link, Link::Slirp(s) if s.has_local_rx()) {
            self.service(now);
        }
    }

    /// Sends the backlog until the host queue is full; a frame that cannot be sent at
    /// all, or that waited past `MAX_BACKLOG` others, is counted as an error.
    fn transmit(&mut self) {
        let mut sent_any = false;
        while let Some(frame) = self.backlog.front() {
            match self.link.send(frame) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Ok(()) => {
                    sent_any = true;
                    self.stats.tx_packets += 1;
                    self.stats.tx_bytes += frame.len() as u64;
                }
                Err(_) => self.stats.tx_errors += 1,
            }
            self.backlog.pop_front();
        }
        while self.backlog.len() > MAX_BACKLOG {
            self.backlog.pop_front();
            self.stats.tx_errors += 1;
        }
        self.tx_retry = if sent_any || self.backlog.is_empty() {
            TX_RETRY
        } else {
            (self.tx_retry * 2).min(TX_RETRY_MAX)
        };
    }

    /// Records the sender of an ARP frame (request or reply) for IPv4 over Ethernet.
    fn learn_arp(&mut self, f: &[u8]) {
        if f.len() < 42 || f[12..14] != [0x08, 0x06] || f[14..20] != [0, 1, 8, 0, 6, 4] {
            return;
        }
        let mac = MacAddr(f[22..28].try_into().expect("6 bytes"));
        let ip = Ipv4Address::new(f[28], f[29], f[30], f[31]);
        if ip.is_unspecified() {
            return;
        }
        self.arp.retain(|(a, _)| *a != ip);
        if self.arp.len() >= ARP_TABLE_MAX {
            self.arp.remove(0);
        }
        self.arp.push((ip, mac));
    }

    fn delay(&mut self, now: NetInstant) -> Option<Duration> {
        if !self.up {
            return None;
        }
        if !self.backlog.is_empty() {
            return Some(self.tx_retry);
        }
        self.iface
            .poll_delay(now, &self.sockets)
            .map(|d| Duration::from_micros(d.total_micros()))
    }
}

/// Device slots: eth0..eth15, then vec0..vec15.
pub const DEV_SLOTS: usize = 2 * MAX_ETH;

/// `eth<N>` or, past the eth slots, `vec<N>`.
pub fn dev_name(index: usize) -> String {
    match index.checked_sub(MAX_ETH) {
        Some(v) => format!("vec{v}"),
        None => format!("eth{index}"),
    }
}

/// The slot of a device name (`eth<N>` or `vec<N>`).
pub fn dev_index(name: &str) -> Option<usize> {
    let (base, n) = match name.strip_prefix("vec") {
        Some(n) => (MAX_ETH, n),
        None => (0, name.strip_prefix("eth")?),
    };
    let n: usize = n.parse().ok().filter(|&n| n < MAX_ETH)?;
    Some(base + n)
}

/// Why a route could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// No up device's subnet holds the gateway (ENETUNREACH).
    Unreachable,
    /// The device's route table is full (ENOSPC).
    Full,
}

/// All devices of the guest.
pub struct Net {
    pub devs: Vec<Option<NetDev>>,
    start: std::time::Instant,
    /// A device's host descriptor changed: the event loop must look again.
    pub dirty: bool,
    next_id: u64,
    /// Guest programs' sockets that outlived their descriptors.
    pub guest: inet::Guest,
}

impl Default for Net {
    fn default() -> Self {
        Net {
            devs: (0..DEV_SLOTS).map(|_| None).collect(),
            start: std::time::Instant::now(),
            dirty: false,
            next_id: 1,
            guest: inet::Guest::default(),
        }
    }
}

impl Drop for Net {
    /// Halt and reboot take every device down, so uml_net removes the host routes and
    /// proxy-ARP entries it added, as the kernel's shutdown does.
    fn drop(&mut self) {
        let mut log = Vec::new();
        for d in self.devs.iter_mut().flatten() {
            let plan = d.plan_up(false);
            let _ = d.run_now(&plan, &mut log);
        }
    }
}

/// Six random bytes made a locally administered unicast address.
fn random_mac() -> MacAddr {
    let mut b = [0u8; 6];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ u64::from(std::process::id());
        b.copy_from_slice(&t.to_le_bytes()[..6]);
    }
    b[0] = (b[0] & 0xfe) | 0x02;
    MacAddr(b)
}

impl Net {
    pub fn now(&self) -> NetInstant {
        NetInstant::from_micros(self.start.elapsed().as_micros() as i64)
    }

    /// Sets up a device from its switch, logging as linux.uml does; on failure the
    /// device does not exist and the error says why.
    pub fn attach(&mut self, arg: &str, log: &mut KernelLog) -> Result<usize, NetError> {
        let spec = spec::parse(arg)?;
        let n = spec.index;
        let name = dev_name(n);
        if self.devs[n].is_some() {
            return Err(NetError::Exists(n));
        }
        let mac = match spec.mac {
            Some(m) => m,
            None => {
                log.info(format!(
                    "Choosing a random ethernet address for device {name}"
                ));
                random_mac()
            }
        };
        if let Transport::Mcast { addr, port, ttl } = &spec.transport {
            log.info(format!("Configured mcast device: {addr}:{port}-{ttl}"));
        }
        if !matches!(spec.transport, Transport::Vector(_)) {
            log.info(format!("Netdevice {n} ({mac}) : "));
        }
        let link = match &spec.transport {
            Transport::Slirp { argv } => {
                // linux.uml: one line per argument, then an empty line.
                let args: Vec<String> = argv.iter().map(|a| format!(" '{a}'\n")).collect();
                log.info(format!(
                    "SLIRP backend - command line:\n{}\n",
                    args.concat()
                ));
                Link::Slirp(slirp::Slirp::spawn(argv, mac).map_err(|why| {
                    log.err(&why);
                    NetError::Transport {
                        dev: name.clone(),
                        why,
                    }
                })?)
            }
            // linux.uml logs nothing more for a vector device.
            Transport::Vector(t) => Link::Vector(Vector::open(t).map_err(|e| {
                let why = format!("transport={}: {e}", t.name());
                log.err(format!("{name}: {why}"));
                NetError::Transport {
                    dev: name.clone(),
                    why,
                }
            })?),
            Transport::Tuntap { dev, gate } => {
                log.info(match gate {
                    Some(g) => format!("TUN/TAP backend - IP = {g}"),
                    None => "TUN/TAP backend - ".into(),
                });
                let tap = match dev {
                    Some(name) => Some(Tap::open(name).inspect_err(|e| log.err(e.to_string()))?),
                    None => None,
                };
                // A preconfigured tap is the host's business: no helper runs for it,
                // whatever IP its switch names.
                Link::Tap {
                    gate: if tap.is_some() { None } else { gate.clone() },
                    tap,
                }
            }
            Transport::Pcap {
                host_if,
                filter,
                promisc,
                optimize,
            } => {
                log.info(format!(
                    "pcap backend - host interface {host_if}, filter '{}'",
                    filter.as_deref().unwrap_or("")
                ));
                Link::Pcap(
                    Pcap::open(host_if, filter.as_deref(), *promisc, *optimize)
                        .inspect_err(|e| log.err(e.to_string()))?,
                )
            }
            Transport::Mcast { addr, port, ttl } => {
                log.info(format!(
                    "mcast backend multicast address: {addr}:{port}, TTL:{ttl}"
                ));
                Link::Mcast(
                    Mcast::open(*addr, *port, *ttl)
                        .map_err(NetError::Mcast)
                        .inspect_err(|e| log.err(e.to_string()))?,
                )
            }
            Transport::Daemon { ctl } => {
                // linux.uml ends this one with an empty line.
                log.info(format!(
                    "daemon backend (uml_switch version 3) - unix:{}\n\n",
                    ctl.display()
                ));
                let d = Daemon::open(ctl, n as u32).map_err(|e| {
                    let msg = format!(
                        "daemon_open : control connect failed, errno = {}",
                        e.raw_os_error().unwrap_or(0)
                    );
                    log.err(&msg);
                    NetError::Daemon {
                        dev: n,
                        ctl: ctl.clone(),
                        source: e,
                    }
                })?;
                Link::Daemon(d)
            }
        };
        let mut queues = Queues::default();
        let mut config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac.0)));
        config.random_seed = u64::from_le_bytes({
            let mut s = [0u8; 8];
            s[..6].copy_from_slice(&random_mac().0);
            s
        });
        let iface = Interface::new(config, &mut queues, self.now());
        self.next_id += 1;
        self.devs[n] = Some(NetDev {
            id: self.next_id,
            spec,
            mac,
            link,
            iface,
            sockets: SocketSet::new(Vec::new()),
            queues,
            backlog: VecDeque::new(),
            tx_retry: TX_RETRY,
            up: false,
            stats: Stats::default(),
            arp: Vec::new(),
            services: Vec::new(),
            shell_lines: Vec::new(),
            closed_sessions: Vec::new(),
        });
        Ok(n)
    }

    /// The descriptors the event loop watches for device `n`.
    pub fn fds(&self, n: usize) -> Vec<RawFd> {
        match self.devs.get(n) {
            Some(Some(d)) => d.link.data_fd().into_iter().collect(),
            _ => Vec::new(),
        }
    }

    /// Handles readiness of device `n`'s descriptors.
    pub fn service(&mut self, n: usize) {
        let now = self.now();
        if let Some(Some(d)) = self.devs.get_mut(n) {
            d.service(now);
        }
    }

    /// Lets every up device's stack run its timers.
    pub fn poll_all(&mut self) {
        let now = self.now();
        for d in self.devs.iter_mut().flatten() {
            d.poll(now);
        }
    }

    /// How long the event loop may sleep before a stack needs to run.
    pub fn poll_delay(&mut self) -> Option<Duration> {
        let now = self.now();
        self.devs
            .iter_mut()
            .flatten()
            .filter_map(|d| d.delay(now))
            .min()
    }

    /// Starts a TCP service on `port` on every device.
    pub fn start_service(&mut self, kind: services::Kind, port: u16) -> Result<(), NetError> {
        let mut any = false;
        for d in self.devs.iter_mut().flatten() {
            if d.services.iter().any(|s| s.port == port) {
                return Err(NetError::PortInUse(port));
            }
            let s = Service::new(port, kind, &mut d.sockets);
            d.services.push(s);
            any = true;
        }
        if any {
            Ok(())
        } else {
            Err(NetError::NoDevices)
        }
    }

    /// Lines typed into TCP shells: (device, session, line).
    pub fn take_shell_lines(&mut self) -> Vec<(usize, SocketHandle, String)> {
        let mut v = Vec::new();
        for d in self.devs.iter_mut().flatten() {
            let n = d.spec.index;
            v.extend(d.shell_lines.drain(..).map(|(h, l)| (n, h, l)));
        }
        v
    }

    /// Writes a shell command's output to a TCP shell session and sends it at once;
    /// `end` is Some(close) when the command is over: a new prompt, or the session
    /// closed. A session that is gone is skipped.
    pub fn shell_write(&mut self, dev: usize, h: SocketHandle, text: &str, end: Option<bool>) {
        let now = self.now();
        if let Some(Some(d)) = self.devs.get_mut(dev) {
            let Some(service) = d.services.iter_mut().find(|s| s.handles.contains(&h)) else {
                return;
            };
            if end.is_some() {
                service.answered(h);
            }
            Service::write(&mut d.sockets, h, text, end);
            d.poll(now);
        }
    }

    /// TCP shell sessions that ended since the last call: (device, session).
    pub fn take_closed_sessions(&mut self) -> Vec<(usize, SocketHandle)> {
        let mut v = Vec::new();
        for d in self.devs.iter_mut().flatten() {
            let n = d.spec.index;
            v.extend(d.closed_sessions.drain(..).map(|h| (n, h)));
        }
        v
    }

    /// Device `n` if it is still the one with identity `id`.
    pub fn dev_mut(&mut self, n: usize, id: u64) -> Option<&mut NetDev> {
        self.devs.get_mut(n)?.as_mut().filter(|d| d.id == id)
    }

    /// `netstat`: the TCP services' sockets.
    pub fn netstat(&self) -> String {
        let mut out = String::from(
            "Active Internet connections (servers and established)
Proto Recv-Q Send-Q Local Address          Foreign Address        State       Service
",
        );
        for d in self.devs.iter().flatten() {
            for s in &d.services {
                s.describe(&d.sockets, &mut out);
            }
        }
        out
    }

    /// `route add default gw GW`: the default route goes on the up device whose subnet
    /// holds the gateway.
    pub fn add_default_route(&mut self, gw: Ipv4Address) -> Result<(), RouteError> {
        let d = self
            .devs
            .iter_mut()
            .flatten()
            .find(|d| d.up && d.ipv4().is_some_and(|c| c.contains_addr(&gw)))
            .ok_or(RouteError::Unreachable)?;
        d.iface
            .routes_mut()
            .add_default_ipv4_route(gw)
            .map(|_| ())
            .map_err(|_| RouteError::Full)
    }

    /// `route del default`: whether there was one.
    pub fn del_default_route(&mut self) -> bool {
        let mut any = false;
        for d in self.devs.iter_mut().flatten() {
            any |= d.iface.routes_mut().remove_default_ipv4_route().is_some();
        }
        any
    }

    /// The routing table as /proc/net/route and `route` show it: (device, destination,
    /// gateway, mask), the default routes first.
    pub fn routes(&self) -> Vec<(String, Ipv4Address, Ipv4Address, Ipv4Address)> {
        let ups = || self.devs.iter().flatten().filter(|d| d.up);
        let mut v = Vec::new();
        for d in ups() {
            if let Some(r) = d.iface.routes().get_default_ipv4_route() {
                let any = Ipv4Address::UNSPECIFIED;
                let smoltcp::wire::IpAddress::Ipv4(gw) = r.via_router;
                v.push((d.name(), any, gw, any));
            }
        }
        for d in ups() {
            if let Some(c) = d.ipv4() {
                let net = c.network();
                let any = Ipv4Address::UNSPECIFIED;
                v.push((d.name(), net.address(), any, net.netmask()));
            }
        }
        v
    }

    /// The device whose subnet holds `dst`, else the first with a default route.
    pub fn route_for(&self, dst: Ipv4Address) -> Option<usize> {
        let ups = || self.devs.iter().flatten().filter(|d| d.up);
        ups()
            .find(|d| d.ipv4().is_some_and(|c| c.contains_addr(&dst)))
            .or_else(|| {
                ups().find(|d| {
                    d.ipv4().is_some() && d.iface.routes().get_default_ipv4_route().is_some()
                })
            })
            .map(|d| d.spec.index)
    }
}
