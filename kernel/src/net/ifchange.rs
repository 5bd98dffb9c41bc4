//! What `ifconfig` does to a device, as a list of changes run in order: the address,
//! the up/down flag, and for a helper-made tap (`tuntap,,MAC,GATE`) the uml_net calls
//! that make the tap and add or remove the host route. A change that needs uml_net
//! starts the call and hands it back; the caller (a shell job, or the shutdown path
//! through `run_now`) brings the answer to `finish`. Nothing here waits.

use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Cidr};
use uml_proto::ether::MacAddr;
use uml_proto::helper::AddrOp;

use super::tuntap::{HelperCall, HelperDone};
use super::{Link, NetDev, NetError};

/// One step of an ifconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Set (None: clear) the IPv4 address; a device without a given MAC takes
    /// fe:fd:<address> the first time, as UML does.
    Address(Option<Ipv4Cidr>),
    /// `uml_net add|del` the host route for this address (helper taps only).
    Route(AddrOp, Ipv4Cidr),
    /// The same for the address the device has when the step runs.
    RouteCurrent(AddrOp),
    /// `uml_net tuntap up GATE`: make the helper tap.
    TapUp,
    /// The up/down flag; a helper tap is closed on the way down.
    Flag(bool),
}

impl NetDev {
    /// The changes that set (or clear) the address: the old host route goes, the new
    /// one comes.
    pub fn plan_address(&self, cidr: Option<Ipv4Cidr>) -> Vec<Change> {
        let mut plan = Vec::new();
        if let Some(old) = self.ipv4() {
            plan.push(Change::Route(AddrOp::Del, old));
        }
        plan.push(Change::Address(cidr));
        if let Some(new) = cidr {
            plan.push(Change::Route(AddrOp::Add, new));
        }
        plan
    }

    /// The changes that bring the device up or down (none if it already is).
    pub fn plan_up(&self, up: bool) -> Vec<Change> {
        let helper = matches!(self.link, Link::Tap { gate: Some(_), .. });
        match (up == self.up, helper, up) {
            (true, _, _) => Vec::new(),
            (false, true, true) => vec![
                Change::TapUp,
                Change::Flag(true),
                Change::RouteCurrent(AddrOp::Add),
            ],
            (false, true, false) => vec![Change::RouteCurrent(AddrOp::Del), Change::Flag(false)],
            (false, false, _) => vec![Change::Flag(up)],
        }
    }

    /// Does `change` now, or starts the uml_net call it needs (then its answer goes to
    /// `finish`). Route failures are only logged, as linux.uml does; a tap that cannot
    /// be made is an error.
    pub fn apply(
        &mut self,
        change: &Change,
        log: &mut Vec<String>,
    ) -> Result<Option<HelperCall>, NetError> {
        match change {
            Change::Address(cidr) => {
                self.set_address(*cidr, log);
                Ok(None)
            }
            Change::Route(op, c) => Ok(self.start_route(*op, *c, log)),
            Change::RouteCurrent(op) => Ok(self.ipv4().and_then(|c| self.start_route(*op, c, log))),
            Change::TapUp => match &self.link {
                Link::Tap {
                    gate: Some(gate), ..
                } => HelperCall::tuntap_up(gate).map(Some),
                _ => Ok(None),
            },
            Change::Flag(up) => {
                if let Link::Tap { tap, gate: Some(_) } = &mut self.link {
                    if !up {
                        *tap = None;
                    }
                }
                self.up = *up;
                Ok(None)
            }
        }
    }

