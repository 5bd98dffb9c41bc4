//! humfs superblock and metadata lines (v2 and v1): parse, emit, parse gives the same
//! value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use uml_proto::humfs::{Metadata, MetadataV1, Superblock};

fuzz_target!(|data: &[u8]| {
    if let Ok(sb) = Superblock::parse(data) {
        let mut out = Vec::new();
        sb.emit(&mut out);
        assert_eq!(Superblock::parse(&out).as_ref(), Ok(&sb));
    }
    if let Ok(m) = Metadata::parse(data) {
        let mut out = Vec::new();
        m.emit(&mut out);
        assert_eq!(Metadata::parse(&out), Ok(m));
    }
    if let Ok(m) = MetadataV1::parse(data) {
        let mut out = Vec::new();
        m.emit(&mut out);
        assert_eq!(MetadataV1::parse(&out), Ok(m));
    }
});
