//! A request read from /dev/fuse: the `InHeader` and the operation it carries, with
//! its argument struct and the names or data behind it borrowed from the buffer.
//! `Request::parse` checks every length; `Request::to_bytes` writes the message the
//! kernel would send (tests and the fuzz target round-trip through it).

use super::args::*;
use super::opcode as op;
use super::wire::wire_struct;
use super::FuseError;

wire_struct! {
    /// The header of every request (40 bytes): `len` counts the whole message; the
    /// caller's ids are the host's; `total_extlen` counts 8-byte units of extensions
    /// at the end (0 unless the server asked for them at INIT).
    InHeader {
        len: u32,
        opcode: u32,
        unique: u64,
        nodeid: u64,
        uid: u32,
        gid: u32,
        pid: u32,
        total_extlen: u16,
        padding: u16,
    }
}

/// What a request asks for. Names are single path components without their NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation<'a> {
    Init(InitIn),
    Destroy,
    Lookup {
        name: &'a [u8],
    },
    /// No reply.
    Forget(ForgetIn),
    /// No reply.
    BatchForget(Vec<ForgetOne>),
    Getattr(GetattrIn),
    Setattr(SetattrIn),
    Readlink,
    Symlink {
        name: &'a [u8],
        target: &'a [u8],
    },
    Mknod {
        arg: MknodIn,
        name: &'a [u8],
    },
    Mkdir {
        arg: MkdirIn,
        name: &'a [u8],
    },
    Unlink {
        name: &'a [u8],
    },
    Rmdir {
        name: &'a [u8],
    },
    Rename {
        arg: RenameIn,
        old: &'a [u8],
        new: &'a [u8],
    },
    Rename2 {
        arg: Rename2In,
        old: &'a [u8],
        new: &'a [u8],
    },
    Link {
        arg: LinkIn,
        name: &'a [u8],
    },
    Open(OpenIn),
    Read(ReadIn),
    Write {
        arg: WriteIn,
        data: &'a [u8],
    },
    Statfs,
    Release(ReleaseIn),
    Fsync(FsyncIn),
    Flush(FlushIn),
    Opendir(OpenIn),
    Readdir(ReadIn),
    Readdirplus(ReadIn),
    Releasedir(ReleaseIn),
    Fsyncdir(FsyncIn),
    Access(AccessIn),
    Create {
        arg: CreateIn,
        name: &'a [u8],
    },
    /// Its reply, if any, is ENOSYS or EAGAIN.
    Interrupt(InterruptIn),
    /// An operation this module does not parse (answered ENOSYS); its raw body.
    Other {
        opcode: u32,
        body: &'a [u8],
    },
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub header: InHeader,
    pub op: Operation<'a>,
}

/// Splits a NUL-terminated string off the front of `b`.
fn cstr<'a>(b: &'a [u8], what: &'static str) -> Result<(&'a [u8], &'a [u8]), FuseError> {
    let end = b
        .iter()
        .position(|&c| c == 0)
        .ok_or(FuseError::NoNul(what))?;
    Ok((&b[..end], &b[end + 1..]))
}

/// One NUL-terminated name after a fixed struct of `size` bytes.
fn name_after(body: &[u8], size: usize) -> Result<&[u8], FuseError> {
    Ok(cstr(&body[size.min(body.len())..], "name")?.0)
}

fn two_names(b: &[u8]) -> Result<(&[u8], &[u8]), FuseError> {
    let (first, rest) = cstr(b, "name")?;
    let (second, _) = cstr(rest, "second name")?;
    Ok((first, second))
}

