//! The syscall layer: how guest processes run (the [`platform`]) and, above it, the
//! [`sentry`] that answers their syscalls from the kernel's own state: one module per
//! family (`file`, `exec`, `calls` for the rest) over fs/, the sentry's pipes and the
//! console tty (`fdtable`), with the Linux structures they write in `abi`.

mod abi;
mod calls;
mod exec;
mod fdtable;
mod file;
pub mod harddog;
mod pipebudget;
pub mod platform;
pub mod sentry;
