//! The interface and route ioctls guest programs make on a socket (busybox `ifconfig`
//! and `route`): SIOCGIFCONF, the SIOC[GS]IF* family on `struct ifreq` and
//! SIOCADDRT/SIOCDELRT on `struct rtentry`, answered from and applied to the kernel's
//! devices through the same `ifchange` plans the built-in shell's ifconfig runs.
//! A helper-made tap (whose changes need uml_net calls) is changed from the built-in
//! shell only: the ioctls answer EOPNOTSUPP for it. `lo` is shown up at 127.0.0.1/8
//! (TCP to it is joined inside the kernel); changes to it are accepted and not kept.

use nix::unistd::Pid;
use smoltcp::wire::{EthernetAddress, HardwareAddress, Ipv4Address, Ipv4Cidr};
use uml_proto::ether::MacAddr;

use super::abi::errno::*;
use super::sentry::Sentry;
use crate::machine::Machine;
use crate::net::{dev_index, dev_name, Link, Net, NetDev, RouteError, DEV_SLOTS};

const SIOCADDRT: u32 = 0x890b;
const SIOCDELRT: u32 = 0x890c;
const SIOCGIFNAME: u32 = 0x8910;
const SIOCGIFCONF: u32 = 0x8912;
const SIOCGIFFLAGS: u32 = 0x8913;
const SIOCSIFFLAGS: u32 = 0x8914;
const SIOCGIFADDR: u32 = 0x8915;
const SIOCSIFADDR: u32 = 0x8916;
const SIOCGIFDSTADDR: u32 = 0x8917;
const SIOCSIFDSTADDR: u32 = 0x8918;
const SIOCGIFBRDADDR: u32 = 0x8919;
const SIOCSIFBRDADDR: u32 = 0x891a;
const SIOCGIFNETMASK: u32 = 0x891b;
const SIOCSIFNETMASK: u32 = 0x891c;
const SIOCGIFMETRIC: u32 = 0x891d;
const SIOCSIFMETRIC: u32 = 0x891e;
const SIOCGIFMTU: u32 = 0x8921;
const SIOCSIFMTU: u32 = 0x8922;
const SIOCSIFHWADDR: u32 = 0x8924;
const SIOCGIFHWADDR: u32 = 0x8927;
const SIOCGIFINDEX: u32 = 0x8933;
const SIOCGIFTXQLEN: u32 = 0x8942;
const SIOCGIFMAP: u32 = 0x8970;

const IFF_UP: u16 = 0x1;
const IFF_BROADCAST: u16 = 0x2;
const IFF_LOOPBACK: u16 = 0x8;
const IFF_RUNNING: u16 = 0x40;
const IFF_MULTICAST: u16 = 0x1000;
const RTF_GATEWAY: u16 = 0x2;

const ESRCH_: i64 = 3;
const ENOSPC: i64 = 28;
const EOPNOTSUPP: i64 = 95;
const EADDRNOTAVAIL: i64 = 99;
const ENETUNREACH: i64 = 101;
const EBUSY: i64 = 16;

/// sizeof(struct ifreq).
const IFREQ: usize = 40;

/// The flags ifconfig shows for a device.
pub fn flags_of(d: &NetDev) -> u16 {
    let base = IFF_BROADCAST | IFF_MULTICAST;
    if d.up {
        base | IFF_UP | IFF_RUNNING
    } else {
        base
    }
}

/// A sockaddr_in (16 bytes) for `ip`.
fn sin(ip: Ipv4Address) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = 2; // AF_INET
    b[4..8].copy_from_slice(&ip.octets());
    b
}

fn sin_addr(raw: &[u8]) -> Result<Ipv4Address, i64> {
    if raw.len() < 8 || u16::from_ne_bytes([raw[0], raw[1]]) != 2 {
        return Err(-EINVAL);
    }
    Ok(Ipv4Address::new(raw[4], raw[5], raw[6], raw[7]))
}

