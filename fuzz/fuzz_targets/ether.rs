//! Ethernet frames as uml_switch reads them from its clients, and MAC addresses as
//! text (`mac=` options): parse, emit, parse gives the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use uml_proto::ether::{emit_header, Frame, MacAddr};

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::parse(data) {
        let mut out = data.to_vec();
        out[..14].fill(0);
        emit_header(frame.dst(), frame.src(), frame.ethertype(), &mut out).unwrap();
        assert_eq!(out, data);
        let _ = (frame.dst().is_multicast(), frame.src().is_local(), frame.payload());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(mac) = text.parse::<MacAddr>() {
            assert_eq!(mac.to_string().parse::<MacAddr>(), Ok(mac));
        }
    }
});
