//! tunctl and uml_net against the C tools and linux.uml, each test in its own network
//! namespace (tests::NetNs): tunctl's output and sysfs effects, the helper protocol in
//! both directions, a guest that gets its network through our uml_net, and a setuid
//! copy of uml_net refusing hostile argument lists without touching host state.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::command::wait_bounded;
use tests::netns::SUID_DIR;
use tests::{c_tool, our_bin, require_root, run, scratch, GuestImage, NetNs, Output, Uml};
use uml_proto::helper::{self, TuntapUpReply};

const LIMIT: Duration = Duration::from_secs(20);

fn in_ns(ns: &NetNs, prog: &Path, args: &[&str]) -> Output {
    run(ns.command(prog).args(args), LIMIT)
}

fn sys(ns: &NetNs, dev: &str, attr: &str) -> String {
    ns.sh(&format!("cat /sys/class/net/{dev}/{attr}"))
        .stdout
        .trim()
        .to_owned()
}

/// Runs `cmd` with fd 1 a datagram socket and returns the `tuntap up` reply, the fd it
/// carried and the exit code.
fn helper_datagram(mut cmd: Command) -> (TuntapUpReply, Option<OwnedFd>, Option<i32>) {
    let (ours, theirs) = UnixDatagram::pair().expect("socketpair");
    cmd.stdout(Stdio::from(OwnedFd::from(theirs)))
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn helper");
    drop(cmd);
    ours.set_read_timeout(Some(LIMIT)).unwrap();
    let got = helper::recv_tuntap_up(ours.as_fd());
    let (status, timed_out) = wait_bounded(&mut child, LIMIT);
    assert!(!timed_out, "helper timed out");
    let (reply, fd) = got.expect("a tuntap-up datagram");
    (reply, fd, status.code())
}

/// Runs `cmd` with fd 1 a stream socket; returns everything it wrote and the exit code.
fn helper_stream(mut cmd: Command) -> (Vec<u8>, Option<i32>) {
    let (mut ours, theirs) = UnixStream::pair().expect("socketpair");
    cmd.stdout(Stdio::from(OwnedFd::from(theirs)))
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn helper");
    drop(cmd);
    ours.set_read_timeout(Some(LIMIT)).unwrap();
    let mut bytes = Vec::new();
    let _ = ours.read_to_end(&mut bytes);
    let (status, timed_out) = wait_bounded(&mut child, LIMIT);
    assert!(!timed_out, "helper timed out");
    (bytes, status.code())
}

fn text_reply(bytes: &[u8]) -> String {
    helper::parse_text(bytes)
        .unwrap_or_else(|e| panic!("not a length-prefixed reply ({e}): {bytes:?}"))
        .0
}

/// Everything uml_net could change: links, IPv4 addresses and routes, proxy entries,
/// switches. (IPv6 is left out: duplicate address detection changes it on its own.)
fn host_state(ns: &NetNs) -> String {
    ns.sh_ok(
        "ip -o link show; ip -4 -o addr show; ip -4 route show table all; ip neigh show proxy; \
         cat /proc/sys/net/ipv4/ip_forward; grep -r . /proc/sys/net/ipv4/conf/*/proxy_arp",
    )
    .stdout
}

#[test]
fn tunctl_output_and_effects_match_the_c_tool() {
    require_root("tunctl tests");
    let Some(c) = c_tool("tunctl") else { return };
    let ours = our_bin("tunctl");
    let (ns_c, ns_ours) = (NetNs::new(), NetNs::new());
    let steps: &[&[&str]] = &[
        &["-b"],
        &["-t", "foo", "-u", "1000"],
        &["-t", "bar", "-u", "1000", "-g", "100"],
        &["-t", "baz", "-g", "100"],
        &["-t", "tap%d"],
        &["-u", "0x10"],
        &["-b", "-u", "root"],
        &["-t", "abcdefghijklmno"],
        &["-d", "foo"],
        &["-d", "bar"],
        &["-f", "/nonexistent/tun"],
    ];
    for args in steps {
        same_as_the_c_tool((&ns_c, &c), (&ns_ours, &ours), args);
    }
    for dev in ["tap0", "baz", "tap1", "tap2", "tap3", "abcdefghijklmno"] {
        for attr in ["owner", "group", "tun_flags"] {
            assert_eq!(
                sys(&ns_ours, dev, attr),
                sys(&ns_c, dev, attr),
                "{dev}/{attr}"
            );
        }
    }
    assert_eq!(sys(&ns_ours, "tap0", "owner"), "0");
    assert_eq!(sys(&ns_ours, "baz", "group"), "100");
    assert!(ns_ours.sh("test -e /sys/class/net/foo").code == Some(1));
}

/// Runs tunctl `args` with the C tool in one namespace and ours in another: the same
/// stdout and exit status, and our stderr says at least the C tool's first line.
fn same_as_the_c_tool(c: (&NetNs, &Path), ours: (&NetNs, &Path), args: &[&str]) {
    let want = in_ns(c.0, c.1, args);
    let got = in_ns(ours.0, ours.1, args);
    assert_eq!(got.stdout, want.stdout, "stdout of tunctl {args:?}");
    assert_eq!(got.code, want.code, "exit code of tunctl {args:?}: {got:?}");
    if let Some(first) = want.stderr.lines().next() {
        assert!(
            got.stderr.contains(first),
            "stderr of tunctl {args:?}: {:?} lacks {first:?}",
            got.stderr
        );
    }
}

