//! The `eth<N>=` switch (also what mconsole `config ethN=` takes): the transport and
//! its parameters with UML's defaults, and the optional MAC address.

use std::path::PathBuf;

use uml_proto::ether::MacAddr;

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
}

/// One parsed `eth<N>=...` switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthSpec {
    pub index: usize,
    pub mac: Option<MacAddr>,
    pub transport: Transport,
    /// The value as given (what `config ethN` reports back).
    pub text: String,
}

/// Parses `eth<N>=VALUE`; the error names what is wrong.
pub fn parse(arg: &str) -> Result<EthSpec, String> {
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("{arg}: expected eth<N>=<transport>,..."))?;
    let index = key
        .strip_prefix("eth")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n < MAX_ETH)
        .ok_or_else(|| format!("{key}: bad device number (eth0..eth{})", MAX_ETH - 1))?;
    let fields: Vec<&str> = value.split(',').collect();
    let field = |i: usize| fields.get(i).copied().filter(|f| !f.is_empty());
    let mac = field(1).map(parse_mac).transpose()?;
    let transport = match fields[0] {
        "daemon" => {
            if let Some(kind) = field(2) {
                if kind != "unix" {
                    return Err(format!(
                        "{arg}: socket type '{kind}' is not supported (only unix)"
                    ));
                }
            }
            Transport::Daemon {
                ctl: PathBuf::from(field(3).unwrap_or(DEFAULT_SWITCH_CTL)),
            }
        }
        "" => return Err(format!("{arg}: no transport given")),
        t @ ("tuntap" | "mcast" | "pcap" | "ethertap" | "slip" | "slirp" | "vde" | "vector") => {
            return Err(format!(
                "{arg}: the {t} transport is not supported by this kernel yet"
            ))
        }
        other => return Err(format!("{arg}: unknown transport '{other}'")),
    };
    Ok(EthSpec {
        index,
        mac,
        transport,
        text: value.to_owned(),
    })
}

/// `xx:xx:xx:xx:xx:xx`, unicast.
pub fn parse_mac(s: &str) -> Result<MacAddr, String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("{s}: not an ethernet address"));
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(&parts) {
        *b = u8::from_str_radix(p, 16).map_err(|_| format!("{s}: not an ethernet address"))?;
    }
    if mac[0] & 1 != 0 {
        return Err(format!(
            "{s}: a multicast address cannot be a device's address"
        ));
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
    fn bad_switches_say_why() {
        assert!(parse("eth16=daemon")
            .unwrap_err()
            .contains("bad device number"));
        assert!(parse("eth0=daemon,zz")
            .unwrap_err()
            .contains("ethernet address"));
        assert!(parse("eth0=daemon,01:00:00:00:00:00")
            .unwrap_err()
            .contains("multicast"));
        assert!(parse("eth0=daemon,,inet").unwrap_err().contains("unix"));
        assert!(parse("eth0=bogus")
            .unwrap_err()
            .contains("unknown transport"));
    }
}
