//! tap_bench: time of `uml_net 4 tuntap up GATE` (until the tap fd arrives and the
//! helper exits) and of `tunctl -b` followed by `tunctl -d NAME`, ours against the C
//! tools in the same run, inside a private network namespace it makes for itself.
//!
//! Run as root: `cargo build --release -p uml_net -p tunctl -p bench &&
//! target/release/tap_bench [ROUNDS]` (default 100 rounds).

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use uml_proto::helper;

const IN_NS: &str = "TAP_BENCH_IN_NAMESPACE";
const C_UML_NET: &str = "/usr/bin/uml_net";
const C_TUNCTL: &str = "/usr/bin/tunctl";

/// Re-runs this program inside `unshare --net --mount` (lo up, fresh sysfs).
fn reexec_in_namespace() -> ExitCode {
    let me = std::env::current_exe().expect("current_exe");
    let status = Command::new("unshare")
        .args(["--net", "--mount", "--", "sh", "-c"])
        .arg("ip link set lo up && mount -t sysfs sysfs /sys && exec \"$0\" \"$@\"")
        .arg(&me)
        .args(std::env::args_os().skip(1))
        .env(IN_NS, "1")
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("tap_bench: failed in the namespace ({s}); it needs root");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("tap_bench: cannot run unshare: {e}");
            ExitCode::FAILURE
        }
    }
}

fn ours(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent().expect("target dir").join(name)
}

/// One `uml_net 4 tuntap up GATE`: spawn, receive the datagram and fd, reap.
fn tuntap_up_once(uml_net: &Path) -> Result<(), String> {
    let (mine, theirs) = UnixDatagram::pair().map_err(|e| e.to_string())?;
    let mut child = Command::new(uml_net)
        .args(["4", "tuntap", "up", "10.0.0.254"])
        .stdin(Stdio::null())
        .stdout(Stdio::from(OwnedFd::from(theirs)))
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", uml_net.display()))?;
    mine.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let got = helper::recv_tuntap_up(mine.as_fd());
    child.wait().map_err(|e| e.to_string())?;
    match got {
        Ok((_, Some(_fd))) => Ok(()),
        Ok((reply, None)) => Err(format!("{}: no tap: {}", uml_net.display(), reply.output)),
        Err(e) => Err(format!("{}: {e}", uml_net.display())),
    }
}

/// One `tunctl -b` then `tunctl -d NAME`.
fn tunctl_once(tunctl: &Path) -> Result<(), String> {
    let made = Command::new(tunctl)
        .arg("-b")
        .output()
        .map_err(|e| e.to_string())?;
    let name = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    if !made.status.success() || name.is_empty() {
        return Err(format!("{} -b failed", tunctl.display()));
    }
    let gone = Command::new(tunctl)
        .args(["-d", &name])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    if !gone.success() {
        return Err(format!("{} -d {name} failed", tunctl.display()));
    }
    Ok(())
}

/// Mean time per round of `ours` and of `theirs`, after one warm-up round each; the two
/// alternate round by round so that load from elsewhere hits both alike.
fn time_pair(
    rounds: u32,
    ours: impl Fn() -> Result<(), String>,
    theirs: impl Fn() -> Result<(), String>,
) -> Result<(Duration, Duration), String> {
    ours()?;
    theirs()?;
    let (mut a, mut b) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let start = Instant::now();
        ours()?;
        a += start.elapsed();
        let start = Instant::now();
        theirs()?;
        b += start.elapsed();
    }
    Ok((a / rounds, b / rounds))
}

fn report(what: &str, ours: Duration, theirs: Duration) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what:<28} ours {:>8.3} ms   C {:>8.3} ms   ours/C {:.3}",
        ms(ours),
        ms(theirs),
        ours.as_secs_f64() / theirs.as_secs_f64()
    );
}

fn run(rounds: u32) -> Result<(), String> {
    for p in [ours("uml_net"), ours("tunctl")] {
        if !p.exists() {
            return Err(format!(
                "{} is not built (cargo build -p uml_net -p tunctl)",
                p.display()
            ));
        }
    }
    println!("tap_bench: {rounds} rounds each, mean per round, ours and C alternating");
    let (mine, c) = (ours("uml_net"), PathBuf::from(C_UML_NET));
    let (up_ours, up_c) = time_pair(rounds, || tuntap_up_once(&mine), || tuntap_up_once(&c))?;
    report("uml_net 4 tuntap up", up_ours, up_c);
    let (mine, c) = (ours("tunctl"), PathBuf::from(C_TUNCTL));
    let (t_ours, t_c) = time_pair(rounds, || tunctl_once(&mine), || tunctl_once(&c))?;
    report("tunctl -b; tunctl -d", t_ours, t_c);
    Ok(())
}

fn main() -> ExitCode {
    if std::env::var_os(IN_NS).is_none() {
        return reexec_in_namespace();
    }
    let rounds = match std::env::args().nth(1).map(|s| s.parse::<u32>()) {
        None => 100,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("tap_bench: ROUNDS must be a positive number");
            return ExitCode::from(2);
        }
    };
    match run(rounds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tap_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