/// What rc scripts do: run the same tunctl again on every boot (the tap is already
/// there, maybe owned by root), delete twice, delete what never was, name a device that
/// is no tap. Our tunctl and the C one, each in its own namespace, must give the same
/// stdout and exit status at every step and leave the same owners behind.
#[test]
fn tunctl_reruns_and_missing_devices_match_the_c_tool() {
    require_root("tunctl tests");
    let Some(c) = c_tool("tunctl") else { return };
    let ours = our_bin("tunctl");
    let (ns_c, ns_ours) = (NetNs::new(), NetNs::new());
    let steps: &[&[&str]] = &[
        &["-t", "keep", "-u", "1000"],
        &["-t", "keep", "-u", "1000"],
        &["-t", "keep", "-u", "2000"],
        &["-b", "-t", "keep", "-u", "3000"],
        &["-t", "keep", "-g", "100"],
        &["-t", "rooted"],
        &["-t", "rooted", "-u", "nobody"],
        &["-t", "rooted", "-u", "nobody", "-g", "nogroup"],
        &["-d", "keep"],
        &["-d", "keep"],
        &["-d", "nosuch"],
        &["-b", "-d", "nosuch"],
        &["-t", "lo", "-u", "1000"],
        &["-d", "lo"],
        &["-u", "1000"],
        &["-u", "1000"],
        &["-d", "tap0"],
        &["-d", "tap1"],
    ];
    for args in steps {
        same_as_the_c_tool((&ns_c, &c), (&ns_ours, &ours), args);
        let links = |ns: &NetNs| {
            ns.sh_ok("for d in /sys/class/net/*; do echo \"${d##*/} $(cat $d/owner $d/group 2>/dev/null)\"; done")
                .stdout
        };
        assert_eq!(
            links(&ns_ours),
            links(&ns_c),
            "devices after tunctl {args:?}"
        );
    }
    // What the C tool does silently, ours says on stderr.
    let again = in_ns(&ns_ours, &ours, &["-t", "rooted", "-u", "0"]);
    assert!(again.stderr.contains("already existed"), "{again:?}");
    let gone = in_ns(&ns_ours, &ours, &["-d", "never"]);
    assert!(gone.stderr.contains("no 'never'"), "{gone:?}");
    assert_eq!(ns_ours.sh("test -e /sys/class/net/never").code, Some(1));
}

#[test]
fn tunctl_brief_prints_only_the_name_and_owner_lands_in_sysfs() {
    require_root("tunctl tests");
    let ns = NetNs::new();
    let ours = our_bin("tunctl");
    let out = in_ns(&ns, &ours, &["-b", "-u", "1000"]);
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("tap0\n", ""));
    assert_eq!(sys(&ns, "tap0", "owner"), "1000");
    let out = in_ns(&ns, &ours, &["-t", "uml0", "-u", "4321", "-g", "99"]);
    assert!(out.success(), "{out:?}");
    assert_eq!(
        (sys(&ns, "uml0", "owner"), sys(&ns, "uml0", "group")),
        ("4321".to_owned(), "99".to_owned())
    );
    let out = in_ns(&ns, &ours, &["-d", "uml0"]);
    assert_eq!(out.stdout, "Set 'uml0' nonpersistent\n");
    assert_eq!(ns.sh("test -e /sys/class/net/uml0").code, Some(1));
}

#[test]
fn tunctl_bad_names_fail_with_a_message_and_make_nothing() {
    require_root("tunctl tests");
    let ns = NetNs::new();
    let ours = our_bin("tunctl");
    let before = host_state(&ns);
    let out = in_ns(&ns, &ours, &["-u", "no-such-user-xyz"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stdout, "");
    assert!(out
        .stderr
        .contains("'no-such-user-xyz' is neither a username nor a numeric uid."));
    let out = in_ns(&ns, &ours, &["-g", "no-such-group-xyz"]);
    assert_eq!(out.code, Some(1));
    assert!(out
        .stderr
        .contains("'no-such-group-xyz' is neither a groupname nor a numeric group."));
    // The C tool silently truncates a long name to 15 bytes; we refuse it.
    let out = in_ns(&ns, &ours, &["-t", "abcdefghijklmnopqrstuvwxyz"]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(1), ""));
    assert!(out.stderr.contains("longer than 15 bytes"), "{out:?}");
    for bad in ["-1", "12abc", "4294967295"] {
        let out = in_ns(&ns, &ours, &["-u", bad]);
        assert_eq!(out.code, Some(1), "-u {bad}");
    }
    assert_eq!(host_state(&ns), before);
}

#[test]
fn tunctl_new_behaviours() {
    require_root("tunctl tests");
    let ns = NetNs::new();
    let ours = our_bin("tunctl");
    // TUN devices.
    let out = in_ns(&ns, &ours, &["-n", "-b"]);
    assert_eq!(out.stdout, "tun0\n");
    let flags =
        u32::from_str_radix(sys(&ns, "tun0", "tun_flags").trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 0x3, 0x1, "IFF_TUN");
    // With --strict, deleting what is not there is an error (the C tool says it worked,
    // and so do we by default).
    let out = in_ns(&ns, &ours, &["--strict", "-d", "nosuch"]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(1), ""));
    assert!(out.stderr.contains("nosuch"), "{out:?}");
    // With --strict, creating what exists is refused unless --reuse; the owner is
    // unchanged.
    assert!(in_ns(&ns, &ours, &["-t", "keep", "-u", "1000"]).success());
    let out = in_ns(&ns, &ours, &["--strict", "-t", "keep", "-u", "2000"]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("already exists"), "{out:?}");
    assert_eq!(sys(&ns, "keep", "owner"), "1000");
    let out = in_ns(
        &ns,
        &ours,
        &["--strict", "-t", "keep", "-u", "2000", "--reuse"],
    );
    assert_eq!(out.stdout, "Set 'keep' persistent and owned by uid 2000\n");
    assert_eq!(sys(&ns, "keep", "owner"), "2000");
    // --reuse alone is accepted (it is the default behaviour).
    let out = in_ns(&ns, &ours, &["-t", "keep", "-u", "3000", "--reuse"]);
    assert!(out.success(), "{out:?}");
    assert_eq!(sys(&ns, "keep", "owner"), "3000");
    // Our TUN devices are deleted too (the C tool has no TUN devices).
    let out = in_ns(&ns, &ours, &["-d", "tun0"]);
    assert_eq!(out.stdout, "Set 'tun0' nonpersistent\n", "{out:?}");
    assert_eq!(ns.sh("test -e /sys/class/net/tun0").code, Some(1));
    // Long options and help.
    let out = in_ns(
        &ns,
        &ours,
        &["--tun", "--name", "t%d", "--user", "5", "--brief"],
    );
    assert_eq!(out.stdout, "t0\n");
    let help = in_ns(&ns, &ours, &["--help"]);
    assert!(help.success() && help.stdout.contains("--reuse"));
    assert!(in_ns(&ns, &ours, &["--version"]).success());
}

