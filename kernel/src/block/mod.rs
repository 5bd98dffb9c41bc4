//! The ubd block devices: a table of up to 16 slots, each with the switch that
//! configured it and, once opened, the open device. `config`/`remove` over mconsole
//! land here with the kernel's replies (reference mconsole.md §5).

pub mod ubd;

use std::path::PathBuf;

use crate::cmdline::{self, UbdSpec, MAX_UBD};
use crate::klog::KernelLog;
pub use ubd::{Ubd, SECTOR};

/// One configured device.
#[derive(Debug)]
pub struct Slot {
    pub spec: UbdSpec,
    /// The backing file in use (from the COW header after opening).
    pub backing: Option<PathBuf>,
    pub open: Option<Ubd>,
}

pub use crate::mconsole::Answer;

/// Why a block device cannot be used.
#[derive(Debug)]
pub enum BlockError {
    /// Device `dev`'s file would not open (the log has the details).
    Open {
        dev: usize,
        file: PathBuf,
        error: ubd::OpenError,
    },
    /// A name that is no ubd device.
    NoSuchDevice(String),
    /// A ubd device that is not configured or not open.
    NotPresent(String),
    /// Flushing device `dev` failed.
    Sync { dev: usize, source: std::io::Error },
}

impl std::fmt::Display for BlockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlockError::Open { dev, file, error } => write!(
                f,
                "ubd{dev}: Can't open \"{}\": {}",
                file.display(),
                error.lines.first().map(String::as_str).unwrap_or_default()
            ),
            BlockError::NoSuchDevice(name) => {
                write!(f, "{name}: no such device (ubda..ubdp or 0..15)")
            }
            BlockError::NotPresent(name) => write!(f, "{name}: device not present"),
            BlockError::Sync { dev, source } => write!(f, "ubd{dev}: sync failed: {source}"),
        }
    }
}

impl std::error::Error for BlockError {}

#[derive(Debug)]
pub struct Disks {
    pub slots: Vec<Option<Slot>>,
    /// The device the guest has as its root: "currently open", cannot be removed.
    pub root: Option<usize>,
}

/// `ubda`, `ubdb`, ...
pub fn disk_name(n: usize) -> String {
    format!("ubd{}", (b'a' + n as u8) as char)
}

impl Disks {
    pub fn new(root: Option<usize>) -> Disks {
        Disks {
            slots: (0..MAX_UBD).map(|_| None).collect(),
            root,
        }
    }

    /// Opens a device, logging what the kernel would; Err carries the reason.
    pub fn attach(&mut self, spec: UbdSpec, log: &mut KernelLog) -> Result<(), BlockError> {
        let n = spec.index;
        let result = Ubd::open(&spec);
        let mut slot = Slot {
            backing: spec.backing.clone(),
            spec,
            open: None,
        };
        let outcome = match result {
            Ok((dev, notes)) => {
                for note in notes {
                    log.info(note);
                }
                if let Some(c) = dev.cow() {
                    slot.backing = Some(c.backing_path.clone());
                }
                slot.open = Some(dev);
                Ok(())
            }
            Err(e) => {
                for line in &e.lines {
                    log.err(line);
                }
                if let Some(b) = e.header_backing.clone() {
                    slot.backing = Some(b);
                }
                let e = BlockError::Open {
                    dev: n,
                    file: slot.spec.file.clone(),
                    error: e,
                };
                log.err(e.to_string());
                Err(e)
            }
        };
        self.slots[n] = Some(slot);
        outcome
    }

    /// mconsole `config ubd<N>[=...]`; None when `arg` names another device.
    pub fn config(&mut self, arg: &str, log: &mut KernelLog) -> Option<Answer> {
        let rest = arg.strip_prefix("ubd")?;
        Some(if arg.contains('=') {
            self.config_add(arg, log)
        } else {
            self.config_query(rest)
        })
    }

    /// mconsole `remove ubd<N>`; None when `arg` names another device.
    pub fn remove_dev(&mut self, arg: &str) -> Option<Answer> {
        Some(self.remove(arg.strip_prefix("ubd")?))
    }

