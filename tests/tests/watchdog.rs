//! uml_watchdog against linux.uml's harddog driver, ours and the C tool side by side:
//! busybox `watchdog` in the guest keeps the UML alive; `uml_mconsole NAME stop`
//! freezes the guest, the pings stop and the watchdog fires: with `-pid` the UML is
//! stopped by signals, with `-mconsole` (a UML booted with mconsole=notify:SOCKET) a
//! hang notification arrives at the notify socket.
//!
//! linux.uml runs /usr/bin/uml_watchdog by absolute path, so the test runs the kernel in
//! a private mount namespace with a wrapper bind-mounted there that execs ours (with
//! `--timeout 3`, logging to a file); the C tool runs with its fixed 60 s.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use tests::{c_tool, our_bin, require_root, run, scratch, GuestImage, Uml, UmlBoot};

const INIT: &str = "#!/bin/sh
mount -t proc proc /proc
mount -t devtmpfs dev /dev 2>/dev/null
watchdog -F -t 1 /dev/watchdog &
echo \"WDPID $!\"
while true; do sleep 1; done
";

const BOOT: Duration = Duration::from_secs(40);

#[derive(Clone, Copy, PartialEq, Debug)]
enum Dog {
    Ours,
    C,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Pid,
    Mconsole,
}

/// The watchdog's period for each.
fn period(dog: Dog) -> Duration {
    match dog {
        Dog::Ours => Duration::from_secs(3),
        Dog::C => Duration::from_secs(60),
    }
}

fn mconsole(home: &Path, umid: &str, cmd: &str) -> tests::Output {
    run(
        Command::new(our_bin("uml_mconsole"))
            .arg(umid)
            .arg(cmd)
            .env("HOME", home),
        Duration::from_secs(15),
    )
}