#[test]
fn uml_net_usage_errors_match_the_c_tool() {
    let Some(c) = c_tool("uml_net") else { return };
    let ours = our_bin("uml_net");
    let cases: &[&[&str]] = &[
        &[],
        &["4"],
        &["x"],
        &["9", "tuntap", "up", "1.2.3.4"],
        &["4", "foo"],
        &["1", "tuntap", "up"],
    ];
    for args in cases {
        let want = run(Command::new(&c).args(*args), LIMIT);
        let got = run(Command::new(&ours).args(*args), LIMIT);
        assert_eq!(
            (&got.stdout, &got.stderr, got.code),
            (&want.stdout, &want.stderr, want.code),
            "uml_net {args:?}"
        );
    }
}

#[test]
fn helper_replies_of_the_c_uml_net_parse() {
    require_root("uml_net tests");
    let Some(c) = c_tool("uml_net") else { return };
    let ns = NetNs::new();
    let mut cmd = ns.command(&c);
    cmd.args(["4", "tuntap", "up", "10.0.0.254"]);
    let (reply, fd, _) = helper_datagram(cmd);
    assert_eq!(reply.ifname.as_deref(), Some("tap0"));
    assert!(
        fd.is_some() && reply.output.contains("ifconfig"),
        "{reply:?}"
    );
    let mut cmd = ns.command(&c);
    cmd.args(["4", "add", "tap0", "10.0.0.1", "255.255.255.0"]);
    let (bytes, _) = helper_stream(cmd);
    let text = text_reply(&bytes);
    assert!(
        text.starts_with("* route add -host 10.0.0.1 dev tap0\n"),
        "{text:?}"
    );
}

#[test]
fn uml_net_as_root_makes_the_tap_and_routes_the_guest() {
    require_root("uml_net tests");
    let ns = NetNs::new();
    let ours = our_bin("uml_net");
    ns.sh_ok("ip link add h0 type veth peer name h1 && ip addr add 10.0.0.7/24 dev h0 && ip link set h0 up");
    let mut cmd = ns.command(&ours);
    cmd.args(["4", "tuntap", "up", "10.0.0.254"]);
    let (reply, fd, code) = helper_datagram(cmd);
    assert_eq!(
        (reply.ifname.as_deref(), code),
        (Some("tap0"), Some(0)),
        "{reply:?}"
    );
    assert!(fd.is_some());
    let addrs = ns.sh_ok("ip -o -4 addr show dev tap0").stdout;
    assert!(addrs.contains("10.0.0.254/32"), "{addrs}");
    assert!(ns.sh_ok("ip -o link show dev tap0").stdout.contains(",UP"));
    assert_eq!(ns.sh_ok("cat /proc/sys/net/ipv4/ip_forward").stdout, "1\n");
    assert_eq!(sys(&ns, "tap0", "owner"), "0");
    for legacy in [false, true] {
        let pre: &[&str] = if legacy { &["4", "tuntap"] } else { &["4"] };
        let mut cmd = ns.command(&ours);
        cmd.args(pre)
            .args(["add", "tap0", "10.0.0.1", "255.255.255.0"]);
        let (bytes, code) = helper_stream(cmd);
        let text = text_reply(&bytes);
        assert_eq!(code, Some(0), "{text}");
        let route = ns.sh_ok("ip route show 10.0.0.1").stdout;
        assert!(route.contains("dev tap0"), "{route}");
        assert_eq!(sys_proxy(&ns, "tap0"), "1");
        let proxy = ns.sh_ok("ip neigh show proxy").stdout;
        assert!(proxy.contains("10.0.0.1 dev h0 proxy"), "{proxy}");
        let mut cmd = ns.command(&ours);
        cmd.args(pre)
            .args(["del", "tap0", "10.0.0.1", "255.255.255.0"]);
        let (bytes, code) = helper_stream(cmd);
        assert_eq!(code, Some(0), "{}", text_reply(&bytes));
        assert_eq!(ns.sh_ok("ip route show 10.0.0.1").stdout, "");
        assert_eq!(ns.sh_ok("ip neigh show proxy").stdout, "");
        assert_eq!(sys_proxy(&ns, "tap0"), "0");
    }
    drop(fd);
    // Not persistent: the tap goes with the fd.
    let start = Instant::now();
    while ns.sh("test -e /sys/class/net/tap0").success() && start.elapsed() < LIMIT {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!ns.sh("test -e /sys/class/net/tap0").success());
}

#[test]
fn uml_net_makes_a_missing_clone_device() {
    require_root("uml_net tests");
    let ns = NetNs::new();
    // An empty /dev/net in this namespace's mounts only.
    ns.sh_ok("mount -t tmpfs -o mode=0700 nodevnet /dev/net");
    let mut cmd = ns.command(our_bin("uml_net"));
    cmd.args(["4", "tuntap", "up", "10.0.0.254"]);
    let (reply, fd, code) = helper_datagram(cmd);
    assert_eq!(code, Some(0), "{reply:?}");
    assert!(fd.is_some() && reply.output.contains("* mknod /dev/net/tun c 10 200"));
    let st = ns.sh_ok("stat -c '%F %t:%T %a' /dev/net/tun").stdout;
    assert_eq!(st, "character special file a:c8 600\n");
}

fn sys_proxy(ns: &NetNs, dev: &str) -> String {
    ns.sh_ok(&format!("cat /proc/sys/net/ipv4/conf/{dev}/proxy_arp"))
        .stdout
        .trim()
        .to_owned()
}

/// `setpriv` as uid/gid 1000 running the setuid copy inside `ns`.
fn as_user(ns: &NetNs, args: &[&str]) -> Command {
    as_uid(ns, 1000, args)
}

/// `setpriv` as uid/gid `uid` running the setuid copy inside `ns`.
fn as_uid(ns: &NetNs, uid: u32, args: &[&str]) -> Command {
    let mut cmd = ns.command("setpriv");
    cmd.args([
        format!("--reuid={uid}"),
        format!("--regid={uid}"),
        "--clear-groups".into(),
        "--".into(),
    ])
    .arg(format!("{SUID_DIR}/uml_net"))
    .args(args);
    cmd
}

