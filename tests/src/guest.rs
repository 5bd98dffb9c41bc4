//! Bootable guest images and linux.uml runs.
//!
//! An image is a small ext2 file system made by `mkfs.ext2 -d` from a directory holding
//! static busybox (a symlink per applet) and an `/sbin/init` script the test writes; it
//! takes about a second. linux.uml boots it with `mem=48M` and the console on stdout.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::command::{run, run_ok, Output};
use crate::peers::linux_uml;

const BUSYBOX: &str = "/bin/busybox";

/// A bootable ext2 image.
#[derive(Debug, Clone)]
pub struct GuestImage {
    pub path: PathBuf,
}

impl GuestImage {
    /// Builds a 32 MiB image at `path` whose /sbin/init is the shell script `init`
    /// (which should end with `poweroff -f`).
    pub fn build(path: &Path, init: &str) -> GuestImage {
        Self::build_with(path, init, 32, &[])
    }

    /// Builds an image of `size_mib` MiB with `init` and extra files `(path, content,
    /// mode)` placed in the tree.
    pub fn build_with(
        path: &Path,
        init: &str,
        size_mib: u32,
        files: &[(&str, &[u8], u32)],
    ) -> GuestImage {
        assert!(
            Path::new(BUSYBOX).exists(),
            "{BUSYBOX} is missing: install the Debian package `busybox-static` (scripts/setup does)"
        );
        let tree = tempfile::Builder::new()
            .prefix("umlroot.")
            .tempdir()
            .expect("tree dir");
        let root = tree.path();
        for d in [
            "bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "etc", "mnt", "root",
        ] {
            fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        fs::copy(BUSYBOX, root.join("bin/busybox")).expect("copy busybox");
        let list = run_ok(Command::new(BUSYBOX).arg("--list-full"));
        for applet in list.stdout.lines().map(str::trim).filter(|a| !a.is_empty()) {
            if applet == "bin/busybox" {
                continue;
            }
            let link = root.join(applet);
            let _ = fs::remove_file(&link);
            symlink("/bin/busybox", &link).expect("applet symlink");
        }
        let mut all: Vec<(&str, &[u8], u32)> = vec![("sbin/init", init.as_bytes(), 0o755)];
        all.extend_from_slice(files);
        for (name, content, mode) in all {
            let p = root.join(name.trim_start_matches('/'));
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            let _ = fs::remove_file(&p);
            fs::write(&p, content).expect("write guest file");
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
        }
        run_ok(
            Command::new("mkfs.ext2")
                .args(["-q", "-F", "-d"])
                .arg(root)
                .arg(path)
                .arg(format!("{size_mib}M")),
        );
        GuestImage {
            path: path.to_owned(),
        }
    }
}

/// A linux.uml command line being put together.
#[derive(Debug, Clone)]
pub struct Uml {
    pub kernel: PathBuf,
    /// HOME for the kernel: it makes `$HOME/.uml/UMID` there.
    pub home: PathBuf,
    pub umid: String,
    pub args: Vec<String>,
    /// Extra environment (PATH for helpers, for instance).
    pub env: Vec<(String, String)>,
    /// Programs run before the kernel (e.g. `nsenter -t PID -n -m --`); empty: none.
    pub wrapper: Vec<String>,
}

/// A linux.uml running in the background; killed (by pid) when dropped.
pub struct UmlBoot {
    pub child: Child,
    /// The console's input when started with `spawn_interactive`.
    pub console_in: Option<std::process::ChildStdin>,
    /// Commands sent with `shell` so far (numbers their end markers).
    shell_count: u32,
    pub console_log: PathBuf,
    pub mconsole: PathBuf,
}

impl Uml {
    /// A kernel with `mem=48M umid=UMID con0=fd:0,fd:1 con=null`; None only when interop
    /// tests are skipped on purpose.
    pub fn new(home: &Path, umid: &str) -> Option<Uml> {
        let kernel = linux_uml()?;
        fs::create_dir_all(home).expect("home dir");
        Some(Uml {
            kernel,
            home: home.to_owned(),
            umid: umid.to_owned(),
            args: vec![
                "mem=48M".into(),
                format!("umid={umid}"),
                "con0=fd:0,fd:1".into(),
                "con=null".into(),
            ],
            env: Vec::new(),
            wrapper: Vec::new(),
        })
    }

    pub fn arg(mut self, a: impl Into<String>) -> Uml {
        self.args.push(a.into());
        self
    }

    /// Boots with `root=/dev/ubda rw init=/sbin/init` and `ubd0=UBD0`.
    pub fn root(self, ubd0: &str) -> Uml {
        self.arg(format!("ubd0={ubd0}"))
            .arg("root=/dev/ubda")
            .arg("rw")
            .arg("init=/sbin/init")
    }

    pub fn env(mut self, k: &str, v: &str) -> Uml {
        self.env.push((k.into(), v.into()));
        self
    }

