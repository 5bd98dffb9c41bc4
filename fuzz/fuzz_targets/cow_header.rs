//! COW header parse: any bytes give a header or an error; a header emits and parses
//! back to the same value, and its geometry is computed without overflow.
#![no_main]
use libfuzzer_sys::fuzz_target;
use uml_proto::cow::CowHeader;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = CowHeader::parse(data) else {
        return;
    };
    let _ = header.geometry();
    let _ = header.sectors();
    let _ = header.min_file_len();
    let bytes = header.to_bytes();
    assert_eq!(CowHeader::parse(&bytes).as_ref(), Ok(&header));
});
