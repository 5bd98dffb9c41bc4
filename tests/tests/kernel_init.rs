//! uml-kernel runs the root disk's programs: the busybox image linux.uml boots, with
//! `init=/sbin/init` (a shell script of busybox commands), runs under uml-kernel as
//! guest processes, and what the script prints is compared line by line with
//! linux.uml running the same script on the same image (only the lines between the
//! script's markers; a line starting `KERNEL:` names the kernel and may differ).
//! `poweroff -f` ends the kernel with 0, e2fsck finds the image clean and debugfs reads
//! the files the guest wrote. Hostile guests (a fork bomb, host paths) are contained
//! and mconsole keeps answering.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use tests::{descendants, our_bin, run, GuestImage, KernelRun, Output, Uml};

const LIMIT: Duration = Duration::from_secs(60);

/// The script both kernels run as /sbin/init.
const SCRIPT: &str = r#"#!/bin/sh
echo "=== begin"
echo hello world
echo "args: $# env: $HOME $TERM"
cd /tmp
mkdir -p work/sub && cd work
pwd
echo one > a.txt
echo two >> a.txt
cat a.txt
cp a.txt b.txt && mv b.txt c.txt && ls
ls -l c.txt | awk '{print $1, $2, $5, $NF}'
rm c.txt; ls
wc -l < a.txt
cat a.txt | sort -r | head -n 1
x=$(echo nested $(echo deep)); echo "$x"
i=0; while [ $i -lt 25 ]; do i=$((i+1)); done; echo "i=$i"
for w in x y z; do printf '%s-' $w; done; echo
(exit 3); echo "status $?"
false || echo "or works"
true && echo "and works"
sh -c 'exit 7'; echo "sh status $?"
sleep 0.2 & pid=$!; wait $pid; echo "waited $?"
( sleep 0.1; echo background ) &
wait
echo "after wait"
sleep 10 & victim=$!; kill $victim; wait $victim; echo "killed status $?"
echo data > /root/file1
mkdir /root/dir1
echo nested > /root/dir1/f2
ln -s file1 /root/link1
cat /root/link1; readlink /root/link1
stat -c '%s %F %a' /root/file1 /root/dir1 /root/link1
test -d /root/dir1 && echo isdir
test -x /bin/busybox && echo executable
echo "KERNEL: $(uname -r)"
uname -s -m
seq 1 5 | tr '\n' ' '; echo
echo abc | sed s/b/X/
echo "a:b:c" | cut -d: -f2
grep -c o /tmp/work/a.txt
basename /a/b/c; dirname /a/b/c
expr 6 \* 7
echo $((3 + 4 * 2))
md5sum /tmp/work/a.txt
find /root | sort
id -u
umask
sh -c "trap 'echo bye' EXIT; echo hi"
echo one two three | while read a b c; do echo "$c $b $a"; done
cat /nonexistent 2>&1 | sed 's/^cat: //'
/bin/nonexistent-command 2>/dev/null; echo "missing $?"
printf 'x\ny\n' > /tmp/work/lines; while read l; do echo "line $l"; done < /tmp/work/lines
head -c 5 /dev/zero | od -An -c | tr -s ' '
cd /; rm -r /tmp/work; ls /tmp
sync
echo "=== end"
poweroff -f
"#;

fn debugfs_cat(image: &Path, path: &str) -> String {
    let out = run(
        Command::new("debugfs")
            .arg("-R")
            .arg(format!("cat {path}"))
            .arg(image),
        LIMIT,
    );
    out.stdout
}

