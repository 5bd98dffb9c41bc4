//! The text that names an overlay endpoint, `KIND:REMOTE,option=value,...`, with
//! linux.uml's vector-transport option names where they exist (`rx_session`,
//! `tx_cookie`, `cookie64`, `counter`, `pin_counter`, `udp`, `srcport`, `dstport`,
//! `rx_key`, `sequence`, ...), so an uplink is written the way the guest's side is
//! (`src_port`/`dst_port` are accepted too):
//! - `vxlan:REMOTE[:PORT],vni=N[,local=ADDR][,group=MCASTADDR]`
//! - `l2tpv3:REMOTE,rx_session=N,tx_session=N[,udp=1,srcport=P,dstport=P][,rx_cookie=C,
//!   tx_cookie=C[,cookie64=1]][,counter=1[,pin_counter=1]][,local=ADDR]`
//! - `gre:REMOTE[,key=K | ,rx_key=K,tx_key=K][,sequence=1[,pin_sequence=1]][,local=ADDR]`
//!
//! Numbers are read as the kernel reads them: `0x` hexadecimal, a leading `0` octal.

use super::gre::GreEndpoint;
use super::l2tpv3::{Cookie, L2tpv3Endpoint};
use super::vxlan;
use super::OverlayError;
use std::net::{IpAddr, SocketAddr};

/// The IANA L2TP port: our default for `srcport`/`dstport` in UDP mode (linux.uml's
/// transport has no default and needs both).
pub const L2TP_UDP_PORT: u16 = 1701;

/// One overlay endpoint, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverlaySpec {
    Vxlan {
        /// Where frames go: a unicast endpoint or a multicast group.
        remote: SocketAddr,
        vni: u32,
        /// The address to listen on (default: any, the remote's port).
        local: Option<IpAddr>,
    },
    L2tpv3 {
        remote: IpAddr,
        /// Over UDP: (our port, the peer's port).
        ports: Option<(u16, u16)>,
        local: Option<IpAddr>,
        endpoint: L2tpv3Endpoint,
    },
    Gre {
        remote: IpAddr,
        local: Option<IpAddr>,
        endpoint: GreEndpoint,
    },
}

impl OverlaySpec {
    /// `vxlan`, `l2tpv3` or `gre`.
    pub fn kind(&self) -> &'static str {
        match self {
            OverlaySpec::Vxlan { .. } => "vxlan",
            OverlaySpec::L2tpv3 { .. } => "l2tpv3",
            OverlaySpec::Gre { .. } => "gre",
        }
    }

    /// Reads `KIND:REMOTE,option=value,...`.
    pub fn parse(text: &str) -> Result<OverlaySpec, OverlayError> {
        let bad = |why: String| OverlayError::Spec(format!("'{text}': {why}"));
        let (kind, rest) = text
            .split_once(':')
            .ok_or_else(|| bad("expected KIND:REMOTE,... (vxlan, l2tpv3 or gre)".into()))?;
        let mut parts = rest.split(',');
        let remote = parts.next().unwrap_or("");
        let mut opts = Options::default();
        for part in parts {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("option '{part}' is not NAME=VALUE")))?;
            if opts.0.iter().any(|(seen, _)| seen == k) {
                return Err(bad(format!("option '{k}' given twice")));
            }
            opts.0.push((k.to_owned(), v.to_owned()));
        }
        let spec = match kind {
            "vxlan" => vxlan_spec(remote, &mut opts),
            "l2tpv3" => l2tpv3_spec(remote, &mut opts),
            "gre" => gre_spec(remote, &mut opts),
            other => Err(format!(
                "unknown overlay kind '{other}' (vxlan, l2tpv3 or gre)"
            )),
        }
        .map_err(bad)?;
        if let Some((k, _)) = opts.0.first() {
            return Err(bad(format!("option '{k}' does not apply to {kind}")));
        }
        Ok(spec)
    }
}

/// The options not yet used; whatever is left at the end was not understood.
#[derive(Default)]
struct Options(Vec<(String, String)>);

impl Options {
    fn take(&mut self, name: &str) -> Option<String> {
        let at = self.0.iter().position(|(k, _)| k == name)?;
        Some(self.0.remove(at).1)
    }

    fn number(&mut self, name: &str, max: u64) -> Result<Option<u64>, String> {
        let Some(v) = self.take(name) else {
            return Ok(None);
        };
        let n = kernel_number(&v).ok_or_else(|| format!("{name}={v} is not a number"))?;
        if n > max {
            return Err(format!("{name}={v} is larger than {max}"));
        }
        Ok(Some(n))
    }

