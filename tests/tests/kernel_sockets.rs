//! Networking for guest programs (issue 14): uml-kernel runs the busybox image's sh as
//! init, and its programs use sockets on the kernel's stack. On our uml_switch with a
//! peer (a linux.uml guest, and a second uml-kernel): busybox `ifconfig` and `route`
//! inside uml-kernel (checked against /proc/net/route), `ping` both ways, `httpd` in
//! one kernel serving a file `wget` in the other fetches (both ways), `nc` both ways
//! with the data checked, uml-kernel's wget from its own httpd (127.0.0.1 and its own
//! address), a C probe of the socket API both ways; and unix sockets inside the guest (busybox syslogd and
//! logger). Unix sockets only on the host side: it runs in the namespace scripts/test
//! makes. Each peer boots once.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tests::{linux_uml, our_bin, scratch, GuestImage, KernelRun, Uml, UmlBoot};

const LIMIT: Duration = Duration::from_secs(20);
const BOOT: Duration = Duration::from_secs(40);

/// Our uml_switch on `dir/sw.ctl`; killed by pid when dropped.
struct Switch {
    child: Child,
    ctl: PathBuf,
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn switch(dir: &Path) -> Switch {
    let ctl = dir.join("sw.ctl");
    let child = Command::new(our_bin("uml_switch"))
        .arg("-unix")
        .arg(&ctl)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start uml_switch");
    let start = Instant::now();
    while std::os::unix::net::UnixStream::connect(&ctl).is_err() {
        assert!(start.elapsed() < LIMIT, "uml_switch did not start");
        thread::sleep(Duration::from_millis(5));
    }
    Switch { child, ctl }
}

const KERNEL_INIT: &str = "#!/bin/sh
mount -t proc proc /proc
mkdir -p /www
echo served-by-uml-kernel > /www/index.html
echo GUEST-READY
exec sh
";

/// A socket API probe in C (static), run in both kernels: `server PORT` and
/// `client ADDR PORT`; it passes against Linux itself (the oracle) as it does here.
const SOCKTEST_C: &str = r#"#define _GNU_SOURCE
/* Socket API probe for kernel_sockets: `socktest server PORT` serves one UDP
 * datagram and one TCP connection (select over both); `socktest client ADDR PORT`
 * checks non-blocking connect, SO_ERROR, names, options, sendmsg/recvmsg, shutdown,
 * UDP, an ICMP datagram echo and unix socketpairs. Prints FAIL lines or CLIENT-OK. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static int fails;
#define CHECK(c, what) do { if (!(c)) { printf("FAIL: %s (errno %d)\n", what, errno); fails++; } } while (0)

static struct sockaddr_in addr_of(const char *ip, int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static int server(int port) {
    struct sockaddr_in any = addr_of("0.0.0.0", port);
    int one = 1;
    int t = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    CHECK(bind(t, (void *)&any, sizeof any) == 0, "tcp bind");
    CHECK(listen(t, 4) == 0, "listen");
    int acc = -1; socklen_t al = sizeof acc;
    CHECK(getsockopt(t, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) == 0 && acc == 1, "SO_ACCEPTCONN");
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(bind(u, (void *)&any, sizeof any) == 0, "udp bind");
    printf("SERVER-READY\n");
    fflush(stdout);
    int served_udp = 0, served_tcp = 0;
    while (!served_udp || !served_tcp) {
        fd_set r;
        FD_ZERO(&r);
        FD_SET(t, &r);
        FD_SET(u, &r);
        struct timeval tv = {20, 0};
        int n = select((t > u ? t : u) + 1, &r, NULL, NULL, &tv);
        CHECK(n > 0, "select");
        if (n <= 0) return 1;
        if (FD_ISSET(u, &r)) {
            char buf[64];
            struct sockaddr_in from; socklen_t fl = sizeof from;
            ssize_t got = recvfrom(u, buf, sizeof buf, 0, (void *)&from, &fl);
            CHECK(got == 8 && memcmp(buf, "udp-ping", 8) == 0, "udp recvfrom");
            CHECK(sendto(u, "udp-pong", 8, 0, (void *)&from, fl) == 8, "udp sendto");
            served_udp = 1;
        }
        if (FD_ISSET(t, &r)) {
            struct sockaddr_in peer; socklen_t pl = sizeof peer;
            int c = accept4(t, (void *)&peer, &pl, SOCK_CLOEXEC);
            CHECK(c >= 0 && pl == sizeof peer && peer.sin_family == AF_INET, "accept4");
            CHECK((fcntl(c, F_GETFD) & FD_CLOEXEC) != 0, "accept4 SOCK_CLOEXEC");
            struct sockaddr_in p2; socklen_t p2l = sizeof p2;
            CHECK(getpeername(c, (void *)&p2, &p2l) == 0 && p2.sin_port == peer.sin_port, "getpeername");
            long total = 0;
            char buf[8192];
            for (;;) {
                struct iovec iov[2] = {{buf, 100}, {buf + 100, sizeof buf - 100}};
                struct msghdr m; memset(&m, 0, sizeof m);
                m.msg_iov = iov; m.msg_iovlen = 2;
                ssize_t got = recvmsg(c, &m, 0);
                CHECK(got >= 0, "recvmsg");
                if (got <= 0) break;
                total += got;
            }
            char reply[64];
            int len = snprintf(reply, sizeof reply, "got %ld bytes", total);
            CHECK(write(c, reply, len) == len, "reply");
            CHECK(shutdown(c, SHUT_WR) == 0, "shutdown");
            close(c);
            served_tcp = 1;
        }
    }
    printf("SERVER-DONE fails=%d\n", fails);
    return fails != 0;
}

static int client(const char *ip, int port) {
    /* A closed port: EINPROGRESS, then POLLOUT with SO_ERROR ECONNREFUSED. */
    struct sockaddr_in closed = addr_of(ip, port + 1);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int r = connect(s, (void *)&closed, sizeof closed);
    CHECK(r == -1 && errno == EINPROGRESS, "nonblocking connect EINPROGRESS (closed port)");
    struct pollfd p = {s, POLLOUT, 0};
    CHECK(poll(&p, 1, 5000) == 1, "poll of a refused connect");
    int err = -1; socklen_t el = sizeof err;
    CHECK(getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == ECONNREFUSED, "SO_ERROR ECONNREFUSED");
    close(s);

