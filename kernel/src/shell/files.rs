//! The shell's long-running file commands, as jobs the loop drives in slices of a few
//! milliseconds (mconsole keeps answering meanwhile): `dd if=IN of=OUT [bs=N]
//! [count=N]` copies through the VFS with busybox dd's report, and the benchmark-only
//! `fsbench files DIR COUNT`, which creates COUNT two-byte files `DIR/f0`... the way a
//! shell loop of `echo x > DIR/f$i` does (open with O_CREAT|O_TRUNC, write, close).

use std::time::{Duration, Instant};

use crate::fs::vfs::{oflag::*, OpenFile};
use crate::fs::Errno;
use crate::job::{Job, Progress, Run};
use crate::machine::Machine;

/// How long one poll of a job may work before it yields to the loop.
const SLICE: Duration = Duration::from_millis(2);

/// `dd`'s block size by default (busybox's).
const DEFAULT_BS: usize = 512;
/// Largest block size accepted.
const MAX_BS: usize = 64 << 20;

/// A size with busybox's suffixes: c (1), w (2), b (512), k/K, M, G.
fn parse_size(s: &str) -> Option<u64> {
    let (digits, mult) = match s.char_indices().last()? {
        (i, 'c') => (&s[..i], 1),
        (i, 'w') => (&s[..i], 2),
        (i, 'b') => (&s[..i], 512),
        (i, 'k' | 'K') => (&s[..i], 1 << 10),
        (i, 'M') => (&s[..i], 1 << 20),
        (i, 'G') => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// busybox's human-readable size, e.g. `64.0MB`.
fn human(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.1}{}", units[u])
    }
}

/// A copy in progress.
struct Dd {
    src: OpenFile,
    dst: OpenFile,
    buf: Vec<u8>,
    /// Blocks still to copy (None: to the end of the input).
    left: Option<u64>,
    full_in: u64,
    part_in: u64,
    full_out: u64,
    part_out: u64,
    bytes: u64,
    start: Instant,
    open: bool,
}

/// `dd if=IN of=OUT [bs=N] [count=N]`.
pub fn dd(args: &[&str], m: &mut Machine) -> Run {
    let (mut input, mut output, mut bs, mut count) = (None, None, DEFAULT_BS, None);
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            return Run::Done(format!("dd: invalid argument '{a}'\n"));
        };
        match k {
            "if" => input = Some(v),
            "of" => output = Some(v),
            "bs" => match parse_size(v) {
                Some(n) if n > 0 && n as usize <= MAX_BS => bs = n as usize,
                _ => return Run::Done(format!("dd: invalid number '{v}'\n")),
            },
            "count" => match parse_size(v) {
                Some(n) => count = Some(n),
                None => return Run::Done(format!("dd: invalid number '{v}'\n")),
            },
            _ => return Run::Done(format!("dd: invalid argument '{a}'\n")),
        }
    }
    let (Some(input), Some(output)) = (input, output) else {
        return Run::Done("dd: if= and of= are needed (no standard input here)\n".into());
    };
    let files = &mut m.files;
    let src = match files
        .vfs
        .open(files.cwd, input.as_bytes(), O_RDONLY, 0, 0, 0)
    {
        Ok(f) => f,
        Err(e) => return Run::Done(format!("dd: can't open '{input}': {e}\n")),
    };
    let flags = O_WRONLY | O_CREAT | O_TRUNC;
    let dst = match files
        .vfs
        .open(files.cwd, output.as_bytes(), flags, 0o644, 0, 0)
    {
        Ok(f) => f,
        Err(e) => {
            let _ = files.vfs.close(src);
            return Run::Done(format!("dd: can't open '{output}': {e}\n"));
        }
    };
    Run::Job(Box::new(Dd {
        src,
        dst,
        buf: vec![0; bs],
        left: count,
        full_in: 0,
        part_in: 0,
        full_out: 0,
        part_out: 0,
        bytes: 0,
        start: Instant::now(),
        open: true,
    }))
}