#[test]
fn busybox_init_script_prints_what_linux_uml_prints() {
    let dir = tests::scratch();
    let base = GuestImage::build(&dir.path().join("base.img"), SCRIPT);
    let ours_img = dir.path().join("ours.img");
    fs::copy(&base.path, &ours_img).unwrap();

    let mut k = KernelRun::boot_disk(&dir.path().join("home"), "initdiff", &ours_img, &[]);
    let status = k.wait_exit(LIMIT);
    let console = k.output();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "uml-kernel did not power off with 0:\n{console}"
    );
    let ours = tests::kernel::between_markers(&console, "uml-kernel");

    tests::ext2tree::e2fsck_clean(&ours_img, "the image uml-kernel's guest wrote");
    assert_eq!(debugfs_cat(&ours_img, "/root/file1"), "data\n");
    assert_eq!(debugfs_cat(&ours_img, "/root/dir1/f2"), "nested\n");

    let Some(uml) = Uml::new(&dir.path().join("uml-home"), "initdiff-uml") else {
        return; // UML_SKIP_INTEROP=1
    };
    let theirs_img = dir.path().join("theirs.img");
    fs::copy(&base.path, &theirs_img).unwrap();
    let out: Output = uml
        .root(&theirs_img.display().to_string())
        .boot_to_poweroff(LIMIT);
    let theirs = tests::kernel::between_markers(&out.stdout, "linux.uml");

    let names_kernel = |l: &String| l.starts_with("KERNEL:");
    let ours_cmp: Vec<&String> = ours.iter().filter(|l| !names_kernel(l)).collect();
    let theirs_cmp: Vec<&String> = theirs.iter().filter(|l| !names_kernel(l)).collect();
    assert!(ours_cmp.len() > 40, "too little output: {ours:#?}");
    assert_eq!(
        ours_cmp, theirs_cmp,
        "uml-kernel (left) and linux.uml (right) printed different lines"
    );
    assert!(
        ours.iter()
            .any(|l| l == &format!("KERNEL: {}", kernel::machine::RELEASE)),
        "uname -r is not this kernel's release: {ours:#?}"
    );
}

#[test]
fn init_gets_the_command_lines_words_and_a_missing_init_panics() {
    let dir = tests::scratch();
    let script = "#!/bin/sh\necho \"argv: $*\"\necho \"env: $greeting\"\npoweroff -f\n";
    let img = GuestImage::build(&dir.path().join("args.img"), script);
    let mut k = KernelRun::boot_disk(
        &dir.path().join("home"),
        "initargs",
        &img.path,
        &["single", "greeting=hi"],
    );
    let status = k.wait_exit(LIMIT);
    // The guest tty ends lines with CR LF (ONLCR), as Linux's does.
    let console = k.output().replace('\r', "");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{console}");
    assert!(console.contains("argv: single\n"), "{console}");
    assert!(console.contains("env: hi\n"), "{console}");

    let args = [
        format!("ubd0={}", img.path.display()),
        "init=/sbin/no-such-init".to_string(),
        "con0=fd:0,fd:1".into(),
    ];
    let mut k = KernelRun::start(
        KernelRun::command(&our_bin("uml-kernel"), "initmissing", &args),
        &dir.path().join("home2"),
        "initmissing",
    );
    let status = k.wait_exit(LIMIT);
    let console = k.output();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{console}");
    assert!(
        console.contains("Requested init /sbin/no-such-init failed (error -2)"),
        "{console}"
    );
}

