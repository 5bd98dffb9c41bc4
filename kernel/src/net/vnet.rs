//! The virtio-net header a packet socket with PACKET_VNET_HDR puts before each frame,
//! and what the guest's stack needs done with it: frames the host built itself (on a
//! veth, a bridge) may carry a checksum to be completed (NEEDS_CSUM) or be one large
//! TCP/IPv4 segment to cut into MSS-sized ones (GSO), as linux.uml's vector driver gets
//! them done by its own stack. Other GSO kinds (IPv6, UDP) are dropped: the guest speaks
//! IPv4 and its UDP never needs them.

/// struct virtio_net_hdr (legacy: native byte order).
pub const HDR_LEN: usize = 10;
const F_NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_ECN: u8 = 0x80;

fn u16_ne(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The ones' complement sum of `b` (not folded).
fn sum(b: &[u8]) -> u32 {
    let mut s: u32 = 0;
    let mut chunks = b.chunks_exact(2);
    for c in &mut chunks {
        s = s.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
    }
    if let [last] = chunks.remainder() {
        s = s.wrapping_add(u32::from(*last) << 8);
    }
    s
}

fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Turns one packet (header, then frame) into the frames the guest gets in `out`;
/// returns false when it is dropped.
pub fn frames(packet: &[u8], out: &mut Vec<Vec<u8>>) -> bool {
    if packet.len() < HDR_LEN + 14 {
        return false;
    }
    let (flags, gso) = (packet[0], packet[1] & !GSO_ECN);
    let gso_size = usize::from(u16_ne(packet, 4));
    let csum_start = usize::from(u16_ne(packet, 6));
    let csum_offset = usize::from(u16_ne(packet, 8));
    let frame = &packet[HDR_LEN..];
    match gso {
        GSO_NONE => {
            let mut f = frame.to_vec();
            if flags & F_NEEDS_CSUM != 0 {
                let at = csum_start + csum_offset;
                if at + 2 > f.len() || csum_start > f.len() {
                    return false;
                }
                let c = fold(sum(&f[csum_start..]));
                f[at..at + 2].copy_from_slice(&c.to_be_bytes());
            }
            out.push(f);
            true
        }
        GSO_TCPV4 => segment_tcpv4(frame, gso_size, out),
        _ => false,
    }
}

/// Cuts an Ethernet + IPv4 + TCP frame with a payload larger than `mss` into frames
/// of at most `mss` payload bytes, each with its own IP length, id and checksum, TCP
/// sequence number, flags (FIN and PSH on the last only, CWR on the first only) and
/// checksum.
fn segment_tcpv4(frame: &[u8], mss: usize, out: &mut Vec<Vec<u8>>) -> bool {
    if frame.len() < 14 + 20 || be16(frame, 12) != 0x0800 || mss == 0 {
        return false;
    }
    let ip_len = usize::from(frame[14] & 0x0f) * 4;
    if frame[14] >> 4 != 4 || ip_len < 20 || frame.len() < 14 + ip_len + 20 || frame[23] != 6 {
        return false;
    }
    let tcp = 14 + ip_len;
    let tcp_len = usize::from(frame[tcp + 12] >> 4) * 4;
    if tcp_len < 20 || frame.len() < tcp + tcp_len {
        return false;
    }
    let headers = tcp + tcp_len;
    let payload = &frame[headers..];
    let id = be16(frame, 18);
    let seq = u32::from_be_bytes(frame[tcp + 4..tcp + 8].try_into().expect("4 bytes"));
    let chunks: Vec<&[u8]> = payload.chunks(mss).collect();
    let n = chunks.len().max(1);
    for (i, chunk) in chunks
        .iter()
        .copied()
        .chain(
            // A GSO packet without payload still becomes one segment.
            (payload.is_empty()).then_some(&payload[..0]),
        )
        .enumerate()
    {
        let mut f = Vec::with_capacity(headers + chunk.len());
        f.extend_from_slice(&frame[..headers]);
        f.extend_from_slice(chunk);
        let total = (ip_len + tcp_len + chunk.len()) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[18..20].copy_from_slice(&id.wrapping_add(i as u16).to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let ipc = fold(sum(&f[14..tcp]));
        f[24..26].copy_from_slice(&ipc.to_be_bytes());
        let s = seq.wrapping_add((i * mss) as u32);
        f[tcp + 4..tcp + 8].copy_from_slice(&s.to_be_bytes());
        if i + 1 < n {
            f[tcp + 13] &= !0x09; // FIN, PSH
        }
        if i > 0 {
            f[tcp + 13] &= !0x80; // CWR
        }
        f[tcp + 16..tcp + 18].copy_from_slice(&[0, 0]);
        let seg_len = (tcp_len + chunk.len()) as u32;
        let pseudo = sum(&f[26..34]) + 6 + seg_len;
        let c = fold(pseudo + sum(&f[tcp..]));
        f[tcp + 16..tcp + 18].copy_from_slice(&c.to_be_bytes());
        out.push(f);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP/IPv4 frame with `payload` and correct checksums.
    fn tcp_frame(payload: &[u8], flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&[8, 0]);
        f[14] = 0x45;
        let total = (40 + payload.len()) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[18..20].copy_from_slice(&[0x12, 0x34]);
        f[22] = 64;
        f[23] = 6;
        f[26..30].copy_from_slice(&[10, 0, 6, 1]);
        f[30..34].copy_from_slice(&[10, 0, 6, 2]);
        f[34..36].copy_from_slice(&1000u16.to_be_bytes());
        f[36..38].copy_from_slice(&9u16.to_be_bytes());
        f[38..42].copy_from_slice(&7u32.to_be_bytes());
        f[46] = 5 << 4;
        f[47] = flags;
        f.extend_from_slice(payload);
        f
    }

    fn checksums_ok(f: &[u8]) -> bool {
        let ip_ok = fold(sum(&f[14..34])) == 0;
        let seg = (f.len() - 34) as u32;
        let tcp_ok = fold(sum(&f[26..34]) + 6 + seg + sum(&f[34..])) == 0;
        ip_ok && tcp_ok
    }

    fn hdr(flags: u8, gso: u8, gso_size: u16, start: u16, off: u16) -> Vec<u8> {
        let mut h = vec![flags, gso];
        for v in [54u16, gso_size, start, off] {
            h.extend_from_slice(&v.to_ne_bytes());
        }
        h
    }

    #[test]
    fn a_partial_checksum_is_completed() {
        let mut f = tcp_frame(b"hello", 0x18);
        // What the host leaves: the pseudo-header sum, not inverted.
        let pseudo = sum(&f[26..34]) + 6 + 25;
        let mut p = pseudo;
        while p >> 16 != 0 {
            p = (p & 0xffff) + (p >> 16);
        }
        f[50..52].copy_from_slice(&(p as u16).to_be_bytes());
        let ipc = fold(sum(&f[14..34]));
        f[24..26].copy_from_slice(&ipc.to_be_bytes());
        let mut packet = hdr(F_NEEDS_CSUM, GSO_NONE, 0, 34, 16);
        packet.extend_from_slice(&f);
        let mut out = Vec::new();
        assert!(frames(&packet, &mut out));
        assert_eq!(out.len(), 1);
        assert!(checksums_ok(&out[0]));
    }

    #[test]
    fn a_gso_segment_is_cut_at_the_mss() {
        let payload: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        let mut packet = hdr(F_NEEDS_CSUM, GSO_TCPV4, 1000, 34, 16);
        packet.extend_from_slice(&tcp_frame(&payload, 0x19)); // FIN PSH ACK
        let mut out = Vec::new();
        assert!(frames(&packet, &mut out));
        assert_eq!(out.len(), 3);
        let mut joined = Vec::new();
        for (i, f) in out.iter().enumerate() {
            assert!(checksums_ok(f), "segment {i}");
            let seq = u32::from_be_bytes(f[38..42].try_into().unwrap());
            assert_eq!(seq, 7 + 1000 * i as u32);
            assert_eq!(be16(f, 16) as usize, f.len() - 14);
            assert_eq!(be16(f, 18), 0x1234 + i as u16);
            assert_eq!(f[47] & 0x09 != 0, i == 2, "FIN/PSH only on the last");
            joined.extend_from_slice(&f[54..]);
        }
        assert_eq!(joined, payload);
    }

    #[test]
    fn other_gso_kinds_and_runts_are_dropped() {
        let mut out = Vec::new();
        let mut packet = hdr(0, 4, 1000, 0, 0); // TCPv6
        packet.extend_from_slice(&tcp_frame(b"x", 0));
        assert!(!frames(&packet, &mut out));
        assert!(!frames(&[0u8; 12], &mut out));
        let mut bad = hdr(F_NEEDS_CSUM, GSO_NONE, 0, 60, 16);
        bad.extend_from_slice(&tcp_frame(b"", 0));
        assert!(!frames(&bad, &mut out));
        assert!(out.is_empty());
    }
}