impl Dd {
    /// Copies one block; Ok(false) at the end of the input or the count.
    fn step(&mut self, m: &mut Machine) -> Result<bool, Errno> {
        if self.left == Some(0) {
            return Ok(false);
        }
        let vfs = &mut m.files.vfs;
        let bs = self.buf.len();
        let n = vfs.read(&mut self.src, &mut self.buf)?;
        if n == 0 {
            return Ok(false);
        }
        if n == bs {
            self.full_in += 1;
        } else {
            self.part_in += 1;
        }
        let mut done = 0;
        while done < n {
            let w = vfs.write(&mut self.dst, &self.buf[done..n])?;
            if w == 0 {
                return Err(Errno::ENOSPC);
            }
            done += w;
        }
        if n == bs {
            self.full_out += 1;
        } else {
            self.part_out += 1;
        }
        self.bytes += n as u64;
        if let Some(l) = &mut self.left {
            *l -= 1;
        }
        Ok(true)
    }

    fn close(&mut self, m: &mut Machine) {
        if std::mem::take(&mut self.open) {
            let _ = m.files.vfs.close(self.src.clone());
            let _ = m.files.vfs.close(self.dst.clone());
        }
    }

    fn report(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            human((self.bytes as f64 / secs) as u64)
        } else {
            "inf".into()
        };
        format!(
            "{}+{} records in\n{}+{} records out\n{} bytes ({}) copied, {secs:.6} seconds, {rate}/s\n",
            self.full_in,
            self.part_in,
            self.full_out,
            self.part_out,
            self.bytes,
            human(self.bytes)
        )
    }
}

impl Job for Dd {
    fn poll(&mut self, m: &mut Machine) -> Progress {
        let slice = Instant::now();
        loop {
            match self.step(m) {
                Ok(true) if slice.elapsed() < SLICE => continue,
                Ok(true) => return Progress::more(String::new()),
                Ok(false) => {
                    self.close(m);
                    return Progress::finished(self.report());
                }
                Err(e) => {
                    self.close(m);
                    return Progress::finished(format!("dd: {e}\n{}", self.report()));
                }
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        // More to do: poll again at once.
        Some(Instant::now())
    }

    fn cancel(&mut self, m: &mut Machine) {
        self.close(m);
    }
}

/// `fsbench files DIR COUNT` in progress.
struct MakeFiles {
    dir: String,
    next: u64,
    count: u64,
    start: Instant,
}

/// `fsbench files DIR COUNT`: the benchmark's small-file creation (see the module).
pub fn fsbench(args: &[&str]) -> Run {
    match args {
        ["files", dir, count] => match count.parse::<u64>() {
            Ok(count) => Run::Job(Box::new(MakeFiles {
                dir: dir.trim_end_matches('/').to_string(),
                next: 0,
                count,
                start: Instant::now(),
            })),
            Err(_) => Run::Done(format!("fsbench: {count}: not a number\n")),
        },
        _ => Run::Done("usage: fsbench files DIR COUNT\n".into()),
    }
}

impl MakeFiles {
    fn one(&mut self, m: &mut Machine) -> Result<(), Errno> {
        let path = format!("{}/f{}", self.dir, self.next);
        let files = &mut m.files;
        let flags = O_WRONLY | O_CREAT | O_TRUNC;
        let mut f = files
            .vfs
            .open(files.cwd, path.as_bytes(), flags, 0o644, 0, 0)?;
        let written = files.vfs.write(&mut f, b"x\n");
        files.vfs.close(f)?;
        written.map(|_| ())
    }
}

impl Job for MakeFiles {
    fn poll(&mut self, m: &mut Machine) -> Progress {
        let slice = Instant::now();
        while self.next < self.count {
            if let Err(e) = self.one(m) {
                return Progress::finished(format!("fsbench: {}/f{}: {e}\n", self.dir, self.next));
            }
            self.next += 1;
            if slice.elapsed() >= SLICE {
                return Progress::more(String::new());
            }
        }
        let secs = self.start.elapsed().as_secs_f64();
        Progress::finished(format!(
            "created {} files in {secs:.6} seconds\n",
            self.count
        ))
    }

    fn deadline(&self) -> Option<Instant> {
        Some(Instant::now())
    }

    fn cancel(&mut self, _: &mut Machine) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_reports() {
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("4k"), Some(4096));
        assert_eq!(parse_size("3b"), Some(1536));
        assert_eq!(parse_size("17"), Some(17));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(human(64 << 20), "64.0MB");
        assert_eq!(human(100), "100B");
    }
}
