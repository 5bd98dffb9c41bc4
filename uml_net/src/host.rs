//! The host changes uml_net makes, all over rtnetlink by interface index (never a
//! shell, an external command or an interface name): the gate address and up flag of a
//! new tap, IPv4 forwarding, a guest's host route, the tap's proxy_arp switch and the
//! guest's proxy ARP entries. Every change is logged; before each one the caller's tap
//! is checked again through its pinned sysfs directory; a failed step undoes the steps
//! before it, newest first.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::Ipv4Addr;

use uml_proto::netlink::{NetlinkError, Rtnl};
use uml_proto::tap::{strerror, PinnedIface};

use crate::check::{self, Refusal};
use crate::policy::{HostView, RTPROT_UML_NET};

/// Turns IPv4 forwarding on (a host-wide switch: /proc/sys is the only interface).
pub fn enable_forwarding() -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .open("/proc/sys/net/ipv4/ip_forward")?;
    f.write_all(b"1\n")
}

/// A change made, so that it can be undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Route(Ipv4Addr),
    ProxyArpOn,
    Proxy { lan: u32, addr: Ipv4Addr },
}

/// Changes for one caller's tap.
pub struct Changer<'a> {
    nl: Rtnl,
    tap: &'a PinnedIface,
    uid: u32,
    pub log: String,
    done: Vec<Done>,
}

impl<'a> Changer<'a> {
    /// Opens the netlink socket (as root: changes need CAP_NET_ADMIN at open time).
    pub fn new(tap: &'a PinnedIface, uid: u32) -> Result<Changer<'a>, Refusal> {
        let nl = Rtnl::open().map_err(|e| Refusal::Host(e.to_string()))?;
        Ok(Changer {
            nl,
            tap,
            uid,
            log: String::new(),
            done: Vec::new(),
        })
    }

    /// Logs `what`, checks the tap again, then runs `change`.
    fn step(
        &mut self,
        what: String,
        change: impl FnOnce(&mut Rtnl) -> Result<(), NetlinkError>,
    ) -> Result<(), Refusal> {
        let _ = writeln!(self.log, "* {what}");
        check::still_callers(self.tap, self.uid)?;
        change(&mut self.nl).map_err(|e| Refusal::Host(format!("{what}: {e}")))
    }

    /// Adds the guest's host route, proxy_arp on the tap and a proxy ARP entry on
    /// each of `lans`; on failure undoes what it did and returns the reason.
    pub fn add(&mut self, view: &HostView, addr: Ipv4Addr, lans: &[u32]) -> Result<(), Refusal> {
        let r = self.try_add(view, addr, lans);
        if r.is_err() {
            self.undo();
        }
        r
    }

    fn try_add(&mut self, view: &HostView, addr: Ipv4Addr, lans: &[u32]) -> Result<(), Refusal> {
        let (tap, name) = (self.tap.index, self.tap.name.clone());
        let ours_already = view.routes.iter().any(|r| is_ours(r, tap, addr));
        if ours_already {
            let _ = writeln!(self.log, "* route to {addr} dev {name} is already there");
        } else {
            self.step(
                format!("route add -host {addr} dev {name} proto {RTPROT_UML_NET}"),
                |nl| nl.add_host_route(tap, addr, RTPROT_UML_NET),
            )?;
            self.done.push(Done::Route(addr));
        }
        let proxy_on = view.link(tap).and_then(|l| l.proxy_arp) == Some(true);
        if !proxy_on {
            self.step(format!("proxy_arp 1 on {name}"), |nl| {
                nl.set_proxy_arp(tap, true)
            })?;
            self.done.push(Done::ProxyArpOn);
        }
        for &lan in lans {
            let lan_name = view.name(lan);
            if view.proxies.iter().any(|p| p.index == lan && p.dst == addr) {
                let _ = writeln!(
                    self.log,
                    "* proxy ARP for {addr} on {lan_name} is already there"
                );
                continue;
            }
            self.step(format!("arp add {addr} on {lan_name} pub"), |nl| {
                nl.add_proxy(lan, addr, RTPROT_UML_NET)
            })?;
            self.done.push(Done::Proxy { lan, addr });
        }
        Ok(())
    }

    /// Undoes this run's changes, newest first (by index; a tap that is gone took its
    /// route and switch with it).
    fn undo(&mut self) {
        let tap = self.tap.index;
        while let Some(d) = self.done.pop() {
            let (what, r) = match d {
                Done::Route(addr) => (
                    format!("undo: route del -host {addr}"),
                    self.nl.del_host_route(tap, addr, RTPROT_UML_NET),
                ),
                Done::ProxyArpOn => (
                    "undo: proxy_arp 0".into(),
                    self.nl.set_proxy_arp(tap, false),
                ),
                Done::Proxy { lan, addr } => (
                    format!("undo: arp del {addr} on #{lan} pub"),
                    self.nl.del_proxy(lan, addr),
                ),
            };
            let _ = writeln!(self.log, "* {what}");
            if let Err(e) = r {
                let _ = writeln!(self.log, "uml_net : {what}: {e}");
            }
        }
    }

    /// Removes what uml_net made for `addr` through this tap: its host route (tagged
    /// with RTPROT_UML_NET, out of this tap's index), the proxy ARP entries it tagged,
    /// and proxy_arp on the tap when no route of uml_net's uses the tap any more.
    /// Nothing of anyone else's is touched.
    pub fn del(&mut self, view: &HostView, addr: Ipv4Addr) -> Result<(), Refusal> {
        let (tap, name) = (self.tap.index, self.tap.name.clone());
        if !view.routes.iter().any(|r| is_ours(r, tap, addr)) {
            return Err(Refusal::Claim {
                addr,
                why: format!("has no route through {name} made by uml_net; nothing removed"),
            });
        }
        self.step(
            format!("route del -host {addr} dev {name} proto {RTPROT_UML_NET}"),
            |nl| nl.del_host_route(tap, addr, RTPROT_UML_NET),
        )?;
        let mut failed = None;
        for p in view
            .proxies
            .iter()
            .filter(|p| p.dst == addr && p.protocol == RTPROT_UML_NET)
        {
            let what = format!("arp del {addr} on {} pub", view.name(p.index));
            if let Err(e) = self.step(what, |nl| nl.del_proxy(p.index, addr)) {
                failed.get_or_insert(e);
            }
        }
        let others = view
            .routes
            .iter()
            .any(|r| r.protocol == RTPROT_UML_NET && r.oif == Some(tap) && r.dst != addr);
        if !others && view.link(tap).and_then(|l| l.proxy_arp) != Some(false) {
            if let Err(e) = self.step(format!("proxy_arp 0 on {name}"), |nl| {
                nl.set_proxy_arp(tap, false)
            }) {
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

/// A main-table host route to `addr` out of `tap` that uml_net made.
fn is_ours(r: &uml_proto::netlink::Route, tap: u32, addr: Ipv4Addr) -> bool {
    r.protocol == RTPROT_UML_NET
        && r.oif == Some(tap)
        && r.dst == addr
        && r.dst_len == 32
        && r.table == uml_proto::netlink::RT_TABLE_MAIN
}

/// Gives the new tap `index` its gate /32 and brings it up.
pub fn gate_up(index: u32, gate: Ipv4Addr) -> Result<(), String> {
    let mut nl = Rtnl::open().map_err(|e| e.to_string())?;
    nl.add_address(index, gate, 32).map_err(|e| e.to_string())?;
    nl.set_up(index).map_err(|e| e.to_string())
}

/// The text of an io::Error as perror would print it.
pub fn io_text(e: &io::Error) -> String {
    strerror(e)
}
