//! Host network changes made with ioctls and /proc/sys writes (never a shell or an
//! external command): interface address and flags, host routes, IPv4 forwarding,
//! proxy ARP switches and published (proxy) ARP entries, and the host's own addresses.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
use uml_proto::tap::ifreq_named;

const ATF_PERM: libc::c_int = 0x04;
const ATF_PUBL: libc::c_int = 0x08;

/// The kernel's struct rtentry (glibc's <net/route.h>), for SIOCADDRT/SIOCDELRT.
#[repr(C)]
struct RtEntry {
    rt_pad1: libc::c_ulong,
    rt_dst: libc::sockaddr,
    rt_gateway: libc::sockaddr,
    rt_genmask: libc::sockaddr,
    rt_flags: libc::c_ushort,
    rt_pad2: libc::c_short,
    rt_pad3: libc::c_ulong,
    rt_tos: libc::c_uchar,
    rt_class: libc::c_uchar,
    rt_pad4: [libc::c_short; 3],
    rt_metric: libc::c_short,
    rt_dev: *mut libc::c_char,
    rt_mtu: libc::c_ulong,
    rt_window: libc::c_ulong,
    rt_irtt: libc::c_ushort,
}

fn inet_socket() -> io::Result<OwnedFd> {
    socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)
}

/// `addr` as a struct sockaddr holding a sockaddr_in.
fn sockaddr_of(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size (16 bytes) and sockaddr is
    // plain old data, so reinterpreting the bytes is sound.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn name_error(e: uml_proto::tap::TapError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

/// Gives `dev` the address `addr` with `mask` and brings it up.
pub fn set_address_up(dev: &str, addr: Ipv4Addr, mask: Ipv4Addr) -> io::Result<()> {
    let sock = inet_socket()?;
    let fd = sock.as_raw_fd();
    let mut req = ifreq_named(dev).map_err(name_error)?;
    req.ifr_ifru.ifru_addr = sockaddr_of(addr);
    // SAFETY: SIOCSIFADDR reads a struct ifreq, which `req` is.
    check(unsafe { libc::ioctl(fd, libc::SIOCSIFADDR, &req) })?;
    req.ifr_ifru.ifru_netmask = sockaddr_of(mask);
    // SAFETY: as above, SIOCSIFNETMASK reads a struct ifreq.
    check(unsafe { libc::ioctl(fd, libc::SIOCSIFNETMASK, &req) })?;
    // SAFETY: SIOCGIFFLAGS writes the flags into the struct ifreq we pass.
    check(unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: SIOCGIFFLAGS just filled in ifru_flags, so reading it is defined.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads a struct ifreq.
    check(unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) })
}

/// Adds (`add`) or removes the host route to `addr`/32 through `dev`.
pub fn host_route(add: bool, addr: Ipv4Addr, dev: &str) -> io::Result<()> {
    let sock = inet_socket()?;
    let dev_c = CString::new(dev).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: RtEntry is plain old data (the pointer may be null); all-zero is valid.
    let mut rt: RtEntry = unsafe { std::mem::zeroed() };
    rt.rt_dst = sockaddr_of(addr);
    rt.rt_genmask = sockaddr_of(Ipv4Addr::BROADCAST);
    rt.rt_gateway.sa_family = libc::AF_INET as libc::sa_family_t;
    rt.rt_flags = libc::RTF_UP | libc::RTF_HOST;
    rt.rt_dev = dev_c.as_ptr() as *mut libc::c_char;
    let req = if add {
        libc::SIOCADDRT
    } else {
        libc::SIOCDELRT
    };
    // SAFETY: SIOCADDRT/SIOCDELRT read a struct rtentry (laid out as RtEntry above) and
    // the device-name string it points to, which `dev_c` keeps alive during the call.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), req, &rt) })
}

