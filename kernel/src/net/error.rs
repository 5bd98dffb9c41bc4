//! The network device family's errors: a malformed `eth<N>=` switch (`SpecError`, with
//! linux.uml's texts where it has them) and a device that cannot be set up or changed
//! (`NetError`). Every message names the switch, device or helper concerned.

use std::fmt;
use std::io;

use uml_proto::helper::ReplyError;
use uml_proto::tap::TapError;

use super::MAX_ETH;

/// What is wrong with an `eth<N>=` switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecError {
    /// No `=`.
    Syntax(String),
    /// `eth<N>` with N missing or too large.
    DeviceNumber(String),
    /// A MAC address that does not parse, or a multicast one.
    Mac {
        text: String,
        multicast: bool,
    },
    /// tuntap: fields after the gateway.
    TapGarbage(String),
    /// tuntap: a gateway that is not an IPv4 address.
    TapIp(String),
    /// tuntap: neither a device nor a gateway.
    TapNeedsDevice(String),
    /// pcap: no host interface.
    PcapNeedsInterface(String),
    /// pcap: an unknown option.
    PcapOption(String),
    /// mcast: a field (`what`) that does not parse.
    Bad {
        arg: String,
        what: &'static str,
        value: String,
    },
    /// daemon: a socket type other than unix.
    SocketType {
        arg: String,
        kind: String,
    },
    NoTransport(String),
    /// `vec<N>` with N missing or too large.
    VecDeviceNumber(String),
    /// A `vec<N>:` switch whose options do not hold together.
    Vector {
        arg: String,
        why: String,
    },
    Unsupported {
        arg: String,
        transport: String,
    },
    UnknownTransport {
        arg: String,
        transport: String,
    },
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::Syntax(arg) => write!(f, "{arg}: expected eth<N>=<transport>,..."),
            SpecError::DeviceNumber(key) => {
                write!(f, "{key}: bad device number (eth0..eth{})", MAX_ETH - 1)
            }
            SpecError::Mac {
                text,
                multicast: false,
            } => write!(f, "{text}: not an ethernet address"),
            SpecError::Mac {
                text,
                multicast: true,
            } => write!(
                f,
                "{text}: a multicast address cannot be a device's address"
            ),
            SpecError::TapGarbage(rest) => write!(
                f,
                "tap_setup_common - Extra garbage on specification : '{rest}'"
            ),
            SpecError::TapIp(g) => write!(f, "Invalid tap IP address - '{g}'"),
            SpecError::TapNeedsDevice(arg) => {
                write!(f, "{arg}: a tap device or a gateway address is needed")
            }
            SpecError::PcapNeedsInterface(arg) => write!(f, "{arg}: pcap needs a host interface"),
            SpecError::PcapOption(o) => write!(f, "pcap_setup : bad option - '{o}'"),
            SpecError::Bad { arg, what, value } => write!(f, "{arg}: bad {what} '{value}'"),
            SpecError::SocketType { arg, kind } => write!(
                f,
                "{arg}: socket type '{kind}' is not supported (only unix)"
            ),
            SpecError::NoTransport(arg) => write!(f, "{arg}: no transport given"),
            SpecError::VecDeviceNumber(key) => {
                write!(f, "{key}: bad device number (vec0..vec{})", MAX_ETH - 1)
            }
            SpecError::Vector { arg, why } => write!(f, "{arg}: {why}"),
            SpecError::Unsupported { arg, transport } => write!(
                f,
                "{arg}: the {transport} transport is not supported by this kernel yet"
            ),
            SpecError::UnknownTransport { arg, transport } => {
                write!(f, "{arg}: unknown transport '{transport}'")
            }
        }
    }
}

impl std::error::Error for SpecError {}

/// Why a device cannot be set up or changed.
#[derive(Debug)]
pub enum NetError {
    Spec(SpecError),
    /// `eth<N>` is configured already.
    Exists(usize),
    /// A vector or slirp device whose socket or helper could not be set up.
    Transport {
        dev: String,
        why: String,
    },
    /// A preconfigured tap cannot be attached.
    Tap {
        name: String,
        source: TapError,
    },
    /// A descriptor could not be set up (non-blocking, close-on-exec, socket pair).
    Io(io::Error),
    /// uml_net could not be started for `tuntap up`.
    HelperRun(io::Error),
    /// uml_net could not be started for an address change.
    AddressHelperRun(io::Error),
    /// uml_net's answer to `tuntap up` did not come.
    HelperReply(ReplyError),
    /// uml_net answered `tuntap up` without a descriptor; its output says why.
    HelperNoDescriptor(String),
    /// uml_net's answer to an address change could not be read.
    HelperText(ReplyError),
    /// The pcap capture or its filter failed (the text is libpcap's).
    Pcap {
        host_if: String,
        filter: Option<String>,
        error: String,
    },
    Mcast(io::Error),
    /// The switch's control socket refused the device.
    Daemon {
        dev: usize,
        ctl: std::path::PathBuf,
        source: io::Error,
    },
    /// A TCP service port already used.
    PortInUse(u16),
    /// No device to start a service on.
    NoDevices,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Spec(e) => e.fmt(f),
            NetError::Exists(n) => write!(f, "{}: device already exists", super::dev_name(*n)),
            NetError::Transport { dev, why } => write!(f, "{dev}: {why}"),
            NetError::Tap { name, source } => write!(f, "tuntap_open : {name}: {source}"),
            NetError::Io(e) => e.fmt(f),
            NetError::HelperRun(e) => write!(f, "tuntap_open : failed to run uml_net: {e}"),
            NetError::AddressHelperRun(e) => write!(f, "failed to run uml_net: {e}"),
            NetError::HelperReply(e) => {
                write!(f, "tuntap_open_tramp : didn't receive a message: {e}")
            }
            NetError::HelperNoDescriptor(output) => write!(
                f,
                "tuntap_open_tramp : didn't receive a descriptor\n{output}"
            ),
            NetError::HelperText(e) => write!(f, "uml_net: {e}"),
            NetError::Pcap {
                host_if,
                filter: None,
                error,
            } => write!(f, "pcap_open : {host_if}: {error}"),
            NetError::Pcap {
                filter: Some(flt),
                error,
                ..
            } => write!(f, "pcap_open : filter '{flt}': {error}"),
            NetError::Mcast(e) => write!(f, "mcast_open : {e}"),
            NetError::Daemon { dev, ctl, source } => {
                write!(f, "eth{dev}: {}: {source}", ctl.display())
            }
            NetError::PortInUse(p) => write!(f, "port {p} is already in use"),
            NetError::NoDevices => f.write_str("no network devices"),
        }
    }
}

impl std::error::Error for NetError {}

impl From<SpecError> for NetError {
    fn from(e: SpecError) -> NetError {
        NetError::Spec(e)
    }
}
