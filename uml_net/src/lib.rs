//! uml_net's logic, split into checks that run with the caller's privileges and host
//! changes that run as root: `tuntap up` (a tap owned by the caller, the gate address,
//! forwarding) and `add`/`del` (host route, proxy ARP). Addresses pass the policy in
//! policy.rs; LAN addresses are probed first (probe.rs); every change is made over
//! rtnetlink by interface index (host.rs). Each returns the log text that goes back to
//! the kernel.

pub mod check;
pub mod cli;
pub mod config;
pub mod host;
pub mod policy;
pub mod privs;
pub mod probe;

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

use check::Refusal;
use config::{Config, ConfigError};
use policy::{Basis, Claim, HostView, Role};
use uml_proto::helper::AddrOp;
use uml_proto::netlink::{Rtnl, ARPHRD_ETHER};
use uml_proto::tap::{self, Kind, PinnedIface, TapDevice};

/// What `tuntap up` produced: the tap (kept open so it lives until sent) and its log.
pub struct UpOutcome {
    pub tap: Option<TapDevice>,
    pub log: String,
}

/// Checks the gate of `tuntap up`.
pub fn check_gate(gate: &str) -> Result<Ipv4Addr, Refusal> {
    check::unicast("gate", check::dotted_quad("gate", gate)?)
}

/// Reads the host's links, addresses, routes and neighbours.
pub fn host_view() -> Result<HostView, Refusal> {
    let mut nl = Rtnl::open().map_err(|e| Refusal::Host(e.to_string()))?;
    HostView::read(&mut nl).map_err(|e| Refusal::Host(e.to_string()))
}

/// What the policy made of a claim, for the log.
fn basis_text(c: &Claim, view: &HostView) -> String {
    let lans: Vec<String> = c.lans.iter().map(|&i| view.name(i)).collect();
    match c.basis {
        Basis::HostOnly => format!("{}: private, routed by no one (host-only)", c.addr),
        Basis::Lan => format!("{}: on the LAN of {}", c.addr, lans.join(", ")),
        Basis::Configured => format!("{}: allowed by {}", c.addr, config::PATH),
        Basis::SharedGate => format!("{}: already the gate of another tap", c.addr),
    }
}

/// Checks the gate of `tuntap up` against the policy (as the caller).
pub fn plan_gate(
    gate: Ipv4Addr,
    cfg: &Result<Config, ConfigError>,
) -> Result<(Claim, HostView), Refusal> {
    let view = host_view()?;
    let claim = policy::classify(&view, gate, Role::Gate, None, cfg)?;
    Ok((claim, view))
}

/// Duplicate address detection for a LAN claim (needs root for the probe): the
/// neighbour table first, then ARP probes on each LAN.
pub fn detect_duplicates(view: &HostView, claim: &Claim, log: &mut String) -> Result<(), Refusal> {
    if let Some(r) = policy::in_use(view, claim) {
        return Err(r);
    }
    for &lan in &claim.lans {
        let name = view.name(lan);
        let ether = view.link(lan).filter(|l| l.link_type == ARPHRD_ETHER);
        let Some(mac) = ether.and_then(|l| l.mac) else {
            return Err(Refusal::Claim {
                addr: claim.addr,
                why: format!("is on {name}, which is not an Ethernet LAN uml_net can probe"),
            });
        };
        let _ = writeln!(log, "* arp probe for {} on {name}", claim.addr);
        match probe::probe(lan, mac, claim.addr) {
            Ok(None) => {}
            Ok(Some(who)) => {
                return Err(Refusal::Claim {
                    addr: claim.addr,
                    why: format!(
                        "is in use on {name} (answered an ARP probe from {})",
                        policy::mac_text(&who)
                    ),
                })
            }
            Err(e) => {
                return Err(Refusal::Host(format!(
                    "arp probe on {name}: {}",
                    tap::strerror(&e)
                )))
            }
        }
    }
    Ok(())
}

