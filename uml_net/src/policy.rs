//! Which addresses a member of uml-net may claim, decided from a snapshot of the host's
//! links, addresses, routes and neighbours (read over rtnetlink).
//!
//! Allowed by default: (a) a free address on a LAN subnet the host is directly
//! connected to (published with proxy ARP after the neighbour table and an ARP probe
//! show nobody uses it), (b) a private (RFC 1918) address that no route but a default
//! one covers (the documented host-only setup). Refused always: the host's own
//! addresses, any route's gateway, the network and broadcast addresses of a subnet.
//! Refused unless the administrator's uml_net.conf allows them: public addresses and
//! addresses the host routes explicitly through a gateway or another interface.

use std::net::Ipv4Addr;

use uml_proto::netlink::{
    prefix_mask, Addr, Link, Neigh, NetlinkError, Route, Rtnl, NUD_ANSWERED, RTN_BROADCAST,
    RTN_LOCAL, RTN_UNICAST, RTPROT_KERNEL, RT_SCOPE_LINK, RT_TABLE_LOCAL,
};

use crate::check::Refusal;
use crate::config::{Config, ConfigError, PATH};

/// The protocol tag on the routes and proxy ARP entries uml_net makes (`proto 77` in
/// `ip route` / `ip neigh show proxy`): `del` removes only entries that carry it.
pub const RTPROT_UML_NET: u8 = 77;
/// The rtnl kind of tun/tap devices.
const TUN_KIND: &str = "tun";

/// What the host looks like now.
#[derive(Debug, Clone, Default)]
pub struct HostView {
    pub links: Vec<Link>,
    pub addrs: Vec<Addr>,
    pub routes: Vec<Route>,
    pub neighbours: Vec<Neigh>,
    pub proxies: Vec<Neigh>,
}

impl HostView {
    /// Reads everything over rtnetlink (no privilege needed).
    pub fn read(nl: &mut Rtnl) -> Result<HostView, NetlinkError> {
        Ok(HostView {
            links: nl.links()?,
            addrs: nl.addresses()?,
            routes: nl.routes()?,
            neighbours: nl.neighbours(false)?,
            proxies: nl.neighbours(true)?,
        })
    }

    /// The name of link `index` (or `#index` if it is gone).
    pub fn name(&self, index: u32) -> String {
        self.link(index)
            .map_or_else(|| format!("#{index}"), |l| l.name.clone())
    }

    pub fn link(&self, index: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.index == index)
    }

    fn is_tun(&self, index: u32) -> bool {
        self.link(index)
            .is_some_and(|l| l.kind.as_deref() == Some(TUN_KIND))
    }

    fn describe(&self, r: &Route) -> String {
        let mut s = format!("{}/{}", r.dst, r.dst_len);
        if let Some(g) = r.gateways.first() {
            s += &format!(" via {g}");
        }
        if let Some(i) = r.oif {
            s += &format!(" dev {}", self.name(i));
        }
        s
    }
}

/// What the address is claimed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The host side of a tap (`tuntap up GATE`): a local /32 address on the tap.
    Gate,
    /// A guest address routed to the tap (`add DEV ADDR NETMASK`).
    Guest { netmask: Ipv4Addr },
}

/// Why the claim is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// A private address no route covers.
    HostOnly,
    /// A free address on a directly connected LAN.
    Lan,
    /// A subnet uml_net.conf lists.
    Configured,
    /// A gate already in use on other tun/tap devices (several UMLs share one gate).
    SharedGate,
}

/// An allowed claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub addr: Ipv4Addr,
    pub basis: Basis,
    /// LAN interfaces whose subnet holds the address: probed first and, for a guest,
    /// where its proxy ARP entry is published.
    pub lans: Vec<u32>,
}

fn refuse(addr: Ipv4Addr, why: String) -> Refusal {
    Refusal::Claim { addr, why }
}

