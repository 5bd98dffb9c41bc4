//! humfsify on a tree of 50,000 files (`--files N` to change): ours against the Perl
//! /usr/bin/humfsify, on two identical trees, in the same run; prints both times, the
//! ratio, and whether the two results are identical. Needs root (humfsify chowns).
//!
//! Build and run: `cargo build --release -p humfsify -p bench &&
//! target/release/humfsify_bench [--files N]`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PERL_HUMFSIFY: &str = "/usr/bin/humfsify";
const FILES_PER_DIR: usize = 500;

fn files_wanted() -> usize {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--files") {
        Some(i) => args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("--files needs a number")),
        None => 50_000,
    }
}

/// Our humfsify, built beside this benchmark.
fn our_humfsify() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let path = exe.parent().expect("target dir").join("humfsify");
    assert!(
        path.exists(),
        "{} missing: cargo build --release -p humfsify",
        path.display()
    );
    path
}

/// `files` small files in directories of 500, with a few modes and owners.
fn make_tree(top: &Path, files: usize) {
    let data = top.join("data");
    for i in 0..files {
        let dir = data.join(format!("d{:03}", i / FILES_PER_DIR));
        if i % FILES_PER_DIR == 0 {
            fs::create_dir_all(&dir).expect("mkdir");
        }
        let p = dir.join(format!("file{i}"));
        fs::write(&p, b"x").expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600 + (i as u32 % 0o100)))
            .expect("chmod");
        std::os::unix::fs::chown(&p, Some(1000 + i as u32 % 7), Some(100)).expect("chown");
    }
}

fn time_run(tool: &Path, top: &Path) -> Duration {
    let start = Instant::now();
    let out = Command::new(tool)
        .args(["nobody", "nogroup", "1G"])
        .current_dir(top)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", tool.display()));
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{} failed: {}{}",
        tool.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// Path -> mode, owner and content of every node (for the identical-result check).
fn snapshot(top: &Path) -> BTreeMap<PathBuf, (u32, u32, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![top.to_owned()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).expect("lstat");
        let content = if m.is_dir() {
            for e in fs::read_dir(&p).expect("readdir") {
                stack.push(e.expect("entry").path());
            }
            Vec::new()
        } else {
            fs::read(&p).expect("read")
        };
        let rel = p.strip_prefix(top).expect("prefix").to_owned();
        out.insert(rel, (m.mode(), m.uid(), m.gid(), content));
    }
    out
}

fn main() {
    let files = files_wanted();
    let perl = PathBuf::from(PERL_HUMFSIFY);
    assert!(
        perl.exists(),
        "{PERL_HUMFSIFY} missing: install uml-utilities"
    );
    let ours = our_humfsify();
    let scratch = tempfile::Builder::new()
        .prefix("humfsify-bench.")
        .tempdir_in("/var/tmp")
        .expect("scratch dir");
    let (perl_top, our_top) = (scratch.path().join("perl"), scratch.path().join("ours"));
    for top in [&perl_top, &our_top] {
        make_tree(top, files);
    }
    println!(
        "humfsify on {files} files in {} directories",
        files.div_ceil(FILES_PER_DIR)
    );
    let our_time = time_run(&ours, &our_top);
    println!("ours (Rust):  {:>9.3} s", our_time.as_secs_f64());
    let perl_time = time_run(&perl, &perl_top);
    println!("Perl tool:    {:>9.3} s", perl_time.as_secs_f64());
    println!(
        "ratio:        {:>9.1}x faster (target 10x)",
        perl_time.as_secs_f64() / our_time.as_secs_f64()
    );
    let same = snapshot(&perl_top) == snapshot(&our_top);
    println!("results identical: {}", if same { "yes" } else { "NO" });
}