    /// The path of this UML's mconsole socket.
    pub fn mconsole_path(&self) -> PathBuf {
        self.home.join(".uml").join(&self.umid).join("mconsole")
    }

    /// Runs the kernel through `prefix` (a wrapper such as `NetNs::prefix()`).
    pub fn wrapped(mut self, prefix: Vec<String>) -> Uml {
        self.wrapper = prefix;
        self
    }

    fn command(&self) -> Command {
        let mut c = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&self.kernel);
                c
            }
            None => Command::new(&self.kernel),
        };
        c.args(&self.args)
            .env("HOME", &self.home)
            .current_dir(&self.home);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Boots and waits (at most `limit`) until the guest powers off; returns the console
    /// output. An early "Cannot open root device" panic, which linux.uml hits about
    /// once in a few dozen boots, is retried once.
    pub fn boot_to_poweroff(&self, limit: Duration) -> Output {
        let mut out = run(&mut self.command(), limit);
        if out.stdout.contains("Cannot open root device") {
            out = run(&mut self.command(), limit);
        }
        assert!(
            !out.timed_out,
            "linux.uml did not power off within {limit:?}:\n{}",
            out.stdout
        );
        out
    }

    /// Starts the kernel in the background, console to a log file beside HOME, and
    /// waits (at most `limit`) for its mconsole socket to appear.
    pub fn spawn(&self, limit: Duration) -> UmlBoot {
        self.spawn_with(limit, false)
    }

    /// Like `spawn`, but the console's input is a pipe (`UmlBoot::shell` writes to it):
    /// for guests whose init ends in a shell reading the console.
    pub fn spawn_interactive(&self, limit: Duration) -> UmlBoot {
        self.spawn_with(limit, true)
    }

    /// Starts the kernel with console input (as [`Uml::spawn_interactive`]) and waits
    /// until its console shows `text`. A kernel that dies before that (linux.uml now
    /// and then does, early in boot, under load) is started once more.
    pub fn boot_until(&self, text: &str, limit: Duration) -> UmlBoot {
        self.until(text, limit, true)
    }

    /// As [`Uml::boot_until`], with no console input (as [`Uml::spawn`]).
    pub fn spawn_until(&self, text: &str, limit: Duration) -> UmlBoot {
        self.until(text, limit, false)
    }

    fn until(&self, text: &str, limit: Duration, interactive: bool) -> UmlBoot {
        let mut boot = self.spawn_with(limit, interactive);
        if boot.wait_for_console(text, limit) {
            return boot;
        }
        if boot.child.try_wait().expect("wait").is_some() {
            eprintln!(
                "linux.uml died during boot; starting it once more:\n{}",
                boot.console()
            );
            let _ = fs::remove_file(&boot.mconsole);
            boot = self.spawn_with(limit, interactive);
            if boot.wait_for_console(text, limit) {
                return boot;
            }
        }
        panic!(
            "linux.uml never showed {text:?} within {limit:?}:\n{}",
            boot.console()
        );
    }

    fn spawn_with(&self, limit: Duration, interactive: bool) -> UmlBoot {
        for attempt in 0..2 {
            let log = self.home.join(format!("{}.console.{attempt}", self.umid));
            let file = fs::File::create(&log).expect("console log");
            let child = self
                .command()
                .stdin(if interactive {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(file.try_clone().expect("dup"))
                .stderr(file)
                .spawn()
                .expect("spawn linux.uml");
            let mut child = child;
            let mut boot = UmlBoot {
                console_in: child.stdin.take(),
                shell_count: 0,
                child,
                console_log: log,
                mconsole: self.mconsole_path(),
            };
            let start = Instant::now();
            while start.elapsed() < limit {
                if boot.mconsole.exists() {
                    return boot;
                }
                if boot.child.try_wait().expect("wait").is_some() {
                    break;
                }
                thread::sleep(Duration::from_millis(10));
            }
            let console = boot.console();
            if attempt == 0 && console.contains("Cannot open root device") {
                continue;
            }
            panic!("linux.uml made no mconsole socket within {limit:?}:\n{console}");
        }
        unreachable!()
    }
}

/// One process as /proc shows it: its pid and parent there, and its pid as seen
/// from each pid namespace from /proc's down to its own (the `NSpid` line).
struct ProcEntry {
    pid: i32,
    ppid: i32,
    ns_pids: Vec<i32>,
}

fn proc_entry(dir: &Path) -> Option<ProcEntry> {
    let pid = dir.file_name()?.to_str()?.parse().ok()?;
    let stat = fs::read_to_string(dir.join("stat")).ok()?;
    // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
    let ppid = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let status = fs::read_to_string(dir.join("status")).ok()?;
    let ns_pids = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![pid]);
    Some(ProcEntry { pid, ppid, ns_pids })
}

