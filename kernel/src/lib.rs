//! uml-kernel: a small program that behaves like a User-Mode Linux kernel toward the
//! host (same command line, mconsole, COW disks and consoles) and runs a tiny built-in
//! guest, so the host tools can be used and tested against it in milliseconds.

pub mod block;
pub mod chan;
#[cfg(feature = "doc")]
pub mod cli;
pub mod cmdline;
pub mod event;
pub mod fs;
pub mod host;
pub mod job;
pub mod kernel;
pub mod klog;
pub mod machine;
pub mod mconsole;
pub mod net;
pub mod proc;
pub mod shell;
pub mod syscalls;
pub mod sysrq;
pub mod task;

pub use kernel::{BootError, Exit, Kernel};
