//! uml_moo against the C uml_moo and `cp --sparse=always`, in the same run.
//!
//! Generates backing files (non-zero data) of the given sizes and COW files with 1%,
//! 10% and 50% of sectors dirty, clustered (1 MiB runs) and scattered (random sectors),
//! then times both merge modes of both tools, checks that the outputs are identical,
//! and prints MB/s, ratios and peak memory, then the targets as met or missed.
//!
//! Usage: moo_bench [--dir DIR]... [--sizes 1,4] [--runs N] [--percents 1,10,50]
//!                  [--layouts clustered,scattered]
//! The directories default to /dev/shm (tmpfs: fsync costs nothing there, so the
//! figures are the tools' own work) and /var/tmp (a real disk, where ours waits for its
//! data to reach the disk and the C tool does not). The "C+sync" columns are the C tool
//! followed by `sync -d` of the file it wrote (an fdatasync: the durability ours gives
//! before it exits). Every file is synced before each timed run, so no run pays for the
//! set-up's writeback.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use bench::{best_of, mib, our_bin, peer, secs, serve_measurement, Measured};

const SECTOR: u64 = 512;
const CHUNK: u64 = 1 << 20;
const CLUSTER_SECTORS: u64 = 2048;

struct Opts {
    dirs: Vec<PathBuf>,
    sizes_gib: Vec<u64>,
    runs: usize,
    percents: Vec<u64>,
    layouts: Vec<bool>,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        dirs: Vec::new(),
        sizes_gib: vec![1, 4],
        runs: 2,
        percents: vec![1, 10, 50],
        layouts: vec![true, false],
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--dir" => o.dirs.push(PathBuf::from(val())),
            "--sizes" => {
                o.sizes_gib = val()
                    .split(',')
                    .map(|s| s.parse().expect("--sizes: GiB list"))
                    .collect()
            }
            "--runs" => o.runs = val().parse().expect("--runs: a number"),
            "--percents" => {
                o.percents = val()
                    .split(',')
                    .map(|s| s.parse().expect("--percents: a list of numbers"))
                    .collect()
            }
            "--layouts" => {
                o.layouts = val()
                    .split(',')
                    .map(|s| match s {
                        "clustered" => true,
                        "scattered" => false,
                        _ => panic!("--layouts: clustered,scattered"),
                    })
                    .collect()
            }
            "-h" | "--help" => {
                println!(
                    "usage: moo_bench [--dir DIR]... [--sizes 1,4] [--runs N] \
                     [--percents 1,10,50] [--layouts clustered,scattered]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    if o.dirs.is_empty() {
        o.dirs = vec![PathBuf::from("/dev/shm"), PathBuf::from("/var/tmp")];
    }
    o
}

/// Flushes `paths` to the disk (untimed), so the next timed run starts with no dirty
/// pages of ours or the set-up's.
fn settle(paths: &[&Path]) {
    for p in paths {
        if let Ok(f) = File::open(p) {
            let _ = f.sync_all();
        }
    }
}

/// `tool ARGS... && sync -d FILE`: the C tool plus the fdatasync it never does.
fn with_sync(tool: &Path, args: &[&Path], file: &Path) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("f=$1; shift; \"$@\" && exec sync -d \"$f\"")
        .arg("sh")
        .arg(file)
        .arg(tool)
        .args(args);
    c
}

/// Non-zero, non-repeating-per-MiB data.
fn fill_pattern(buf: &mut [u8], seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for w in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = (x | 0x0101_0101_0101_0101).to_le_bytes();
        w.copy_from_slice(&bytes[..w.len()]);
    }
}

fn make_backing(path: &Path, size: u64) {
    let f = File::create(path).expect("create backing");
    let mut buf = vec![0u8; 8 << 20];
    for (i, off) in (0..size).step_by(buf.len()).enumerate() {
        fill_pattern(&mut buf, i as u64 + 1);
        f.write_all_at(&buf, off).expect("write backing");
    }
}

/// A COW over `backing` with `percent` of sectors dirty; returns the dirty count.
fn make_cow(cow: &Path, backing: &Path, size: u64, percent: u64, clustered: bool) -> u64 {
    let _ = fs::remove_file(cow);
    let ok = Command::new(our_bin("uml_mkcow"))
        .arg(cow)
        .arg(backing)
        .status()
        .expect("uml_mkcow");
    assert!(ok.success(), "uml_mkcow failed");
    let sectors = size / SECTOR;
    let mut bitmap = vec![0u8; sectors.div_ceil(8) as usize];
    let mut dirty = 0;
    let mut set = |i: u64, bitmap: &mut Vec<u8>| {
        bitmap[(i / 8) as usize] |= 1 << (i % 8);
        dirty += 1;
    };
    if clustered {
        let period = CLUSTER_SECTORS * 100 / percent;
        for start in (0..sectors).step_by(period as usize) {
            for i in start..(start + CLUSTER_SECTORS).min(sectors) {
                set(i, &mut bitmap);
            }
        }
    } else {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for i in 0..sectors {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 1000 < percent * 10 {
                set(i, &mut bitmap);
            }
        }
    }
    let data_offset = 8192 + (bitmap.len() as u64).div_ceil(4096) * 4096;
    let f = OpenOptions::new().write(true).open(cow).expect("open cow");
    f.write_all_at(&bitmap, 8192).expect("write bitmap");
    let mut buf = vec![0u8; CHUNK as usize];
    let per_chunk = CHUNK / SECTOR;
    for (n, first) in (0..sectors).step_by(per_chunk as usize).enumerate() {
        let bytes = &bitmap[(first / 8) as usize..((first + per_chunk) / 8) as usize];
        if bytes.iter().any(|&b| b != 0) {
            fill_pattern(&mut buf, 0xC0FFEE + n as u64);
            f.write_all_at(&buf, data_offset + first * SECTOR)
                .expect("write cow data");
        }
    }
    dirty
}

