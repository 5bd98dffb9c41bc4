//! Batched datagram I/O on the switch's data socket: receive up to BATCH frames with
//! their senders' raw addresses in one recvmmsg, and send queued (frame, destination)
//! pairs with sendmmsg. nix's mmsg wrappers allocate and convert addresses per call;
//! these keep every buffer preallocated and the 110-byte addresses verbatim.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use uml_proto::switch::{DataAddr, SOCKADDR_LEN};

/// Frames per recvmmsg.
pub const BATCH: usize = 32;
/// Receive buffer: larger than any legal frame so oversized ones are seen (the full
/// length comes back through MSG_TRUNC even when it does not fit).
pub const RX_BUF: usize = 1536;
/// Datagrams per sendmmsg call.
pub const TX_CHUNK: usize = 256;

/// Received frames of one batch.
pub struct RxBatch {
    bufs: Vec<[u8; RX_BUF]>,
    names: Vec<[u8; SOCKADDR_LEN]>,
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    count: usize,
}

impl Default for RxBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RxBatch {
    pub fn new() -> RxBatch {
        let mut rx = RxBatch {
            bufs: vec![[0u8; RX_BUF]; BATCH],
            names: vec![[0u8; SOCKADDR_LEN]; BATCH],
            // SAFETY: mmsghdr and iovec are plain C structs for which all-zero is valid.
            hdrs: vec![unsafe { std::mem::zeroed() }; BATCH],
            // SAFETY: as above, all-zero is a valid iovec.
            iovs: vec![unsafe { std::mem::zeroed() }; BATCH],
            count: BATCH,
        };
        // The vectors' heap storage never moves (they are never resized), so the
        // pointers set here stay valid for the life of the batch.
        for i in 0..BATCH {
            rx.iovs[i] = libc::iovec {
                iov_base: rx.bufs[i].as_mut_ptr() as *mut libc::c_void,
                iov_len: RX_BUF,
            };
            let iov: *mut libc::iovec = &mut rx.iovs[i];
            let h = &mut rx.hdrs[i].msg_hdr;
            h.msg_name = rx.names[i].as_mut_ptr() as *mut libc::c_void;
            h.msg_iov = iov;
            h.msg_iovlen = 1;
        }
        rx
    }

    /// Receives what is queued, up to BATCH frames, without blocking; returns the count
    /// (0 when nothing was waiting).
    pub fn recv(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        // Only the headers the last call filled in were changed by the kernel.
        for h in &mut self.hdrs[..self.count.max(1)] {
            h.msg_hdr.msg_namelen = SOCKADDR_LEN as libc::socklen_t;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        // SAFETY: every header points at live buffers of the stated sizes owned by self
        // (set up in `new`), which outlive the call; BATCH headers are passed.
        let n = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            self.count = 0;
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(e)
            };
        }
        self.count = n as usize;
        Ok(self.count)
    }

    /// The full length of frame `i` (may exceed RX_BUF for an oversized datagram).
    pub fn len(&self, i: usize) -> usize {
        let h = &self.hdrs[i];
        if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            (h.msg_len as usize).max(RX_BUF + 1)
        } else {
            h.msg_len as usize
        }
    }

    /// The bytes of frame `i` that fit the buffer.
    pub fn frame(&self, i: usize) -> &[u8] {
        &self.bufs[i][..self.len(i).min(RX_BUF)]
    }

    pub fn buf_ptr(&self, i: usize) -> *const u8 {
        self.bufs[i].as_ptr()
    }

    /// The address frame `i` came from.
    pub fn sender(&self, i: usize) -> DataAddr {
        let len = (self.hdrs[i].msg_hdr.msg_namelen as usize).min(SOCKADDR_LEN);
        let mut a = DataAddr::from_raw(&self.names[i][..len]);
        a.len = len as u32;
        a
    }
}

/// One queued datagram: which port, which bytes, through which socket to where.
#[derive(Clone, Copy)]
pub struct TxEntry {
    pub port: usize,
    /// The port's own connected socket, or the shared data socket (then `to` is set).
    pub fd: RawFd,
    pub data: *const u8,
    pub len: usize,
    /// The destination, for the shared (unconnected) data socket only.
    pub to: Option<DataAddr>,
    /// Wait (up to the socket's send timeout) for room at a full receiver instead of
    /// failing at once: the port's own socket, and the port is not stalled.
    pub wait: bool,
}

/// Datagrams waiting to be sent with sendmmsg.
pub struct TxQueue {
    entries: Vec<TxEntry>,
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
}

