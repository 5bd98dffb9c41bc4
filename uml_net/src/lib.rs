//! uml_net's logic, split into checks that run with the caller's privileges and host
//! changes that run as root: `tuntap up` (a tap owned by the caller, the gate address,
//! forwarding) and `add`/`del` (host route, proxy ARP). Each returns the log text that
//! goes back to the kernel.

pub mod check;
pub mod cli;
pub mod host;
pub mod privs;

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

use check::Refusal;
use uml_proto::helper::AddrOp;
use uml_proto::tap::{self, Kind, TapDevice};

/// What `tuntap up` produced: the tap (kept open so it lives until sent) and its log.
pub struct UpOutcome {
    pub tap: Option<TapDevice>,
    pub log: String,
}

/// Checks the gate of `tuntap up`.
pub fn check_gate(gate: &str) -> Result<Ipv4Addr, Refusal> {
    check::unicast("gate", check::dotted_quad("gate", gate)?)
}

/// Makes a nonpersistent tap owned by `owner`, gives it `gate`/32, brings it up and
/// turns forwarding on (needs root).
pub fn tuntap_up(clone: &Path, gate: Ipv4Addr, owner: u32) -> UpOutcome {
    let mut log = String::new();
    if let Err(e) = ensure_clone_device(clone, &mut log) {
        let _ = writeln!(
            log,
            "uml_net : cannot make {}: {}",
            clone.display(),
            tap::strerror(&e)
        );
        return UpOutcome { tap: None, log };
    }
    let dev = match tap::attach(clone, "", Kind::Tap) {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(log, "uml_net : cannot make a tap device: {e}");
            return UpOutcome { tap: None, log };
        }
    };
    let _ = writeln!(log, "* tap device {} for uid {owner}", dev.name);
    if let Err(e) = dev.set_owner(owner) {
        let _ = writeln!(log, "uml_net : {e}");
        return UpOutcome { tap: None, log };
    }
    let _ = writeln!(log, "* {} {gate} netmask 255.255.255.255 up", dev.name);
    if let Err(e) = host::set_address_up(&dev.name, gate, Ipv4Addr::BROADCAST) {
        let _ = writeln!(
            log,
            "uml_net : setting up {}: {}",
            dev.name,
            tap::strerror(&e)
        );
        return UpOutcome { tap: None, log };
    }
    let _ = writeln!(log, "* ip_forward 1");
    if let Err(e) = host::enable_forwarding() {
        let _ = writeln!(log, "uml_net : enabling forwarding: {}", tap::strerror(&e));
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

/// A checked `add`/`del`: which route and which proxy ARP entries to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPlan {
    pub op: AddrOp,
    pub dev: String,
    pub addr: Ipv4Addr,
    /// Host interfaces whose subnet holds `addr` (proxy ARP entries go there).
    pub proxy_ifaces: Vec<String>,
}

/// Checks `add|del DEV ADDR NETMASK` for the caller `uid`.
pub fn plan_address(
    op: AddrOp,
    dev: &str,
    addr: &str,
    netmask: &str,
    uid: u32,
    sys_class_net: &Path,
) -> Result<AddressPlan, Refusal> {
    let dev = check::device_name(dev)?;
    let addr = check::dotted_quad("address", addr)?;
    let mask = check::netmask(netmask)?;
    let hosts = host::host_addresses().unwrap_or_default();
    let own: Vec<Ipv4Addr> = hosts.iter().map(|h| h.addr).collect();
    check::guest_address(addr, mask, &own)?;
    check::callers_tap(sys_class_net, dev, uid)?;
    Ok(AddressPlan {
        op,
        dev: dev.to_owned(),
        addr,
        proxy_ifaces: host::interfaces_reaching(&hosts, addr, dev),
    })
}

/// Carries out a checked plan (needs root); returns the log and whether all went well.
pub fn apply_address(plan: &AddressPlan) -> (String, bool) {
    let add = plan.op == AddrOp::Add;
    let (word, sw) = if add { ("add", 1) } else { ("del", 0) };
    let (dev, addr) = (&plan.dev, plan.addr);
    let mut log = String::new();
    let mut ok = true;
    let mut step = |log: &mut String, what: String, r: std::io::Result<()>| {
        let _ = writeln!(log, "* {what}");
        if let Err(e) = r {
            let _ = writeln!(log, "uml_net : {what}: {}", tap::strerror(&e));
            ok = false;
        }
    };
    step(
        &mut log,
        format!("route {word} -host {addr} dev {dev}"),
        host::host_route(add, addr, dev),
    );
    step(
        &mut log,
        format!("proxy_arp {sw} on {dev}"),
        host::set_proxy_arp(dev, add),
    );
    for iface in &plan.proxy_ifaces {
        step(
            &mut log,
            format!("arp {word} {addr} on {iface} pub"),
            host::proxy_arp_entry(add, addr, iface),
        );
    }
    (log, ok)
}

/// The reply to a transport this host cannot offer.
pub fn unsupported(transport: &str) -> String {
    format!("uml_net : {transport} is not supported on this host; use eth<n>=tuntap instead\n")
}