/// The command line of process `pid`, NUL-separated arguments joined by spaces.
fn cmdline(pid: i32) -> String {
    let Some(dir) = tests::proc_dir(pid) else {
        return String::new();
    };
    fs::read(dir.join("cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn line_reader(out: std::process::ChildStdout) -> Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs the kernel in a private mount namespace where /usr/bin/uml_watchdog is a
/// wrapper that execs ours with `--timeout`, its stderr appended to `log`.
fn with_our_watchdog(uml: Uml, dir: &Path, timeout: Duration, log: &Path) -> Uml {
    let wrapper = dir.join("uml_watchdog");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec {} --timeout {} \"$@\" 2>>{}\n",
            our_bin("uml_watchdog").display(),
            timeout.as_secs(),
            log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let setup = format!(
        "mount --make-rprivate / && mount --bind {} /usr/bin/uml_watchdog && exec \"$0\" \"$@\"",
        wrapper.display()
    );
    uml.wrapped(vec![
        "unshare".into(),
        "--mount".into(),
        "--".into(),
        "sh".into(),
        "-c".into(),
        setup,
    ])
}

/// What one scenario observed.
struct Seen {
    /// From `stop` to the UML's exit (pid mode) or the hang line (mconsole mode).
    fired_after: Duration,
    /// Our watchdog's stderr (empty for the C tool, whose stderr is the kernel's pipe).
    log: String,
    uml_pid: i32,
    notify: PathBuf,
}

fn scenario(dog: Dog, mode: Mode) -> Option<Seen> {
    let c = c_tool("uml_watchdog")?;
    assert!(c.exists());
    require_root("the watchdog tests (a private mount namespace for /usr/bin/uml_watchdog)");
    let dir = scratch();
    let home = dir.path().join("home");
    let image = GuestImage::build(&dir.path().join("root.img"), INIT);
    let umid = format!("wd-{dog:?}-{mode:?}").to_lowercase();
    let mut uml = Uml::new(&home, &umid)?.root(image.path.to_str().unwrap());
    let log = dir.path().join("watchdog.log");
    if dog == Dog::Ours {
        uml = with_our_watchdog(uml, dir.path(), period(dog), &log);
    }
    let notify = dir.path().join("notify.sock");
    let mut listener = None;
    if mode == Mode::Mconsole {
        let mut child = Command::new(our_bin("uml_mconsole"))
            .arg("--notify")
            .arg(&notify)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = line_reader(child.stdout.take().unwrap());
        let start = Instant::now();
        while !notify.exists() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        uml = uml.arg(format!("mconsole=notify:{}", notify.display()));
        listener = Some((child, lines));
    }

    let mut boot: UmlBoot = uml.spawn_until("WDPID", BOOT);
    let uml_pid = boot.child.id() as i32;
    // The kernel started the watchdog with its own pid or the notify socket.
    let want = match mode {
        Mode::Pid => format!("-pid {uml_pid}"),
        Mode::Mconsole => format!("-mconsole {}", notify.display()),
    };
    // Ours is started through the wrapper script: wait until it has exec'd ours.
    let which = match dog {
        Dog::Ours => "--timeout 3",
        Dog::C => "/usr/bin/uml_watchdog ",
    };
    let start = Instant::now();
    loop {
        let helpers: Vec<String> = boot.helpers().into_iter().map(cmdline).collect();
        if helpers
            .iter()
            .any(|c| c.contains("uml_watchdog") && c.contains(&want) && c.contains(which))
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "linux.uml started no uml_watchdog with {want:?} and {which:?}: {helpers:?}\n{}",
            boot.console()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Pings keep it alive for twice our period (the C tool's 60 s is too long to
    // wait out twice; five seconds show it runs).
    let alive = (period(dog) * 2).min(Duration::from_secs(6));
    std::thread::sleep(alive);
    assert!(
        boot.child.try_wait().unwrap().is_none(),
        "the UML died while the guest pinged:\n{}",
        boot.console()
    );
    assert!(mconsole(&home, &umid, "version").success());
    if let Some((_, lines)) = &listener {
        let first: Vec<String> = lines.try_iter().collect();
        assert!(
            first.iter().all(|l| l.starts_with("socket ")),
            "a notification before the stop: {first:?}"
        );
    }

    // Freeze the guest: no more pings.
    let stop = mconsole(&home, &umid, "stop");
    assert!(stop.success(), "{stop:?}");
    let stopped = Instant::now();
    let limit = period(dog) + Duration::from_secs(15);
    let fired_after = match &mut listener {
        None => {
            let status = boot.wait_exit(limit);
            let Some(status) = status else {
                panic!(
                    "the UML still runs {limit:?} after stop:\n{}",
                    boot.console()
                );
            };
            eprintln!("{dog:?}: the UML ended with {status:?}");
            stopped.elapsed()
        }
        Some((child, lines)) => {
            let mut seen = Vec::new();
            let hang = loop {
                let left = limit.saturating_sub(stopped.elapsed());
                match lines.recv_timeout(left) {
                    Ok(l) if l.starts_with("hang") => break Some(stopped.elapsed()),
                    Ok(l) => seen.push(l),
                    Err(_) => break None,
                }
            };
            let _ = child.kill();
            let _ = child.wait();
            let after = hang.unwrap_or_else(|| {
                panic!("no hang notification within {limit:?} of stop: {seen:?}")
            });
            // The notification does not stop the UML: whoever listens decides.
            assert!(boot.child.try_wait().unwrap().is_none());
            assert!(mconsole(&home, &umid, "version").success());
            after
        }
    };
    assert!(
        fired_after >= period(dog) - Duration::from_secs(2),
        "fired after {fired_after:?}, before the period {:?}",
        period(dog)
    );
    let log = fs::read_to_string(&log).unwrap_or_default();
    eprintln!("{dog:?} {mode:?}: fired {fired_after:?} after stop; log {log:?}");
    Some(Seen {
        fired_after,
        log,
        uml_pid,
        notify,
    })
}

#[test]
fn ours_pid_mode_stops_the_uml_when_the_guest_stops_pinging() {
    let Some(seen) = scenario(Dog::Ours, Mode::Pid) else {
        return;
    };
    assert!(
        seen.fired_after < Duration::from_secs(10),
        "{:?}",
        seen.fired_after
    );
    let pid = seen.uml_pid;
    // The announcement comes before the first signal (the outcome line may still be
    // unwritten when the UML is gone).
    assert!(
        seen.log.starts_with(&format!(
            "uml_watchdog: no ping for 3 s: stopping pid {pid}\n"
        )),
        "{:?}",
        seen.log
    );
}

#[test]
fn ours_mconsole_mode_sends_a_hang_notification() {
    let Some(seen) = scenario(Dog::Ours, Mode::Mconsole) else {
        return;
    };
    assert_eq!(
        seen.log,
        format!(
            "uml_watchdog: no ping for 3 s: sent a hang notification to {}\n",
            seen.notify.display()
        )
    );
}

#[test]
fn c_tool_pid_mode_stops_the_uml_after_60_s() {
    let Some(seen) = scenario(Dog::C, Mode::Pid) else {
        return;
    };
    assert!(
        seen.fired_after < Duration::from_secs(70),
        "{:?}",
        seen.fired_after
    );
}

#[test]
fn c_tool_mconsole_mode_sends_a_hang_notification_after_60_s() {
    let Some(seen) = scenario(Dog::C, Mode::Mconsole) else {
        return;
    };
    assert!(
        seen.fired_after < Duration::from_secs(70),
        "{:?}",
        seen.fired_after
    );
}

/// Bad arguments, ours against the C tool (which says nothing): ours names the problem,
/// usage errors exit 2 as clap's do. `-pid 0` and `-pid -1` the C tool accepts: on
/// firing it would signal its own process group, or every process it may signal.
#[test]
fn bad_arguments_are_refused_like_the_c_tool() {
    let Some(c) = c_tool("uml_watchdog") else {
        return;
    };
    let ours = our_bin("uml_watchdog");
    // args, the C tool's status (0: it acknowledged and ran to EOF), ours, our message
    let cases: &[(&[&str], i32, i32, &str)] = &[
        (&[], 1, 2, "required"),
        (&["-pid"], 1, 2, "a value is required"),
        (&["-pid", "notanumber"], 1, 2, "invalid digit"),
        (
            &["-pid", "999999999"],
            1,
            1,
            "uml_watchdog: -pid 999999999: no such process",
        ),
        (
            &["-pid", "0"],
            0,
            1,
            "uml_watchdog: -pid 0: no such process",
        ),
        (&["-pid", "-1"], 0, 2, "-1"),
        (&["-mconsole"], 1, 2, "a value is required"),
        (&["-frobnicate", "1"], 1, 2, "unexpected argument"),
    ];
    for (args, c_code, our_code, text) in cases {
        let theirs = run(Command::new(&c).args(*args), Duration::from_secs(5));
        assert_eq!(theirs.code, Some(*c_code), "C {args:?}: {theirs:?}");
        assert!(theirs.stderr.is_empty(), "C {args:?}: {theirs:?}");
        let mine = run(Command::new(&ours).args(*args), Duration::from_secs(5));
        assert_eq!(mine.code, Some(*our_code), "ours {args:?}: {mine:?}");
        assert!(
            mine.stdout.is_empty(),
            "ours {args:?} acknowledged: {mine:?}"
        );
        assert!(mine.stderr.contains(text), "ours {args:?}: {mine:?}");
        let first = mine.stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error:") || first.starts_with("uml_watchdog:"),
            "{mine:?}"
        );
    }
}

/// Run by hand as the kernel runs it: the NUL acknowledgement, then EOF on stdin ends
/// it with status 0 (both tools).
#[test]
fn acknowledges_and_ends_on_eof_like_the_c_tool() {
    let Some(c) = c_tool("uml_watchdog") else {
        return;
    };
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = sleeper.id().to_string();
    for bin in [c.clone(), our_bin("uml_watchdog")] {
        let out = tests::run_input(
            Command::new(&bin).args(["-pid", &pid]),
            b"\n\n\n",
            Duration::from_secs(10),
        );
        assert_eq!(out.code, Some(0), "{}: {out:?}", bin.display());
        assert_eq!(out.stdout, "\0", "{}", bin.display());
        assert!(out.stderr.is_empty(), "{}: {out:?}", bin.display());
    }
    assert!(sleeper.try_wait().unwrap().is_none(), "EOF must not fire");
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

/// `-pid -1` (or 0), which the C tool accepts: when it fires it signals every process
/// it may (or its process group). Performed in a private PID namespace: a bystander
/// process dies with the C tool; ours refuses the argument and the bystander lives.
#[test]
fn pid_minus_one_would_kill_every_process_and_is_refused() {
    let Some(c) = c_tool("uml_watchdog") else {
        return;
    };
    require_root("the -pid -1 test (a private PID namespace)");
    let script = r#"
        sleep 30 & bystander=$!
        (sleep 20) | "$1" -pid -1 > /dev/null 2>&1 & dog=$!
        sleep 0.5
        # The alarm the C tool would get after 60 s without a ping, now.
        kill -ALRM $dog 2>/dev/null
        # Wait about 5 s (signals meant for everyone cut a few of these sleeps short).
        i=0; while [ $i -lt 25 ]; do sleep 0.2; i=$((i + 1)); done
        if kill -0 $bystander 2>/dev/null; then echo BYSTANDER-ALIVE; else echo BYSTANDER-KILLED; fi
    "#;
    let attack = |dog: &Path| {
        run(
            Command::new("unshare")
                .args([
                    "--pid",
                    "--fork",
                    "--kill-child",
                    "--mount-proc",
                    "sh",
                    "-c",
                    script,
                    "sh",
                ])
                .arg(dog),
            Duration::from_secs(30),
        )
    };
    let theirs = attack(&c);
    assert!(
        theirs.stdout.contains("BYSTANDER-KILLED"),
        "the C tool spared the bystander: {theirs:?}"
    );
    let ours = attack(&our_bin("uml_watchdog"));
    assert!(ours.stdout.contains("BYSTANDER-ALIVE"), "{ours:?}");
}

/// Inside the guest: closing /dev/watchdog (busybox watchdog ends on SIGTERM) ends our
/// helper with EOF and nothing fires, even long past the period; a guest process that
/// stops pinging (SIGSTOP) while the guest runs on makes it fire.
#[test]
fn ours_stays_quiet_after_a_close_and_fires_when_the_guest_stops_pinging() {
    if c_tool("uml_watchdog").is_none() {
        return;
    }
    require_root("the watchdog tests (a private mount namespace for /usr/bin/uml_watchdog)");
    let init = "#!/bin/sh
mount -t proc proc /proc
mount -t devtmpfs dev /dev 2>/dev/null
watchdog -F -t 1 /dev/watchdog & WD=$!
echo STARTED-1
sleep 4
kill -TERM $WD; wait $WD
echo CLOSED
sleep 8
echo STILL-ALIVE
watchdog -F -t 1 /dev/watchdog & WD=$!
echo STARTED-2
sleep 3
kill -STOP $WD
echo PINGS-STOPPED
while true; do sleep 1; done
";
    let dir = scratch();
    let home = dir.path().join("home");
    let image = GuestImage::build(&dir.path().join("root.img"), init);
    let Some(uml) = Uml::new(&home, "wd-guest") else {
        return;
    };
    let log = dir.path().join("watchdog.log");
    let uml = with_our_watchdog(
        uml.root(image.path.to_str().unwrap()),
        dir.path(),
        Duration::from_secs(3),
        &log,
    );
    let mut boot = uml.spawn_until("STARTED-1", BOOT);
    let helper_running = |boot: &UmlBoot| {
        boot.helpers()
            .into_iter()
            .any(|p| cmdline(p).contains("uml_watchdog"))
    };
    let start = Instant::now();
    while !helper_running(&boot) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no helper started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        boot.wait_for_console("CLOSED", Duration::from_secs(20)),
        "{}",
        boot.console()
    );
    let start = Instant::now();
    while helper_running(&boot) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the helper outlived the close of /dev/watchdog"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        boot.wait_for_console("STILL-ALIVE", Duration::from_secs(20)),
        "the UML died after a clean close:\n{}",
        boot.console()
    );
    assert_eq!(fs::read_to_string(&log).unwrap_or_default(), "");
    assert!(boot.wait_for_console("PINGS-STOPPED", Duration::from_secs(20)));
    let stopped = Instant::now();
    let status = boot.wait_exit(Duration::from_secs(15));
    assert!(
        status.is_some(),
        "the UML runs on without pings:\n{}",
        boot.console()
    );
    // No ping for 3 s fires it; the last ping came up to a second (-t 1) before the
    // stop, and the test sees PINGS-STOPPED a little after it: 2-3 s, less the delay.
    let after = stopped.elapsed();
    assert!(
        after >= Duration::from_millis(1500),
        "fired after {after:?}"
    );
    let logged = fs::read_to_string(&log).unwrap();
    assert!(
        logged.starts_with(&format!(
            "uml_watchdog: no ping for 3 s: stopping pid {}\n",
            boot.child.id()
        )),
        "{logged:?}"
    );
}