    /* The server's port. */
    struct sockaddr_in srv = addr_of(ip, port);
    s = socket(AF_INET, SOCK_STREAM, 0);
    fcntl(s, F_SETFL, O_NONBLOCK);
    r = connect(s, (void *)&srv, sizeof srv);
    CHECK(r == -1 && errno == EINPROGRESS, "nonblocking connect EINPROGRESS");
    p.fd = s; p.events = POLLOUT; p.revents = 0;
    CHECK(poll(&p, 1, 5000) == 1 && (p.revents & POLLOUT), "poll POLLOUT");
    err = -1;
    CHECK(getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0, "SO_ERROR 0");
    struct sockaddr_in me, them; socklen_t ml = sizeof me, tl = sizeof them;
    CHECK(getsockname(s, (void *)&me, &ml) == 0 && me.sin_port != 0 && me.sin_addr.s_addr != 0, "getsockname");
    CHECK(getpeername(s, (void *)&them, &tl) == 0 && them.sin_port == htons(port)
          && them.sin_addr.s_addr == srv.sin_addr.s_addr, "getpeername");
    int one = 1, v = 0; socklen_t vl = sizeof v;
    CHECK(setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0, "TCP_NODELAY");
    CHECK(getsockopt(s, IPPROTO_TCP, TCP_NODELAY, &v, &vl) == 0 && v == 1, "TCP_NODELAY back");
    CHECK(setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) == 0, "SO_KEEPALIVE");
    int rcv = 65536;
    CHECK(setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv) == 0, "SO_RCVBUF");
    vl = sizeof v;
    CHECK(getsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, &vl) == 0 && v >= 65536, "SO_RCVBUF back");
    vl = sizeof v;
    CHECK(getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &vl) == 0 && v == SOCK_STREAM, "SO_TYPE");
    fcntl(s, F_SETFL, 0);
    static char big[100000];
    memset(big, 'x', sizeof big);
    struct iovec iov[2] = {{big, 40000}, {big + 40000, 60000}};
    struct msghdr m; memset(&m, 0, sizeof m);
    m.msg_iov = iov; m.msg_iovlen = 2;
    long sent = 0;
    while (sent < 100000) {
        ssize_t n = sendmsg(s, &m, MSG_NOSIGNAL);
        CHECK(n > 0, "sendmsg");
        if (n <= 0) break;
        sent += n;
        /* Continue with what is left (rebuild the vector). */
        iov[0].iov_base = big + sent; iov[0].iov_len = 100000 - sent; m.msg_iovlen = 1;
    }
    CHECK(shutdown(s, SHUT_WR) == 0, "shutdown SHUT_WR");
    char reply[64] = {0};
    size_t have = 0;
    for (;;) {
        ssize_t n = recv(s, reply + have, sizeof reply - 1 - have, 0);
        if (n <= 0) break;
        have += n;
    }
    CHECK(strcmp(reply, "got 100000 bytes") == 0, "server's count");
    close(s);

    /* UDP, connected. */
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(connect(u, (void *)&srv, sizeof srv) == 0, "udp connect");
    CHECK(send(u, "udp-ping", 8, 0) == 8, "udp send");
    p.fd = u; p.events = POLLIN; p.revents = 0;
    CHECK(poll(&p, 1, 5000) == 1, "udp poll");
    char ub[64] = {0};
    struct sockaddr_in from; socklen_t fl = sizeof from;
    CHECK(recvfrom(u, ub, sizeof ub, 0, (void *)&from, &fl) == 8 && memcmp(ub, "udp-pong", 8) == 0
          && from.sin_port == htons(port), "udp reply");
    /* SO_RCVTIMEO: a receive with nothing to read gives up with EAGAIN. */
    struct timeval tmo = {0, 300000}, tb;
    socklen_t tbl = sizeof tb;
    CHECK(setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof tmo) == 0, "SO_RCVTIMEO");
    CHECK(getsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tb, &tbl) == 0 && tb.tv_usec == 300000, "SO_RCVTIMEO back");
    errno = 0;
    CHECK(recv(u, ub, sizeof ub, 0) == -1 && errno == EAGAIN, "recv timeout EAGAIN");
    close(u);

    /* UDP to 127.0.0.1: one guest socket to another. */
    int ua = socket(AF_INET, SOCK_DGRAM, 0), ub2 = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in la = addr_of("127.0.0.1", port + 2), lb;
    socklen_t lbl = sizeof lb;
    CHECK(bind(ua, (void *)&la, sizeof la) == 0, "udp bind 127.0.0.1");
    CHECK(sendto(ub2, "local", 5, 0, (void *)&la, sizeof la) == 5, "udp sendto 127.0.0.1");
    CHECK(getsockname(ub2, (void *)&lb, &lbl) == 0 && lb.sin_port != 0, "udp sender bound");
    p.fd = ua; p.events = POLLIN; p.revents = 0;
    CHECK(poll(&p, 1, 2000) == 1, "udp 127.0.0.1 poll");
    fl = sizeof from;
    CHECK(recvfrom(ua, ub, sizeof ub, 0, (void *)&from, &fl) == 5 && from.sin_port == lb.sin_port,
          "udp 127.0.0.1 recvfrom");
    close(ua);
    close(ub2);

    /* ICMP echo on a datagram socket. */
    int ic = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    CHECK(ic >= 0, "icmp socket");
    struct icmphdr h; memset(&h, 0, sizeof h);
    h.type = ICMP_ECHO; h.un.echo.sequence = htons(7);
    struct sockaddr_in dst = addr_of(ip, 0);
    CHECK(sendto(ic, &h, sizeof h, 0, (void *)&dst, sizeof dst) == sizeof h, "icmp sendto");
    p.fd = ic; p.events = POLLIN; p.revents = 0;
    CHECK(poll(&p, 1, 5000) == 1, "icmp poll");
    struct icmphdr back; memset(&back, 0xff, sizeof back);
    CHECK(recv(ic, &back, sizeof back, 0) == sizeof back && back.type == ICMP_ECHOREPLY
          && back.un.echo.sequence == htons(7), "icmp echo reply");
    close(ic);

    /* Unix socketpairs. */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair stream");
    CHECK(write(sv[0], "abc", 3) == 3, "pair write");
    char pb[8] = {0};
    CHECK(read(sv[1], pb, sizeof pb) == 3 && memcmp(pb, "abc", 3) == 0, "pair read");
    close(sv[0]);
    CHECK(read(sv[1], pb, sizeof pb) == 0, "pair end of file");
    close(sv[1]);
    CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0, "socketpair dgram");
    CHECK(send(sv[1], "one", 3, 0) == 3 && send(sv[1], "two!", 4, 0) == 4, "dgram pair send");
    CHECK(recv(sv[0], pb, sizeof pb, 0) == 3 && recv(sv[0], pb, sizeof pb, 0) == 4, "dgram boundaries");
    printf(fails ? "CLIENT-FAILED\n" : "CLIENT-OK\n");
    return fails != 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "server") == 0) return server(atoi(argv[2]));
    if (argc == 4 && strcmp(argv[1], "client") == 0) return client(argv[2], atoi(argv[3]));
    fprintf(stderr, "usage: socktest server PORT | client ADDR PORT\n");
    return 2;
}
"#;