#[test]
fn setuid_uml_net_serves_its_caller_and_refuses_hostile_arguments() {
    require_root("setuid uml_net tests");
    let ns = NetNs::new();
    let ours = our_bin("uml_net");
    ns.sh_ok(&format!(
        "cp {} {SUID_DIR}/uml_net && chown 0:0 {SUID_DIR}/uml_net && chmod 4755 {SUID_DIR}/uml_net",
        ours.display()
    ));
    ns.sh_ok(
        "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 && \
         ip link add h0 type veth peer name h1 && ip addr add 10.0.0.7/24 dev h0 && ip link set h0 up && \
         ip link add lan0 type veth peer name lan1 && ip addr add 192.168.5.1/24 dev lan0",
    );
    // A tap made by and for uid 1000.
    let (reply, tap_fd, code) = helper_datagram(as_user(&ns, &["4", "tuntap", "up", "10.0.0.254"]));
    assert_eq!(code, Some(0), "{reply:?}");
    let tap = reply.ifname.clone().expect("a tap name");
    assert!(tap_fd.is_some());
    assert_eq!(sys(&ns, &tap, "owner"), "1000");
    // Someone else's tap.
    assert!(run(
        ns.command(our_bin("tunctl"))
            .args(["-t", "other", "-u", "2000"]),
        LIMIT
    )
    .success());

    let (bytes, code) = helper_stream(as_user(
        &ns,
        &["4", "add", &tap, "10.0.0.1", "255.255.255.0"],
    ));
    assert_eq!(code, Some(0), "{}", text_reply(&bytes));
    assert!(ns
        .sh_ok("ip route show 10.0.0.1")
        .stdout
        .contains(&format!("dev {tap}")));
    let (bytes, code) = helper_stream(as_user(
        &ns,
        &["4", "del", &tap, "10.0.0.1", "255.255.255.0"],
    ));
    assert_eq!(code, Some(0), "{}", text_reply(&bytes));
    assert_eq!(ns.sh_ok("ip route show 10.0.0.1").stdout, "");

    let t = tap.as_str();
    let m = "255.255.255.0";
    let hostile: Vec<Vec<&str>> = vec![
        vec!["4", "add", "other", "10.0.0.9", m],
        vec!["4", "del", "other", "10.0.0.9", m],
        vec!["4", "tuntap", "add", "other", "10.0.0.9", m],
        vec!["4", "add", t, "10.0.0.7", m],
        vec!["4", "add", t, "192.168.5.1", m],
        vec!["4", "add", t, "127.0.0.1", m],
        vec!["4", "add", t, "0.0.0.0", m],
        vec!["4", "add", t, "224.0.0.1", m],
        vec!["4", "add", t, "255.255.255.255", m],
        vec!["4", "add", t, "10.0.0.255", m],
        vec!["4", "add", t, "240.0.0.1", m],
        vec!["4", "add", t, "10.0.0.256", m],
        vec!["4", "add", t, "010.0.0.1", m],
        vec!["4", "add", t, "10.0.0", m],
        vec!["4", "add", t, "10.0.0.1 ", m],
        vec!["4", "add", t, "", m],
        vec!["4", "add", t, "0x0a000001", m],
        vec!["4", "add", t, "10.0.0.1", "255.0.255.0"],
        vec!["4", "add", t, "10.0.0.1", "0.0.0.0"],
        vec!["4", "add", t, "10.0.0.1", "garbage"],
        vec!["4", "add", t, "10.0.0.1"],
        vec!["4", "add", t, "10.0.0.1", m, "extra"],
        vec!["4", "add", "../../../etc", "10.0.0.1", m],
        vec!["4", "add", "tap0;reboot", "10.0.0.1", m],
        vec!["4", "add", "lo", "10.0.0.1", m],
        vec!["4", "add", "h0", "10.0.0.1", m],
        vec!["4", "add", "nosuch0", "10.0.0.1", m],
        vec!["4", "add", "abcdefghijklmnopqrstu", "10.0.0.1", m],
        vec!["4", "add", "", "10.0.0.1", m],
        vec!["4", "del", t, "10.0.0.7", m],
        vec!["4", "tuntap", "up", "127.0.0.1"],
        vec!["4", "tuntap", "up", "0.0.0.0"],
        vec!["4", "tuntap", "up", "224.1.1.1"],
        vec!["4", "tuntap", "up", "not-an-ip"],
        vec!["4", "tuntap", "up", ""],
        vec!["4", "tuntap", "up", "10.0.0.254", "extra"],
        vec!["4", "tuntap", "up"],
        vec!["4", "tuntap", "bogus"],
        vec!["4", "ethertap", "tap0", "5", "10.0.0.254"],
        vec!["4", "slip", "up", "10.0.0.254"],
        vec!["9", "tuntap", "up", "10.0.0.254"],
        vec!["-1", "add", t, "10.0.0.1", m],
        vec!["4", "../add", t, "10.0.0.1", m],
    ];
    assert!(hostile.len() >= 30);
    let before = host_state(&ns);
    for args in &hostile {
        let is_up = args.get(..3) == Some(&["4", "tuntap", "up"][..]);
        let (code, said) = if is_up {
            let (reply, fd, code) = helper_datagram(as_user(&ns, args));
            assert!(
                fd.is_none() && reply.ifname.is_none(),
                "{args:?} gave a tap"
            );
            (code, reply.output)
        } else {
            let (bytes, code) = helper_stream(as_user(&ns, args));
            (code, String::from_utf8_lossy(&bytes).into_owned())
        };
        assert_ne!(code, Some(0), "uml_net {args:?} was accepted: {said:?}");
        assert_eq!(
            host_state(&ns),
            before,
            "uml_net {args:?} changed host state"
        );
    }
    // Run by hand (fd 1 not the helper socket): the explanation, and no change.
    for args in [
        &["4", "tuntap", "up", "10.0.0.253"][..],
        &["4", "add", t, "10.0.0.3", m],
    ] {
        let out = run(&mut as_user(&ns, args), LIMIT);
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(
            out.stderr.contains("if you're running uml_net by"),
            "{out:?}"
        );
        assert_eq!(
            host_state(&ns),
            before,
            "uml_net {args:?} by hand changed host state"
        );
    }
    let help = run(&mut as_user(&ns, &["--help"]), LIMIT);
    assert!(
        help.success() && help.stdout.contains("tuntap up GATE"),
        "{help:?}"
    );
    // The refusal names the reason.
    let (bytes, _) = helper_stream(as_user(&ns, &["4", "add", "other", "10.0.0.9", m]));
    assert!(text_reply(&bytes).contains("not owned by uid 1000"));
    let (bytes, _) = helper_stream(as_user(&ns, &["4", "add", t, "10.0.0.7", m]));
    assert!(text_reply(&bytes).contains("is a local address of this host"));
    let (bytes, _) = helper_stream(as_user(&ns, &["4", "ethertap", "tap0", "5"]));
    assert_eq!(bytes[0], 0, "ethertap status byte");
    assert!(text_reply(&bytes[1..]).contains("not supported on this host"));
    drop(tap_fd);
}

