//! The slirp transport, `eth<N>=slirp[,MAC[,PATH[,ARG...]]]`: the user-mode helper
//! (Debian's `slirp`, default /usr/bin/slirp) runs with its stdin and stdout on one end
//! of a socket pair and speaks SLIP (RFC 1055: IP packets between END bytes, END and ESC
//! escaped) on it. SLIP carries no Ethernet, so the device makes it up for the guest's
//! stack, as linux.uml's slirp device (IFF_NOARP) needs none: every ARP request is
//! answered at once with one made-up peer address, IPv4 packets from the helper arrive
//! in frames from that address, and only IPv4 frames leave (their Ethernet header
//! dropped).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use uml_proto::ether::MacAddr;

/// The helper linux.uml's documentation names.
pub const DEFAULT_HELPER: &str = "/usr/bin/slirp";
/// The Ethernet address the helper's side of the link seems to have.
pub const PEER_MAC: MacAddr = MacAddr([0xfe, 0xfd, 0xff, 0xff, 0xff, 0xfe]);
/// How long a send may wait for the helper to read (it reads all the time).
const SEND_LIMIT: Duration = Duration::from_secs(1);
/// The largest packet accepted from the helper (its MRU is at most 1500).
const MAX_PACKET: usize = super::phy::MTU;

const END: u8 = 0xc0;
const ESC: u8 = 0xdb;
const ESC_END: u8 = 0xdc;
const ESC_ESC: u8 = 0xdd;

/// SLIP-encodes `packet` (with an END before it, which flushes line noise, and after).
pub fn slip_encode(packet: &[u8], out: &mut Vec<u8>) {
    out.push(END);
    for &b in packet {
        match b {
            END => out.extend_from_slice(&[ESC, ESC_END]),
            ESC => out.extend_from_slice(&[ESC, ESC_ESC]),
            _ => out.push(b),
        }
    }
    out.push(END);
}

/// Reassembles SLIP packets from a byte stream.
#[derive(Debug, Default)]
pub struct SlipDecoder {
    packet: Vec<u8>,
    escaped: bool,
    /// The packet being read is longer than MAX_PACKET: dropped at its END.
    oversize: bool,
}

impl SlipDecoder {
    /// Feeds bytes; complete non-empty packets go to `done`.
    pub fn feed(&mut self, bytes: &[u8], done: &mut Vec<Vec<u8>>) {
        for &b in bytes {
            if b == END {
                if !self.packet.is_empty() && !self.oversize {
                    done.push(std::mem::take(&mut self.packet));
                }
                self.packet.clear();
                self.escaped = false;
                self.oversize = false;
                continue;
            }
            let b = match (self.escaped, b) {
                (false, ESC) => {
                    self.escaped = true;
                    continue;
                }
                (true, ESC_END) => END,
                (true, ESC_ESC) => ESC,
                (_, b) => b, // a bad escape keeps the byte, as RFC 1055's receiver does
            };
            self.escaped = false;
            if self.packet.len() >= MAX_PACKET {
                self.oversize = true;
            } else {
                self.packet.push(b);
            }
        }
    }
}

struct State {
    decoder: SlipDecoder,
    /// Frames for the guest: decoded packets in made-up Ethernet, and ARP answers.
    rx: VecDeque<Vec<u8>>,
    /// The guest's Ethernet address (learned from what it sends).
    guest: MacAddr,
    /// After the helper exits: the other end of the socket that replaced it.
    quiet: Option<UnixStream>,
}

pub struct Slirp {
    sock: UnixStream,
    child: Child,
    state: RefCell<State>,
}