    fn flag(&mut self, name: &str) -> Result<bool, String> {
        Ok(self
            .number(name, u64::from(u32::MAX))?
            .is_some_and(|n| n > 0))
    }

    fn u32(&mut self, name: &str) -> Result<Option<u32>, String> {
        Ok(self.number(name, u64::from(u32::MAX))?.map(|n| n as u32))
    }

    fn address(&mut self, name: &str) -> Result<Option<IpAddr>, String> {
        self.take(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("{name}={v} is not an IP address"))
            })
            .transpose()
    }
}

/// A number as the kernel's kstrto* with base 0 reads it.
pub fn kernel_number(s: &str) -> Option<u64> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

fn address(remote: &str) -> Result<IpAddr, String> {
    if remote.is_empty() {
        return Err("no remote address".into());
    }
    remote
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| format!("'{remote}' is not an IP address"))
}

/// `ADDR`, `ADDR:PORT`, `[V6]` or `[V6]:PORT`.
fn address_and_port(remote: &str, default_port: u16) -> Result<SocketAddr, String> {
    if let Ok(sa) = remote.parse::<SocketAddr>() {
        return Ok(sa);
    }
    Ok(SocketAddr::new(address(remote)?, default_port))
}

fn vxlan_spec(remote: &str, o: &mut Options) -> Result<OverlaySpec, String> {
    let vni = o
        .number("vni", u64::from(vxlan::MAX_VNI))?
        .ok_or("vni=N is required")? as u32;
    let local = o.address("local")?;
    let group = o.address("group")?;
    let remote = match (remote, group) {
        ("", Some(g)) => SocketAddr::new(g, vxlan::IANA_PORT),
        (r, Some(g)) => {
            let port = address_and_port(r, vxlan::IANA_PORT)?.port();
            if address(r).is_ok() {
                return Err("give either a remote address or group=, not both".into());
            }
            SocketAddr::new(g, port)
        }
        (r, None) => address_and_port(r, vxlan::IANA_PORT)?,
    };
    if remote.port() == 0 {
        return Err("port 0 cannot be used".into());
    }
    if group.is_some_and(|g| !g.is_multicast()) {
        return Err(format!("group={} is not a multicast address", remote.ip()));
    }
    Ok(OverlaySpec::Vxlan { remote, vni, local })
}

fn cookie(value: Option<u64>, wide: bool) -> Cookie {
    match value {
        None => Cookie::None,
        Some(v) if wide => Cookie::Bits64(v),
        Some(v) => Cookie::Bits32(v as u32),
    }
}

fn l2tpv3_spec(remote: &str, o: &mut Options) -> Result<OverlaySpec, String> {
    let remote = address(remote)?;
    let rx_session = o.u32("rx_session")?.ok_or("rx_session=N is required")?;
    let tx_session = o.u32("tx_session")?.ok_or("tx_session=N is required")?;
    let wide = o.flag("cookie64")?;
    let max = if wide { u64::MAX } else { u64::from(u32::MAX) };
    let (rx, tx) = (o.number("rx_cookie", max)?, o.number("tx_cookie", max)?);
    if rx.is_some() != tx.is_some() {
        return Err("rx_cookie and tx_cookie go together".into());
    }
    let udp = o.flag("udp")?;
    // linux.uml's names, and the spelled-out ones as aliases.
    let port = |o: &mut Options, name: &str, alias: &str| -> Result<u16, String> {
        let n = match o.number(name, 65535)? {
            Some(n) => Some(n),
            None => o.number(alias, 65535)?,
        };
        Ok(n.map_or(L2TP_UDP_PORT, |p| p as u16))
    };
    let ports = if udp {
        Some((
            port(o, "srcport", "src_port")?,
            port(o, "dstport", "dst_port")?,
        ))
    } else {
        None
    };
    let mut endpoint = L2tpv3Endpoint::new(udp, rx_session, tx_session);
    endpoint.rx_cookie = cookie(rx, wide);
    endpoint.tx_cookie = cookie(tx, wide);
    endpoint.counter = o.flag("counter")?;
    endpoint.pin_counter = o.flag("pin_counter")?;
    let local = o.address("local")?;
    Ok(OverlaySpec::L2tpv3 {
        remote,
        ports,
        local,
        endpoint,
    })
}