/// Decides whether `addr` may be claimed in `role` (for the tap `tap`, whose own routes
/// do not count as someone else's).
pub fn classify(
    view: &HostView,
    addr: Ipv4Addr,
    role: Role,
    tap: Option<u32>,
    config: &Result<Config, ConfigError>,
) -> Result<Claim, Refusal> {
    if let Role::Guest { netmask } = role {
        let (a, m) = (u32::from(addr), u32::from(netmask));
        if m.leading_ones() <= 30 && a & !m == 0 {
            return Err(refuse(
                addr,
                format!("is the network address of its subnet (netmask {netmask})"),
            ));
        }
        if m.leading_ones() <= 30 && a | m == u32::MAX {
            return Err(refuse(
                addr,
                format!("is the broadcast address of its subnet (netmask {netmask})"),
            ));
        }
    }
    // The host's own addresses.
    let local: Vec<&Addr> = view.addrs.iter().filter(|a| a.local == addr).collect();
    let shared_gate = role == Role::Gate
        && !local.is_empty()
        && local
            .iter()
            .all(|a| a.prefix_len == 32 && view.is_tun(a.index));
    if let Some(a) = local.first().filter(|_| !shared_gate) {
        return Err(refuse(
            addr,
            format!(
                "is a local address of this host (on {})",
                view.name(a.index)
            ),
        ));
    }
    for r in &view.routes {
        let special = r.table == RT_TABLE_LOCAL || r.kind == RTN_LOCAL || r.kind == RTN_BROADCAST;
        if r.kind == RTN_LOCAL && r.covers(addr) && !shared_gate {
            return Err(refuse(
                addr,
                format!(
                    "is a local address of this host (route local {})",
                    view.describe(r)
                ),
            ));
        }
        if r.kind == RTN_BROADCAST && r.dst == addr {
            return Err(refuse(addr, "is a broadcast address of this host".into()));
        }
        if r.gateways.contains(&addr) {
            return Err(refuse(
                addr,
                format!("is the gateway of the route {}", view.describe(r)),
            ));
        }
        if !special && r.dst_len > 0 && r.dst_len <= 30 && r.covers(addr) {
            let net = u32::from(r.dst) & prefix_mask(r.dst_len);
            let a = u32::from(addr);
            if a == net {
                return Err(refuse(
                    addr,
                    format!("is the network address of {}", view.describe(r)),
                ));
            }
            if a == net | !prefix_mask(r.dst_len) {
                return Err(refuse(
                    addr,
                    format!("is the broadcast address of {}", view.describe(r)),
                ));
            }
        }
    }
    if shared_gate {
        return Ok(Claim {
            addr,
            basis: Basis::SharedGate,
            lans: Vec::new(),
        });
    }
    // Routes that already say where the address is, other than defaults and the
    // tap's own routes.
    let covering: Vec<&Route> = view
        .routes
        .iter()
        .filter(|r| r.table != RT_TABLE_LOCAL && r.kind != RTN_LOCAL && r.kind != RTN_BROADCAST)
        .filter(|r| r.dst_len > 0 && r.covers(addr))
        .filter(|r| tap.is_none() || r.oif != tap)
        .collect();
    let connected = |r: &Route| {
        r.kind == RTN_UNICAST
            && r.protocol == RTPROT_KERNEL
            && r.scope == RT_SCOPE_LINK
            && r.gateways.is_empty()
            && r.oif.is_some()
    };
    let mut lans: Vec<u32> = covering
        .iter()
        .filter(|r| connected(r))
        .filter_map(|r| r.oif)
        .collect();
    lans.sort_unstable();
    lans.dedup();
    let explicit = covering.iter().find(|r| !connected(r));
    let needs_config = match explicit {
        Some(r) if !r.gateways.is_empty() => Some(format!(
            "is routed through a gateway (route {})",
            view.describe(r)
        )),
        Some(r) => Some(format!("is routed explicitly (route {})", view.describe(r))),
        None if covering.is_empty() && !addr.is_private() => Some("is a public address".into()),
        None => None,
    };
    let basis = match needs_config {
        None if covering.is_empty() => Basis::HostOnly,
        None => Basis::Lan,
        Some(why) => match config {
            Ok(c) if c.allows(addr) => Basis::Configured,
            Ok(_) => return Err(refuse(addr, format!("{why}, and {PATH} does not allow it"))),
            Err(e) => return Err(refuse(addr, format!("{why}, and {PATH} is not used: {e}"))),
        },
    };
    Ok(Claim { addr, basis, lans })
}

