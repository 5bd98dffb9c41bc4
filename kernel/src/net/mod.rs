//! The guest's network: eth<N> devices on host transports, each with a smoltcp
//! interface (ARP, IPv4, ICMP echo, UDP, TCP), the counters /proc/net/dev shows, an ARP
//! table learned from the frames seen, and the I/O the event loop and `ping` drive.

pub mod cmds;
pub mod daemon;
pub mod mcast;
pub mod pcap;
pub mod phy;
pub mod services;
pub mod spec;
pub mod tuntap;

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
use uml_proto::helper::AddrOp;

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
}

impl Link {
    fn data_fd(&self) -> Option<RawFd> {
        match self {
            Link::Daemon(d) => Some(d.data_fd()),
            Link::Tap { tap, .. } => tap.as_ref().map(Tap::fd),
            Link::Mcast(m) => Some(m.fd()),
            Link::Pcap(p) => Some(p.fd()),
        }
    }

    fn recv(&self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        match self {
            Link::Daemon(d) => d.recv(buf),
            Link::Tap { tap: Some(t), .. } => t.recv(buf),
            Link::Tap { tap: None, .. } => Ok(None),
            Link::Mcast(m) => m.recv(buf),
            Link::Pcap(p) => p.recv(buf),
        }
    }

    fn send(&self, frame: &[u8]) -> std::io::Result<()> {
        match self {
            Link::Daemon(d) => d.send(frame),
            Link::Tap { tap: Some(t), .. } => t.send(frame),
            Link::Tap { tap: None, .. } => Err(std::io::ErrorKind::NotConnected.into()),
            Link::Mcast(m) => m.send(frame),
            // Read-only: what the guest sends goes nowhere.
            Link::Pcap(_) => Ok(()),
        }
    }

    /// Sends, waiting a little for room when the host queue is full (a unix datagram
    /// peer accepts only a few queued frames, and poll cannot tell when it has room).
    fn send_waiting(&self, frame: &[u8]) -> std::io::Result<()> {
        for _ in 0..100 {
            match self.send(frame) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_micros(100));
                }
                other => return other,
            }
        }
        Err(std::io::ErrorKind::WouldBlock.into())
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
    pub spec: EthSpec,
    pub mac: MacAddr,
    pub link: Link,
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    queues: Queues,
    pub up: bool,
    pub stats: Stats,
    /// IPv4 neighbours seen in ARP frames, oldest first.
    pub arp: Vec<(Ipv4Address, MacAddr)>,
    pub services: Vec<Service>,
    /// Lines typed into TCP shell sessions, waiting for the kernel to run them.
    pub shell_lines: Vec<(SocketHandle, String)>,
}

impl NetDev {
    pub fn name(&self) -> String {
        format!("eth{}", self.spec.index)
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

    /// Sets (or with None clears) the IPv4 address. A device whose MAC was not given
    /// takes fe:fd:<address> the first time it gets one, as UML does. A helper-made
    /// tap's host route follows (`uml_net del` the old, `add` the new); the helper's
    /// output goes to `log`.
    pub fn set_ipv4(&mut self, cidr: Option<Ipv4Cidr>, log: &mut Vec<String>) {
        if let Some(old) = self.ipv4() {
            self.helper_route(AddrOp::Del, old, log);
        }
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            if let Some(c) = cidr {
                let _ = addrs.push(IpCidr::Ipv4(c));
            }
        });
        if let (Some(c), None) = (cidr, self.spec.mac) {
            let o = c.address().octets();
            self.mac = MacAddr([0xfe, 0xfd, o[0], o[1], o[2], o[3]]);
            self.spec.mac = Some(self.mac);
            self.iface
                .set_hardware_addr(HardwareAddress::Ethernet(EthernetAddress(self.mac.0)));
        }
        if let Some(new) = cidr {
            if let Link::Tap { gate: Some(g), .. } = &self.link {
                if *g == new.address().to_string() {
                    log.push(
                        "The tap IP address and the UML eth IP address must be different".into(),
                    );
                }
            }
            self.helper_route(AddrOp::Add, new, log);
        }
    }

    fn helper_route(&self, op: AddrOp, c: Ipv4Cidr, log: &mut Vec<String>) {
        let Some(tap) = self.link.helper_tap() else {
            return;
        };
        match tuntap::change_address(op, tap, &c.address().to_string(), &c.netmask().to_string()) {
            Ok(text) if !text.is_empty() => log.push(text),
            Ok(_) => {}
            Err(e) => log.push(e),
        }
    }

    /// Brings the device up or down. A helper-mode tap is made on the way up (and its
    /// host route added for the current address) and closed on the way down.
    pub fn set_up(&mut self, up: bool, log: &mut Vec<String>) -> Result<(), String> {
        if up == self.up {
            return Ok(());
        }
        if let Link::Tap {
            tap,
            gate: Some(gate),
        } = &mut self.link
        {
            if up {
                let (t, text) = Tap::from_helper(gate)?;
                if !text.is_empty() {
                    log.push(text);
                }
                *tap = Some(t);
                self.up = true;
                if let Some(c) = self.ipv4() {
                    self.helper_route(AddrOp::Add, c, log);
                }
                return Ok(());
            }
            if let Some(c) = self.ipv4() {
                self.helper_route(AddrOp::Del, c, log);
            }
            if let Link::Tap { tap, .. } = &mut self.link {
                *tap = None;
            }
        }
        self.up = up;
        Ok(())
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
            return;
        }
        self.iface.poll(now, &mut self.queues, &mut self.sockets);
        if !self.services.is_empty() {
            for s in &mut self.services {
                let lines = s.serve(&mut self.sockets);
                self.shell_lines.extend(lines);
            }
            self.iface.poll(now, &mut self.queues, &mut self.sockets);
        }
        for frame in std::mem::take(&mut self.queues.tx) {
            match self.link.send_waiting(&frame) {
                Ok(()) => {
                    self.stats.tx_packets += 1;
                    self.stats.tx_bytes += frame.len() as u64;
                }
                Err(_) => self.stats.tx_errors += 1,
            }
        }
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
        self.iface
            .poll_delay(now, &self.sockets)
            .map(|d| Duration::from_micros(d.total_micros()))
    }
}