fn set_mtime(path: &Path, mtime: SystemTime) {
    File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_modified(mtime)
        .expect("set mtime");
}

fn same_content(a: &Path, b: &Path) -> bool {
    let (mut fa, mut fb) = (File::open(a).expect("open"), File::open(b).expect("open"));
    if fa.metadata().expect("merged image").len() != fb.metadata().expect("merged image").len() {
        return false;
    }
    let (mut ba, mut bb) = (vec![0u8; 8 << 20], vec![0u8; 8 << 20]);
    loop {
        let n = fa.read(&mut ba).expect("read");
        if n == 0 {
            return true;
        }
        fb.read_exact(&mut bb[..n]).expect("read");
        if ba[..n] != bb[..n] {
            return false;
        }
    }
}

struct Row {
    dir: PathBuf,
    size_gib: u64,
    percent: u64,
    clustered: bool,
    dirty_bytes: u64,
    ours: Measured,
    c: Measured,
    c_sync: Measured,
    cp: Measured,
    ours_d: Measured,
    c_d: Measured,
    c_d_sync: Measured,
    bitmap_bytes: u64,
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / secs(d)
}

fn main() {
    serve_measurement();
    let o = parse_args();
    let c_moo = peer("/usr/bin/uml_moo", "uml-utilities");
    let moo = our_bin("uml_moo");
    let mut rows = Vec::new();
    for dir in &o.dirs {
        run_dir(&o, dir, &c_moo, &moo, &mut rows);
    }
    print_targets(&rows);
}

fn run_dir(o: &Opts, dir: &Path, c_moo: &Path, moo: &Path, rows: &mut Vec<Row>) {
    let work = dir.join(format!("moo_bench.{}", std::process::id()));
    fs::create_dir_all(&work).expect("bench dir");
    println!(
        "uml_moo benchmark in {} (best of {} runs)",
        work.display(),
        o.runs
    );
    println!(
        "{:>4} {:>4} {:>9} | {:>8} {:>8} {:>7} {:>8} {:>8} {:>7} | {:>8} {:>8} {:>7} {:>8} {:>7} {:>9} | {:>8} {:>8}",
        "GiB",
        "dirt",
        "layout",
        "ours s",
        "C s",
        "C/ours",
        "C+sync",
        "cp s",
        "ours/cp",
        "ours -d",
        "C -d",
        "C/ours",
        "C+sync",
        "Cs/ours",
        "dirty MB/s",
        "RSS MiB",
        "limit"
    );
    for &gib in &o.sizes_gib {
        let size = gib << 30;
        let backing = work.join("backing.img");
        make_backing(&backing, size);
        settle(&[&backing]);
        let mtime = fs::metadata(&backing)
            .expect("backing file")
            .modified()
            .expect("backing file");
        for &percent in &o.percents {
            for &clustered in &o.layouts {
                let cow = work.join("disk.cow");
                let dirty = make_cow(&cow, &backing, size, percent, clustered);
                settle(&[&cow]);
                let (out, out_c, out_cp) = (
                    work.join("ours.img"),
                    work.join("c.img"),
                    work.join("cp.img"),
                );
                let rm = |p: &Path| {
                    let _ = fs::remove_file(p);
                };
                let ours = best_of(
                    o.runs,
                    || rm(&out),
                    || {
                        let mut c = Command::new(moo);
                        c.arg("-q").arg(&cow).arg(&out);
                        c
                    },
                );
                let c = best_of(
                    o.runs,
                    || rm(&out_c),
                    || {
                        let mut c = Command::new(c_moo);
                        c.arg(&cow).arg(&out_c);
                        c
                    },
                );
                let c_sync = best_of(
                    o.runs,
                    || rm(&out_c),
                    || with_sync(c_moo, &[&cow, &out_c], &out_c),
                );
                assert!(
                    same_content(&out, &out_c),
                    "merged images differ from the C tool's"
                );
                let (ours_blocks, c_blocks) = (
                    fs::metadata(&out).expect("merged image").blocks(),
                    fs::metadata(&out_c).expect("merged image").blocks(),
                );
                assert!(
                    ours_blocks <= c_blocks,
                    "ours is less sparse: {ours_blocks} vs {c_blocks} blocks"
                );
                rm(&out);
                rm(&out_c);
                let cp = best_of(
                    o.runs,
                    || rm(&out_cp),
                    || {
                        let mut c = Command::new("cp");
                        c.arg("--sparse=always").arg(&backing).arg(&out_cp);
                        c
                    },
                );
                rm(&out_cp);
                let reset = || {
                    set_mtime(&backing, mtime);
                    settle(&[&backing]);
                };
                let ours_d = best_of(o.runs, reset, || {
                    let mut c = Command::new(moo);
                    c.arg("-q").arg("-d").arg(&cow);
                    c
                });
                let c_d = best_of(o.runs, reset, || {
                    let mut c = Command::new(c_moo);
                    c.arg("-d").arg(&cow);
                    c
                });
                let c_d_sync = best_of(o.runs, reset, || {
                    with_sync(c_moo, &[Path::new("-d"), &cow], &backing)
                });
                reset();
                rm(&cow);
                let row = Row {
                    dir: dir.to_owned(),
                    size_gib: gib,
                    percent,
                    clustered,
                    dirty_bytes: dirty * SECTOR,
                    ours,
                    c,
                    c_sync,
                    cp,
                    ours_d,
                    c_d,
                    c_d_sync,
                    bitmap_bytes: (size / SECTOR).div_ceil(8),
                };
                print_row(&row);
                rows.push(row);
            }
        }
        let _ = fs::remove_file(&backing);
    }
    let _ = fs::remove_dir_all(&work);
}