/// Publishes (`add`) or withdraws a proxy ARP entry for `addr` on `iface`, as
/// `arp -Ds ADDR IFACE pub` / `arp -i IFACE -d ADDR pub` did.
pub fn proxy_arp_entry(add: bool, addr: Ipv4Addr, iface: &str) -> io::Result<()> {
    let sock = inet_socket()?;
    // SAFETY: arpreq is plain old data; all-zero is a valid value.
    let mut req: libc::arpreq = unsafe { std::mem::zeroed() };
    req.arp_pa = sockaddr_of(addr);
    req.arp_flags = ATF_PUBL | if add { ATF_PERM } else { 0 };
    let name = ifreq_named(iface).map_err(name_error)?;
    req.arp_dev = name.ifr_name;
    let op = if add { libc::SIOCSARP } else { libc::SIOCDARP };
    // SAFETY: SIOCSARP/SIOCDARP read a struct arpreq, which `req` is.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), op, &req) })
}

fn write_proc(path: &str, value: &str) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

/// Turns IPv4 forwarding on.
pub fn enable_forwarding() -> io::Result<()> {
    write_proc("/proc/sys/net/ipv4/ip_forward", "1\n")
}

/// Switches proxy ARP on `dev` on or off (`dev` already checked to be a plain name).
pub fn set_proxy_arp(dev: &str, on: bool) -> io::Result<()> {
    let path = format!("/proc/sys/net/ipv4/conf/{dev}/proxy_arp");
    write_proc(&path, if on { "1\n" } else { "0\n" })
}

/// One IPv4 address of a host interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddr {
    pub iface: String,
    pub addr: Ipv4Addr,
    pub mask: Ipv4Addr,
    pub loopback: bool,
}

/// Every IPv4 address configured on this network namespace's interfaces.
pub fn host_addresses() -> io::Result<Vec<HostAddr>> {
    let list = nix::ifaddrs::getifaddrs().map_err(io::Error::from)?;
    let v4 = |s: &Option<nix::sys::socket::SockaddrStorage>| {
        s.as_ref().and_then(|s| s.as_sockaddr_in()).map(|a| a.ip())
    };
    Ok(list
        .filter_map(|ifa| {
            Some(HostAddr {
                addr: v4(&ifa.address)?,
                mask: v4(&ifa.netmask).unwrap_or(Ipv4Addr::BROADCAST),
                loopback: ifa
                    .flags
                    .contains(nix::net::if_::InterfaceFlags::IFF_LOOPBACK),
                iface: ifa.interface_name,
            })
        })
        .collect())
}

/// The host interfaces, other than `dev` and loopback, whose subnet holds `addr`.
pub fn interfaces_reaching(hosts: &[HostAddr], addr: Ipv4Addr, dev: &str) -> Vec<String> {
    let mut out: Vec<String> = hosts
        .iter()
        .filter(|h| !h.loopback && h.iface != dev)
        .filter(|h| {
            let m = u32::from(h.mask);
            m != 0 && u32::from(h.addr) & m == u32::from(addr) & m
        })
        .map(|h| h.iface.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(iface: &str, a: [u8; 4], m: [u8; 4]) -> HostAddr {
        HostAddr {
            iface: iface.into(),
            addr: a.into(),
            mask: m.into(),
            loopback: iface == "lo",
        }
    }

    #[test]
    fn proxy_arp_goes_to_the_interfaces_whose_subnet_holds_the_address() {
        let hosts = [
            h("lo", [127, 0, 0, 1], [255, 0, 0, 0]),
            h("eth1", [192, 168, 7, 2], [255, 255, 255, 0]),
            h("wlan0", [10, 1, 0, 5], [255, 255, 0, 0]),
            h("tap0", [192, 168, 7, 254], [255, 255, 255, 255]),
        ];
        let got = interfaces_reaching(&hosts, Ipv4Addr::new(192, 168, 7, 9), "tap0");
        assert_eq!(got, ["eth1"]);
        assert!(interfaces_reaching(&hosts, Ipv4Addr::new(172, 16, 0, 1), "tap0").is_empty());
    }

    #[test]
    fn sockaddr_holds_the_address_in_network_order() {
        let sa = sockaddr_of(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(sa.sa_family, libc::AF_INET as libc::sa_family_t);
        assert_eq!(&sa.sa_data[2..6], &[10, 0, 0, 1]);
    }
}