impl Default for TxQueue {
    fn default() -> Self {
        Self::new()
    }
}

/// What happened to one queued datagram.
pub enum Sent<'a> {
    Ok(&'a TxEntry),
    Failed(&'a TxEntry, io::Error),
}

impl TxQueue {
    pub fn new() -> TxQueue {
        TxQueue {
            entries: Vec::with_capacity(TX_CHUNK),
            // SAFETY: all-zero mmsghdr and iovec are valid values.
            hdrs: vec![unsafe { std::mem::zeroed() }; TX_CHUNK],
            // SAFETY: as above, all-zero is a valid iovec.
            iovs: vec![unsafe { std::mem::zeroed() }; TX_CHUNK],
        }
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= TX_CHUNK
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Queues a datagram. The bytes behind `e.data` must stay valid until `flush`.
    pub fn push(&mut self, e: TxEntry) {
        self.entries.push(e);
    }

    /// Sends everything queued, one sendmmsg per socket (the order of the datagrams to
    /// one socket is kept); `report` hears about each datagram once.
    pub fn flush(&mut self, mut report: impl FnMut(Sent<'_>)) {
        let n = self.entries.len();
        if n == 0 {
            return;
        }
        if n == 1 {
            // One datagram: plain send is cheaper than sendmmsg's msghdr handling.
            let e = &self.entries[0];
            // SAFETY: e.data points at e.len bytes the caller keeps alive (see push).
            let frame = unsafe { std::slice::from_raw_parts(e.data, e.len) };
            match send_one(e, frame) {
                Ok(_) => report(Sent::Ok(e)),
                Err(err) => report(Sent::Failed(e, err)),
            }
            self.entries.clear();
            return;
        }
        // Group by socket, keeping each socket's order (insertion sort: the batch is
        // small and mostly in runs already).
        for i in 1..n {
            let mut j = i;
            while j > 0 && self.entries[j - 1].fd > self.entries[j].fd {
                self.entries.swap(j - 1, j);
                j -= 1;
            }
        }
        for (i, e) in self.entries.iter().enumerate() {
            self.iovs[i] = libc::iovec {
                iov_base: e.data as *mut libc::c_void,
                iov_len: e.len,
            };
            let h = &mut self.hdrs[i];
            match &e.to {
                Some(to) => {
                    h.msg_hdr.msg_name = to.bytes.as_ptr() as *mut libc::c_void;
                    h.msg_hdr.msg_namelen = to.len as libc::socklen_t;
                }
                None => {
                    h.msg_hdr.msg_name = std::ptr::null_mut();
                    h.msg_hdr.msg_namelen = 0;
                }
            }
            h.msg_hdr.msg_iov = &mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_len = 0;
        }
        let mut at = 0;
        while at < n {
            let fd = self.entries[at].fd;
            let end = at + self.entries[at..].iter().take_while(|e| e.fd == fd).count();
            let mut wait = self.entries[at].wait;
            while at < end {
                let flags = if wait { 0 } else { libc::MSG_DONTWAIT };
                // SAFETY: headers at..end point at entries' addresses (owned by
                // self.entries, unchanged during the call) and at frame bytes the caller
                // keeps alive.
                let r = unsafe {
                    libc::sendmmsg(
                        fd,
                        self.hdrs.as_mut_ptr().add(at),
                        (end - at) as libc::c_uint,
                        flags,
                    )
                };
                if r > 0 {
                    for e in &self.entries[at..at + r as usize] {
                        report(Sent::Ok(e));
                    }
                    at += r as usize;
                } else {
                    report(Sent::Failed(&self.entries[at], io::Error::last_os_error()));
                    at += 1;
                    // Waited already: the rest of this run fails fast.
                    wait = false;
                }
            }
        }
        self.entries.clear();
    }
}

/// Sends one queued datagram.
fn send_one(e: &TxEntry, frame: &[u8]) -> io::Result<usize> {
    // SAFETY: e.fd is open for the life of the queue; nix's BorrowedFd needs no more.
    let fd = unsafe { BorrowedFd::borrow_raw(e.fd) };
    match &e.to {
        Some(to) => uml_proto::switch::send_to(fd, frame, to),
        None => {
            use nix::sys::socket::MsgFlags;
            let flags = if e.wait {
                MsgFlags::empty()
            } else {
                MsgFlags::MSG_DONTWAIT
            };
            nix::sys::socket::send(e.fd, frame, flags).map_err(io::Error::from)
        }
    }
}
