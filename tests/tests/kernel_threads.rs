//! Guest threads (issue 14): `threads` (tests/guests/threads.c, built static with gcc
//! -pthread) runs as init's child on the same image under linux.uml and under uml-kernel.
//! It starts 8 pthreads doing file I/O on the VFS with getpid/gettid checks, a mutex and
//! condvar handoff and joins, shares descriptors and cwd between threads, reads Threads:
//! and /proc/self/task, sends pthread_kill to one thread, a process signal its leader
//! blocks, stops and continues a threaded child, and makes a CLONE_VM process. A
//! second run calls exit_group from a thread while others block in the sentry and in
//! futexes; in a third the leader leaves with pthread_exit before its last thread. What
//! it prints between the markers must be the same on both kernels (it
//! prints no pid or tid). Then, under uml-kernel, a threaded guest is left sleeping:
//! mconsole must answer, and kill -9 of the kernel must leave no host process or thread.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use tests::{descendants, our_bin, proc_dir, run, GuestImage, KernelRun, Uml};

const LIMIT: Duration = Duration::from_secs(60);
const SOURCE: &str = include_str!("../guests/threads.c");

/// init of both kernels; `stay` (on uml-kernel's command line only, passed to init's
/// environment) keeps a threaded guest running instead of powering off.
const INIT: &str = r#"#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
grep -q ' /proc ' /proc/mounts 2>/dev/null || mount -t proc proc /proc
mkdir -p /tmp; cd /tmp
echo "=== begin"
/usr/bin/threads; echo "main status $?"
/usr/bin/threads exitgroup; echo "exitgroup status $?"
/usr/bin/threads leaderexit; echo "leaderexit status $?"
cat /tmp/thr.3
echo "=== end"
[ -n "$stay" ] && exec /usr/bin/threads sleep
poweroff -f
"#;

fn build(dir: &Path) -> Vec<u8> {
    tests::static_program(dir, "threads", SOURCE, &["-pthread"])
}

/// The host processes under the kernel and each one's threads (their /proc dirs).
fn host_tasks(kpid: i32) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in descendants(kpid).into_iter().filter_map(proc_dir) {
        for e in fs::read_dir(dir.join("task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            out.push(e.path());
        }
        out.push(dir);
    }
    out
}

#[test]
fn pthreads_behave_as_under_linux_uml_and_die_with_the_kernel() {
    let dir = tests::scratch();
    let elf = build(dir.path());
    let base = GuestImage::build_with(
        &dir.path().join("base.img"),
        INIT,
        32,
        &[("usr/bin/threads", &elf, 0o755)],
    );
    let ours_img = dir.path().join("ours.img");
    fs::copy(&base.path, &ours_img).unwrap();
    let theirs_img = dir.path().join("theirs.img");
    fs::copy(&base.path, &theirs_img).unwrap();

    let uml = Uml::new(&dir.path().join("uml-home"), "threads-uml");
    let args = [
        format!("ubd0={}", ours_img.display()),
        "root=/dev/ubda".to_string(),
        "rw".into(),
        "init=/sbin/init".into(),
        "con0=fd:0,fd:1".into(),
        "con=null".into(),
        "mem=48M".into(),
        "stay=1".into(),
    ];
    let (ours, theirs_out, mut k) = thread::scope(|s| {
        let linux = uml.map(|uml| {
            let img = theirs_img.display().to_string();
            s.spawn(move || uml.root(&img).boot_to_poweroff(LIMIT))
        });
        let k = KernelRun::start(
            KernelRun::command(&our_bin("uml-kernel"), "threads", &args),
            &dir.path().join("home"),
            "threads",
        );
        let console = k
            .wait_from(0, "THREADS SLEEPING", LIMIT)
            .unwrap_or_else(|| panic!("uml-kernel did not run the program:\n{}", k.output()));
        let ours = tests::kernel::between_markers(&console, "uml-kernel");
        (ours, linux.map(|t| t.join().unwrap()), k)
    });

    // The checks that hold whatever linux.uml says.
    for want in [
        "tids distinct 1, not the pid 1; getpid in threads 1; file io 1",
        "handoff order: 0 1 2 3 4 5 6 7 ",
        "handler ran: 1, in the target thread: 1, in main: 0",
        "exit_group from a thread",
        "exitgroup status 7",
        "leaderexit status 5",
        "main status 0",
    ] {
        assert!(
            ours.iter().any(|l| l == want),
            "uml-kernel did not print {want:?}:\n{}",
            ours.join("\n")
        );
    }

    // mconsole answers while a threaded guest runs.
    let v = run(
        Command::new(our_bin("uml_mconsole"))
            .arg(&k.umid)
            .arg("version")
            .env("HOME", &k.home),
        Duration::from_secs(10),
    );
    assert!(
        v.success() && v.stdout.contains("OK"),
        "mconsole did not answer: {v:?}\n{}",
        k.output()
    );

    // kill -9 of the kernel: no host process or thread of a guest outlives it.
    let kpid = k.child.id() as i32;
    let tasks = host_tasks(kpid);
    assert!(
        tasks.len() >= 5,
        "the sleeping guest's host threads are not under the kernel: {tasks:?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(kpid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = k.wait_exit(LIMIT);
    tests::kernel::wait_all_gone(
        &tasks,
        Duration::from_secs(10),
        "guest host threads outlived kill -9 of the kernel",
    );

    let Some(out) = theirs_out else {
        return; // UML_SKIP_INTEROP=1
    };
    let theirs = tests::kernel::between_markers(&out.stdout, "linux.uml");
    assert!(
        ours == theirs,
        "uml-kernel and linux.uml printed different lines:\n--- linux.uml\n{}\n--- uml-kernel\n{}",
        theirs.join("\n"),
        ours.join("\n")
    );
}
