//! mconsole datagrams: request, reply and notification parse, each round-tripped
//! through emit; receive_request sorts any datagram without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;
use uml_proto::mconsole::{
    receive_request, Notification, Reply, Request, MAX_NOTIFY_LEN, MAX_REPLY_LEN, REQUEST_LEN,
};

fuzz_target!(|data: &[u8]| {
    let _ = receive_request(data);
    if let Ok(req) = Request::parse(data) {
        let mut buf = [0u8; REQUEST_LEN];
        let n = req.emit(&mut buf).expect("a parsed request fits");
        assert_eq!(Request::parse(&buf[..n]).as_ref(), Ok(&req));
    }
    if let Ok(reply) = Reply::parse(data) {
        let mut buf = [0u8; MAX_REPLY_LEN];
        let n = reply.emit(&mut buf).expect("a parsed reply fits");
        // `more` is any nonzero word on the wire, 1 once emitted: compare values.
        assert_eq!(Reply::parse(&buf[..n]).as_ref(), Ok(&reply));
    }
    if let Ok(note) = Notification::parse(data) {
        let mut buf = [0u8; MAX_NOTIFY_LEN];
        let n = note.emit(&mut buf).expect("a parsed notification fits");
        assert_eq!(Notification::parse(&buf[..n]).as_ref(), Ok(&note));
        let _ = note.text();
    }
    for piece in Reply::pieces(0, data, false) {
        let mut buf = [0u8; MAX_REPLY_LEN];
        let n = piece.emit(&mut buf).expect("a piece fits");
        assert_eq!(Reply::parse(&buf[..n]).as_ref(), Ok(&piece));
    }
});
