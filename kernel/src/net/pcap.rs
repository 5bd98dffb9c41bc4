//! The pcap transport: a read-only device that receives the frames crossing a host
//! interface that match a pcap filter expression (options `promisc`/`nopromisc`,
//! `optimize`/`nooptimize`). Nothing is ever sent.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use pcap::{Active, Capture};

use super::error::NetError;

pub struct Pcap {
    cap: RefCell<Capture<Active>>,
    fd: RawFd,
}

impl Pcap {
    pub fn open(
        host_if: &str,
        filter: Option<&str>,
        promisc: bool,
        optimize: bool,
    ) -> Result<Pcap, NetError> {
        let cap = Capture::from_device(host_if)
            .and_then(|c| {
                c.promisc(promisc)
                    .immediate_mode(true)
                    .snaplen(65535)
                    .open()
            })
            .and_then(|c| c.setnonblock())
            .map_err(|e| NetError::Pcap {
                host_if: host_if.to_owned(),
                filter: None,
                error: e.to_string(),
            })?;
        let mut cap = cap;
        if let Some(f) = filter {
            cap.filter(f, optimize).map_err(|e| NetError::Pcap {
                host_if: host_if.to_owned(),
                filter: Some(f.to_owned()),
                error: e.to_string(),
            })?;
        }
        let fd = cap.as_raw_fd();
        Ok(Pcap {
            cap: RefCell::new(cap),
            fd,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let mut cap = self.cap.borrow_mut();
        match cap.next_packet() {
            Ok(p) => {
                let n = p.data.len().min(buf.len());
                buf[..n].copy_from_slice(&p.data[..n]);
                Ok(Some(n))
            }
            Err(pcap::Error::TimeoutExpired) | Err(pcap::Error::NoMorePackets) => Ok(None),
            Err(e) => Err(io::Error::other(e.to_string())),
        }
    }
}
