//! uml_net's replies: the `tuntap up` datagram (with and without an fd) and the
//! length-prefixed text; each round-trips through emit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use uml_proto::helper::{emit_text, parse_text, read_text, TuntapUpReply};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let with_fd = mode & 1 != 0;
    if let Ok(reply) = TuntapUpReply::parse(bytes, with_fd) {
        let mut out = Vec::new();
        reply.emit(&mut out);
        let again = TuntapUpReply::parse(&out, with_fd).expect("an emitted reply parses");
        // A name longer than 15 bytes is cut to fit its field; a NUL inside a
        // lossily-decoded name cannot arise.
        assert_eq!(again.output, reply.output);
        if reply.ifname.as_ref().is_some_and(|n| n.len() < 16) {
            assert_eq!(again, reply);
        }
    }
    if let Ok((text, used)) = parse_text(bytes) {
        assert!(used <= bytes.len());
        let mut out = Vec::new();
        emit_text(&text, &mut out);
        let (again, n) = parse_text(&out).expect("an emitted text parses");
        assert_eq!((again.as_str(), n), (text.as_str(), out.len()));
    }
    let _ = read_text(&mut Cursor::new(bytes), 4096);
});
