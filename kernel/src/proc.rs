//! The guest's /proc: version, uptime, meminfo, cmdline, partitions, mounts, and the
//! write-only mconsole file (present only when a notify socket was given), whose
//! writes become USER notifications.

use std::fmt::Write;

use crate::fs::oflag;
use crate::fs::procfs::{proc_mounts, FILESYSTEMS};
use crate::machine::{self, Machine};
use crate::net::Net;

/// Why a /proc read fails (the mconsole `proc` error texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcError {
    /// No such file, or not readable.
    Open,
    /// A directory.
    Read,
}

/// The files in /proc.
pub fn list(m: &Machine) -> Vec<&'static str> {
    let mut names = vec![
        "cmdline",
        "filesystems",
        "meminfo",
        "mounts",
        "net",
        "partitions",
        "uptime",
        "version",
    ];
    if m.notify.is_some() {
        names.insert(1, "mconsole");
    }
    names
}

/// Reads `/proc/<name>` (leading `/proc/` and `/` optional).
pub fn read(m: &Machine, name: &str) -> Result<String, ProcError> {
    let name = name.trim();
    let name = name
        .strip_prefix("/proc")
        .unwrap_or(name)
        .trim_start_matches('/');
    match name {
        "" | "." | "self" | "sys" | "net" => Err(ProcError::Read),
        "net/dev" => Ok(net_dev(&m.net)),
        "net/route" => Ok(net_route(&m.net)),
        "net/arp" => Ok(net_arp(&m.net)),
        "net/tcp" => Ok(net_sockets(&m.net, true)),
        "net/udp" => Ok(net_sockets(&m.net, false)),
        "version" => Ok(format!(
            "{} version {} (uml-kernel {}) {}\n",
            machine::SYSNAME,
            machine::RELEASE,
            env!("CARGO_PKG_VERSION"),
            machine::VERSION
        )),
        "uptime" => {
            let up = m.uptime_secs();
            Ok(format!("{up:.2} {:.2}\n", up * 0.99))
        }
        "meminfo" => Ok(meminfo(m)),
        "cmdline" => Ok(format!("{}\n", m.config.args.join(" "))),
        "partitions" => Ok(m.disks.partitions()),
        "mounts" => Ok(proc_mounts(&m.files.vfs)),
        "filesystems" => Ok(FILESYSTEMS.into()),
        _ => Err(ProcError::Open),
    }
}

/// The files in /proc/net.
const NET_FILES: [&str; 5] = ["net/dev", "net/route", "net/arp", "net/tcp", "net/udp"];

/// Sets the files of the /proc mounted in the VFS from the machine's state (call
/// before the guest reads them).
pub fn refresh(m: &Machine) {
    for name in list(m).into_iter().chain(NET_FILES) {
        let text = match name {
            "net" => continue,
            "mconsole" => String::new(),
            _ => read(m, name).unwrap_or_default(),
        };
        m.files.proc.set(name, text);
    }
}

/// mconsole `proc FILE`: reads the guest's /proc through the VFS (refreshed first), as
/// Linux's mconsole reads its procfs; from the machine directly when no /proc is
/// mounted (a root filesystem without a /proc directory).
pub fn read_mounted(m: &mut Machine, name: &str) -> Result<String, ProcError> {
    let trimmed = name.trim();
    let rel = trimmed
        .strip_prefix("/proc")
        .unwrap_or(trimmed)
        .trim_start_matches('/');
    let mounted = m
        .files
        .vfs
        .mounts()
        .iter()
        .any(|x| x.path == "/proc" && x.fs_type == "proc");
    if !mounted {
        return read(m, name);
    }
    // Only /proc's own files: no walking out of it, and the write-only mconsole file
    // is not readable.
    if rel.split('/').any(|c| c == "..") || rel == "mconsole" {
        return Err(ProcError::Open);
    }
    refresh(m);
    let vfs = &mut m.files.vfs;
    let path = format!("/proc/{rel}");
    let mut file = vfs
        .open(vfs.root(), path.as_bytes(), oflag::O_RDONLY, 0, 0, 0)
        .map_err(|_| ProcError::Open)?;
    let mut text = Vec::new();
    let mut buf = vec![0u8; 16384];
    let result = loop {
        match vfs.read(&mut file, &mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(_) => break Err(ProcError::Read),
        }
    };
    let _ = vfs.close(file);
    result.map(|()| String::from_utf8_lossy(&text).into_owned())
}

fn meminfo(m: &Machine) -> String {
    let (used, free) = m.memory_kb();
    format!(
        "MemTotal:       {:>8} kB\nMemFree:        {:>8} kB\nMemAvailable:   {:>8} kB\nBuffers:        {:>8} kB\nCached:         {:>8} kB\nSwapTotal:      {:>8} kB\nSwapFree:       {:>8} kB\n",
        used + free,
        free,
        free,
        m.files.cache.used() / 1024,
        0,
        0,
        0
    )
}