impl<'a> Request<'a> {
    /// Parses one message as read from the device (exactly `header.len` bytes).
    pub fn parse(buf: &'a [u8]) -> Result<Request<'a>, FuseError> {
        let header = InHeader::from_bytes(buf)?;
        let len = header.len as usize;
        if len != buf.len() {
            return Err(FuseError::BadLength {
                len: header.len,
                got: buf.len(),
            });
        }
        let ext = usize::from(header.total_extlen) * 8;
        let body = buf
            .get(InHeader::SIZE..len.saturating_sub(ext))
            .ok_or(FuseError::Short {
                what: "request extensions",
                need: InHeader::SIZE + ext,
                got: len,
            })?;
        let op = Self::operation(header.opcode, body)?;
        Ok(Request { header, op })
    }

    fn operation(opcode: u32, body: &'a [u8]) -> Result<Operation<'a>, FuseError> {
        Ok(match opcode {
            op::INIT => Operation::Init(InitIn::from_bytes(body)?),
            op::DESTROY => Operation::Destroy,
            op::LOOKUP => Operation::Lookup {
                name: cstr(body, "name")?.0,
            },
            op::FORGET => Operation::Forget(ForgetIn::from_bytes(body)?),
            op::BATCH_FORGET => {
                let head = BatchForgetIn::from_bytes(body)?;
                let rest = &body[BatchForgetIn::SIZE..];
                let n = head.count as usize;
                if rest.len() / ForgetOne::SIZE < n {
                    return Err(FuseError::ForgetCount {
                        count: head.count,
                        got: rest.len(),
                    });
                }
                let list = rest
                    .chunks_exact(ForgetOne::SIZE)
                    .take(n)
                    .map(ForgetOne::from_bytes)
                    .collect::<Result<Vec<_>, _>>()?;
                Operation::BatchForget(list)
            }
            op::GETATTR => Operation::Getattr(GetattrIn::from_bytes(body)?),
            op::SETATTR => Operation::Setattr(SetattrIn::from_bytes(body)?),
            op::READLINK => Operation::Readlink,
            op::SYMLINK => {
                let (name, target) = two_names(body)?;
                Operation::Symlink { name, target }
            }
            op::MKNOD => Operation::Mknod {
                arg: MknodIn::from_bytes(body)?,
                name: name_after(body, MknodIn::SIZE)?,
            },
            op::MKDIR => Operation::Mkdir {
                arg: MkdirIn::from_bytes(body)?,
                name: name_after(body, MkdirIn::SIZE)?,
            },
            op::UNLINK => Operation::Unlink {
                name: cstr(body, "name")?.0,
            },
            op::RMDIR => Operation::Rmdir {
                name: cstr(body, "name")?.0,
            },
            op::RENAME => {
                let arg = RenameIn::from_bytes(body)?;
                let (old, new) = two_names(&body[RenameIn::SIZE..])?;
                Operation::Rename { arg, old, new }
            }
            op::RENAME2 => {
                let arg = Rename2In::from_bytes(body)?;
                let (old, new) = two_names(&body[Rename2In::SIZE..])?;
                Operation::Rename2 { arg, old, new }
            }
            op::LINK => Operation::Link {
                arg: LinkIn::from_bytes(body)?,
                name: name_after(body, LinkIn::SIZE)?,
            },
            op::OPEN => Operation::Open(OpenIn::from_bytes(body)?),
            op::OPENDIR => Operation::Opendir(OpenIn::from_bytes(body)?),
            op::READ => Operation::Read(ReadIn::from_bytes(body)?),
            op::READDIR => Operation::Readdir(ReadIn::from_bytes(body)?),
            op::READDIRPLUS => Operation::Readdirplus(ReadIn::from_bytes(body)?),
            op::WRITE => {
                let arg = WriteIn::from_bytes(body)?;
                let data = &body[WriteIn::SIZE..];
                if data.len() != arg.size as usize {
                    return Err(FuseError::WriteSize {
                        size: arg.size,
                        got: data.len(),
                    });
                }
                Operation::Write { arg, data }
            }
            op::STATFS => Operation::Statfs,
            op::RELEASE => Operation::Release(ReleaseIn::from_bytes(body)?),
            op::RELEASEDIR => Operation::Releasedir(ReleaseIn::from_bytes(body)?),
            op::FSYNC => Operation::Fsync(FsyncIn::from_bytes(body)?),
            op::FSYNCDIR => Operation::Fsyncdir(FsyncIn::from_bytes(body)?),
            op::FLUSH => Operation::Flush(FlushIn::from_bytes(body)?),
            op::ACCESS => Operation::Access(AccessIn::from_bytes(body)?),
            op::CREATE => Operation::Create {
                arg: CreateIn::from_bytes(body)?,
                name: name_after(body, CreateIn::SIZE)?,
            },
            op::INTERRUPT => Operation::Interrupt(InterruptIn::from_bytes(body)?),
            opcode => Operation::Other { opcode, body },
        })
    }

    /// The operation's code.
    pub fn opcode(&self) -> u32 {
        self.op.opcode()
    }

    /// The whole message as the kernel sends it; `header.len` and `total_extlen` are
    /// set from what is written (no extensions).
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = self.op.body();
        let header = InHeader {
            len: (InHeader::SIZE + body.len()) as u32,
            opcode: self.op.opcode(),
            total_extlen: 0,
            ..self.header
        };
        let mut out = header.to_bytes();
        out.extend_from_slice(&body);
        out
    }
}

fn with_names(mut fixed: Vec<u8>, names: &[&[u8]]) -> Vec<u8> {
    for n in names {
        fixed.extend_from_slice(n);
        fixed.push(0);
    }
    fixed
}

impl Operation<'_> {
    /// The opcode it travels under.
    pub fn opcode(&self) -> u32 {
        match self {
            Operation::Init(_) => op::INIT,
            Operation::Destroy => op::DESTROY,
            Operation::Lookup { .. } => op::LOOKUP,
            Operation::Forget(_) => op::FORGET,
            Operation::BatchForget(_) => op::BATCH_FORGET,
            Operation::Getattr(_) => op::GETATTR,
            Operation::Setattr(_) => op::SETATTR,
            Operation::Readlink => op::READLINK,
            Operation::Symlink { .. } => op::SYMLINK,
            Operation::Mknod { .. } => op::MKNOD,
            Operation::Mkdir { .. } => op::MKDIR,
            Operation::Unlink { .. } => op::UNLINK,
            Operation::Rmdir { .. } => op::RMDIR,
            Operation::Rename { .. } => op::RENAME,
            Operation::Rename2 { .. } => op::RENAME2,
            Operation::Link { .. } => op::LINK,
            Operation::Open(_) => op::OPEN,
            Operation::Read(_) => op::READ,
            Operation::Write { .. } => op::WRITE,
            Operation::Statfs => op::STATFS,
            Operation::Release(_) => op::RELEASE,
            Operation::Fsync(_) => op::FSYNC,
            Operation::Flush(_) => op::FLUSH,
            Operation::Opendir(_) => op::OPENDIR,
            Operation::Readdir(_) => op::READDIR,
            Operation::Readdirplus(_) => op::READDIRPLUS,
            Operation::Releasedir(_) => op::RELEASEDIR,
            Operation::Fsyncdir(_) => op::FSYNCDIR,
            Operation::Access(_) => op::ACCESS,
            Operation::Create { .. } => op::CREATE,
            Operation::Interrupt(_) => op::INTERRUPT,
            Operation::Other { opcode, .. } => *opcode,
        }
    }