    /// Takes the answer of the uml_net call `change` started.
    pub fn finish(
        &mut self,
        change: &Change,
        done: Result<HelperDone, NetError>,
        log: &mut Vec<String>,
    ) -> Result<(), NetError> {
        match (change, done) {
            (Change::TapUp, Ok(HelperDone::Tap(t, text))) => {
                if !text.is_empty() {
                    log.push(text);
                }
                if let Link::Tap { tap, .. } = &mut self.link {
                    *tap = Some(t);
                }
                Ok(())
            }
            (Change::TapUp, Err(e)) => Err(e),
            (_, Ok(HelperDone::Text(text))) if !text.is_empty() => {
                log.push(text);
                Ok(())
            }
            (_, Err(e)) => {
                log.push(e.to_string());
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Runs `plan` to the end, waiting for each uml_net call (shutdown only: the loop
    /// is over by then).
    pub fn run_now(&mut self, plan: &[Change], log: &mut Vec<String>) -> Result<(), NetError> {
        for change in plan {
            if let Some(call) = self.apply(change, log)? {
                self.finish(change, call.wait(), log)?;
            }
        }
        Ok(())
    }

    fn set_address(&mut self, cidr: Option<Ipv4Cidr>, log: &mut Vec<String>) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            if let Some(c) = cidr {
                let _ = addrs.push(IpCidr::Ipv4(c));
            }
        });
        if let (Some(c), None) = (cidr, self.spec.mac) {
            let o = c.address().octets();
            self.mac = MacAddr([0xfe, 0xfd, o[0], o[1], o[2], o[3]]);
            self.spec.mac = Some(self.mac);
            self.iface
                .set_hardware_addr(HardwareAddress::Ethernet(EthernetAddress(self.mac.0)));
        }
        if let (Some(new), Link::Tap { gate: Some(g), .. }) = (cidr, &self.link) {
            if *g == new.address().to_string() {
                log.push("The tap IP address and the UML eth IP address must be different".into());
            }
        }
    }

    /// Starts `uml_net add|del` for a helper-made tap that exists; a failure to start
    /// is logged.
    fn start_route(&self, op: AddrOp, c: Ipv4Cidr, log: &mut Vec<String>) -> Option<HelperCall> {
        let tap = self.link.helper_tap()?;
        let addr = c.address().to_string();
        let mask = c.netmask().to_string();
        HelperCall::address(op, tap, &addr, &mask)
            .inspect_err(|e| log.push(e.to_string()))
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::klog::KernelLog;
    use crate::net::Net;
    use smoltcp::wire::Ipv4Address;

    #[test]
    fn a_helper_tap_plans_its_uml_net_calls_and_a_plain_change_needs_none() {
        let mut net = Net::default();
        let mut klog = KernelLog::new(std::time::Instant::now(), true);
        // A helper-mode tap: no host resource until it goes up.
        let n = net.attach("eth0=tuntap,,,10.0.0.254", &mut klog).unwrap();
        let d = net.devs[n].as_mut().unwrap();
        let c = Ipv4Cidr::new(Ipv4Address::new(10, 0, 0, 1), 24);
        assert_eq!(
            d.plan_address(Some(c)),
            vec![Change::Address(Some(c)), Change::Route(AddrOp::Add, c)]
        );
        assert_eq!(
            d.plan_up(true),
            vec![
                Change::TapUp,
                Change::Flag(true),
                Change::RouteCurrent(AddrOp::Add)
            ]
        );
        assert!(d.plan_up(false).is_empty(), "already down");
        // While down there is no tap: the address and route steps run at once.
        let mut log = Vec::new();
        for change in d.plan_address(Some(c)) {
            assert!(d.apply(&change, &mut log).unwrap().is_none());
        }
        assert_eq!(d.ipv4(), Some(c));
        assert_eq!(d.mac.0, [0xfe, 0xfd, 10, 0, 0, 1]);
        assert_eq!(
            d.plan_address(None),
            vec![Change::Route(AddrOp::Del, c), Change::Address(None)]
        );
        // The gateway's own address is warned about.
        let gate = Ipv4Cidr::new(Ipv4Address::new(10, 0, 0, 254), 24);
        d.apply(&Change::Address(Some(gate)), &mut log).unwrap();
        assert!(log[0].contains("must be different"), "{log:?}");
        // Up and down on the flag alone.
        d.apply(&Change::Flag(true), &mut log).unwrap();
        assert!(d.up);
        assert_eq!(
            d.plan_up(false),
            vec![Change::RouteCurrent(AddrOp::Del), Change::Flag(false)]
        );
        d.run_now(&[Change::Flag(false)], &mut log).unwrap();
        assert!(!d.up);
    }
}
