//! uml_switch control requests (v0, v1, v3) and the 110-byte reply: parse, emit,
//! parse gives the same request.
#![no_main]
use libfuzzer_sys::fuzz_target;
use uml_proto::switch::{
    emit_reply, parse_reply, request_len, Request, MAX_REQUEST_LEN, SOCKADDR_LEN,
};

fuzz_target!(|data: &[u8]| {
    if let Some(Ok(n)) = request_len(data) {
        assert!(n <= MAX_REQUEST_LEN);
    }
    if let Ok(req) = Request::parse(data) {
        let mut buf = [0u8; MAX_REQUEST_LEN];
        let n = req.emit(&mut buf);
        assert_eq!(n, req.wire_len());
        let again = Request::parse(&buf[..n]).expect("an emitted request parses");
        assert_eq!(again, req);
        let _ = req.addr().to_string();
    }
    if let Ok(addr) = parse_reply(data) {
        let mut buf = [0u8; SOCKADDR_LEN];
        let n = emit_reply(&addr, &mut buf);
        assert_eq!(&buf[..n], data);
        let _ = format!("{addr} {addr:?}");
        let _ = (
            addr.sun_path(),
            addr.is_abstract(),
            addr.trimmed(),
            addr.full_length(),
        );
    }
});