    /// The bytes after the header.
    pub fn body(&self) -> Vec<u8> {
        match self {
            Operation::Init(a) => a.to_bytes(),
            Operation::Destroy | Operation::Readlink | Operation::Statfs => Vec::new(),
            Operation::Lookup { name } | Operation::Unlink { name } | Operation::Rmdir { name } => {
                with_names(Vec::new(), &[name])
            }
            Operation::Forget(a) => a.to_bytes(),
            Operation::BatchForget(list) => {
                let mut v = BatchForgetIn {
                    count: list.len() as u32,
                    dummy: 0,
                }
                .to_bytes();
                for f in list {
                    f.write_to(&mut v);
                }
                v
            }
            Operation::Getattr(a) => a.to_bytes(),
            Operation::Setattr(a) => a.to_bytes(),
            Operation::Symlink { name, target } => with_names(Vec::new(), &[name, target]),
            Operation::Mknod { arg, name } => with_names(arg.to_bytes(), &[name]),
            Operation::Mkdir { arg, name } => with_names(arg.to_bytes(), &[name]),
            Operation::Rename { arg, old, new } => with_names(arg.to_bytes(), &[old, new]),
            Operation::Rename2 { arg, old, new } => with_names(arg.to_bytes(), &[old, new]),
            Operation::Link { arg, name } => with_names(arg.to_bytes(), &[name]),
            Operation::Open(a) | Operation::Opendir(a) => a.to_bytes(),
            Operation::Read(a) | Operation::Readdir(a) | Operation::Readdirplus(a) => a.to_bytes(),
            Operation::Write { arg, data } => {
                let mut v = WriteIn {
                    size: data.len() as u32,
                    ..*arg
                }
                .to_bytes();
                v.extend_from_slice(data);
                v
            }
            Operation::Release(a) | Operation::Releasedir(a) => a.to_bytes(),
            Operation::Fsync(a) | Operation::Fsyncdir(a) => a.to_bytes(),
            Operation::Flush(a) => a.to_bytes(),
            Operation::Access(a) => a.to_bytes(),
            Operation::Create { arg, name } => with_names(arg.to_bytes(), &[name]),
            Operation::Interrupt(a) => a.to_bytes(),
            Operation::Other { body, .. } => body.to_vec(),
        }
    }