    /// `config ubd<N>=...`: add a device (errors answered as the kernel does; open
    /// failures only logged, since the kernel opens after replying).
    pub fn config_add(&mut self, arg: &str, log: &mut KernelLog) -> Answer {
        let spec = match cmdline::parse_ubd(arg) {
            Ok(s) => s,
            Err(e) => return (e.errno(), e.text().to_owned()),
        };
        if self.slots[spec.index].is_some() {
            return (-libc::EBUSY, "Device is already configured".into());
        }
        let probe = match &spec.backing {
            Some(b) if !spec.file.exists() => b,
            _ => &spec.file,
        };
        if std::fs::metadata(probe).is_err() {
            return (
                -libc::ENOENT,
                "Couldn't determine size of device's file".into(),
            );
        }
        let _ = self.attach(spec, log);
        (0, String::new())
    }

    /// `config ubd<N>`: the file, and the backing file when there is one.
    pub fn config_query(&self, rest: &str) -> Answer {
        let Some((n, _)) = cmdline::parse_ubd_index(rest) else {
            return (1, "ubd_get_config : device number out of range".into());
        };
        match &self.slots[n] {
            None => (0, String::new()),
            Some(s) => match &s.backing {
                None => (0, s.spec.file.display().to_string()),
                Some(b) => (0, format!("{},{}", s.spec.file.display(), b.display())),
            },
        }
    }

    /// `remove ubd<N>`.
    pub fn remove(&mut self, rest: &str) -> Answer {
        let n = match rest.parse::<usize>() {
            Ok(n) if n < MAX_UBD => n,
            _ => match cmdline::parse_ubd_index(rest) {
                Some((n, "")) => n,
                _ => return (1, "Invalid device number - must be between 0 and 15".into()),
            },
        };
        if self.slots[n].is_none() {
            return (-libc::ENODEV, "Device doesn't exist".into());
        }
        if self.root == Some(n) && self.slots[n].as_ref().is_some_and(|s| s.open.is_some()) {
            return (-libc::EBUSY, "Device is currently open".into());
        }
        if let Some(Some(dev)) = self.slots[n].take().map(|s| s.open) {
            let _ = dev.flush();
        }
        (0, String::new())
    }

    /// The open device called `name` (`ubda`, `ubd0`, `/dev/ubda`, `0`).
    pub fn lookup(&mut self, name: &str) -> Result<&mut Ubd, BlockError> {
        let bare = name.trim_start_matches("/dev/");
        let idx = bare
            .strip_prefix("ubd")
            .and_then(|r| match cmdline::parse_ubd_index(r) {
                Some((n, "")) => Some(n),
                _ => None,
            })
            .or_else(|| bare.parse::<usize>().ok().filter(|&n| n < MAX_UBD));
        let n = idx.ok_or_else(|| BlockError::NoSuchDevice(name.to_owned()))?;
        self.slots[n]
            .as_mut()
            .and_then(|s| s.open.as_mut())
            .ok_or_else(|| BlockError::NotPresent(name.to_owned()))
    }

    /// Flushes every open device.
    pub fn sync_all(&self) -> Vec<BlockError> {
        let mut errors = Vec::new();
        for (n, slot) in self.slots.iter().enumerate() {
            if let Some(Some(dev)) = slot.as_ref().map(|s| s.open.as_ref()) {
                if let Err(source) = dev.flush() {
                    errors.push(BlockError::Sync { dev: n, source });
                }
            }
        }
        errors
    }

    /// Lines of /proc/partitions after its header.
    pub fn partitions(&self) -> String {
        let mut out = String::from("major minor  #blocks  name\n\n");
        for (n, slot) in self.slots.iter().enumerate() {
            if let Some(Some(dev)) = slot.as_ref().map(|s| s.open.as_ref()) {
                out.push_str(&format!(
                    "  98 {:>8} {:>10} {}\n",
                    n * 16,
                    dev.size / 1024,
                    disk_name(n)
                ));
            }
        }
        out
    }
}
