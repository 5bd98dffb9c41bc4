//! FUSE messages (uml_proto::fuse): any bytes as a request, a reply, a READDIR payload
//! and each fixed struct; whatever parses is emitted and parses back the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use uml_proto::fuse::{
    AttrOut, Dirent, EntryOut, InitIn, InitOut, Reply, Request, SetattrIn, StatfsOut,
};

macro_rules! fixed_round_trip {
    ($data:expr, $($t:ty),*) => {
        $(
            if let Ok(v) = <$t>::from_bytes($data) {
                assert_eq!(v.to_bytes(), $data[..<$t>::SIZE].to_vec());
            }
        )*
    };
}

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = Request::parse(data) {
        let bytes = req.to_bytes();
        let again = Request::parse(&bytes).expect("an emitted request parses");
        assert_eq!(again.op, req.op);
        let (a, b) = (again.header, req.header);
        assert_eq!(
            (a.opcode, a.unique, a.nodeid, a.uid, a.gid, a.pid),
            (b.opcode, b.unique, b.nodeid, b.uid, b.gid, b.pid)
        );
        assert_eq!(a.len as usize, bytes.len());
    }
    if let Ok(r) = Reply::parse(data) {
        let bytes = r.to_bytes();
        assert_eq!(Reply::parse(&bytes), Ok(r));
    }
    if let Ok(list) = Dirent::parse_all(data) {
        let mut out = Vec::new();
        for d in &list {
            d.write_to(&mut out);
        }
        assert_eq!(
            Dirent::parse_all(&out).expect("emitted entries parse"),
            list
        );
    }
    if let Ok(i) = InitIn::from_bytes(data) {
        assert_eq!(InitIn::from_bytes(&i.to_bytes()), Ok(i));
    }
    fixed_round_trip!(data, AttrOut, EntryOut, InitOut, SetattrIn, StatfsOut);
});
