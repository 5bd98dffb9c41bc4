//! Round trips of every structure, block-map paths, the feature rules, and reading a
//! small filesystem built in memory.

use super::*;

fn sample_superblock(log: u32, rev: u32) -> Vec<u8> {
    let mut b = vec![0u8; SUPERBLOCK_SIZE];
    let w32 = |b: &mut Vec<u8>, o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
    let bs = 1024u32 << log;
    w32(&mut b, 0, 16); // inodes
    w32(&mut b, 4, 64); // blocks
    w32(&mut b, 20, u32::from(bs == 1024));
    w32(&mut b, 24, log);
    w32(&mut b, 32, 8 * bs);
    w32(&mut b, 36, 8 * bs);
    w32(&mut b, 40, 16);
    b[56..58].copy_from_slice(&EXT2_MAGIC.to_le_bytes());
    b[58] = 1;
    w32(&mut b, 76, rev);
    if rev == 1 {
        w32(&mut b, 84, 11);
        b[88..90].copy_from_slice(&256u16.to_le_bytes());
        w32(&mut b, 96, features::INCOMPAT_FILETYPE);
        w32(&mut b, 100, features::RO_COMPAT_SPARSE_SUPER);
    }
    b[300] = 0xAB; // a field we do not interpret survives
    b
}

#[test]
fn superblock_round_trip() {
    for (log, rev) in [(0, 0), (1, 1), (2, 1)] {
        let bytes = sample_superblock(log, rev);
        let sb = Superblock::parse(&bytes).expect("parse");
        assert_eq!(sb.block_size(), 1024 << log);
        assert_eq!(sb.to_bytes(), bytes);
        let mut changed = sb.clone();
        changed.free_blocks_count = 7;
        changed.mnt_count = 3;
        let back = Superblock::parse(&changed.to_bytes()).expect("reparse");
        assert_eq!(
            back,
            Superblock {
                raw: back.raw.clone(),
                ..changed
            }
        );
    }
}

#[test]
fn superblock_rejects_bad_values() {
    let good = sample_superblock(0, 1);
    assert!(matches!(
        Superblock::parse(&good[..100]),
        Err(Ext2Error::Short(..))
    ));
    let mut b = good.clone();
    b[56] = 0;
    assert!(matches!(Superblock::parse(&b), Err(Ext2Error::BadMagic(_))));
    let mut b = good.clone();
    b[24] = 9;
    assert_eq!(
        Superblock::parse(&b),
        Err(Ext2Error::BadSuperblock("block size"))
    );
    let mut b = good.clone();
    b[40..44].copy_from_slice(&0u32.to_le_bytes());
    assert!(Superblock::parse(&b).is_err());
    let mut b = good;
    b[88..90].copy_from_slice(&100u16.to_le_bytes());
    assert_eq!(
        Superblock::parse(&b),
        Err(Ext2Error::BadSuperblock("inode size"))
    );
}

#[test]
fn feature_rules_follow_linux_ext2() {
    let mut sb = Superblock::parse(&sample_superblock(0, 1)).expect("parse");
    assert_eq!(sb.access(), Ok(Access::ReadWrite));
    sb.feature_compat |= 0x8000_0000 | features::COMPAT_HAS_JOURNAL;
    assert_eq!(
        sb.access(),
        Ok(Access::ReadWrite),
        "unknown compat is ignored; ext3 mounts"
    );
    sb.feature_ro_compat |= 0x4000;
    assert_eq!(
        sb.access(),
        Ok(Access::ReadOnly {
            ro_compat: 0x4000,
            incompat: 0
        })
    );
    sb.feature_ro_compat &= !0x4000;
    sb.feature_incompat |= features::INCOMPAT_EXTENTS | features::INCOMPAT_FLEX_BG;
    assert!(matches!(sb.access(), Ok(Access::ReadOnly { incompat, .. }) if incompat == 0x240));
    sb.feature_incompat |= features::INCOMPAT_RECOVER;
    assert_eq!(sb.access(), Err(Ext2Error::NeedsRecovery));
    sb.feature_incompat = features::INCOMPAT_FILETYPE | 0x8000;
    assert_eq!(sb.access(), Err(Ext2Error::UnsupportedIncompat(0x8000)));
    assert!(Ext2Error::UnsupportedIncompat(0x8000)
        .to_string()
        .contains("unsupported optional features (8000)"));
}

#[test]
fn sparse_super_groups() {
    let sb = Superblock::parse(&sample_superblock(0, 1)).expect("parse");
    let with: Vec<u32> = (0..60).filter(|&g| sb.group_has_super(g)).collect();
    assert_eq!(with, vec![0, 1, 3, 5, 7, 9, 25, 27, 49]);
}

#[test]
fn group_desc_round_trip() {
    let mut raw = vec![0u8; 32];
    raw[0] = 3;
    raw[4] = 4;
    raw[8] = 5;
    raw[12] = 100;
    raw[14] = 10;
    raw[16] = 2;
    raw[30] = 0x77;
    let gd = GroupDesc::parse(&raw, 32).expect("parse");
    assert_eq!(
        (gd.block_bitmap, gd.inode_bitmap, gd.inode_table),
        (3, 4, 5)
    );
    assert_eq!(
        (
            gd.free_blocks_count,
            gd.free_inodes_count,
            gd.used_dirs_count
        ),
        (100, 10, 2)
    );
    let mut out = vec![0; 32];
    gd.emit(&mut out);
    assert_eq!(out, raw);
    let mut wide = vec![0u8; 64];
    wide[..32].copy_from_slice(&raw);
    wide[40] = 1;
    let gd = GroupDesc::parse(&wide, 64).expect("parse wide");
    assert_eq!(gd.inode_table, (1 << 32) | 5);
    let mut out = vec![0; 64];
    gd.emit(&mut out);
    assert_eq!(out, wide);
    assert!(GroupDesc::parse(&raw[..20], 32).is_err());
}