/// The prefix length of a contiguous netmask.
fn prefix_of(mask: Ipv4Address) -> Result<u8, i64> {
    let m = u32::from_be_bytes(mask.octets());
    let len = m.leading_ones();
    if m.checked_shl(len).unwrap_or(0) != 0 {
        return Err(-EINVAL);
    }
    Ok(len as u8)
}

/// The classful prefix Linux gives an address set by SIOCSIFADDR.
fn classful(ip: Ipv4Address) -> u8 {
    match ip.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// Linux's interface index: lo is 1, then the devices in slot order.
fn if_index(slot: usize) -> i32 {
    slot as i32 + 2
}

fn name_of(raw: &[u8]) -> String {
    let n = raw[..16].split(|&b| b == 0).next().unwrap_or(&[]);
    String::from_utf8_lossy(n).into_owned()
}

/// `lo`: always up at 127.0.0.1/8 (TCP to it is joined inside the kernel); changes are
/// accepted and not kept. True when `data` was filled (a get).
fn loopback(req: u32, data: &mut [u8]) -> Result<bool, i64> {
    let lo = Ipv4Address::new(127, 0, 0, 1);
    match req {
        SIOCGIFFLAGS => {
            let flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
            data[..2].copy_from_slice(&flags.to_ne_bytes());
        }
        SIOCGIFADDR | SIOCGIFDSTADDR => data[..16].copy_from_slice(&sin(lo)),
        SIOCGIFBRDADDR => data[..16].copy_from_slice(&sin(Ipv4Address::UNSPECIFIED)),
        SIOCGIFNETMASK => data[..16].copy_from_slice(&sin(Ipv4Address::new(255, 0, 0, 0))),
        SIOCGIFMETRIC => data[..4].copy_from_slice(&0i32.to_ne_bytes()),
        SIOCGIFMTU => data[..4].copy_from_slice(&65536i32.to_ne_bytes()),
        SIOCGIFTXQLEN => data[..4].copy_from_slice(&1000i32.to_ne_bytes()),
        SIOCGIFMAP => data.fill(0),
        SIOCGIFINDEX => data[..4].copy_from_slice(&1i32.to_ne_bytes()),
        SIOCGIFHWADDR => {
            data[..2].copy_from_slice(&772u16.to_ne_bytes()); // ARPHRD_LOOPBACK
            data[2..8].fill(0);
        }
        SIOCSIFFLAGS | SIOCSIFADDR | SIOCSIFNETMASK | SIOCSIFBRDADDR | SIOCSIFDSTADDR
        | SIOCSIFMETRIC | SIOCSIFMTU => return Ok(false),
        _ => return Err(-EOPNOTSUPP),
    }
    Ok(true)
}

/// Runs an ifconfig plan on a device whose changes need no uml_net call.
fn run_plan(
    d: &mut NetDev,
    plan: Vec<crate::net::ifchange::Change>,
    log: &mut Vec<String>,
) -> Result<(), i64> {
    for change in plan {
        match d.apply(&change, log) {
            Ok(None) => {}
            Ok(Some(_)) | Err(_) => return Err(-EOPNOTSUPP),
        }
    }
    Ok(())
}

impl Sentry {
    /// An interface or route ioctl on a socket; anything else is ENOTTY.
    pub(super) fn netdev_ioctl(&mut self, m: &mut Machine, host: Pid, req: u32, arg: u64) -> i64 {
        let r = match req {
            SIOCGIFCONF => self.ifconf(&m.net, host, arg),
            SIOCADDRT | SIOCDELRT => self.rtentry(&mut m.net, host, req, arg),
            SIOCGIFNAME => self.ifname(&m.net, host, arg),
            SIOCGIFFLAGS..=SIOCGIFMAP => self.ifreq(m, host, req, arg),
            _ => Err(-ENOTTY),
        };
        r.map_or_else(|e| e, |()| 0)
    }

    fn ifconf(&self, net: &Net, host: Pid, arg: u64) -> Result<(), i64> {
        let raw = self.get(host, arg, 16)?;
        let len = i32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]).max(0) as usize;
        let mut buf = [0u8; 8];
        buf.copy_from_slice(&raw[8..16]);
        let buf = u64::from_ne_bytes(buf);
        let mut out = Vec::new();
        let mut lo = [0u8; IFREQ];
        lo[..2].copy_from_slice(b"lo");
        lo[16..32].copy_from_slice(&sin(Ipv4Address::new(127, 0, 0, 1)));
        out.push(lo);
        for d in net.devs.iter().flatten() {
            if let Some(c) = d.ipv4() {
                let mut r = [0u8; IFREQ];
                let name = d.name();
                r[..name.len()].copy_from_slice(name.as_bytes());
                r[16..32].copy_from_slice(&sin(c.address()));
                out.push(r);
            }
        }
        let total = if buf == 0 {
            out.len() * IFREQ
        } else {
            let fit = (len / IFREQ).min(out.len());
            let bytes: Vec<u8> = out[..fit].iter().flatten().copied().collect();
            self.put(host, buf, &bytes)?;
            bytes.len()
        };
        self.put(host, arg, &(total as i32).to_ne_bytes())
    }

    fn ifname(&self, net: &Net, host: Pid, arg: u64) -> Result<(), i64> {
        let raw = self.get(host, arg, IFREQ)?;
        let index = i32::from_ne_bytes([raw[16], raw[17], raw[18], raw[19]]);
        if index == 1 {
            return self.put(host, arg, b"lo\0");
        }
        let slot = usize::try_from(index - 2).map_err(|_| -ENODEV)?;
        if slot >= DEV_SLOTS || net.devs.get(slot).is_none_or(Option::is_none) {
            return Err(-ENODEV);
        }
        let mut name = [0u8; 16];
        let n = dev_name(slot);
        name[..n.len()].copy_from_slice(n.as_bytes());
        self.put(host, arg, &name)
    }

    fn ifreq(&mut self, m: &mut Machine, host: Pid, req: u32, arg: u64) -> Result<(), i64> {
        let mut r = self.get(host, arg, IFREQ)?;
        let name = name_of(&r);
        if name == "lo" {
            if loopback(req, &mut r[16..])? {
                self.put(host, arg, &r)?;
            }
            return Ok(());
        }
        let slot = dev_index(&name).ok_or(-ENODEV)?;
        let d = m
            .net
            .devs
            .get_mut(slot)
            .and_then(Option::as_mut)
            .ok_or(-ENODEV)?;
        let helper = matches!(d.link, Link::Tap { gate: Some(_), .. });
        let data = &mut r[16..];
        let mut log = Vec::new();
        let get = matches!(
            req,
            SIOCGIFFLAGS
                | SIOCGIFADDR
                | SIOCGIFDSTADDR
                | SIOCGIFBRDADDR
                | SIOCGIFNETMASK
                | SIOCGIFMETRIC
                | SIOCGIFMTU
                | SIOCGIFHWADDR
                | SIOCGIFINDEX
                | SIOCGIFTXQLEN
                | SIOCGIFMAP
        );
        if !get && helper {
            return Err(-EOPNOTSUPP);
        }
        let addr = d.ipv4();
        let have = || addr.ok_or(-EADDRNOTAVAIL);
        match req {
            SIOCGIFFLAGS => data[..2].copy_from_slice(&flags_of(d).to_ne_bytes()),
            SIOCGIFADDR | SIOCGIFDSTADDR => data[..16].copy_from_slice(&sin(have()?.address())),
            SIOCGIFBRDADDR => {
                let b = have()?.broadcast().unwrap_or(Ipv4Address::BROADCAST);
                data[..16].copy_from_slice(&sin(b));
            }
            SIOCGIFNETMASK => data[..16].copy_from_slice(&sin(have()?.netmask())),
            SIOCGIFMETRIC => data[..4].copy_from_slice(&0i32.to_ne_bytes()),
            SIOCGIFMTU => data[..4].copy_from_slice(&(crate::net::phy::MTU as i32).to_ne_bytes()),
            SIOCGIFTXQLEN => data[..4].copy_from_slice(&1000i32.to_ne_bytes()),
            SIOCGIFMAP => data.fill(0),
            SIOCGIFINDEX => data[..4].copy_from_slice(&if_index(slot).to_ne_bytes()),
            SIOCGIFHWADDR => {
                data[..2].copy_from_slice(&1u16.to_ne_bytes()); // ARPHRD_ETHER
                data[2..8].copy_from_slice(&d.mac.0);
            }
            SIOCSIFFLAGS => {
                let up = u16::from_ne_bytes([data[0], data[1]]) & IFF_UP != 0;
                let plan = d.plan_up(up);
                run_plan(d, plan, &mut log)?;
            }
            SIOCSIFADDR => {
                let ip = sin_addr(data)?;
                let cidr = (!ip.is_unspecified()).then(|| Ipv4Cidr::new(ip, classful(ip)));
                let plan = d.plan_address(cidr);
                run_plan(d, plan, &mut log)?;
            }
            SIOCSIFNETMASK => {
                let prefix = prefix_of(sin_addr(data)?)?;
                let plan = d.plan_address(Some(Ipv4Cidr::new(have()?.address(), prefix)));
                run_plan(d, plan, &mut log)?;
            }
            // The broadcast address follows the netmask; a metric, destination or MTU
            // other than the device's own is not kept.
            SIOCSIFBRDADDR | SIOCSIFDSTADDR | SIOCSIFMETRIC => {}
            SIOCSIFMTU => {
                let mtu = i32::from_ne_bytes([data[0], data[1], data[2], data[3]]);
                if mtu != crate::net::phy::MTU as i32 {
                    return Err(-EINVAL);
                }
            }
            SIOCSIFHWADDR => {
                if d.up {
                    return Err(-EBUSY);
                }
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&data[2..8]);
                if mac[0] & 1 != 0 || mac == [0; 6] {
                    return Err(-EADDRNOTAVAIL);
                }
                d.mac = MacAddr(mac);
                d.spec.mac = Some(d.mac);
                d.iface
                    .set_hardware_addr(HardwareAddress::Ethernet(EthernetAddress(mac)));
            }
            _ => return Err(-ENOTTY),
        }
        for line in log {
            m.log.info(line);
        }
        if get {
            self.put(host, arg, &r)?;
        }
        Ok(())
    }

    /// SIOCADDRT and SIOCDELRT: the default route (through a gateway) only.
    fn rtentry(&self, net: &mut Net, host: Pid, req: u32, arg: u64) -> Result<(), i64> {
        let r = self.get(host, arg, 120)?;
        let dst = sin_addr(&r[8..24])?;
        let gw = sin_addr(&r[24..40]).unwrap_or(Ipv4Address::UNSPECIFIED);
        let mask = sin_addr(&r[40..56]).unwrap_or(Ipv4Address::UNSPECIFIED);
        let flags = u16::from_ne_bytes([r[56], r[57]]);
        if !dst.is_unspecified() || !mask.is_unspecified() {
            return Err(-EOPNOTSUPP); // only the default route is kept
        }
        if req == SIOCDELRT {
            return if net.del_default_route() {
                Ok(())
            } else {
                Err(-ESRCH_)
            };
        }
        if flags & RTF_GATEWAY == 0 || gw.is_unspecified() {
            return Err(-EOPNOTSUPP);
        }
        net.add_default_route(gw).map_err(|e| match e {
            RouteError::Unreachable => -ENETUNREACH,
            RouteError::Full => -ENOSPC,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_classes() {
        assert_eq!(prefix_of(Ipv4Address::new(255, 255, 255, 0)), Ok(24));
        assert_eq!(prefix_of(Ipv4Address::new(0, 0, 0, 0)), Ok(0));
        assert_eq!(prefix_of(Ipv4Address::new(255, 0, 255, 0)), Err(-EINVAL));
        assert_eq!(classful(Ipv4Address::new(10, 0, 0, 1)), 8);
        assert_eq!(classful(Ipv4Address::new(172, 16, 0, 1)), 16);
        assert_eq!(classful(Ipv4Address::new(192, 168, 1, 1)), 24);
        assert_eq!(
            sin_addr(&sin(Ipv4Address::new(1, 2, 3, 4))),
            Ok(Ipv4Address::new(1, 2, 3, 4))
        );
    }
}