impl Slirp {
    /// Starts `argv` (program and arguments) on a socket pair.
    pub fn spawn(argv: &[String], guest: MacAddr) -> Result<Slirp, String> {
        let (ours, theirs) = UnixStream::pair().map_err(|e| e.to_string())?;
        let theirs = OwnedFd::from(theirs);
        let out = theirs.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::from(out))
            .spawn()
            .map_err(|e| format!("slirp_tramp : failed to run {}: {e}", argv[0]))?;
        ours.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(Slirp {
            sock: ours,
            child,
            state: RefCell::new(State {
                decoder: SlipDecoder::default(),
                rx: VecDeque::new(),
                guest,
                quiet: None,
            }),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Whether frames made up here (ARP answers) wait for the guest.
    pub fn has_local_rx(&self) -> bool {
        !self.state.borrow().rx.is_empty()
    }

    /// The next frame for the guest, or None when nothing (more) is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let mut st = self.state.borrow_mut();
        loop {
            if let Some(frame) = st.rx.pop_front() {
                let n = frame.len().min(buf.len());
                buf[..n].copy_from_slice(&frame[..n]);
                return Ok(Some(n));
            }
            let mut bytes = [0u8; 4096];
            let n = match (&self.sock).read(&mut bytes) {
                Ok(0) => {
                    self.went_away(&mut st);
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            };
            let mut packets = Vec::new();
            st.decoder.feed(&bytes[..n], &mut packets);
            let guest = st.guest;
            for p in packets
                .into_iter()
                .filter(|p| p.first().is_some_and(|b| b >> 4 == 4))
            {
                let mut frame = Vec::with_capacity(14 + p.len());
                frame.extend_from_slice(&guest.0);
                frame.extend_from_slice(&PEER_MAC.0);
                frame.extend_from_slice(&[0x08, 0x00]);
                frame.extend_from_slice(&p);
                st.rx.push_back(frame);
            }
        }
    }

    /// The helper exited: its end is replaced by a socket nobody writes to, so the
    /// event loop does not wake for the end of file again (the device stays, silent).
    fn went_away(&self, st: &mut State) {
        if let Ok((quiet, keep)) = UnixStream::pair() {
            // SAFETY: dup2 between two descriptors we own; it only replaces ours.
            unsafe { libc::dup2(quiet.as_raw_fd(), self.sock.as_raw_fd()) };
            let _ = self.sock.set_nonblocking(true);
            st.quiet = Some(keep);
        }
    }

    /// Sends an IPv4 frame's packet to the helper; answers an ARP request locally;
    /// drops anything else.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        if frame.len() < 14 {
            return Ok(());
        }
        let mut st = self.state.borrow_mut();
        st.guest = MacAddr(frame[6..12].try_into().expect("6 bytes"));
        match [frame[12], frame[13]] {
            [0x08, 0x00] => {
                let mut out = Vec::with_capacity(frame.len() + 16);
                slip_encode(&frame[14..], &mut out);
                drop(st);
                self.write_all(&out)
            }
            [0x08, 0x06] => {
                if let Some(reply) = arp_reply(&frame[14..]) {
                    let guest = st.guest;
                    let mut f = Vec::with_capacity(42);
                    f.extend_from_slice(&guest.0);
                    f.extend_from_slice(&PEER_MAC.0);
                    f.extend_from_slice(&[0x08, 0x06]);
                    f.extend_from_slice(&reply);
                    st.rx.push_back(f);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Writes all of `bytes` (a partial packet would corrupt the stream), waiting at
    /// most SEND_LIMIT for the helper to make room.
    fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        let deadline = std::time::Instant::now() + SEND_LIMIT;
        while !bytes.is_empty() {
            match (&self.sock).write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Err(e);
                    }
                    let mut pfd = libc::pollfd {
                        fd: self.sock.as_raw_fd(),
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd for the duration of the call.
                    unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Drop for Slirp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The answer to an ARP request for IPv4 over Ethernet (any target: the helper is the
/// whole network), or None for anything else.
fn arp_reply(arp: &[u8]) -> Option<[u8; 28]> {
    if arp.len() < 28 || arp[..8] != [0, 1, 8, 0, 6, 4, 0, 1] {
        return None;
    }
    let (sender_mac, sender_ip, target_ip) = (&arp[8..14], &arp[14..18], &arp[24..28]);
    if target_ip == sender_ip {
        return None; // a gratuitous ARP: nobody else has the guest's address
    }
    let mut r = [0u8; 28];
    r[..8].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
    r[8..14].copy_from_slice(&PEER_MAC.0);
    r[14..18].copy_from_slice(target_ip);
    r[18..24].copy_from_slice(sender_mac);
    r[24..28].copy_from_slice(sender_ip);
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slip_round_trip_with_escapes() {
        let packet = [0x45, END, 1, ESC, 2, ESC_END, ESC_ESC];
        let mut wire = Vec::new();
        slip_encode(&packet, &mut wire);
        assert_eq!(
            wire,
            [END, 0x45, ESC, ESC_END, 1, ESC, ESC_ESC, 2, ESC_END, ESC_ESC, END]
        );
        let mut d = SlipDecoder::default();
        let mut out = Vec::new();
        // Split anywhere, even inside an escape.
        d.feed(&wire[..4], &mut out);
        assert!(out.is_empty());
        d.feed(&wire[4..], &mut out);
        assert_eq!(out, vec![packet.to_vec()]);
    }

    #[test]
    fn empty_and_oversize_packets_are_dropped() {
        let mut d = SlipDecoder::default();
        let mut out = Vec::new();
        d.feed(&[END, END, END], &mut out);
        assert!(out.is_empty());
        let mut big = vec![1u8; MAX_PACKET + 1];
        big.push(END);
        big.extend_from_slice(&[7, END]);
        d.feed(&big, &mut out);
        assert_eq!(out, vec![vec![7]]);
    }

    #[test]
    fn arp_requests_are_answered_by_the_peer() {
        let mut req = vec![0, 1, 8, 0, 6, 4, 0, 1];
        req.extend_from_slice(&[2, 0, 0, 0, 0, 1, 10, 0, 2, 15]);
        req.extend_from_slice(&[0; 6]);
        req.extend_from_slice(&[10, 0, 2, 2]);
        let r = arp_reply(&req).unwrap();
        assert_eq!(r[6..8], [0, 2]);
        assert_eq!(r[8..14], PEER_MAC.0);
        assert_eq!(r[14..18], [10, 0, 2, 2]);
        assert_eq!(r[18..24], [2, 0, 0, 0, 0, 1]);
        assert_eq!(r[24..28], [10, 0, 2, 15]);
        let mut gratuitous = req.clone();
        gratuitous[24..28].copy_from_slice(&[10, 0, 2, 15]);
        assert!(arp_reply(&gratuitous).is_none());
        req[7] = 2; // a reply is not answered
        assert!(arp_reply(&req).is_none());
    }
}