/// The neighbour-table half of duplicate address detection: Some(reason) when a
/// neighbour on one of `claim.lans` has answered for the address, or someone else
/// publishes it there.
pub fn in_use(view: &HostView, claim: &Claim) -> Option<Refusal> {
    let addr = claim.addr;
    for &lan in &claim.lans {
        if let Some(n) = view
            .neighbours
            .iter()
            .find(|n| n.index == lan && n.dst == addr && n.state & NUD_ANSWERED != 0)
        {
            let mac = n.lladdr.as_deref().map(mac_text).unwrap_or_default();
            return Some(refuse(
                addr,
                format!("is in use on {} (neighbour {mac})", view.name(lan)),
            ));
        }
    }
    view.proxies
        .iter()
        .find(|p| p.dst == addr && p.protocol != RTPROT_UML_NET)
        .map(|p| {
            refuse(
                addr,
                format!("is already published (proxy ARP) on {}", view.name(p.index)),
            )
        })
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use uml_proto::netlink::{RTN_BROADCAST, RT_TABLE_MAIN};

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn route(dst: &str, len: u8, gw: Option<&str>, oif: u32, proto: u8) -> Route {
        Route {
            table: RT_TABLE_MAIN,
            dst: ip(dst),
            dst_len: len,
            protocol: proto,
            scope: if gw.is_some() { 0 } else { RT_SCOPE_LINK },
            kind: RTN_UNICAST,
            oif: Some(oif),
            gateways: gw.map(ip).into_iter().collect(),
        }
    }

    fn link(index: u32, name: &str, kind: Option<&str>) -> Link {
        Link {
            index,
            link_type: 1,
            name: name.into(),
            kind: kind.map(Into::into),
            mac: None,
            proxy_arp: None,
        }
    }

    /// A host on 192.168.1.0/24 (eth0) with a default gateway, a VPN subnet behind
    /// 192.168.1.9, a device route to 172.20.0.0/16 on eth1, and tap0 with a gate.
    fn host() -> HostView {
        let addr = |index, local: &str, len| Addr {
            index,
            prefix_len: len,
            local: ip(local),
            broadcast: None,
        };
        let mut local = route("192.168.1.5", 32, None, 2, RTPROT_KERNEL);
        local.table = RT_TABLE_LOCAL;
        local.kind = RTN_LOCAL;
        let mut bcast = route("192.168.1.255", 32, None, 2, RTPROT_KERNEL);
        bcast.table = RT_TABLE_LOCAL;
        bcast.kind = RTN_BROADCAST;
        HostView {
            links: vec![
                link(1, "lo", None),
                link(2, "eth0", None),
                link(3, "eth1", None),
                link(4, "tap0", Some("tun")),
            ],
            addrs: vec![
                addr(1, "127.0.0.1", 8),
                addr(2, "192.168.1.5", 24),
                addr(4, "10.0.0.254", 32),
            ],
            routes: vec![
                route("0.0.0.0", 0, Some("192.168.1.1"), 2, 4),
                route("192.168.1.0", 24, None, 2, RTPROT_KERNEL),
                route("10.8.0.0", 16, Some("192.168.1.9"), 2, 4),
                route("172.20.0.0", 16, None, 3, 4),
                route("10.0.0.1", 32, None, 4, RTPROT_UML_NET),
                local,
                bcast,
            ],
            neighbours: vec![Neigh {
                index: 2,
                dst: ip("192.168.1.20"),
                state: 0x02,
                flags: 0,
                lladdr: Some(vec![2, 0, 0, 0, 0, 0x20]),
                protocol: 0,
            }],
            proxies: vec![Neigh {
                index: 2,
                dst: ip("192.168.1.30"),
                state: 0x80,
                flags: 0x08,
                lladdr: None,
                protocol: 0,
            }],
        }
    }

    fn guest(
        view: &HostView,
        a: &str,
        cfg: &Result<Config, ConfigError>,
    ) -> Result<Claim, Refusal> {
        let role = Role::Guest {
            netmask: ip("255.255.255.0"),
        };
        classify(view, ip(a), role, Some(4), cfg)
    }

    fn why(r: Result<Claim, Refusal>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn defaults_allow_host_only_private_and_free_lan_addresses() {
        let v = host();
        let none = Ok(Config::default());
        let c = guest(&v, "192.168.0.253", &none).unwrap();
        assert_eq!((c.basis, c.lans.len()), (Basis::HostOnly, 0));
        let c = guest(&v, "192.168.1.77", &none).unwrap();
        assert_eq!((c.basis, c.lans.clone()), (Basis::Lan, vec![2]));
        assert!(in_use(&v, &c).is_none());
        // The tap's own routes are not someone else's.
        assert_eq!(guest(&v, "10.0.0.1", &none).unwrap().basis, Basis::HostOnly);
        // Another tap's routed guest is.
        let other = Role::Guest {
            netmask: ip("255.255.255.0"),
        };
        assert!(why(classify(&v, ip("10.0.0.1"), other, Some(9), &none)).contains("routed"));
    }

    #[test]
    fn always_refused_whatever_the_config_says() {
        let v = host();
        let all = Ok(Config {
            allow: vec![crate::config::Subnet {
                net: ip("0.0.0.0"),
                len: 0,
            }],
        });
        for (a, what) in [
            ("192.168.1.5", "local address"),
            ("192.168.1.1", "gateway"),
            ("192.168.1.9", "gateway"),
            ("192.168.1.255", "broadcast"),
            ("192.168.1.0", "network address"),
            ("10.0.0.254", "local address"),
            ("172.20.0.0", "network address"),
        ] {
            let w = why(guest(&v, a, &all));
            assert!(w.contains(what), "{a}: {w}");
            assert!(!w.contains('\n'));
        }
        let w = why(classify(&v, ip("192.168.1.1"), Role::Gate, None, &all));
        assert!(w.contains("gateway"), "{w}");
    }

    #[test]
    fn public_and_explicitly_routed_need_the_config() {
        let v = host();
        let none = Ok(Config::default());
        assert!(why(guest(&v, "8.8.8.8", &none)).contains("is a public address, and"));
        assert!(why(guest(&v, "10.8.3.3", &none))
            .contains("through a gateway (route 10.8.0.0/16 via 192.168.1.9"));
        assert!(why(guest(&v, "172.20.1.1", &none))
            .contains("routed explicitly (route 172.20.0.0/16 dev eth1)"));
        let cfg = crate::config::parse("allow 8.8.8.0/24\nallow 172.20.1.0/24\n");
        assert_eq!(guest(&v, "8.8.8.8", &cfg).unwrap().basis, Basis::Configured);
        assert_eq!(
            guest(&v, "172.20.1.1", &cfg).unwrap().basis,
            Basis::Configured
        );
        assert!(guest(&v, "10.8.3.3", &cfg).is_err());
        let broken = Err(ConfigError::Untrusted {
            what: PATH.into(),
            why: "is owned by uid 1000, not root".into(),
        });
        assert!(why(guest(&v, "8.8.8.8", &broken)).contains("is not used"));
    }

    #[test]
    fn gates_may_be_shared_between_taps_but_not_taken_from_other_interfaces() {
        let v = host();
        let none = Ok(Config::default());
        let c = classify(&v, ip("10.0.0.254"), Role::Gate, None, &none).unwrap();
        assert_eq!(c.basis, Basis::SharedGate);
        assert!(classify(&v, ip("192.168.1.5"), Role::Gate, None, &none).is_err());
        let c = classify(&v, ip("192.168.0.254"), Role::Gate, None, &none).unwrap();
        assert_eq!(c.basis, Basis::HostOnly);
    }

    #[test]
    fn the_neighbour_table_and_others_proxies_mark_an_address_used() {
        let v = host();
        let none = Ok(Config::default());
        let c = guest(&v, "192.168.1.20", &none).unwrap();
        assert!(in_use(&v, &c)
            .unwrap()
            .to_string()
            .contains("in use on eth0 (neighbour 02:00:00:00:00:20)"));
        let c = guest(&v, "192.168.1.30", &none).unwrap();
        assert!(in_use(&v, &c)
            .unwrap()
            .to_string()
            .contains("already published"));
    }
}
