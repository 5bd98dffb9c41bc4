//! The syscall layer: how guest processes run (the [`platform`]) and, above it, the
//! [`sentry`] that answers their syscalls from the kernel's own state: one module per
//! family (`file`, `exec`, `calls` for the rest) over fs/, the sentry's pipes and the
//! ttys (`fdtable`, `tty` over `ldisc`; job control in `jobctl`), with the Linux structures they write in `abi`.

mod abi;
mod calls;
mod exec;
mod fallocate;
mod fdtable;
mod fifo;
mod file;
pub mod harddog;
mod jobctl;
mod ldisc;
mod mmap;
mod netdev;
mod pipebudget;
pub mod platform;
mod priority;
mod procpid;
pub mod sentry;
mod socket;
mod tty;
mod unix;
