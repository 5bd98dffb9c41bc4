//! The on-the-wire half of duplicate address detection (RFC 5227): before a guest's
//! address is published on a LAN, ARP probes (sender 0.0.0.0) ask who has it, and any
//! answer — or another host's probe for it — means it is taken.

use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recv, MsgFlags};
use std::os::fd::{AsFd, AsRawFd};
use uml_proto::arp::{self, ArpPacket};
use uml_proto::packet::{self as af_packet, ETH_P_ARP};

/// How long answers are awaited after the first probe.
pub const LISTEN: Duration = Duration::from_millis(1000);
/// Probes sent, this far apart.
const PROBES: u32 = 2;
const GAP: Duration = Duration::from_millis(300);

/// Probes `addr` on the Ethernet interface `index` (whose MAC is `mac`); Some(MAC of
/// the host that answered) when the address is taken. Needs CAP_NET_RAW.
pub fn probe(index: u32, mac: [u8; 6], addr: Ipv4Addr) -> io::Result<Option<[u8; 6]>> {
    let sock = af_packet::open(index, ETH_P_ARP, af_packet::Kind::Datagram, false)?;
    let mut frame = [0u8; arp::LEN];
    ArpPacket::probe(mac, addr).emit(&mut frame);
    let start = Instant::now();
    let mut sent = 0;
    let mut buf = [0u8; 128];
    loop {
        let elapsed = start.elapsed();
        if sent < PROBES && elapsed >= GAP * sent {
            match af_packet::send_to(sock.as_fd(), index, ETH_P_ARP, Some([0xff; 6]), &frame) {
                // A link that is down has nobody on it to answer.
                Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) => return Ok(None),
                r => r?,
            }
            sent += 1;
        }
        let Some(left) = LISTEN.checked_sub(start.elapsed()) else {
            return Ok(None);
        };
        let next_probe = if sent < PROBES {
            (GAP * sent).saturating_sub(start.elapsed())
        } else {
            left
        };
        let wait = left.min(next_probe).as_millis().min(60_000) as u16;
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(wait)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let n = match recv(sock.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
            Ok(n) => n,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if let Ok(p) = ArpPacket::parse(&buf[..n]) {
            if p.claims(addr, mac) {
                return Ok(Some(p.sender_mac));
            }
        }
    }
}