/// The uid changes and privileged calls of a setuid run, in order, from strace.
fn traced_run(ns: &NetNs, args: &[&str]) -> Vec<String> {
    let dir = scratch();
    let trace = dir.path().join("trace");
    let mut cmd = ns.command("strace");
    cmd.args([
        "-f",
        "-qq",
        "-e",
        "trace=execve,setresuid,ioctl,sendmsg,sendto,write",
        "-o",
    ])
    .arg(&trace)
    .args([
        "--",
        "setpriv",
        "--reuid=1000",
        "--regid=1000",
        "--clear-groups",
        "--",
    ])
    .arg(format!("{SUID_DIR}/uml_net"))
    .args(args);
    let (_reply, fd, code) = helper_datagram(cmd);
    assert_eq!(code, Some(0));
    drop(fd);
    let exec = format!("execve(\"{SUID_DIR}/uml_net\"");
    std::fs::read_to_string(&trace)
        .expect("strace output")
        .lines()
        // Drop the pid column and strace's alignment padding.
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        // Only what uml_net itself did (setpriv changes uids too).
        .skip_while(|l| !l.starts_with(&exec))
        .filter(|l| {
            l.starts_with("setresuid(")
                || l.contains("TUNSET")
                || l.contains("SIOC")
                || l.starts_with("sendmsg(")
                || (l.starts_with("sendto(") && l.contains("nlmsg_type=RTM_"))
                || l.starts_with("write(")
        })
        .collect()
}

#[test]
fn setuid_uml_net_holds_root_only_while_changing_the_host() {
    require_root("setuid uml_net tests");
    let ns = NetNs::new();
    ns.sh_ok(&format!(
        "cp {} {SUID_DIR}/uml_net && chown 0:0 {SUID_DIR}/uml_net && chmod 4755 {SUID_DIR}/uml_net",
        our_bin("uml_net").display()
    ));
    let calls = traced_run(&ns, &["4", "tuntap", "up", "10.0.0.254"]);
    let pos = |pred: &dyn Fn(&str) -> bool| {
        calls
            .iter()
            .position(|c| pred(c))
            .unwrap_or_else(|| panic!("missing call in {calls:#?}"))
    };
    let lowered = pos(&|c| c.starts_with("setresuid(-1, 1000, -1)"));
    let raised = pos(&|c| c.starts_with("setresuid(-1, 0, -1)"));
    let first_priv = pos(&|c| c.contains("TUNSETIFF"));
    let last_priv = calls
        .iter()
        .rposition(|c| {
            c.contains("TUNSET")
                || c.contains("RTM_NEWADDR")
                || c.contains("RTM_SETLINK")
                || c.starts_with("write(")
        })
        .unwrap();
    assert!(
        calls.iter().any(|c| c.contains("RTM_NEWADDR")),
        "the gate is set over netlink: {calls:#?}"
    );
    let dropped = pos(&|c| c.starts_with("setresuid(1000, 1000, 1000) = 0"));
    let sent = pos(&|c| c.starts_with("sendmsg(1,"));
    assert!(
        lowered < raised && raised < first_priv && last_priv < dropped && dropped < sent,
        "order of uid changes and privileged calls: {calls:#?}"
    );
    // Once dropped, root never comes back (the one attempt to get it back must fail).
    for c in &calls[dropped + 1..] {
        assert!(
            !(c.starts_with("setresuid(") && c.ends_with("= 0")),
            "{calls:#?}"
        );
    }
}

#[test]
fn linux_uml_gets_its_network_through_our_uml_net() {
    require_root("linux.uml tuntap tests");
    let ns = NetNs::new();
    let dir = scratch();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::copy(our_bin("uml_net"), bin.join("uml_net")).unwrap();
    let init = "#!/bin/sh\n\
        mount -t proc proc /proc\n\
        ifconfig eth0 10.0.0.1 netmask 255.255.255.0 up\n\
        if ping -c 2 -W 3 10.0.0.254 >/dev/null; then echo PING-OK; else echo PING-FAIL; fi\n\
        echo STAGE-ONE\n\
        sleep 4\n\
        ifconfig eth0 10.0.0.2 netmask 255.255.255.0\n\
        echo STAGE-TWO\n\
        sleep 4\n\
        poweroff -f\n";
    let image = GuestImage::build(&dir.path().join("root.img"), init);
    let Some(uml) = Uml::new(&dir.path().join("home"), "tapnet") else {
        return;
    };
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let mut boot = uml
        .root(image.path.to_str().unwrap())
        .arg("eth0=tuntap,,,10.0.0.254")
        .env("PATH", &path)
        .wrapped(ns.prefix())
        .spawn(Duration::from_secs(30));
    assert!(
        boot.wait_for_console("STAGE-ONE", Duration::from_secs(40)),
        "{}",
        boot.console()
    );
    let console = boot.console();
    assert!(console.contains("PING-OK"), "{console}");
    assert!(
        console.contains("* tap device tap0 for uid 0"),
        "not our uml_net: {console}"
    );
    let route = ns.sh_ok("ip route show 10.0.0.1").stdout;
    assert!(route.contains("dev tap0"), "host route: {route:?}");
    assert!(boot.wait_for_console("STAGE-TWO", Duration::from_secs(20)));
    let start = Instant::now();
    let moved = || {
        ns.sh_ok("ip route show 10.0.0.2")
            .stdout
            .contains("dev tap0")
            && ns.sh_ok("ip route show 10.0.0.1").stdout.is_empty()
    };
    while !moved() && start.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(moved(), "{}", ns.sh_ok("ip route").stdout);
    boot.wait_exit(Duration::from_secs(20));
}

/// A host for the address-policy attacks: the setuid copy of uml_net, IPv6 off, a LAN
/// `lan0` 192.168.5.1/24 whose far end (192.168.5.2, answering ARP) lives in a second
/// namespace, a default gateway 192.168.5.254 and 10.8.0.0/16 behind 192.168.5.3.
struct Lab {
    ns: NetNs,
    _far: NetNs,
}