/// A write to /proc that is refused (every file but mconsole is read-only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteDenied(pub String);

impl std::fmt::Display for WriteDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "/proc/{}: Permission denied", self.0)
    }
}

impl std::error::Error for WriteDenied {}

/// A write to `/proc/<name>` from the guest.
pub fn write(m: &mut Machine, name: &str, data: &[u8]) -> Result<(), WriteDenied> {
    let name = name.strip_prefix("/proc/").unwrap_or(name);
    if name == "mconsole" && m.notify.is_some() {
        m.notify(uml_proto::mconsole::NotifyKind::User, data);
        return Ok(());
    }
    Err(WriteDenied(name.to_owned()))
}

/// /proc/net/dev.
fn net_dev(net: &Net) -> String {
    let mut s = String::from(
        "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n",
    );
    let _ = writeln!(
        s,
        "{:>6}:{:>8} {:>7} {:>4} {:>4} {:>4} {:>5} {:>10} {:>9} {:>8} {:>7} {:>4} {:>4} {:>4} {:>5} {:>7} {:>10}",
        "lo", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
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

/// An IPv4 address as /proc/net prints it: the network-order word in host order, hex.
fn hex_addr(a: smoltcp::wire::Ipv4Address) -> String {
    format!("{:08X}", u32::from_le_bytes(a.octets()))
}

/// /proc/net/route: the default routes, then each up device's subnet; every line
/// padded to 127 columns as Linux does.
fn net_route(net: &Net) -> String {
    let mut s = format!(
        "{:<127}\n",
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT"
    );
    for (dev, dst, gw, mask) in net.routes() {
        let flags = if gw.is_unspecified() { 1 } else { 3 };
        let line = format!(
            "{dev}\t{}\t{}\t{flags:04X}\t0\t0\t0\t{}\t0\t0\t0",
            hex_addr(dst),
            hex_addr(gw),
            hex_addr(mask)
        );
        let _ = writeln!(s, "{line:<127}");
    }
    s
}

/// /proc/net/arp: the neighbours each device saw.
fn net_arp(net: &Net) -> String {
    let mut s = String::from(
        "IP address       HW type     Flags       HW address            Mask     Device\n",
    );
    for d in net.devs.iter().flatten() {
        for (ip, mac) in &d.arp {
            let _ = writeln!(
                s,
                "{:<16} 0x{:<10x}0x{:<10x}{:<17}     {:<8} {}",
                ip.to_string(),
                1,
                2,
                mac.to_string(),
                "*",
                d.name()
            );
        }
    }
    s
}

/// /proc/net/tcp and /proc/net/udp: every socket of the stacks (the built-in
/// services' and the guest programs'), in Linux's columns.
fn net_sockets(net: &Net, tcp: bool) -> String {
    use smoltcp::socket::{tcp as t, Socket};
    use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};
    let mut s = if tcp {
        String::from("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
    } else {
        String::from("   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n")
    };
    let ep = |e: Option<IpEndpoint>, ours: Ipv4Address| match e {
        Some(IpEndpoint {
            addr: IpAddress::Ipv4(a),
            port,
        }) => format!("{}:{port:04X}", hex_addr(a)),
        None => format!("{}:0000", hex_addr(ours)),
    };
    let mut n = 0;
    for d in net.devs.iter().flatten() {
        let any = Ipv4Address::UNSPECIFIED;
        for (_, sock) in d.sockets.iter() {
            let (local, remote, st, txq, rxq) = match sock {
                Socket::Tcp(x) if tcp => {
                    let st = match x.state() {
                        t::State::Established => 1,
                        t::State::SynSent => 2,
                        t::State::SynReceived => 3,
                        t::State::FinWait1 => 4,
                        t::State::FinWait2 => 5,
                        t::State::TimeWait => 6,
                        t::State::Closed => continue,
                        t::State::CloseWait => 8,
                        t::State::LastAck => 9,
                        t::State::Listen => 10,
                        t::State::Closing => 11,
                    };
                    let local = match x.local_endpoint() {
                        Some(e) => ep(Some(e), any),
                        None => format!("{}:{:04X}", hex_addr(any), x.listen_endpoint().port),
                    };
                    (
                        local,
                        ep(x.remote_endpoint(), any),
                        st,
                        x.send_queue(),
                        x.recv_queue(),
                    )
                }
                Socket::Udp(x) if !tcp => {
                    let e = x.endpoint();
                    let addr = match e.addr {
                        Some(IpAddress::Ipv4(a)) => a,
                        None => any,
                    };
                    (
                        format!("{}:{:04X}", hex_addr(addr), e.port),
                        ep(None, any),
                        7,
                        0,
                        0,
                    )
                }
                _ => continue,
            };
            let _ = writeln!(
                s,
                "{n:>4}: {local} {remote} {st:02X} {txq:08X}:{rxq:08X} 00:00000000 00000000     0        0 0"
            );
            n += 1;
        }
    }
    s
}
