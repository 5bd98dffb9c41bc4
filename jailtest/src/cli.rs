//! The command line of `jailtest` (the C tool took no arguments; every option here has
//! a default), shared by the program and docgen.

use std::path::PathBuf;

use clap::{CommandFactory, Parser};

/// Probe, from inside a UML guest, that guest processes cannot reach the kernel, other
/// processes or the host.
///
/// Prints one "Trying to ...- GOOD" or "- BAD!" line per probe as the C jailtest does,
/// and exits 1 if any probe is BAD. Probes: direct writes to kernel addresses (each
/// must die of SIGSEGV) and writes there through read(2) (EFAULT); opening /dev/mem and
/// /dev/kmem (must fail); /proc/PID/mem, ptrace and process_vm_readv/writev of every
/// other guest process, as an unprivileged user (uid 65534 when run as root); signals,
/// ptrace and process_vm_readv to pids the guest does not have (must be ESRCH); and
/// host paths given with --host-path (must not exist).
#[derive(Parser, Debug)]
#[command(name = "jailtest", version, verbatim_doc_comment)]
pub struct Args {
    /// A kernel address to write to (hex); default: 0x60000000 (linux.uml's kernel on
    /// x86_64), 0xa0800000 (the C jailtest's) and 0xffffffff81000000 (the host kernel)
    #[arg(long = "address", value_name = "ADDR", value_parser = parse_hex)]
    pub addresses: Vec<usize>,
    /// A host path that must not be visible in the guest (repeatable)
    #[arg(long = "host-path", value_name = "PATH")]
    pub host_paths: Vec<PathBuf>,
    /// Probe pids 2..=MAX that the guest does not list in /proc
    #[arg(long = "max-pid", value_name = "MAX", default_value_t = 8192)]
    pub max_pid: i32,
    /// The uid that probes other processes when run as root
    #[arg(long, value_name = "UID", default_value_t = 65534)]
    pub probe_uid: u32,
}

fn parse_hex(s: &str) -> Result<usize, String> {
    let digits = s.strip_prefix("0x").or(s.strip_prefix("0X")).unwrap_or(s);
    usize::from_str_radix(digits, 16).map_err(|e| format!("{s}: not a hex address: {e}"))
}

/// The default addresses probed.
pub const DEFAULT_ADDRESSES: [usize; 3] = [0x6000_0000, 0xa080_0000, 0xffff_ffff_8100_0000];

/// The command-line definition (for --help, man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_hex() {
        let a = Args::try_parse_from(["j", "--address", "0x60000000", "--address", "a0800000"])
            .unwrap();
        assert_eq!(a.addresses, [0x6000_0000, 0xa080_0000]);
        assert!(Args::try_parse_from(["j", "--address", "zz"]).is_err());
    }
}