fn lab() -> Lab {
    let (ns, far) = (NetNs::new(), NetNs::new());
    ns.sh_ok(&format!(
        "cp {} {SUID_DIR}/uml_net && chown 0:0 {SUID_DIR}/uml_net && chmod 4755 {SUID_DIR}/uml_net",
        our_bin("uml_net").display()
    ));
    ns.sh_ok(&format!(
        "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 && \
         ip link add lan0 type veth peer name lan1 && \
         ip link set lan1 netns /proc/{}/ns/net && \
         ip addr add 192.168.5.1/24 dev lan0 && ip link set lan0 up && \
         ip route add default via 192.168.5.254 && ip route add 10.8.0.0/16 via 192.168.5.3",
        far.pid()
    ));
    far.sh_ok("ip addr add 192.168.5.2/24 dev lan1 && ip link set lan1 up");
    Lab { ns, _far: far }
}

/// A tap made by `uml_net 4 tuntap up GATE` for `uid`: its name and its fd.
fn user_tap(ns: &NetNs, uid: u32, gate: &str) -> (String, OwnedFd) {
    let (reply, fd, code) = helper_datagram(as_uid(ns, uid, &["4", "tuntap", "up", gate]));
    assert_eq!(code, Some(0), "{reply:?}");
    (reply.ifname.expect("a tap name"), fd.expect("a tap fd"))
}

/// Runs an add/del as `uid`; returns the reply text and whether it succeeded.
fn user_addr(ns: &NetNs, uid: u32, args: &[&str]) -> (String, bool) {
    let (bytes, code) = helper_stream(as_uid(ns, uid, args));
    (text_reply(&bytes), code == Some(0))
}

/// The one `uml_net : ` line of a refusal.
fn refusal_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("uml_net : "))
        .collect();
    assert_eq!(lines.len(), 1, "one line saying why: {text:?}");
    lines[0].to_owned()
}

#[test]
fn uml_net_refuses_addresses_a_member_must_not_claim() {
    require_root("setuid uml_net tests");
    let lab = lab();
    let ns = &lab.ns;
    let (tap, tap_fd) = user_tap(ns, 1000, "192.168.0.254");
    let t = tap.as_str();
    let (m, h) = ("255.255.255.0", "255.255.255.255");
    let before = host_state(ns);
    let attacks: &[(&[&str], &str)] = &[
        (
            &["4", "add", t, "192.168.5.254", m],
            "address 192.168.5.254 is the gateway of the route 0.0.0.0/0 via 192.168.5.254 dev lan0",
        ),
        (
            &["4", "add", t, "192.168.5.2", m],
            "address 192.168.5.2 is in use on lan0",
        ),
        (&["4", "add", t, "8.8.8.8", m], "address 8.8.8.8 is a public address"),
        (
            &["4", "add", t, "192.168.5.1", m],
            "address 192.168.5.1 is a local address of this host (on lan0)",
        ),
        (
            &["4", "add", t, "192.168.0.254", h],
            "address 192.168.0.254 is a local address of this host",
        ),
        (
            &["4", "add", t, "192.168.5.0", h],
            "address 192.168.5.0 is the network address of 192.168.5.0/24 dev lan0",
        ),
        (
            &["4", "add", t, "192.168.5.255", h],
            "address 192.168.5.255 is the broadcast address of 192.168.5.0/24 dev lan0",
        ),
        (
            &["4", "add", t, "192.168.0.0", m],
            "address 192.168.0.0 is the network address of its subnet",
        ),
        (
            &["4", "add", t, "10.8.1.1", m],
            "address 10.8.1.1 is routed through a gateway (route 10.8.0.0/16 via 192.168.5.3",
        ),
        (
            &["4", "tuntap", "up", "192.168.5.254"],
            "address 192.168.5.254 is the gateway",
        ),
        (
            &["4", "tuntap", "up", "192.168.5.2"],
            "address 192.168.5.2 is in use on lan0",
        ),
        (&["4", "tuntap", "up", "8.8.8.8"], "address 8.8.8.8 is a public address"),
        (
            &["4", "tuntap", "up", "192.168.5.1"],
            "address 192.168.5.1 is a local address",
        ),
    ];
    for (args, why) in attacks {
        let (text, ok) = if args[1] == "tuntap" {
            let (reply, fd, code) = helper_datagram(as_user(ns, args));
            assert!(fd.is_none(), "uml_net {args:?} gave a tap: {reply:?}");
            (reply.output, code == Some(0))
        } else {
            user_addr(ns, 1000, args)
        };
        assert!(!ok, "uml_net {args:?} was accepted: {text}");
        let line = refusal_line(&text);
        assert!(
            line.contains(why),
            "uml_net {args:?}: {line:?} lacks {why:?}"
        );
        assert_eq!(
            host_state(ns),
            before,
            "uml_net {args:?} changed host state"
        );
    }

    // The documented host-only setup: gate 192.168.0.254, guest 192.168.0.253.
    let (text, ok) = user_addr(ns, 1000, &["4", "add", t, "192.168.0.253", m]);
    assert!(ok, "{text}");
    let route = ns.sh_ok("ip route show 192.168.0.253").stdout;
    assert!(route.contains(&format!("dev {t} proto 77")), "{route}");
    assert_eq!(sys_proxy(ns, t), "1");
    let (text, ok) = user_addr(ns, 1000, &["4", "del", t, "192.168.0.253", m]);
    assert!(ok, "{text}");
    assert_eq!(host_state(ns), before);

    // A free LAN address: probed, routed and published on lan0, then withdrawn.
    let (text, ok) = user_addr(ns, 1000, &["4", "add", t, "192.168.5.77", m]);
    assert!(
        ok && text.contains("* arp probe for 192.168.5.77 on lan0"),
        "{text}"
    );
    let proxy = ns.sh_ok("ip neigh show proxy").stdout;
    assert!(
        proxy.contains("192.168.5.77 dev lan0 proxy proto 77"),
        "{proxy}"
    );
    let (text, ok) = user_addr(ns, 1000, &["4", "del", t, "192.168.5.77", m]);
    assert!(ok, "{text}");
    assert_eq!(host_state(ns), before);
    // Several UMLs may share one gate: it is already a tap's, not another interface's.
    let (reply, fd2, code) =
        helper_datagram(as_uid(ns, 2000, &["4", "tuntap", "up", "192.168.0.254"]));
    assert_eq!(code, Some(0), "{reply:?}");
    assert!(fd2.is_some() && reply.output.contains("already the gate of another tap"));
    drop(tap_fd);
}

