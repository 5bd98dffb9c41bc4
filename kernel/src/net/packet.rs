//! The raw AF_PACKET socket behind the vector `raw` and `hybrid` transports: every
//! Ethernet frame of one host interface (bound by index, promiscuous while open), with
//! the direction the host kernel saw it go, so a transport can keep only one way. As
//! linux.uml's, it uses virtio-net headers (PACKET_VNET_HDR), so frames the host built
//! with checksum or segmentation offload reach the guest complete (see `vnet`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use uml_proto::packet::{self as af_packet, ETH_P_ALL};

use super::vnet;

pub struct Packet {
    fd: OwnedFd,
    index: u32,
    /// Frames made from one received packet (a GSO packet gives several), with their
    /// direction.
    pending: RefCell<VecDeque<(Vec<u8>, bool)>>,
    /// Room for one received packet, kept between calls.
    packet: RefCell<Vec<u8>>,
}

/// The largest packet the host hands over: a 64 KiB GSO frame and its header.
const PACKET_MAX: usize = vnet::HDR_LEN + 65536 + 14;

impl Packet {
    /// Opens a non-blocking packet socket on `ifname` (needs CAP_NET_RAW).
    pub fn open(ifname: &str) -> io::Result<Packet> {
        let index = nix::net::if_::if_nametoindex(ifname).map_err(io::Error::from)?;
        let fd = af_packet::open(index, ETH_P_ALL, af_packet::Kind::Raw, true)?;
        // Frames for the guest's own MAC address must reach us on a real NIC too; the
        // membership ends when the socket closes.
        af_packet::add_promiscuous_membership(fd.as_fd(), index)?;
        af_packet::enable_vnet_header(fd.as_fd())?;
        Ok(Packet {
            fd,
            index,
            pending: RefCell::new(VecDeque::new()),
            packet: RefCell::new(vec![0u8; PACKET_MAX]),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The next frame and whether the host was sending it (PACKET_OUTGOING), or None.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<(usize, bool)>> {
        let mut pending = self.pending.borrow_mut();
        let mut packet = self.packet.borrow_mut();
        loop {
            if let Some((frame, outgoing)) = pending.pop_front() {
                let n = frame.len().min(buf.len());
                buf[..n].copy_from_slice(&frame[..n]);
                return Ok(Some((n, outgoing)));
            }
            let Some((n, outgoing)) = af_packet::recv(self.fd.as_fd(), &mut packet)? else {
                return Ok(None);
            };
            let mut frames = Vec::new();
            vnet::frames(&packet[..n], &mut frames);
            pending.extend(frames.into_iter().map(|f| (f, outgoing)));
        }
    }

    /// Sends one whole Ethernet frame out of the interface (behind an empty virtio-net
    /// header: checksums done, no segmentation).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let mut packet = Vec::with_capacity(vnet::HDR_LEN + frame.len());
        packet.extend_from_slice(&[0u8; vnet::HDR_LEN]);
        packet.extend_from_slice(frame);
        af_packet::send_to(self.fd.as_fd(), self.index, ETH_P_ALL, None, &packet)
    }
}