/// Makes a nonpersistent tap owned by `owner`, gives it the checked gate /32, brings
/// it up and turns forwarding on (needs root).
pub fn tuntap_up(clone: &Path, plan: &(Claim, HostView), owner: u32) -> UpOutcome {
    let (claim, view) = plan;
    let gate = claim.addr;
    let mut log = String::new();
    let fail = |mut log: String, e: &dyn std::fmt::Display| {
        let _ = writeln!(log, "uml_net : {e}");
        UpOutcome { tap: None, log }
    };
    let _ = writeln!(log, "* gate {}", basis_text(claim, view));
    if let Err(r) = detect_duplicates(view, claim, &mut log) {
        return fail(log, &r);
    }
    if let Err(e) = ensure_clone_device(clone, &mut log) {
        let e = format!("cannot make {}: {}", clone.display(), tap::strerror(&e));
        return fail(log, &e);
    }
    let dev = match tap::attach(clone, "", Kind::Tap) {
        Ok(d) => d,
        Err(e) => return fail(log, &format!("cannot make a tap device: {e}")),
    };
    let _ = writeln!(log, "* tap device {} for uid {owner}", dev.name);
    if let Err(e) = dev.set_owner(owner) {
        return fail(log, &e);
    }
    // We hold the only descriptor of this nonpersistent device, so its name names it.
    let index = match nix::net::if_::if_nametoindex(dev.name.as_str()) {
        Ok(i) => i,
        Err(e) => return fail(log, &format!("{}: {}", dev.name, e.desc())),
    };
    let _ = writeln!(log, "* {} {gate} netmask 255.255.255.255 up", dev.name);
    if let Err(e) = host::gate_up(index, gate) {
        return fail(log, &format!("setting up {}: {e}", dev.name));
    }
    let _ = writeln!(log, "* ip_forward 1");
    if let Err(e) = host::enable_forwarding() {
        let _ = writeln!(log, "uml_net : enabling forwarding: {}", host::io_text(&e));
    }
    UpOutcome {
        tap: Some(dev),
        log,
    }
}

/// Makes the clone device (character 10:200, mode 0600, in a 0755 directory) when a
/// host lacks it, as the C helper did (needs root).
pub fn ensure_clone_device(clone: &Path, log: &mut String) -> std::io::Result<()> {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    use std::os::unix::fs::DirBuilderExt;
    if clone.exists() {
        return Ok(());
    }
    if let Some(dir) = clone.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)?;
    }
    let _ = writeln!(log, "* mknod {} c 10 200", clone.display());
    mknod(
        clone,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o600),
        makedev(10, 200),
    )
    .map_err(std::io::Error::from)
}

/// A checked `add`/`del`: the caller's tap (pinned), the address, and for `add` the
/// policy's verdict, with the host view it was made from.
#[derive(Debug)]
pub struct AddressPlan {
    pub op: AddrOp,
    pub tap: PinnedIface,
    pub addr: Ipv4Addr,
    pub claim: Option<Claim>,
    pub view: HostView,
}

/// Checks `add|del DEV ADDR NETMASK` for the caller `uid` (as the caller).
pub fn plan_address(
    op: AddrOp,
    dev: &str,
    addr: &str,
    netmask: &str,
    uid: u32,
    sys_class_net: &Path,
    cfg: &Result<Config, ConfigError>,
) -> Result<AddressPlan, Refusal> {
    let dev = check::device_name(dev)?;
    let addr = check::unicast("address", check::dotted_quad("address", addr)?)?;
    let netmask = check::netmask(netmask)?;
    let tap = check::callers_tap(sys_class_net, dev, uid)?;
    let view = host_view()?;
    let claim = match op {
        AddrOp::Add => Some(policy::classify(
            &view,
            addr,
            Role::Guest { netmask },
            Some(tap.index),
            cfg,
        )?),
        AddrOp::Del => None,
    };
    Ok(AddressPlan {
        op,
        tap,
        addr,
        claim,
        view,
    })
}

/// Carries out a checked plan (needs root); returns the log and whether all went well.
pub fn apply_address(plan: &AddressPlan, uid: u32) -> (String, bool) {
    let mut log = String::new();
    let result = (|| {
        check::still_callers(&plan.tap, uid)?;
        let mut ch = host::Changer::new(&plan.tap, uid)?;
        let r = match &plan.claim {
            Some(claim) => {
                let _ = writeln!(log, "* {}", basis_text(claim, &plan.view));
                detect_duplicates(&plan.view, claim, &mut log)?;
                ch.add(&plan.view, plan.addr, &claim.lans)
            }
            None => ch.del(&plan.view, plan.addr),
        };
        log.push_str(&ch.log);
        r
    })();
    match result {
        Ok(()) => (log, true),
        Err(r) => {
            let _ = writeln!(log, "uml_net : {r}");
            (log, false)
        }
    }
}

/// The reply to a transport this host cannot offer.
pub fn unsupported(transport: &str) -> String {
    format!("uml_net : {transport} is not supported on this host; use eth<n>=tuntap instead\n")
}