#[test]
fn uml_net_conf_allows_subnets_only_when_root_owns_it() {
    require_root("setuid uml_net tests");
    let lab = lab();
    let ns = &lab.ns;
    // /etc is an overlay in this namespace's mounts only.
    let dir = scratch();
    let (up, work) = (dir.path().join("up"), dir.path().join("work"));
    std::fs::create_dir(&up).unwrap();
    std::fs::create_dir(&work).unwrap();
    ns.sh_ok(&format!(
        "mount -t overlay overlay -o lowerdir=/etc,upperdir={},workdir={} /etc && \
         mkdir -m 0755 /etc/uml-utilities && \
         printf '# lab\\nallow 8.8.8.0/24\\n' > /etc/uml-utilities/uml_net.conf && \
         chmod 0644 /etc/uml-utilities/uml_net.conf",
        up.display(),
        work.display()
    ));
    let (tap, tap_fd) = user_tap(ns, 1000, "192.168.0.254");
    let t = tap.as_str();
    let add = ["4", "add", t, "8.8.8.8", "255.255.255.0"];
    let before = host_state(ns);
    let (text, ok) = user_addr(ns, 1000, &add);
    assert!(
        ok && text.contains("allowed by /etc/uml-utilities/uml_net.conf"),
        "{text}"
    );
    assert!(ns
        .sh_ok("ip route show 8.8.8.8")
        .stdout
        .contains(&format!("dev {t} proto 77")));
    let (text, ok) = user_addr(ns, 1000, &["4", "del", t, "8.8.8.8", "255.255.255.0"]);
    assert!(ok, "{text}");
    // Still refused beyond what it lists, and whatever it lists for the host's own.
    let (text, _) = user_addr(ns, 1000, &["4", "add", t, "8.8.4.4", "255.255.255.0"]);
    assert!(refusal_line(&text).contains("does not allow it"), "{text}");
    let conf = "/etc/uml-utilities/uml_net.conf";
    for (setup, why) in [
        (
            format!("chmod 0666 {conf}"),
            "is writable by group or others",
        ),
        (
            format!("chmod 0644 {conf} && chown 1000 {conf}"),
            "is owned by uid 1000, not root",
        ),
        (
            format!("chown 0 {conf} && chmod 0777 /etc/uml-utilities"),
            "/etc/uml-utilities is writable by group or others",
        ),
        (
            format!(
                "chmod 0755 /etc/uml-utilities && mv {conf} /etc/uml-utilities/real && \
                 ln -s real {conf}"
            ),
            "is a symbolic link",
        ),
        (
            format!("rm {conf} && printf 'allow everything\\n' > {conf}"),
            "line 1",
        ),
    ] {
        ns.sh_ok(&setup);
        let (text, ok) = user_addr(ns, 1000, &add);
        assert!(!ok, "{setup}: accepted: {text}");
        let line = refusal_line(&text);
        assert!(
            line.contains("is not used") && line.contains(why),
            "{setup}: {line}"
        );
        assert_eq!(host_state(ns), before, "{setup}: host changed");
    }
    drop(tap_fd);
}

#[test]
fn uml_net_del_removes_only_what_it_made() {
    require_root("setuid uml_net tests");
    let lab = lab();
    let ns = &lab.ns;
    let (tap, tap_fd) = user_tap(ns, 1000, "192.168.0.254");
    let t = tap.as_str();
    let m = "255.255.255.0";
    // The administrator's own entries, one of them a route through the member's tap.
    ns.sh_ok(&format!(
        "ip neigh add proxy 192.168.5.80 dev lan0 && \
         ip route add 192.168.0.200/32 dev {t} proto static"
    ));
    let before = host_state(ns);
    for addr in ["192.168.5.80", "192.168.0.200"] {
        let (text, ok) = user_addr(ns, 1000, &["4", "del", t, addr, m]);
        assert!(!ok, "del {addr}: {text}");
        assert!(refusal_line(&text).contains("nothing removed"), "{text}");
        assert_eq!(
            host_state(ns),
            before,
            "del {addr} removed the administrator's entry"
        );
    }
    // Nor may an add take over the administrator's published address.
    let (text, ok) = user_addr(ns, 1000, &["4", "add", t, "192.168.5.80", m]);
    assert!(!ok && refusal_line(&text).contains("already published (proxy ARP) on lan0"));
    // The member's own claim comes and goes beside them.
    let (text, ok) = user_addr(ns, 1000, &["4", "add", t, "192.168.5.77", m]);
    assert!(ok, "{text}");
    let (text, ok) = user_addr(ns, 1000, &["4", "del", t, "192.168.5.77", m]);
    assert!(ok, "{text}");
    let after = host_state(ns);
    assert_eq!(after, before);
    assert!(after.contains("192.168.5.80 dev lan0 proxy"), "{after}");
    drop(tap_fd);
}

/// The sendto calls of one traced run of `args` as uid 1000 under `inject` (strace's
/// -e inject=... spec, or none): the reply text, success, and the decoded calls.
fn traced_addr(ns: &NetNs, args: &[&str], inject: Option<&str>) -> (String, bool, Vec<String>) {
    let dir = scratch();
    let trace = dir.path().join("trace");
    let mut cmd = ns.command("strace");
    cmd.args(["-qq", "-e", "trace=sendto", "-o"]).arg(&trace);
    if let Some(spec) = inject {
        cmd.args(["-e", &format!("inject={spec}")]);
    }
    cmd.args([
        "--",
        "setpriv",
        "--reuid=1000",
        "--regid=1000",
        "--clear-groups",
        "--",
    ])
    .arg(format!("{SUID_DIR}/uml_net"))
    .args(args);
    let (bytes, code) = helper_stream(cmd);
    let calls = std::fs::read_to_string(&trace)
        .expect("strace output")
        .lines()
        .filter(|l| l.starts_with("sendto("))
        .map(str::to_owned)
        .collect();
    (text_reply(&bytes), code == Some(0), calls)
}

/// 1-based position of the first sendto carrying `what`.
fn nth_sendto(calls: &[String], what: &str) -> usize {
    1 + calls
        .iter()
        .position(|c| c.contains(what))
        .unwrap_or_else(|| panic!("no {what} in {calls:#?}"))
}