/// All devices of the guest.
pub struct Net {
    pub devs: Vec<Option<NetDev>>,
    start: std::time::Instant,
    /// Kernel messages (helper output) for the kernel log.
    pub log: Vec<String>,
    /// A device's host descriptor changed: the event loop must look again.
    pub dirty: bool,
}

impl Default for Net {
    fn default() -> Self {
        Net {
            devs: (0..MAX_ETH).map(|_| None).collect(),
            start: std::time::Instant::now(),
            log: Vec::new(),
            dirty: false,
        }
    }
}

impl Drop for Net {
    /// Halt and reboot take every device down, so uml_net removes the host routes and
    /// proxy-ARP entries it added, as the kernel's shutdown does.
    fn drop(&mut self) {
        let mut log = Vec::new();
        for d in self.devs.iter_mut().flatten() {
            let _ = d.set_up(false, &mut log);
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
    pub fn attach(&mut self, arg: &str, log: &mut KernelLog) -> Result<usize, String> {
        let spec = spec::parse(arg)?;
        let n = spec.index;
        if self.devs[n].is_some() {
            return Err(format!("eth{n}: device already exists"));
        }
        let mac = match spec.mac {
            Some(m) => m,
            None => {
                log.info(format!(
                    "Choosing a random ethernet address for device eth{n}"
                ));
                random_mac()
            }
        };
        if let Transport::Mcast { addr, port, ttl } = &spec.transport {
            log.info(format!("Configured mcast device: {addr}:{port}-{ttl}"));
        }
        log.info(format!("Netdevice {n} ({mac}) : "));
        let link = match &spec.transport {
            Transport::Tuntap { dev, gate } => {
                log.info(match gate {
                    Some(g) => format!("TUN/TAP backend - IP = {g}"),
                    None => "TUN/TAP backend - ".into(),
                });
                let tap = match dev {
                    Some(name) => Some(Tap::open(name).map_err(|e| {
                        let msg = format!("tuntap_open : {name}: {e}");
                        log.err(&msg);
                        msg
                    })?),
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
                        .inspect_err(|e| log.err(e))?,
                )
            }
            Transport::Mcast { addr, port, ttl } => {
                log.info(format!(
                    "mcast backend multicast address: {addr}:{port}, TTL:{ttl}"
                ));
                Link::Mcast(Mcast::open(*addr, *port, *ttl).map_err(|e| {
                    let msg = format!("mcast_open : {e}");
                    log.err(&msg);
                    msg
                })?)
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
                    format!("eth{n}: {}: {e}", ctl.display())
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
        self.devs[n] = Some(NetDev {
            spec,
            mac,
            link,
            iface,
            sockets: SocketSet::new(Vec::new()),
            queues,
            up: false,
            stats: Stats::default(),
            arp: Vec::new(),
            services: Vec::new(),
            shell_lines: Vec::new(),
        });
        Ok(n)
    }

    /// Removes a device that is down.
    pub fn remove(&mut self, n: usize) -> Result<(), (i32, String)> {
        match self.devs.get(n).and_then(|d| d.as_ref()) {
            None => Err((-libc::ENODEV, "Device doesn't exist".into())),
            Some(d) if d.up => Err((-libc::EBUSY, "Device is busy".into())),
            Some(_) => {
                self.devs[n] = None;
                Ok(())
            }
        }
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

    /// Waits at most `limit` for frames on any device and services them (used while a
    /// shell command such as `ping` owns the console).
    pub fn wait_io(&mut self, limit: Duration) {
        let limit = self.poll_delay().map_or(limit, |d| d.min(limit));
        let mut fds: Vec<libc::pollfd> = self
            .devs
            .iter()
            .flatten()
            .filter_map(|d| d.link.data_fd())
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = limit.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: `fds` is a valid array of fds.len() pollfd structures for the call.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        for n in 0..MAX_ETH {
            self.service(n);
        }
    }

    /// Starts a TCP service on `port` on every device.
    pub fn start_service(&mut self, kind: services::Kind, port: u16) -> Result<(), String> {
        let mut any = false;
        for d in self.devs.iter_mut().flatten() {
            if d.services.iter().any(|s| s.port == port) {
                return Err(format!("port {port} is already in use"));
            }
            let s = Service::new(port, kind, &mut d.sockets);
            d.services.push(s);
            any = true;
        }
        if any {
            Ok(())
        } else {
            Err("no network devices".into())
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

    /// Answers a TCP shell session and sends the answer at once.
    pub fn shell_reply(&mut self, dev: usize, h: SocketHandle, text: &str, close: bool) {
        let now = self.now();
        if let Some(Some(d)) = self.devs.get_mut(dev) {
            Service::reply(&mut d.sockets, h, text, close);
            d.poll(now);
        }
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