/// Every living process descended from our child `child` (a pid as we see it), as
/// pids we can signal. linux.uml starts helper processes that outlive a SIGKILL of the
/// kernel process itself; a test that kills it so must kill these too. Works when
/// /proc belongs to an outer pid namespace (scripts/test's `unshare --pid` keeps the
/// host's /proc): pids are matched through the `NSpid` lines.
pub fn descendants(child: i32) -> Vec<i32> {
    let me = fs::read_link("/proc/self")
        .ok()
        .and_then(|pid| proc_entry(&Path::new("/proc").join(pid)));
    let Some(me) = me else {
        return Vec::new();
    };
    let depth = me.ns_pids.len() - 1;
    let all: Vec<ProcEntry> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| proc_entry(&e.path()))
        .collect();
    let ours = |e: &ProcEntry| e.ns_pids.len() == depth + 1;
    let Some(root) = all
        .iter()
        .find(|e| e.ppid == me.pid && ours(e) && e.ns_pids[depth] == child)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut frontier = vec![root.pid];
    while let Some(parent) = frontier.pop() {
        for e in all.iter().filter(|e| e.ppid == parent && ours(e)) {
            if !out.contains(&e.ns_pids[depth]) {
                out.push(e.ns_pids[depth]);
                frontier.push(e.pid);
            }
        }
    }
    out
}

/// Compiles the C file `source` into the static x86_64 program `out` (`gcc -static -O2`
/// and `flags`): a guest program both kernels run. Panics with gcc's output on failure.
pub fn gcc_static(source: &Path, out: &Path, flags: &[&str]) {
    let cc = run(
        Command::new("gcc")
            .args(["-static", "-O2"])
            .args(flags)
            .arg("-o")
            .arg(out)
            .arg(source),
        Duration::from_secs(120),
    );
    assert!(
        cc.success(),
        "gcc -static {} (gcc and libc6-dev are needed): {cc:?}",
        source.display()
    );
}

/// [`gcc_static`] of C text: writes DIR/NAME.c, builds DIR/NAME and returns its bytes.
pub fn static_program(dir: &Path, name: &str, c_source: &str, flags: &[&str]) -> Vec<u8> {
    let src = dir.join(format!("{name}.c"));
    let bin = dir.join(name);
    fs::write(&src, c_source).expect("write the C source");
    gcc_static(&src, &bin, flags);
    fs::read(&bin).expect("read the built program")
}

/// The /proc directory of process `pid` (a pid as we see it, e.g. a child's id or one
/// of [`descendants`]), also when /proc belongs to an outer pid namespace (as under
/// scripts/test's `unshare --pid`).
pub fn proc_dir(pid: i32) -> Option<PathBuf> {
    let me = fs::read_link("/proc/self")
        .ok()
        .and_then(|p| proc_entry(&Path::new("/proc").join(p)))?;
    let depth = me.ns_pids.len() - 1;
    fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| proc_entry(&e.path()))
        .find(|e| e.ns_pids.len() > depth && e.ns_pids[depth] == pid)
        .map(|e| Path::new("/proc").join(e.pid.to_string()))
}

impl UmlBoot {
    /// The kernel's helper processes (see [`descendants`]).
    pub fn helpers(&self) -> Vec<i32> {
        descendants(self.child.id() as i32)
    }

    /// What the console printed so far.
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.console_log).unwrap_or_default()).into_owned()
    }

    /// Waits until the console shows `text`, at most `limit`.
    pub fn wait_for_console(&mut self, text: &str, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.console().contains(text) {
                return true;
            }
            if self.child.try_wait().expect("wait").is_some() {
                return self.console().contains(text);
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Runs `cmd` in the guest's console shell (see `spawn_interactive`) and returns
    /// what it printed and its exit status, waiting at most `limit`; None on timeout.
    /// The end marker is split in the command so the console's echo never matches it.
    pub fn shell(&mut self, cmd: &str, limit: Duration) -> Option<(String, i32)> {
        use std::io::Write;
        self.shell_count += 1;
        let n = self.shell_count;
        let marker = format!("SHELL-DONE-{n} ");
        let before = self.console().len();
        // `cmd &; echo` is a syntax error: after a `&` the echo needs no separator.
        let sep = if cmd.trim_end().ends_with('&') {
            " "
        } else {
            "; "
        };
        let line = format!("{cmd}{sep}echo \"SHELL-DO\"\"NE-{n} $?\"\n");
        let stdin = self.console_in.as_mut().expect("spawn_interactive");
        stdin.write_all(line.as_bytes()).ok()?;
        stdin.flush().ok()?;
        let start = Instant::now();
        while start.elapsed() < limit {
            let all = self.console();
            let new = &all[before.min(all.len())..];
            if let Some(at) = new.find(&marker) {
                let status = new[at + marker.len()..]
                    .split_whitespace()
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(-1);
                return Some((new[..at].to_string(), status));
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits for the kernel to exit, at most `limit`; None if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return Some(s);
            }
            thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for UmlBoot {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SIGTERM lets linux.uml clean up its umid directory; then make sure.
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            if self.wait_exit(Duration::from_secs(3)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}
