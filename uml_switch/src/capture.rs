//! `--pcap FILE|-`: every frame the switch forwards, written once (not once per
//! destination) to a pcap file, or to stdout for `| wireshark -k -i -`.

use std::path::Path;

use pcap::{Capture, Linktype, Packet, PacketHeader, Savefile};

pub struct PcapWriter {
    file: Savefile,
    pending: bool,
}

impl PcapWriter {
    /// Opens `target` ("-" is stdout) for writing Ethernet frames.
    pub fn open(target: &Path) -> Result<PcapWriter, String> {
        let dead = Capture::dead(Linktype::ETHERNET).map_err(|e| format!("pcap: {e}"))?;
        let file = if target == Path::new("-") {
            // SAFETY: fd 1 is open for the life of the process and nothing else writes
            // pcap data to it; libpcap takes it over with fdopen.
            unsafe { dead.savefile_raw_fd(1) }
        } else {
            dead.savefile(target)
        }
        .map_err(|e| format!("cannot write pcap file '{}': {e}", target.display()))?;
        Ok(PcapWriter {
            file,
            pending: false,
        })
    }

    /// Records one frame with the current time.
    pub fn write(&mut self, frame: &[u8]) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let header = PacketHeader {
            ts: libc::timeval {
                tv_sec: now.as_secs() as libc::time_t,
                tv_usec: now.subsec_micros() as libc::suseconds_t,
            },
            caplen: frame.len() as u32,
            len: frame.len() as u32,
        };
        self.file.write(&Packet::new(&header, frame));
        self.pending = true;
    }

    /// Pushes what was written to the file (once per batch of frames).
    pub fn flush(&mut self) {
        if self.pending {
            let _ = self.file.flush();
            self.pending = false;
        }
    }
}
