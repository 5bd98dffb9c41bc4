//! port-helper and in.telnetd: the two host programs that give a UML console a terminal.
//!
//! `helper` is port-helper's logic (send the terminal on fd 0 to the kernel), `telnet`
//! the telnet protocol as a pure state machine, and `telnetd` the small telnet server
//! the kernel's port channel runs as `in.telnetd -L port-helper`.

pub mod cli;
pub mod helper;
pub mod telnet;
pub mod telnetd;
