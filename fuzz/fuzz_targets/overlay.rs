//! Overlay packets as a switch uplink reads them from the network (VXLAN, GRE, L2TPv3 in
//! every layout, behind an IPv4 header for the raw-socket kinds), and endpoint texts:
//! parse, emit, parse gives the same value; no input panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use uml_proto::overlay::gre::GreHeader;
use uml_proto::overlay::l2tpv3::{L2tpv3Header, Layout};
use uml_proto::overlay::spec::OverlaySpec;
use uml_proto::overlay::strip_ipv4_header;
use uml_proto::overlay::vxlan::VxlanHeader;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, packet)) = data.split_first() else { return };
    let mut out = vec![0u8; 64];
    if let Ok((h, inner)) = VxlanHeader::parse(packet) {
        let n = h.emit(&mut out);
        assert_eq!(VxlanHeader::parse(&out[..n]).map(|(h, _)| h), Ok(h));
        assert_eq!(inner.len() + n, packet.len());
    }
    let gre = if selector & 1 == 1 { strip_ipv4_header(packet).unwrap_or(packet) } else { packet };
    if let Ok((h, _)) = GreHeader::parse(gre) {
        let n = h.emit(&mut out);
        let back = GreHeader::parse(&out[..n]).map(|(b, _)| b);
        assert_eq!(back, Ok(GreHeader { checksum: false, ..h }));
    }
    let layout = Layout {
        udp: selector & 2 == 2,
        cookie_len: [0, 4, 8, 0][usize::from(selector >> 2) & 3],
        counter: selector & 16 == 16,
    };
    if let Ok((h, frame)) = L2tpv3Header::parse(layout, packet) {
        let n = h.emit(layout, &mut out);
        assert_eq!(n, layout.header_len());
        assert_eq!(L2tpv3Header::parse(layout, &out[..n]).map(|(b, _)| b), Ok(h));
        assert_eq!(frame.len() + n, packet.len());
    }
    if let Ok(text) = std::str::from_utf8(packet) {
        match OverlaySpec::parse(text) {
            Ok(spec) => assert!(!spec.kind().is_empty()),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
});