    /// Whether the kernel waits for an answer (FORGET and BATCH_FORGET get none).
    pub fn wants_reply(&self) -> bool {
        !matches!(self, Operation::Forget(_) | Operation::BatchForget(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(opcode: u32) -> InHeader {
        InHeader {
            opcode,
            unique: 42,
            nodeid: 1,
            uid: 1000,
            gid: 100,
            pid: 77,
            ..InHeader::default()
        }
    }

    /// A LOOKUP of "etc" in the root, byte for byte as Linux sends it.
    #[test]
    fn lookup_bytes_as_the_kernel_sends_them() {
        let mut raw = Vec::new();
        raw.extend_from_slice(&44u32.to_ne_bytes()); // len
        raw.extend_from_slice(&1u32.to_ne_bytes()); // LOOKUP
        raw.extend_from_slice(&42u64.to_ne_bytes()); // unique
        raw.extend_from_slice(&1u64.to_ne_bytes()); // nodeid
        raw.extend_from_slice(&1000u32.to_ne_bytes());
        raw.extend_from_slice(&100u32.to_ne_bytes());
        raw.extend_from_slice(&77u32.to_ne_bytes());
        raw.extend_from_slice(&[0, 0, 0, 0]);
        raw.extend_from_slice(b"etc\0");
        let r = Request::parse(&raw).unwrap();
        assert_eq!(r.header.len, 44);
        assert_eq!(r.header.uid, 1000);
        assert_eq!(r.op, Operation::Lookup { name: b"etc" });
        assert_eq!(r.to_bytes(), raw);
    }

    /// Every request the host kernel sent the seed capture (fuzz/capture-seeds, Linux
    /// 6.18) parses, and is emitted again byte for byte.
    #[test]
    fn requests_captured_from_linux_parse_and_round_trip() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/fuse_wire");
        let mut seen = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let raw = std::fs::read(&path).unwrap();
            let r = Request::parse(&raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(r.to_bytes(), raw, "{}", path.display());
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name == "linux-init-1" {
                let Operation::Init(i) = r.op else {
                    panic!("{name}: {:?}", r.op)
                };
                assert_eq!(i.major, 7);
                assert!(i.minor >= 31, "{i:?}");
            }
            if name.starts_with("linux-getxattr") {
                assert!(matches!(
                    r.op,
                    Operation::Other {
                        opcode: op::GETXATTR,
                        ..
                    }
                ));
            } else {
                assert!(
                    !matches!(r.op, Operation::Other { .. }),
                    "{name}: {:?}",
                    r.op
                );
            }
            seen += 1;
        }
        assert!(seen >= 30, "only {seen} captured requests in {dir}");
    }

    #[test]
    fn every_operation_round_trips() {
        let ops = vec![
            Operation::Init(InitIn {
                major: 7,
                minor: 39,
                max_readahead: 131072,
                flags: 0x3fff_ffff,
                flags2: 3,
            }),
            Operation::Destroy,
            Operation::Forget(ForgetIn { nlookup: 3 }),
            Operation::BatchForget(vec![
                ForgetOne {
                    nodeid: 2,
                    nlookup: 1,
                },
                ForgetOne {
                    nodeid: 9,
                    nlookup: 4,
                },
            ]),
            Operation::Getattr(GetattrIn::default()),
            Operation::Setattr(SetattrIn {
                valid: super::super::fattr::MODE,
                mode: 0o100600,
                ..SetattrIn::default()
            }),
            Operation::Readlink,
            Operation::Symlink {
                name: b"link",
                target: b"../target",
            },
            Operation::Mknod {
                arg: MknodIn {
                    mode: 0o020644,
                    rdev: 0x0103,
                    umask: 0o22,
                    padding: 0,
                },
                name: b"null",
            },
            Operation::Mkdir {
                arg: MkdirIn {
                    mode: 0o755,
                    umask: 0o22,
                },
                name: b"d",
            },
            Operation::Unlink { name: b"f" },
            Operation::Rmdir { name: b"d" },
            Operation::Rename {
                arg: RenameIn { newdir: 5 },
                old: b"a",
                new: b"b",
            },
            Operation::Rename2 {
                arg: Rename2In {
                    newdir: 5,
                    flags: 1,
                    padding: 0,
                },
                old: b"a",
                new: b"b",
            },
            Operation::Link {
                arg: LinkIn { oldnodeid: 7 },
                name: b"hard",
            },
            Operation::Open(OpenIn {
                flags: 2,
                open_flags: 0,
            }),
            Operation::Read(ReadIn {
                fh: 1,
                offset: 4096,
                size: 4096,
                ..ReadIn::default()
            }),
            Operation::Write {
                arg: WriteIn {
                    fh: 1,
                    offset: 10,
                    size: 5,
                    ..WriteIn::default()
                },
                data: b"hello",
            },
            Operation::Statfs,
            Operation::Release(ReleaseIn::default()),
            Operation::Fsync(FsyncIn::default()),
            Operation::Flush(FlushIn::default()),
            Operation::Opendir(OpenIn::default()),
            Operation::Readdir(ReadIn::default()),
            Operation::Readdirplus(ReadIn::default()),
            Operation::Releasedir(ReleaseIn::default()),
            Operation::Fsyncdir(FsyncIn::default()),
            Operation::Access(AccessIn {
                mask: 4,
                padding: 0,
            }),
            Operation::Create {
                arg: CreateIn {
                    flags: 0o101,
                    mode: 0o100644,
                    umask: 0o22,
                    open_flags: 0,
                },
                name: b"new",
            },
            Operation::Interrupt(InterruptIn { unique: 41 }),
            Operation::Other {
                opcode: op::GETXATTR,
                body: b"\x10\0\0\0\0\0\0\0user.x\0",
            },
        ];
        for o in ops {
            let req = Request {
                header: header(o.opcode()),
                op: o,
            };
            let bytes = req.to_bytes();
            let back = Request::parse(&bytes).unwrap();
            assert_eq!(back.op, req.op);
            assert_eq!(back.header.len as usize, bytes.len());
        }
    }

    #[test]
    fn malformed_requests_are_typed_errors() {
        let lookup = Request {
            header: header(op::LOOKUP),
            op: Operation::Lookup { name: b"x" },
        }
        .to_bytes();
        // The header's length disagrees with what was read.
        assert_eq!(
            Request::parse(&lookup[..lookup.len() - 1]),
            Err(FuseError::BadLength { len: 42, got: 41 })
        );
        // A name without NUL.
        let mut no_nul = lookup.clone();
        let n = no_nul.len();
        no_nul[n - 1] = b'y';
        assert_eq!(Request::parse(&no_nul), Err(FuseError::NoNul("name")));
        // A write that carries less than it says.
        let mut w = Request {
            header: header(op::WRITE),
            op: Operation::Write {
                arg: WriteIn::default(),
                data: b"abc",
            },
        }
        .to_bytes();
        w[40 + 16..40 + 20].copy_from_slice(&9u32.to_ne_bytes());
        assert_eq!(
            Request::parse(&w),
            Err(FuseError::WriteSize { size: 9, got: 3 })
        );
        // A batch forget announcing more than it carries.
        let mut b = Request {
            header: header(op::BATCH_FORGET),
            op: Operation::BatchForget(vec![ForgetOne::default()]),
        }
        .to_bytes();
        b[40..44].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(matches!(
            Request::parse(&b),
            Err(FuseError::ForgetCount { count: 1000, .. })
        ));
        // Extensions longer than the message.
        let mut e = lookup.clone();
        e[36..38].copy_from_slice(&100u16.to_ne_bytes());
        assert!(matches!(Request::parse(&e), Err(FuseError::Short { .. })));
        assert!(Request::parse(&[0u8; 10]).is_err());
    }

    #[test]
    fn extensions_are_cut_off() {
        let mut raw = Request {
            header: header(op::MKDIR),
            op: Operation::Mkdir {
                arg: MkdirIn::default(),
                name: b"d",
            },
        }
        .to_bytes();
        raw.extend_from_slice(&[0xffu8; 16]);
        let len = raw.len() as u32;
        raw[0..4].copy_from_slice(&len.to_ne_bytes());
        raw[36..38].copy_from_slice(&2u16.to_ne_bytes());
        let r = Request::parse(&raw).unwrap();
        assert_eq!(
            r.op,
            Operation::Mkdir {
                arg: MkdirIn::default(),
                name: b"d"
            }
        );
    }
}