#[test]
fn a_fork_bomb_and_host_paths_are_contained_and_mconsole_answers() {
    let dir = tests::scratch();
    let secret = dir.path().join("host-secret");
    fs::write(&secret, "host data\n").unwrap();
    let script = format!(
        "#!/bin/sh\n\
         cat {secret} 2>/dev/null && echo LEAKED || echo no-host-file\n\
         ls /proc/1/root/{secret} 2>/dev/null && echo LEAKED2 || echo no-host-root\n\
         echo bomb-start\n\
         b() {{ b | b & }}\n\
         b 2>/dev/null\n\
         sleep 1000\n",
        secret = secret.display()
    );
    let img = GuestImage::build(&dir.path().join("bomb.img"), &script);
    let mut k = KernelRun::boot_disk(&dir.path().join("home"), "initbomb", &img.path, &[]);
    k.wait_socket(LIMIT);
    let start = Instant::now();
    while !k.output().contains("bomb-start") {
        assert!(
            start.elapsed() < LIMIT,
            "the guest never started:\n{}",
            k.output()
        );
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_secs(2));
    let v = k.mconsole("version");
    assert!(
        v.success() && v.stdout.contains("OK"),
        "mconsole did not answer during the fork bomb: {v:?}\n{}",
        k.output()
    );
    let guests = descendants(k.child.id() as i32);
    assert!(
        !guests.is_empty() && guests.len() <= kernel::syscalls::sentry::MAX_PROCS + 4,
        "{} host processes under the kernel",
        guests.len()
    );
    let console = k.output();
    assert!(
        console.contains("no-host-file") && console.contains("no-host-root"),
        "{console}"
    );
    assert!(!console.contains("LEAKED"), "{console}");
    // Their /proc directories, found now (under scripts/test /proc is an outer pid
    // namespace's, where the pids we see name other processes).
    let guest_dirs: Vec<std::path::PathBuf> =
        guests.iter().filter_map(|&p| tests::proc_dir(p)).collect();
    assert!(!guest_dirs.is_empty(), "no guest process in /proc");
    let h = k.mconsole("halt");
    assert!(h.success(), "{h:?}");
    assert!(k.wait_exit(LIMIT).is_some(), "halt did not end the kernel");
    // Every guest dies with the kernel (PTRACE_O_EXITKILL, the platform's drop).
    tests::kernel::wait_all_gone(&guest_dirs, LIMIT, "guest processes outlived the kernel");
}

#[test]
fn an_interactive_busybox_sh_on_the_console_and_ctrl_c() {
    let dir = tests::scratch();
    let img = GuestImage::build(
        &dir.path().join("sh.img"),
        "#!/bin/sh\necho ready\nexec sh\n",
    );
    let mut k = KernelRun::boot_disk(&dir.path().join("home"), "initsh", &img.path, &[]);
    assert!(
        k.wait_from(0, "ready", LIMIT).is_some(),
        "init never ran:\n{}",
        k.output()
    );
    let out = k.sh("echo $((6 * 7)); cd /tmp && pwd", LIMIT);
    assert!(out.contains("\n42") && out.contains("\n/tmp"), "{out}");
    // A foreground job interrupted from the console: the shell comes back.
    let from = k.output().len();
    k.type_line("sleep 100; echo not-interrupted");
    thread::sleep(Duration::from_millis(500));
    {
        use std::io::Write;
        let stdin = k.stdin.as_mut().unwrap();
        stdin.write_all(b"\x03").unwrap();
        stdin.flush().unwrap();
    }
    let out = k.sh("echo back", Duration::from_secs(10));
    assert!(out.contains("\nback"), "{out}");
    assert!(
        !k.output()[from..].contains("\nnot-interrupted"),
        "^C did not stop the job:\n{}",
        k.output()
    );
    k.type_line("poweroff -f");
    let status = k.wait_exit(LIMIT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", k.output());
}

/// A static C init: turns Ctrl-Alt-Del off (reboot(2) CAD_OFF, as busybox init does),
/// waits in pause() for SIGINT, reports it and powers off.
const CAD_INIT: &str = r#"
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/reboot.h>
static void on_int(int sig) {
    (void)sig;
    const char msg[] = "cad-seen\n";
    write(1, msg, sizeof msg - 1);
    sync();
    reboot(RB_POWER_OFF);
}
int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_int;
    sigaction(SIGINT, &sa, 0);
    reboot(RB_DISABLE_CAD);
    const char msg[] = "cad-ready\n";
    write(1, msg, sizeof msg - 1);
    for (;;) pause();
}
"#;