#[test]
fn inode_round_trip_and_devices() {
    for len in [128usize, 256] {
        let mut ino = Inode::zeroed(len);
        ino.mode = 0o100644;
        ino.uid = 70000;
        ino.gid = 5;
        ino.size = (3 << 32) | 17;
        ino.links_count = 2;
        ino.blocks = 24;
        ino.block = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
        if len > 128 {
            ino.extra_isize = 32;
        }
        let bytes = ino.to_bytes();
        assert_eq!(bytes.len(), len);
        let back = Inode::parse(&bytes, len).expect("parse");
        assert_eq!(
            Inode {
                raw: ino.raw.clone(),
                ..back.clone()
            },
            ino
        );
        assert_eq!(back.to_bytes(), bytes);
        assert_eq!(back.kind(), InodeKind::File);
    }
    let mut dev = Inode::zeroed(128);
    dev.set_device(4, 64);
    assert_eq!(dev.block[0], 0x0440);
    assert_eq!(dev.device(), (4, 64));
    dev.set_device(300, 70000);
    assert_eq!(dev.block[0], 0);
    assert_eq!(dev.device(), (300, 70000));
    assert!(Inode::parse(&[0; 100], 128).is_err());
}

#[test]
fn dirent_round_trip_and_tiling() {
    let mut block = vec![0u8; 1024];
    let a = DirEntry {
        inode: 2,
        rec_len: 12,
        file_type: FileType::Dir,
        name: b".".to_vec(),
    };
    let b = DirEntry {
        inode: 12,
        rec_len: 1012,
        file_type: FileType::Symlink,
        name: b"hello".to_vec(),
    };
    a.emit(&mut block, true);
    b.emit(&mut block[12..], true);
    let parsed = DirEntry::parse_block(&block, true, 2, 0).expect("parse");
    assert_eq!(parsed, vec![(0, a), (12, b)]);
    assert_eq!(dir_rec_len(5), 16);
    // A record length running past the block is refused.
    block[16] = 0xff;
    block[17] = 0x0f;
    assert!(matches!(
        DirEntry::parse_block(&block, true, 2, 0),
        Err(Ext2Error::BadDirEntry(2, 12))
    ));
}

#[test]
fn block_paths() {
    let per = 256;
    assert_eq!(
        BlockPath::of(0, per),
        Some(BlockPath {
            slot: 0,
            indices: vec![]
        })
    );
    assert_eq!(
        BlockPath::of(11, per),
        Some(BlockPath {
            slot: 11,
            indices: vec![]
        })
    );
    assert_eq!(
        BlockPath::of(12, per),
        Some(BlockPath {
            slot: 12,
            indices: vec![0]
        })
    );
    assert_eq!(
        BlockPath::of(267, per),
        Some(BlockPath {
            slot: 12,
            indices: vec![255]
        })
    );
    assert_eq!(
        BlockPath::of(268, per),
        Some(BlockPath {
            slot: 13,
            indices: vec![0, 0]
        })
    );
    assert_eq!(
        BlockPath::of(268 + 256 * 256, per),
        Some(BlockPath {
            slot: 14,
            indices: vec![0, 0, 0]
        })
    );
    let last = BlockPath::max_blocks(per) - 1;
    assert_eq!(
        BlockPath::of(last, per),
        Some(BlockPath {
            slot: 14,
            indices: vec![255, 255, 255]
        })
    );
    assert_eq!(BlockPath::of(last + 1, per), None);
}

#[test]
fn bitmaps() {
    let mut m = vec![0xffu8, 0x0f, 0];
    assert!(bit_test(&m, 3));
    assert!(!bit_test(&m, 12));
    assert!(bit_test(&m, 100), "past the end reads as used");
    assert_eq!(find_zero_from(&m, 0, 24), Some(12));
    assert_eq!(find_zero_from(&m, 20, 24), Some(20));
    assert_eq!(find_zero_from(&m, 20, 20), Some(12), "wraps");
    assert!(!bit_set(&mut m, 12));
    assert!(bit_clear(&mut m, 12));
    m.fill(0xff);
    assert_eq!(find_zero_from(&m, 5, 24), None);
}

#[test]
fn extent_round_trip() {
    let mut node = vec![0u8; 60];
    ExtentHeader {
        entries: 2,
        max: 4,
        depth: 0,
    }
    .emit(&mut node);
    let e0 = Extent {
        block: 0,
        len: 3,
        start: 100,
        uninit: false,
    };
    let e1 = Extent {
        block: 10,
        len: 2,
        start: (1 << 33) | 7,
        uninit: true,
    };
    e0.emit(&mut node, 0);
    e1.emit(&mut node, 1);
    let h = ExtentHeader::parse(&node, 12).expect("header");
    assert_eq!((h.entries, h.max, h.depth), (2, 4, 0));
    assert_eq!(Extent::parse(&node, 0), e0);
    assert_eq!(Extent::parse(&node, 1), e1);
    node[4] = 5; // max 5 does not fit in 60 bytes
    assert!(ExtentHeader::parse(&node, 12).is_err());
}

#[test]
fn image_refuses_a_device_smaller_than_its_block_count() {
    let mut dev = vec![0u8; 16 * 1024];
    dev[1024..2048].copy_from_slice(&sample_superblock(0, 1));
    assert_eq!(
        Image::open(dev).err(),
        Some(Ext2Error::BadSuperblock(
            "block count exceeds size of device"
        ))
    );
}
