//! uml_switch: a virtual Ethernet switch (or hub) for UML's daemon network transport.
//! `server` runs the event loop over the sockets `sockets` sets up; `tables` decides
//! where frames go; `batch` moves them in batches; `capture` writes `--pcap`; `peer`
//! decides whose data addresses are served.

pub mod batch;
pub mod capture;
pub mod cli;
pub mod fasthash;
pub mod log;
pub mod mgmt;
pub mod peer;
pub mod report;
pub mod server;
pub mod sockets;
pub mod tables;
pub mod uplink;

pub use server::{Config, Exit, Switch};