/// socktest built with `gcc -static`.
fn socktest(dir: &Path) -> Vec<u8> {
    tests::static_program(dir, "socktest", SOCKTEST_C, &[])
}

/// The peer's init (linux.uml or a second uml-kernel).
const PEER_INIT: &str = "#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys 2>/dev/null
for f in /proc/sys/net/ipv6/conf/*/disable_ipv6; do echo 1 > $f; done 2>/dev/null
ifconfig lo up 2>/dev/null
echo 0 0 > /proc/sys/net/ipv4/ping_group_range 2>/dev/null
mkdir -p /www
echo served-by-peer > /www/index.html
echo GUEST-READY
exec sh
";

/// uml-kernel running the image's busybox as init, eth0 on the switch.
fn uml_kernel(dir: &Path, ctl: &Path, elf: &[u8]) -> KernelRun {
    uml_kernel_with(dir, ctl, "sockets", KERNEL_INIT, 1, elf)
}

fn uml_kernel_with(
    dir: &Path,
    ctl: &Path,
    umid: &str,
    init: &str,
    mac: u8,
    elf: &[u8],
) -> KernelRun {
    let img = GuestImage::build_with(
        &dir.join(format!("{umid}.img")),
        init,
        32,
        &[("bin/socktest", elf, 0o755)],
    );
    let args = [
        format!("ubd0={}", img.path.display()),
        "root=/dev/ubda".into(),
        "rw".into(),
        "init=/sbin/init".into(),
        "con0=fd:0,fd:1".into(),
        "con=null".into(),
        format!(
            "eth0=daemon,fe:fd:00:00:00:{mac:02x},unix,{}",
            ctl.display()
        ),
    ];
    let k = KernelRun::start(
        KernelRun::command(&our_bin("uml-kernel"), umid, &args),
        &dir.join(format!("{umid}-home")),
        umid,
    );
    assert!(
        k.wait_from(0, "GUEST-READY", BOOT).is_some(),
        "uml-kernel's init did not start:\n{}",
        k.output()
    );
    k
}

fn linux_guest(dir: &Path, ctl: &Path, elf: &[u8]) -> Option<UmlBoot> {
    linux_uml()?;
    let img = GuestImage::build_with(
        &dir.join("l.img"),
        PEER_INIT,
        32,
        &[("bin/socktest", elf, 0o755)],
    );
    let cow = dir.join("l.cow");
    let uml = Uml::new(&dir.join("lhome"), &format!("lxs-{}", std::process::id()))?
        .root(&format!("{},{}", cow.display(), img.path.display()))
        .arg(format!(
            "eth0=daemon,fe:fd:00:00:00:03,unix,{}",
            ctl.display()
        ));
    Some(uml.boot_until("GUEST-READY", BOOT))
}

/// The other end of the LAN.
enum Peer {
    Linux(UmlBoot),
    Kernel(KernelRun),
}

impl Peer {
    fn sh(&mut self, cmd: &str) -> String {
        match self {
            Peer::Linux(g) => {
                g.shell(cmd, LIMIT)
                    .unwrap_or_else(|| panic!("linux.uml: `{cmd}` timed out:\n{}", g.console()))
                    .0
            }
            Peer::Kernel(k) => k.sh(cmd, LIMIT),
        }
    }
}

fn received(out: &str) -> u32 {
    out.lines()
        .find_map(|l| {
            let (head, _) = l.split_once(" packets received")?;
            head.rsplit(", ").next()?.trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("no ping summary:\n{out}"))
}

#[test]
fn guest_programs_talk_to_linux_uml_over_the_switch() {
    let dir = scratch();
    let d = dir.path();
    let sw = switch(d);
    let elf = socktest(d);
    let k = uml_kernel(d, &sw.ctl, &elf);
    let Some(l) = linux_guest(d, &sw.ctl, &elf) else {
        return;
    };
    lan(k, Peer::Linux(l));
}

#[test]
fn guest_programs_talk_to_another_uml_kernel_over_the_switch() {
    let dir = scratch();
    let d = dir.path();
    let sw = switch(d);
    let elf = socktest(d);
    let k = uml_kernel(d, &sw.ctl, &elf);
    let p = uml_kernel_with(d, &sw.ctl, "peer", PEER_INIT, 3, &elf);
    lan(k, Peer::Kernel(p));
}

/// uml-kernel `k` (10.0.0.1) and `peer` (10.0.0.3) on one switch.
fn lan(mut k: KernelRun, mut peer: Peer) {
    let l = &mut peer;

    // busybox ifconfig and route inside uml-kernel, through the ioctls.
    let out = k.sh(
        "ifconfig eth0 10.0.0.1 netmask 255.255.255.0 up && route add default gw 10.0.0.3 && echo CONFIGURED",
        LIMIT,
    );
    assert!(out.contains("\nCONFIGURED"), "{out}");
    let out = k.sh("ifconfig eth0", LIMIT);
    assert!(out.contains("HWaddr FE:FD:00:00:00:01"), "{out}");
    assert!(
        out.contains("inet addr:10.0.0.1  Bcast:10.0.0.255  Mask:255.255.255.0"),
        "{out}"
    );
    assert!(out.contains("UP BROADCAST RUNNING MULTICAST"), "{out}");
    let out = k.sh("ifconfig lo 127.0.0.1 up && ifconfig lo", LIMIT);
    assert!(
        out.contains("Local Loopback") && out.contains("inet addr:127.0.0.1  Mask:255.0.0.0"),
        "{out}"
    );
    assert!(out.contains("UP LOOPBACK RUNNING  MTU:65536"), "{out}");
    let route = k.sh("cat /proc/net/route", LIMIT);
    assert!(
        route.contains("eth0\t00000000\t0300000A\t0003\t0\t0\t0\t00000000"),
        "default route missing:\n{route}"
    );
    assert!(
        route.contains("eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF"),
        "subnet route missing:\n{route}"
    );
    let table = k.sh("route -n", LIMIT);
    assert!(
        table.contains("0.0.0.0         10.0.0.3        0.0.0.0         UG"),
        "{table}"
    );
    l.sh("ifconfig eth0 10.0.0.3 netmask 255.255.255.0 up");

    // ping both ways (busybox ping: a raw ICMP socket and SIGALRM between echoes).
    let out = k.sh("ping -c 2 10.0.0.3", LIMIT);
    assert_eq!(received(&out), 2, "uml-kernel -> peer:\n{out}");
    let out = l.sh("ping -c 2 -W 3 10.0.0.1");
    assert_eq!(received(&out), 2, "peer -> uml-kernel:\n{out}");

    // ping to the guest's own addresses (answered inside the kernel).
    let out = k.sh("ping -c 1 127.0.0.1; ping -c 1 10.0.0.1", LIMIT);
    assert_eq!(
        out.matches(" 1 packets received").count(),
        2,
        "uml-kernel -> itself:\n{out}"
    );

    // httpd in uml-kernel, wget in linux.uml; then the reverse.
    k.sh("httpd -p 80 -h /www && echo HTTPD-UP", LIMIT);
    let out = l.sh("wget -q -O - http://10.0.0.1/index.html");
    assert!(
        out.contains("served-by-uml-kernel"),
        "wget from uml-kernel:\n{out}"
    );
    // A larger page (1 MiB of random bytes) arrives intact.
    let sum = |out: &str| {
        out.lines()
            .find_map(|l| {
                l.strip_suffix("  /tmp/big")
                    .or(l.strip_suffix("  /www/big"))
            })
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no md5sum line:\n{out}"))
    };
    let served = sum(&k.sh(
        "dd if=/dev/urandom of=/www/big bs=1024 count=1024 2>/dev/null; md5sum /www/big",
        LIMIT,
    ));
    let fetched = sum(&l.sh("wget -q -O /tmp/big http://10.0.0.1/big; md5sum /tmp/big"));
    assert_eq!(served, fetched, "1 MiB over httpd and wget");

    // Connections from the guest to itself (127.0.0.1 and its own address).
    let out = k.sh(
        "wget -q -O - http://127.0.0.1/index.html; wget -q -O - http://10.0.0.1/index.html",
        LIMIT,
    );
    assert_eq!(
        out.matches("\nserved-by-uml-kernel").count(),
        2,
        "wget from uml-kernel itself:\n{out}"
    );
    l.sh("httpd -p 8080 -h /www");
    let out = k.sh("wget -q -O - http://10.0.0.3:8080/index.html", LIMIT);
    assert!(
        out.contains("\nserved-by-peer"),
        "wget from the peer:\n{out}"
    );

    // nc both ways: a listener in one, the connecting side in the other. The
    // listener's input stays open (busybox nc shuts its sending side down at the end
    // of its input, and the sender quits at the end of the network input).
    k.sh("sleep 15 | nc -l -p 5000 > /tmp/from-peer &", LIMIT);
    thread::sleep(Duration::from_millis(300));
    l.sh("seq 1 3000 > /tmp/data; nc 10.0.0.1 5000 < /tmp/data");
    let out = k.sh(
        "sleep 0.5; seq 1 3000 > /tmp/want; cmp /tmp/want /tmp/from-peer && echo SAME-$(wc -c < /tmp/from-peer)",
        LIMIT,
    );
    assert!(
        out.contains("\nSAME-13893"),
        "nc peer -> uml-kernel:\n{out}"
    );
    l.sh("sleep 15 | nc -l -p 5001 > /tmp/from-kernel &");
    thread::sleep(Duration::from_millis(300));
    k.sh("echo hello-from-uml-kernel | nc 10.0.0.3 5001", LIMIT);
    let out = l.sh("sleep 0.5; cat /tmp/from-kernel");
    assert!(
        out.contains("hello-from-uml-kernel"),
        "nc uml-kernel -> peer:\n{out}"
    );

    // The socket API from C: server in the peer and client in uml-kernel, then the
    // reverse (non-blocking connect, SO_ERROR, names, options, sendmsg/recvmsg,
    // shutdown, select, UDP, ICMP echo, socketpairs).
    l.sh("socktest server 7000 > /tmp/server.out &");
    thread::sleep(Duration::from_millis(300));
    let out = k.sh("socktest client 10.0.0.3 7000", LIMIT);
    assert!(
        out.contains("\nCLIENT-OK"),
        "socktest client in uml-kernel:\n{out}"
    );
    let out = l.sh("sleep 0.3; cat /tmp/server.out");
    assert!(
        out.contains("SERVER-DONE fails=0"),
        "socktest server in the peer:\n{out}"
    );
    k.sh("socktest server 7100 > /tmp/server.out &", LIMIT);
    thread::sleep(Duration::from_millis(300));
    let out = l.sh("socktest client 10.0.0.1 7100");
    assert!(
        out.contains("CLIENT-OK"),
        "socktest client in the peer:\n{out}"
    );
    let out = k.sh("sleep 0.3; cat /tmp/server.out", LIMIT);
    assert!(
        out.contains("SERVER-DONE fails=0"),
        "socktest server in uml-kernel:\n{out}"
    );

    // The guest's sockets show in /proc/net/tcp: httpd listening on port 80 (0050).
    let tcp = k.sh("cat /proc/net/tcp", LIMIT);
    assert!(tcp.contains("00000000:0050 00000000:0000 0A"), "{tcp}");
}

#[test]
fn unix_sockets_inside_the_guest() {
    let dir = scratch();
    let d = dir.path();
    let sw = switch(d);
    let mut k = uml_kernel(d, &sw.ctl, &[]);
    // syslogd binds /dev/log (a datagram socket); logger sends to it.
    let out = k.sh(
        "syslogd -n -O /tmp/messages & sleep 0.3; logger -t probe hello-syslog; sleep 0.3; cat /tmp/messages",
        LIMIT,
    );
    assert!(out.contains("probe: hello-syslog"), "{out}");
    let out = k.sh("cat /proc/net/unix", LIMIT);
    assert!(
        out.contains(" 0002 01 ") && out.contains(" /dev/log"),
        "{out}"
    );
}
