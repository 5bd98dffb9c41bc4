//! COW files in the old layouts (V1, V2, the broken 64-bit V3), built here byte by byte
//! from the documented layout, merge to the expected disk with our uml_moo, exactly as
//! with the C uml_moo. (Acceptance 3 of the COW issue.)
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use tests::{c_tool, our_bin, run_ok, scratch};

const SECTORS: usize = 2051; // not a multiple of 8: exercises the V1/V2 bitmap rounding
const SS: usize = 512;

fn put_be32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
fn put_be64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}
fn put_ne32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}
fn put_ne64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

/// Header bytes, bitmap offset and data offset for a layout, per the reference tables.
fn header(layout: &str, path: &[u8], mtime: u32, size: u64) -> (Vec<u8>, usize, usize) {
    let short_bitmap = (size as usize + SS - 1) / (8 * SS);
    let full_bitmap = (size as usize / SS).div_ceil(8);
    let round = |x: usize, a: usize| x.div_ceil(a) * a;
    match layout {
        "v1" => {
            let mut h = vec![0u8; 280];
            put_ne32(&mut h, 0, 0x4F4F4F4D);
            put_ne32(&mut h, 4, 1);
            h[8..8 + path.len()].copy_from_slice(path);
            put_ne32(&mut h, 264, mtime);
            put_ne64(&mut h, 268, size);
            put_ne32(&mut h, 276, SS as u32);
            (h, 280, round(280 + short_bitmap, SS))
        }
        "v2" => {
            let mut h = vec![0u8; 4120];
            put_be32(&mut h, 0, 0x4F4F4F4D);
            put_be32(&mut h, 4, 2);
            h[8..8 + path.len()].copy_from_slice(path);
            put_be32(&mut h, 4104, mtime);
            put_be64(&mut h, 4108, size);
            put_be32(&mut h, 4116, SS as u32);
            (h, 4120, round(4120 + short_bitmap, SS))
        }
        "v3broken" => {
            let mut h = vec![0u8; 4136];
            put_be32(&mut h, 0, 0x4F4F4F4D);
            put_be32(&mut h, 4, 3);
            put_be32(&mut h, 8, mtime);
            put_be64(&mut h, 16, size);
            put_be32(&mut h, 24, SS as u32);
            put_be32(&mut h, 28, 4096);
            put_be32(&mut h, 32, 0);
            h[36..36 + path.len()].copy_from_slice(path);
            let bitmap = round(4136, 4096);
            (h, bitmap, round(bitmap + full_bitmap, 4096))
        }
        _ => unreachable!(),
    }
}

/// A deterministic backing disk: patterned sectors with some zero sectors among them.
fn backing_bytes() -> Vec<u8> {
    let mut b = vec![0u8; SECTORS * SS];
    for (i, s) in b.chunks_mut(SS).enumerate() {
        if i % 7 != 3 {
            s.fill((i % 251) as u8 + 1);
        }
    }
    b
}

/// Sectors held in the COW: a mix of runs, singles, the last sector, and zero sectors
/// (which must turn backing data into zeros). V1 and V2 bitmaps are a byte short when
/// the sector count is not a multiple of 8; the C tool reads the bits of the last
/// sectors from uninitialised memory there, so those stay clean in V1 and V2.
fn dirty(layout: &str, i: usize) -> bool {
    let covered = if layout == "v3broken" {
        SECTORS
    } else {
        SECTORS / 8 * 8
    };
    i < covered
        && ((100..180).contains(&i)
            || i.is_multiple_of(13)
            || i == covered - 1
            || (1000..1003).contains(&i))
}

fn cow_sector(i: usize) -> Vec<u8> {
    if i.is_multiple_of(26) {
        vec![0u8; SS]
    } else {
        vec![0xA0 ^ (i % 256) as u8; SS]
    }
}

fn build(dir: &Path, layout: &str) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let back = dir.join(format!("{layout}.img"));
    let mut expect = backing_bytes();
    fs::write(&back, &expect).unwrap();
    let mtime = fs::metadata(&back).unwrap().mtime() as u32;
    let (mut cow, bitmap_at, data_at) = header(
        layout,
        back.as_os_str().as_encoded_bytes(),
        mtime,
        expect.len() as u64,
    );
    cow.resize(data_at + SECTORS * SS, 0);
    for i in (0..SECTORS).filter(|&i| dirty(layout, i)) {
        cow[bitmap_at + i / 8] |= 1 << (i % 8);
        let s = cow_sector(i);
        cow[data_at + i * SS..data_at + (i + 1) * SS].copy_from_slice(&s);
        expect[i * SS..(i + 1) * SS].copy_from_slice(&s);
    }
    let path = dir.join(format!("{layout}.cow"));
    fs::write(&path, &cow).unwrap();
    (path, back, expect)
}

fn check_layout(layout: &str) {
    let Some(c_moo) = c_tool("uml_moo") else {
        return;
    };
    let dir = scratch();
    let d = dir.path();
    let (cow, back, expect) = build(d, layout);

    let info = run_ok(
        Command::new(our_bin("uml_moo"))
            .args(["--info", "--json"])
            .arg(&cow),
    )
    .stdout;
    let dirty_count = (0..SECTORS).filter(|&i| dirty(layout, i)).count();
    assert!(
        info.contains(&format!("\"dirty_sectors\":{dirty_count},")),
        "{layout}: {info}"
    );
    assert!(
        info.contains("\"backing_matches\":true"),
        "{layout}: {info}"
    );

    run_ok(
        Command::new(our_bin("uml_moo"))
            .arg(&cow)
            .arg(d.join("ours")),
    );
    run_ok(Command::new(&c_moo).arg(&cow).arg(d.join("c")));
    let ours = fs::read(d.join("ours")).unwrap();
    assert!(
        ours == expect,
        "{layout}: our merge is not the expected disk"
    );
    assert!(
        fs::read(d.join("c")).unwrap() == ours,
        "{layout}: the C tool's merge differs from ours"
    );

    run_ok(Command::new(our_bin("uml_moo")).arg("-d").arg(&cow));
    assert!(
        fs::read(&back).unwrap() == expect,
        "{layout}: in-place merge is not the expected disk"
    );
}

#[test]
fn v1_merges() {
    check_layout("v1");
}

#[test]
fn v2_merges() {
    check_layout("v2");
}

#[test]
fn broken_64bit_v3_merges() {
    check_layout("v3broken");
}
