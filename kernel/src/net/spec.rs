//! The `eth<N>=` switch (also what mconsole `config ethN=` takes): the transport and
//! its parameters with UML's defaults, and the optional MAC address.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use uml_proto::ether::MacAddr;

use super::error::SpecError;
use super::vector::{self, VecTransport};

/// How many network devices a guest may have (eth0..eth15).
pub const MAX_ETH: usize = 16;
/// Where `eth<N>=daemon` looks for the switch when no socket is given (the Debian
/// linux.uml's default, which uml_switch also uses).
pub const DEFAULT_SWITCH_CTL: &str = "/var/run/uml-utilities/uml_switch.ctl";

/// The transport a device uses and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A uml_switch or vde_switch port reached over its control socket.
    Daemon { ctl: PathBuf },
    /// A host tap: preconfigured (`dev`) or made by uml_net with `gate` on the host side.
    Tuntap {
        dev: Option<String>,
        gate: Option<String>,
    },
    /// Read-only: frames crossing a host interface that match a pcap filter.
    Pcap {
        host_if: String,
        filter: Option<String>,
        promisc: bool,
        optimize: bool,
    },
    /// UDP multicast: every guest on the group hears every frame.
    Mcast { addr: Ipv4Addr, port: u16, ttl: u32 },
    /// A `vec<N>:` device (linux.uml's vector transports).
    Vector(VecTransport),
    /// The slirp helper on a socket pair, speaking SLIP: program and arguments.
    Slirp { argv: Vec<String> },
}

/// mcast's defaults, as UML's.
pub const MCAST_ADDR: Ipv4Addr = Ipv4Addr::new(239, 192, 168, 1);
pub const MCAST_PORT: u16 = 1102;
pub const MCAST_TTL: u32 = 1;

/// One parsed `eth<N>=...` switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthSpec {
    pub index: usize,
    pub mac: Option<MacAddr>,
    pub transport: Transport,
    /// The value as given (what `config ethN` reports back).
    pub text: String,
}

fn bad(arg: &str, what: &'static str, value: &str) -> SpecError {
    SpecError::Bad {
        arg: arg.to_owned(),
        what,
        value: value.to_owned(),
    }
}

/// Parses `eth<N>=VALUE` or `vec<N>:VALUE`; the error names what is wrong.
pub fn parse(arg: &str) -> Result<EthSpec, SpecError> {
    if let Some((n, value)) = crate::cmdline::vec_switch(arg) {
        let n = n
            .parse::<usize>()
            .ok()
            .filter(|&n| n < MAX_ETH)
            .ok_or_else(|| SpecError::VecDeviceNumber(format!("vec{n}")))?;
        let (transport, mac) = vector::parse(value).map_err(|e| SpecError::Vector {
            arg: arg.to_owned(),
            why: e.to_string(),
        })?;
        return Ok(EthSpec {
            index: MAX_ETH + n,
            mac,
            transport: Transport::Vector(transport),
            text: value.to_owned(),
        });
    }
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| SpecError::Syntax(arg.to_owned()))?;
    let index = key
        .strip_prefix("eth")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n < MAX_ETH)
        .ok_or_else(|| SpecError::DeviceNumber(key.to_owned()))?;
    let fields: Vec<&str> = value.split(',').collect();
    let field = |i: usize| fields.get(i).copied().filter(|f| !f.is_empty());
    let mac_field = match fields[0] {
        "tuntap" => 2,
        "pcap" => usize::MAX, // no MAC field
        _ => 1,
    };
    let mac = field(mac_field).map(parse_mac).transpose()?;
    let transport = match fields[0] {
        "tuntap" => {
            if fields.len() > 4 {
                return Err(SpecError::TapGarbage(fields[4..].join(",")));
            }
            let gate = field(3).map(str::to_owned);
            if let Some(g) = &gate {
                if g.parse::<Ipv4Addr>().is_err() {
                    return Err(SpecError::TapIp(g.clone()));
                }
            }
            let dev = field(1).map(str::to_owned);
            if dev.is_none() && gate.is_none() {
                return Err(SpecError::TapNeedsDevice(arg.to_owned()));
            }
            Transport::Tuntap { dev, gate }
        }
        "pcap" => {
            let host_if = field(1)
                .ok_or_else(|| SpecError::PcapNeedsInterface(arg.to_owned()))?
                .to_owned();
            let (mut promisc, mut optimize) = (true, false);
            for opt in fields.iter().skip(3).filter(|o| !o.is_empty()) {
                match *opt {
                    "promisc" => promisc = true,
                    "nopromisc" => promisc = false,
                    "optimize" => optimize = true,
                    "nooptimize" => optimize = false,
                    other => return Err(SpecError::PcapOption(other.to_owned())),
                }
            }
            Transport::Pcap {
                host_if,
                filter: field(2).map(str::to_owned),
                promisc,
                optimize,
            }
        }
        "mcast" => Transport::Mcast {
            addr: match field(2) {
                Some(a) => a.parse().map_err(|_| bad(arg, "multicast address", a))?,
                None => MCAST_ADDR,
            },
            port: match field(3) {
                Some(p) => p.parse().map_err(|_| bad(arg, "port", p))?,
                None => MCAST_PORT,
            },
            ttl: match field(4) {
                Some(t) => t.parse().map_err(|_| bad(arg, "TTL", t))?,
                None => MCAST_TTL,
            },
        },
        "daemon" => {
            if let Some(kind) = field(2) {
                if kind != "unix" {
                    return Err(SpecError::SocketType {
                        arg: arg.to_owned(),
                        kind: kind.to_owned(),
                    });
                }
            }
            Transport::Daemon {
                ctl: PathBuf::from(field(3).unwrap_or(DEFAULT_SWITCH_CTL)),
            }
        }
        "slirp" => {
            let mut argv = vec![field(2).unwrap_or(super::slirp::DEFAULT_HELPER).to_owned()];
            argv.extend(fields.iter().skip(3).map(|a| (*a).to_owned()));
            Transport::Slirp { argv }
        }
        "" => return Err(SpecError::NoTransport(arg.to_owned())),
        t @ ("ethertap" | "slip" | "vde" | "vector") => {
            return Err(SpecError::Unsupported {
                arg: arg.to_owned(),
                transport: t.to_owned(),
            })
        }
        other => {
            return Err(SpecError::UnknownTransport {
                arg: arg.to_owned(),
                transport: other.to_owned(),
            })
        }
    };
    Ok(EthSpec {
        index,
        mac,
        transport,
        text: value.to_owned(),
    })
}

