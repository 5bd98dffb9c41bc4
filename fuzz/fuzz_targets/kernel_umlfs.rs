//! uml-kernel's umlfs session (kernel::fs::fuse): after INIT, any bytes as a stream of
//! requests (each as long as its header says) answered against a small tmpfs; every
//! answer must be a reply the host kernel accepts, and closing the session must close
//! every file it opened.
#![no_main]
use kernel::fs::fuse::session::Session;
use kernel::fs::tmpfs::Tmpfs;
use kernel::fs::Vfs;
use libfuzzer_sys::fuzz_target;
use uml_proto::fuse::{InHeader, InitIn, Operation, Reply, Request};

fuzz_target!(|data: &[u8]| {
    let mut vfs = Vfs::new(Box::new(Tmpfs::new(1 << 20)), "rootfs");
    let mut s = Session::new(vfs.root());
    let init = Request {
        header: InHeader {
            unique: 1,
            ..InHeader::default()
        },
        op: Operation::Init(InitIn {
            major: 7,
            minor: 31,
            max_readahead: 1 << 17,
            flags: u32::MAX,
            flags2: 0,
        }),
    }
    .to_bytes();
    let init = Request::parse(&init).expect("INIT parses");
    assert!(s.handle(&mut vfs, &init).is_some());
    let mut rest = data;
    while rest.len() >= InHeader::SIZE {
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let (msg, tail) = rest.split_at(len.clamp(InHeader::SIZE, rest.len()));
        rest = tail;
        let Ok(req) = Request::parse(msg) else {
            continue;
        };
        if let Some(reply) = s.handle(&mut vfs, &req) {
            let r = Reply::parse(&reply).expect("a reply the kernel accepts");
            assert_eq!(r.unique, req.header.unique);
        }
    }
    s.close(&mut vfs);
    assert_eq!(s.held().1, 0);
});
