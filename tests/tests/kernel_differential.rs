//! The differential test of issue 14: one script of busybox commands
//! (`tests/guests/differential.sh`: shell syntax, text tools, file tools, archives,
//! process control, /proc, mount) runs as init on the same image under linux.uml and
//! under uml-kernel; what it prints between its markers must be the same, line for
//! line. The only lines allowed to differ start with `KERNEL:` (the script prints there
//! what names the kernel: `uname -r`, /proc/version), and ours must name this kernel.
//! On a difference the test prints a diff of the two outputs. Besides busybox the image
//! holds `mmapcheck` (tests/guests/mmapcheck.c, built static with gcc): busybox maps no
//! files, so it checks file-backed mmap and its errno cases.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::path::Path;
use std::time::Duration;

use tests::{our_bin, GuestImage, KernelRun, Uml};

const LIMIT: Duration = Duration::from_secs(60);
const SCRIPT: &str = include_str!("../guests/differential.sh");
const MMAPCHECK: &str = include_str!("../guests/mmapcheck.c");
/// Both kernels get linux.uml's memory switch (linux.uml passes `mem=` on to init's
/// environment, and so does uml-kernel; the script prints the environment).
const MEM: &str = "mem=48M";

/// A line-by-line diff (longest common subsequence): `-` lines only linux.uml printed,
/// `+` lines only uml-kernel printed, with their line numbers.
fn diff(theirs: &[&String], ours: &[&String]) -> String {
    let (n, m) = (theirs.len(), ours.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if theirs[i] == ours[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < n || j < m {
        if i < n && j < m && theirs[i] == ours[j] {
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+{:>4}: {}\n", j + 1, ours[j]));
            j += 1;
        } else {
            out.push_str(&format!("-{:>4}: {}\n", i + 1, theirs[i]));
            i += 1;
        }
    }
    out
}

fn run_ours(dir: &Path, image: &Path) -> Vec<String> {
    let args = [
        format!("ubd0={}", image.display()),
        "root=/dev/ubda".to_string(),
        "rw".into(),
        "init=/sbin/init".into(),
        "con0=fd:0,fd:1".into(),
        "con=null".into(),
        MEM.into(),
    ];
    let mut k = KernelRun::start(
        KernelRun::command(&our_bin("uml-kernel"), "diff150", &args),
        &dir.join("home"),
        "diff150",
    );
    let status = k.wait_exit(LIMIT);
    let console = k.output();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "uml-kernel did not run the script to its poweroff -f:\n{console}"
    );
    tests::kernel::between_markers(&console, "uml-kernel")
}

#[test]
fn a_busybox_script_prints_the_same_under_uml_kernel_and_linux_uml() {
    let commands = SCRIPT
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("echo \"---"))
        .count();
    assert!(
        commands >= 150,
        "the script has only {commands} command lines"
    );

    let dir = tests::scratch();
    let elf = tests::static_program(dir.path(), "mmapcheck", MMAPCHECK, &[]);
    let base = GuestImage::build_with(
        &dir.path().join("base.img"),
        SCRIPT,
        32,
        &[("usr/bin/mmapcheck", &elf, 0o755)],
    );
    let ours_img = dir.path().join("ours.img");
    fs::copy(&base.path, &ours_img).unwrap();
    let theirs_img = dir.path().join("theirs.img");
    fs::copy(&base.path, &theirs_img).unwrap();
    // Both kernels run at once (linux.uml in a thread): the test takes the longer run,
    // not the sum. Uml::new gives linux.uml mem=48M, MEM.
    let uml = Uml::new(&dir.path().join("uml-home"), "diff150-uml");
    let (ours, theirs_out) = std::thread::scope(|s| {
        let linux = uml.map(|uml| {
            let img = theirs_img.display().to_string();
            s.spawn(move || uml.root(&img).boot_to_poweroff(LIMIT))
        });
        let ours = run_ours(dir.path(), &ours_img);
        (ours, linux.map(|t| t.join().unwrap()))
    });
    assert!(ours.len() > 300, "too little output: {ours:#?}");
    let release = format!("KERNEL: Linux {} ", kernel::machine::RELEASE);
    assert!(
        ours.iter().any(|l| l.starts_with(&release)),
        "the KERNEL: line does not name this kernel: {ours:#?}"
    );
    let Some(out) = theirs_out else {
        return; // UML_SKIP_INTEROP=1
    };
    let theirs = tests::kernel::between_markers(&out.stdout, "linux.uml");

    let names_kernel = |l: &&String| l.starts_with("KERNEL:");
    let ours_cmp: Vec<&String> = ours.iter().filter(|l| !names_kernel(l)).collect();
    let theirs_cmp: Vec<&String> = theirs.iter().filter(|l| !names_kernel(l)).collect();
    assert_eq!(
        ours.len() - ours_cmp.len(),
        theirs.len() - theirs_cmp.len(),
        "the two kernels printed a different number of KERNEL: lines"
    );
    assert!(
        ours_cmp == theirs_cmp,
        "uml-kernel (+) and linux.uml (-) printed different lines:\n{}",
        diff(&theirs_cmp, &ours_cmp)
    );
}