fn gre_spec(remote: &str, o: &mut Options) -> Result<OverlaySpec, String> {
    let remote = address(remote)?;
    let key = o.u32("key")?;
    let (rx, tx) = (o.u32("rx_key")?, o.u32("tx_key")?);
    if rx.is_some() != tx.is_some() {
        return Err("rx_key and tx_key go together".into());
    }
    if key.is_some() && rx.is_some() {
        return Err("key= or rx_key=/tx_key=, not both".into());
    }
    let (rx_key, tx_key) = if key.is_some() { (key, key) } else { (rx, tx) };
    let sequence = o.flag("sequence")?;
    let pin = o.flag("pin_sequence")?;
    let local = o.address("local")?;
    Ok(OverlaySpec::Gre {
        remote,
        local,
        endpoint: GreEndpoint::new(rx_key, tx_key, sequence, pin),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vxlan_defaults_to_the_iana_port() {
        let s = OverlaySpec::parse("vxlan:10.0.0.2,vni=42").unwrap();
        assert_eq!(
            s,
            OverlaySpec::Vxlan {
                remote: "10.0.0.2:4789".parse().unwrap(),
                vni: 42,
                local: None
            }
        );
        let s = OverlaySpec::parse("vxlan:[fd00::2]:8472,vni=0x10,local=fd00::1").unwrap();
        assert_eq!(
            s,
            OverlaySpec::Vxlan {
                remote: "[fd00::2]:8472".parse().unwrap(),
                vni: 16,
                local: Some("fd00::1".parse().unwrap())
            }
        );
        let s = OverlaySpec::parse("vxlan:,vni=1,group=239.1.1.1").unwrap();
        assert!(matches!(s, OverlaySpec::Vxlan { remote, .. } if remote.ip().is_multicast()));
    }

    #[test]
    fn l2tpv3_takes_linux_uml_option_names() {
        let s = OverlaySpec::parse(
            "l2tpv3:192.168.1.2,udp=1,srcport=1706,dst_port=1707,rx_session=0xffffffff,\
             tx_session=0xffff,rx_cookie=0xdeadbeef01020304,tx_cookie=9,cookie64=1,counter=1",
        )
        .unwrap();
        let OverlaySpec::L2tpv3 {
            remote,
            ports,
            endpoint,
            ..
        } = s
        else {
            panic!("{s:?}")
        };
        assert_eq!(remote, "192.168.1.2".parse::<IpAddr>().unwrap());
        assert_eq!(ports, Some((1706, 1707)));
        assert_eq!(endpoint.rx_session, 0xffff_ffff);
        assert_eq!(endpoint.rx_cookie, Cookie::Bits64(0xdead_beef_0102_0304));
        assert_eq!(endpoint.tx_cookie, Cookie::Bits64(9));
        assert!(endpoint.counter && endpoint.udp && !endpoint.pin_counter);
    }

    #[test]
    fn gre_key_sets_both_directions() {
        let s = OverlaySpec::parse("gre:10.1.1.1,key=010,sequence=1").unwrap();
        let OverlaySpec::Gre { endpoint, .. } = s else {
            panic!()
        };
        assert_eq!((endpoint.rx_key, endpoint.tx_key), (Some(8), Some(8)));
        assert!(endpoint.sequence);
    }

    #[test]
    fn bad_specs_say_why() {
        for (text, why) in [
            ("vxlan", "KIND:REMOTE"),
            ("ipip:1.2.3.4", "unknown overlay kind 'ipip'"),
            ("vxlan:1.2.3.4", "vni=N is required"),
            ("vxlan:1.2.3.4,vni=16777216", "larger than 16777215"),
            ("vxlan:1.2.3.4,vni=5,vni=6", "given twice"),
            ("vxlan:host,vni=1", "'host' is not an IP address"),
            ("vxlan:1.2.3.4:0,vni=1", "port 0"),
            ("vxlan:,vni=1,group=10.0.0.1", "not a multicast address"),
            ("gre:1.2.3.4,rx_key=1", "go together"),
            ("gre:1.2.3.4,vni=1", "option 'vni' does not apply to gre"),
            ("gre:1.2.3.4,key", "is not NAME=VALUE"),
            ("l2tpv3:1.2.3.4,tx_session=1", "rx_session=N is required"),
            (
                "l2tpv3:1.2.3.4,rx_session=1,tx_session=x",
                "tx_session=x is not a number",
            ),
            (
                "l2tpv3:1.2.3.4,rx_session=1,tx_session=1,rx_cookie=0x100000000,tx_cookie=1",
                "larger",
            ),
            ("gre:,key=1", "no remote address"),
        ] {
            let e = OverlaySpec::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
            assert!(e.starts_with(&format!("'{text}'")), "{e}");
        }
    }

    #[test]
    fn numbers_as_the_kernel_reads_them() {
        assert_eq!(kernel_number("0x1f"), Some(31));
        assert_eq!(kernel_number("017"), Some(15));
        assert_eq!(kernel_number("0"), Some(0));
        assert_eq!(kernel_number("09"), None);
        assert_eq!(kernel_number(""), None);
    }
}