fn print_row(r: &Row) {
    let peak = r.ours.max_rss.max(r.ours_d.max_rss);
    println!(
        "{:>4} {:>3}% {:>9} | {:>8.3} {:>8.3} {:>7.1} {:>8.3} {:>8.3} {:>7.2} | {:>8.3} {:>8.3} {:>7.1} {:>8.3} {:>7.1} {:>10.0} | {:>8.1} {:>8.1}",
        r.size_gib,
        r.percent,
        if r.clustered { "clustered" } else { "scattered" },
        secs(r.ours.wall),
        secs(r.c.wall),
        secs(r.c.wall) / secs(r.ours.wall),
        secs(r.c_sync.wall),
        secs(r.cp.wall),
        secs(r.ours.wall) / secs(r.cp.wall),
        secs(r.ours_d.wall),
        secs(r.c_d.wall),
        secs(r.c_d.wall) / secs(r.ours_d.wall),
        secs(r.c_d_sync.wall),
        secs(r.c_d_sync.wall) / secs(r.ours_d.wall),
        mbps(r.dirty_bytes, r.ours_d.wall),
        mib(peak),
        mib(r.bitmap_bytes + (16 << 20)),
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn print_targets(rows: &[Row]) {
    println!("\ntargets:");
    for r in rows {
        let tag = format!(
            "{} {} GiB {}% {}",
            r.dir.display(),
            r.size_gib,
            r.percent,
            if r.clustered {
                "clustered"
            } else {
                "scattered"
            }
        );
        let speedup = secs(r.c.wall) / secs(r.ours.wall);
        let vs_cp = secs(r.ours.wall) / secs(r.cp.wall);
        println!("  {tag}: copy merge {speedup:.1}x the C tool (target >= 5): {}; {vs_cp:.2}x cp (target <= 2): {}",
            verdict(speedup >= 5.0), verdict(vs_cp <= 2.0));
        if !r.clustered && r.percent >= 10 {
            let d = secs(r.c_d.wall) / secs(r.ours_d.wall);
            let ds = secs(r.c_d_sync.wall) / secs(r.ours_d.wall);
            println!(
                "  {tag}: -d {ds:.1}x the C tool + sync (target >= 2): {}; {d:.1}x the C tool \
                 without sync (target >= 1): {}",
                verdict(ds >= 2.0),
                verdict(d >= 1.0)
            );
        }
        if r.clustered {
            let rate = mbps(r.dirty_bytes, r.ours_d.wall);
            println!(
                "  {tag}: -d {rate:.0} MB/s of dirty data (target >= 1000): {}",
                verdict(rate >= 1000.0)
            );
        }
        let peak = r.ours.max_rss.max(r.ours_d.max_rss);
        let limit = r.bitmap_bytes + (16 << 20);
        println!(
            "  {tag}: peak RSS {:.1} MiB (limit {:.1}): {}",
            mib(peak),
            mib(limit),
            verdict(peak <= limit)
        );
    }
    for small in rows.iter().filter(|r| r.size_gib == 1) {
        for big in rows.iter().filter(|r| {
            r.size_gib == 4
                && r.dir == small.dir
                && r.percent == small.percent
                && r.clustered == small.clustered
        }) {
            for (mode, a, b) in [
                ("copy", small.ours.wall, big.ours.wall),
                ("-d", small.ours_d.wall, big.ours_d.wall),
            ] {
                let scale = secs(b) / secs(a);
                println!(
                    "  4 GiB / 1 GiB, {}% {} {mode}: {scale:.2}x (target <= 4.5): {}",
                    small.percent,
                    if small.clustered {
                        "clustered"
                    } else {
                        "scattered"
                    },
                    verdict(scale <= 4.5)
                );
            }
        }
    }
}
