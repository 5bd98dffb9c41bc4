//! The formats and protocols that UML's host tools and kernel share, in one place.
//!
//! Every on-disk or on-wire structure has a `parse` that checks lengths and returns a
//! typed error, and an `emit` that writes the exact bytes the real peers use. This crate
//! never prints, never exits and never reads the environment: callers decide.

pub mod arp;
pub mod cow;
pub mod ether;
pub mod ext2;
pub mod fdpass;
pub mod fsutil;
pub mod fuse;
pub mod helper;
pub mod humfs;
pub mod ids;
pub mod legacy_args;
pub mod logline;
pub mod mconsole;
pub mod netlink;
pub mod overlay;
pub mod packet;
pub mod switch;
pub mod tap;
pub mod umid;
