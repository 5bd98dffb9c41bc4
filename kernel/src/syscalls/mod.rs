//! The syscall layer: how guest processes run (the [`platform`]) and, above it, the
//! sentry that answers their syscalls from the kernel's own state (to come: one module
//! per family over task/, fs/, net/).

pub mod platform;