#[test]
fn uml_net_failed_add_rolls_back_what_it_did() {
    require_root("setuid uml_net tests");
    let lab = lab();
    let ns = &lab.ns;
    let (tap, tap_fd) = user_tap(ns, 1000, "192.168.0.254");
    let t = tap.as_str();
    let add = ["4", "add", t, "192.168.5.77", "255.255.255.0"];
    let del = ["4", "del", t, "192.168.5.77", "255.255.255.0"];
    let before = host_state(ns);
    // Where the steps fall: the route and the proxy_arp switch come before the proxy
    // entry, so failing the proxy entry leaves two steps to undo.
    let (text, ok, calls) = traced_addr(ns, &add, None);
    assert!(ok, "{text}");
    let proxy = nth_sendto(&calls, "RTM_NEWNEIGH");
    assert!(nth_sendto(&calls, "RTM_NEWROUTE") < proxy);
    assert!(nth_sendto(&calls, "RTM_SETLINK") < proxy);
    assert!(user_addr(ns, 1000, &del).1);
    assert_eq!(host_state(ns), before);
    // The kernel refuses the proxy entry this time.
    let spec = format!("sendto:error=ENOBUFS:when={proxy}");
    let (text, ok, _) = traced_addr(ns, &add, Some(&spec));
    assert!(!ok, "{text}");
    assert!(
        text.contains("* undo: route del -host 192.168.5.77"),
        "{text}"
    );
    assert!(text.contains("* undo: proxy_arp 0"), "{text}");
    assert_eq!(host_state(ns), before, "a failed add left changes: {text}");
    drop(tap_fd);
}

/// The uml_net running in `ns` that is in a ptrace stop at entry to sendto, if any:
/// its pid as this process's /proc numbers it.
fn uml_net_stopped_at_sendto(want: &std::path::Path) -> Option<u32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let p = |f: &str| format!("/proc/{pid}/{f}");
        let is_helper =
            std::fs::read_link(p("exe")).is_ok_and(|x| x.to_string_lossy().ends_with("/uml_net"));
        if !is_helper || std::fs::read_link(p("ns/net")).ok().as_deref() != Some(want) {
            continue;
        }
        let stat = std::fs::read_to_string(p("stat")).unwrap_or_default();
        let state = stat.rsplit(") ").next().and_then(|r| r.chars().next());
        let call = std::fs::read_to_string(p("syscall")).unwrap_or_default();
        if state == Some('t') && call.starts_with("44 ") {
            return Some(pid);
        }
    }
    None
}

/// Waits at most `limit` for the uml_net in `ns` to be held by strace at entry to
/// sendto: stopped there through 300 ms of samples (strace stops every traced call for
/// a moment; only the injected delay lasts).
fn uml_net_held_at_sendto(ns: &NetNs, limit: Duration) -> bool {
    let Ok(want) = std::fs::read_link(format!("/proc/{}/ns/net", ns.pid())) else {
        return false;
    };
    let start = Instant::now();
    let mut since: Option<(u32, Instant)> = None;
    loop {
        match (uml_net_stopped_at_sendto(&want), since) {
            (Some(pid), Some((p, t))) if p == pid => {
                if t.elapsed() >= Duration::from_millis(300) {
                    return true;
                }
            }
            (Some(pid), _) => since = Some((pid, Instant::now())),
            (None, _) => since = None,
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn uml_net_never_touches_a_tap_recreated_for_another_user() {
    require_root("setuid uml_net tests");
    let lab = lab();
    let ns = &lab.ns;
    let m = "255.255.255.0";
    // Where to hold the helper: its first netlink request (the tap is pinned, the
    // owner not yet checked again as root) and its first change (checked, not done).
    let (tap, fd) = user_tap(ns, 1000, "192.168.0.254");
    assert!(user_addr(ns, 1000, &["4", "add", &tap, "192.168.5.77", m]).1);
    let del = ["4", "del", tap.as_str(), "192.168.5.77", m];
    let (_, ok, calls) = traced_addr(ns, &del, None);
    assert!(ok);
    let holds = [1, nth_sendto(&calls, "RTM_DELROUTE")];
    drop(fd);
    for hold in holds {
        let (tap, fd) = user_tap(ns, 1000, "192.168.0.254");
        let (text, ok) = user_addr(ns, 1000, &["4", "add", &tap, "192.168.5.77", m]);
        assert!(ok, "{text}");
        // uid 1000's `del` stops at the chosen request for 8 s ...
        let spec = format!("sendto:delay_enter=8000000:when={hold}");
        let del = ["4", "del", tap.as_str(), "192.168.5.77", m];
        let dir = scratch();
        let mut cmd = ns.command("strace");
        cmd.args(["-qq", "-e", "trace=sendto", "-o"])
            .arg(dir.path().join("trace"))
            .args(["-e", &format!("inject={spec}")])
            .args([
                "--",
                "setpriv",
                "--reuid=1000",
                "--regid=1000",
                "--clear-groups",
                "--",
            ])
            .arg(format!("{SUID_DIR}/uml_net"))
            .args(del);
        let worker = std::thread::spawn(move || helper_stream(cmd));
        assert!(
            uml_net_held_at_sendto(ns, Duration::from_secs(20)),
            "the helper never reached sendto #{hold}"
        );
        // ... while its tap goes away and uid 2000 gets a tap of the same name with
        // the same guest address, routed and published for uid 2000.
        drop(fd);
        let (tap2, fd2) = user_tap(ns, 2000, "192.168.0.254");
        assert_eq!(tap2, tap, "the kernel reuses the name");
        let (text, ok) = user_addr(ns, 2000, &["4", "add", &tap2, "192.168.5.77", m]);
        assert!(ok, "uid 2000's add: {text}");
        let theirs = host_state(ns);
        assert!(
            uml_net_held_at_sendto(ns, Duration::from_millis(400)),
            "the swap took longer than the 8 s hold: the test proves nothing"
        );
        let (bytes, code) = worker.join().unwrap();
        let text = text_reply(&bytes);
        assert_ne!(
            code,
            Some(0),
            "hold at #{hold}: uid 1000's del succeeded: {text}"
        );
        // Held before the owner check as root, that check finds the old tap gone; held
        // after it, the change by the old tap's index finds no such route.
        let line = refusal_line(&text);
        assert!(
            line.contains("was removed or replaced since it was checked")
                || line.contains("removing the host route: No such process"),
            "hold at #{hold}: {line}"
        );
        assert_eq!(
            host_state(ns),
            theirs,
            "hold at #{hold}: uid 1000's del touched uid 2000's tap: {text}"
        );
        assert!(user_addr(ns, 2000, &["4", "del", &tap2, "192.168.5.77", m]).1);
        drop(fd2);
    }
}
