//! A whole ext2 image through uml_proto::ext2: open it, walk every directory (loops and
//! bad entries end in errors, never a hang), read files and symlinks; every superblock,
//! group descriptor and inode read emits back to its own bytes. The input is a sparse
//! image (see fuzz/make-ext2-seeds): u32 size, then (u32 offset, u16 len, bytes) records,
//! a length with the high bit set being a run of the next byte.
#![no_main]
use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use uml_proto::ext2::{Image, InodeKind, Superblock, ROOT_INO};


fuzz_target!(|data: &[u8]| {
    let Some(bytes) = uml_fuzz::sparse_image(data) else {
        return;
    };
    if let Some(raw) = bytes.get(1024..2048) {
        if let Ok(sb) = Superblock::parse(raw) {
            assert_eq!(sb.to_bytes(), raw);
        }
    }
    let Ok(mut img) = Image::open(bytes) else {
        return;
    };
    for g in &img.groups {
        let mut out = vec![0; g.raw.len()];
        g.emit(&mut out);
        assert_eq!(out, g.raw);
    }
    let mut seen = HashSet::new();
    let mut dirs = vec![ROOT_INO];
    let mut entries = 0;
    while let Some(dir) = dirs.pop() {
        if !seen.insert(dir) || seen.len() > 256 {
            continue;
        }
        let Ok(inode) = img.read_inode(dir) else {
            continue;
        };
        assert_eq!(inode.to_bytes(), inode.raw);
        let Ok(list) = img.read_dir(dir, &inode) else {
            continue;
        };
        for e in list {
            entries += 1;
            if entries > 4096 {
                return;
            }
            let Ok(i) = img.read_inode(e.inode) else {
                continue;
            };
            match i.kind() {
                InodeKind::Dir => dirs.push(e.inode),
                InodeKind::File => {
                    let mut buf = vec![0; 65536];
                    let _ = img.read_data(e.inode, &i, 0, &mut buf);
                    let _ = img.read_data(e.inode, &i, i.size.saturating_sub(100), &mut buf[..200]);
                }
                InodeKind::Symlink => {
                    let _ = img.read_link(e.inode, &i);
                }
                _ => {
                    let _ = i.device();
                }
            }
        }
    }
});