#[test]
fn mconsole_cad_signals_an_init_that_turned_ctrl_alt_del_off() {
    let dir = tests::scratch();
    let elf = tests::static_program(dir.path(), "cadinit", CAD_INIT, &[]);
    let img = GuestImage::build_with(
        &dir.path().join("cad.img"),
        "#!/bin/sh\npoweroff -f\n",
        32,
        &[("sbin/cadinit", &elf, 0o755)],
    );
    let mut k = KernelRun::start(
        KernelRun::command(
            &our_bin("uml-kernel"),
            "initcad2",
            &[
                format!("ubd0={}", img.path.display()),
                "init=/sbin/cadinit".into(),
                "con0=fd:0,fd:1".into(),
            ],
        ),
        &dir.path().join("home2"),
        "initcad2",
    );
    assert!(
        k.wait_from(0, "cad-ready", LIMIT).is_some(),
        "the C init did not start:\n{}",
        k.output()
    );
    let r = k.mconsole("cad");
    assert!(r.success(), "{r:?}");
    let status = k.wait_exit(LIMIT);
    let console = k.output();
    assert!(console.contains("cad-seen"), "{console}");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{console}");
}

/// sysrq t lists the guest processes; sysrq e sends SIGTERM to every one but init (a
/// trap runs, a sleep dies) and sysrq i SIGKILL (a process ignoring SIGTERM dies); init
/// itself, which handles neither, lives on and powers off.
#[test]
fn mconsole_sysrq_lists_terminates_and_kills_guest_processes() {
    let dir = tests::scratch();
    let init = "#!/bin/sh
sh -c 'trap \"echo GOT-TERM; exit 0\" TERM; echo TRAP-SET; while true; do sleep 1; done' &
sleep 1000 &
echo WAVE-ONE
wait
sh -c 'trap \"\" TERM; echo STUBBORN; while true; do sleep 1; done' &
echo WAVE-TWO
wait
echo ALL-GONE
poweroff -f
";
    let img = GuestImage::build(&dir.path().join("sysrq.img"), init);
    let mut k = KernelRun::boot_disk(&dir.path().join("home"), "sysrqinit", &img.path, &[]);
    assert!(
        k.wait_from(0, "TRAP-SET", LIMIT).is_some() && k.wait_from(0, "WAVE-ONE", LIMIT).is_some(),
        "init did not start:\n{}",
        k.output()
    );
    let t = k.mconsole("sysrq t");
    assert!(t.success(), "{t:?}");
    assert!(t.stdout.contains("sysrq: Show State"), "{t:?}");
    assert!(t.stdout.contains("    1     0 init"), "{t:?}");
    // init's two children (and the trap shell's sleep, when it has started): their
    // names are what busybox exec'd (`sh`, `sleep` or `exe`, for /proc/self/exe) and
    // their pids depend on who forked first.
    let children = t.stdout.lines().filter(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 3 && f[0] != "1" && f[1] == "1"
    });
    assert_eq!(children.count(), 2, "{t:?}");
    let e = k.mconsole("sysrq e");
    assert!(e.stdout.contains("sysrq: Terminate All Tasks"), "{e:?}");
    assert!(
        k.wait_from(0, "WAVE-TWO", LIMIT).is_some(),
        "SIGTERM did not end the first wave:\n{}",
        k.output()
    );
    assert!(k.output().contains("GOT-TERM"), "{}", k.output());
    assert!(
        k.wait_from(0, "STUBBORN", LIMIT).is_some(),
        "{}",
        k.output()
    );
    let e = k.mconsole("sysrq e");
    assert!(e.success(), "{e:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !k.output().contains("ALL-GONE"),
        "a process ignoring SIGTERM died of sysrq e:\n{}",
        k.output()
    );
    let i = k.mconsole("sysrq i");
    assert!(i.stdout.contains("sysrq: Kill All Tasks"), "{i:?}");
    let status = k.wait_exit(LIMIT);
    let console = k.output();
    assert!(console.contains("ALL-GONE"), "{console}");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{console}");
}