/// `xx:xx:xx:xx:xx:xx`, unicast.
pub fn parse_mac(s: &str) -> Result<MacAddr, SpecError> {
    let mac_error = |multicast| SpecError::Mac {
        text: s.to_owned(),
        multicast,
    };
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(mac_error(false));
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(&parts) {
        *b = u8::from_str_radix(p, 16).map_err(|_| mac_error(false))?;
    }
    if mac[0] & 1 != 0 {
        return Err(mac_error(true));
    }
    Ok(MacAddr(mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_defaults_and_fields() {
        let s = parse("eth0=daemon").unwrap();
        assert_eq!(s.index, 0);
        assert_eq!(s.mac, None);
        assert_eq!(
            s.transport,
            Transport::Daemon {
                ctl: DEFAULT_SWITCH_CTL.into()
            }
        );
        let s = parse("eth3=daemon,fe:fd:0:0:0:1,unix,/tmp/x.ctl,/tmp/x.data").unwrap();
        assert_eq!(s.index, 3);
        assert_eq!(s.mac, Some(MacAddr([0xfe, 0xfd, 0, 0, 0, 1])));
        assert_eq!(
            s.transport,
            Transport::Daemon {
                ctl: "/tmp/x.ctl".into()
            }
        );
        assert_eq!(s.text, "daemon,fe:fd:0:0:0:1,unix,/tmp/x.ctl,/tmp/x.data");
    }

    #[test]
    fn tuntap_and_mcast_fields() {
        let s = parse("eth1=tuntap,tap7,fe:fd:1:2:3:4").unwrap();
        assert_eq!(s.mac, Some(MacAddr([0xfe, 0xfd, 1, 2, 3, 4])));
        assert_eq!(
            s.transport,
            Transport::Tuntap {
                dev: Some("tap7".into()),
                gate: None
            }
        );
        let s = parse("eth0=tuntap,,,10.0.0.254").unwrap();
        assert_eq!(
            s.transport,
            Transport::Tuntap {
                dev: None,
                gate: Some("10.0.0.254".into())
            }
        );
        assert!(parse("eth0=tuntap,,,10.0.0")
            .unwrap_err()
            .to_string()
            .contains("Invalid tap IP address - '10.0.0'"));
        let s = parse("eth0=mcast").unwrap();
        assert_eq!(
            s.transport,
            Transport::Mcast {
                addr: MCAST_ADDR,
                port: 1102,
                ttl: 1
            }
        );
        let s = parse("eth0=mcast,,239.1.2.3,2000,4").unwrap();
        assert_eq!(
            s.transport,
            Transport::Mcast {
                addr: Ipv4Addr::new(239, 1, 2, 3),
                port: 2000,
                ttl: 4
            }
        );
    }

    #[test]
    fn pcap_fields() {
        let s = parse("eth2=pcap,veth0,icmp,nopromisc,optimize").unwrap();
        assert_eq!(s.mac, None);
        assert_eq!(
            s.transport,
            Transport::Pcap {
                host_if: "veth0".into(),
                filter: Some("icmp".into()),
                promisc: false,
                optimize: true
            }
        );
        assert!(parse("eth2=pcap").is_err());
        assert!(parse("eth2=pcap,v,icmp,loud")
            .unwrap_err()
            .to_string()
            .contains("bad option"));
    }

    #[test]
    fn slirp_fields() {
        let s = parse("eth0=slirp").unwrap();
        assert_eq!(
            s.transport,
            Transport::Slirp {
                argv: vec!["/usr/bin/slirp".into()]
            }
        );
        let s = parse("eth1=slirp,fe:fd:0:0:0:9,/opt/slirp,-b,57600").unwrap();
        assert_eq!(s.mac, Some(MacAddr([0xfe, 0xfd, 0, 0, 0, 9])));
        assert_eq!(
            s.transport,
            Transport::Slirp {
                argv: vec!["/opt/slirp".into(), "-b".into(), "57600".into()]
            }
        );
    }

    #[test]
    fn bad_switches_say_why() {
        assert!(parse("eth16=daemon")
            .unwrap_err()
            .to_string()
            .contains("bad device number"));
        assert!(parse("eth0=daemon,zz")
            .unwrap_err()
            .to_string()
            .contains("ethernet address"));
        assert!(parse("eth0=daemon,01:00:00:00:00:00")
            .unwrap_err()
            .to_string()
            .contains("multicast"));
        assert!(parse("eth0=daemon,,inet")
            .unwrap_err()
            .to_string()
            .contains("unix"));
        assert!(parse("eth0=bogus")
            .unwrap_err()
            .to_string()
            .contains("unknown transport"));
    }
}
