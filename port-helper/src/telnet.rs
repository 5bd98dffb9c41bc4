//! The telnet protocol (RFC 854 and the option negotiation of RFC 1143, simplified) as a
//! pure state machine: bytes from the network in, terminal bytes and replies out. No
//! I/O here, so every case is unit-tested.
//!
//! Policy: we offer ECHO and SUPPRESS-GO-AHEAD (so clients switch to character mode),
//! ask for the client's SUPPRESS-GO-AHEAD and window size (NAWS), accept BINARY both
//! ways and refuse everything else.

/// Interpret As Command: starts every command; doubled in data.
pub const IAC: u8 = 255;
pub const DONT: u8 = 254;
pub const DO: u8 = 253;
pub const WONT: u8 = 252;
pub const WILL: u8 = 251;
/// Subnegotiation begin / end.
pub const SB: u8 = 250;
pub const SE: u8 = 240;
/// Interrupt Process: becomes ^C for the terminal.
pub const IP: u8 = 244;

pub const OPT_BINARY: u8 = 0;
pub const OPT_ECHO: u8 = 1;
pub const OPT_SGA: u8 = 3;
pub const OPT_NAWS: u8 = 31;

/// Options we perform ourselves when asked.
const OURS: [u8; 3] = [OPT_BINARY, OPT_ECHO, OPT_SGA];
/// Options we let the client perform.
const THEIRS: [u8; 3] = [OPT_BINARY, OPT_SGA, OPT_NAWS];
/// Longest subnegotiation kept (longer ones are dropped).
const MAX_SB: usize = 64;

/// One side's state of one option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OptState {
    No,
    /// We asked and wait for the answer.
    WantYes,
    Yes,
}

/// Where the parser is inside the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parse {
    Data,
    /// Data after a CR in NVT (non-binary) mode: a following LF or NUL is dropped.
    AfterCr,
    Iac,
    /// IAC WILL/WONT/DO/DONT seen, waiting for the option byte.
    Negotiate(u8),
    Sub,
    SubIac,
}

/// Something the server should act on beyond forwarding bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The client's window size (NAWS): columns, rows.
    WindowSize { cols: u16, rows: u16 },
}

/// What one call of [`Telnet::receive`] produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Received {
    /// Bytes for the terminal (the login program's input).
    pub to_terminal: Vec<u8>,
    /// Replies for the client.
    pub to_client: Vec<u8>,
    pub events: Vec<Event>,
}

/// One telnet connection's protocol state.
#[derive(Debug, Clone)]
pub struct Telnet {
    parse: Parse,
    us: [OptState; 256],
    them: [OptState; 256],
    sub: Vec<u8>,
}

impl Default for Telnet {
    fn default() -> Self {
        Self::new()
    }
}

impl Telnet {
    pub fn new() -> Telnet {
        Telnet {
            parse: Parse::Data,
            us: [OptState::No; 256],
            them: [OptState::No; 256],
            sub: Vec::new(),
        }
    }

    /// The opening negotiation: WILL ECHO, WILL SGA, DO SGA, DO NAWS.
    pub fn greeting(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        for opt in [OPT_ECHO, OPT_SGA] {
            self.us[opt as usize] = OptState::WantYes;
            out.extend_from_slice(&[IAC, WILL, opt]);
        }
        for opt in [OPT_SGA, OPT_NAWS] {
            self.them[opt as usize] = OptState::WantYes;
            out.extend_from_slice(&[IAC, DO, opt]);
        }
        out
    }

    /// Whether the client sends binary data (no CR NUL / CR LF translation).
    pub fn client_binary(&self) -> bool {
        self.them[OPT_BINARY as usize] == OptState::Yes
    }

    /// Whether an option is on, on our side.
    pub fn we_do(&self, opt: u8) -> bool {
        self.us[opt as usize] == OptState::Yes
    }

    /// Whether an option is on, on the client's side.
    pub fn they_do(&self, opt: u8) -> bool {
        self.them[opt as usize] == OptState::Yes
    }

    /// Interprets bytes from the client.
    pub fn receive(&mut self, input: &[u8]) -> Received {
        let mut r = Received::default();
        for &b in input {
            self.step(b, &mut r);
        }
        r
    }

    fn step(&mut self, b: u8, r: &mut Received) {
        self.parse = match self.parse {
            Parse::Data | Parse::AfterCr if b == IAC => Parse::Iac,
            Parse::AfterCr if b == b'\n' || b == 0 => Parse::Data,
            Parse::Data | Parse::AfterCr => {
                r.to_terminal.push(b);
                if b == b'\r' && !self.client_binary() {
                    Parse::AfterCr
                } else {
                    Parse::Data
                }
            }
            Parse::Iac => self.command(b, r),
            Parse::Negotiate(verb) => {
                self.negotiate(verb, b, r);
                Parse::Data
            }
            Parse::Sub if b == IAC => Parse::SubIac,
            Parse::Sub => {
                self.push_sub(b);
                Parse::Sub
            }
            Parse::SubIac if b == SE => {
                self.finish_sub(r);
                Parse::Data
            }
            Parse::SubIac => {
                // IAC IAC inside a subnegotiation is a data 255.
                self.push_sub(b);
                Parse::Sub
            }
        };
    }

    fn command(&mut self, b: u8, r: &mut Received) -> Parse {
        match b {
            IAC => {
                r.to_terminal.push(IAC);
                Parse::Data
            }
            WILL | WONT | DO | DONT => Parse::Negotiate(b),
            SB => {
                self.sub.clear();
                Parse::Sub
            }
            IP => {
                r.to_terminal.push(0x03);
                Parse::Data
            }
            // NOP, GA, AYT, data mark and the rest need nothing from a pty relay.
            _ => Parse::Data,
        }
    }

    fn push_sub(&mut self, b: u8) {
        if self.sub.len() < MAX_SB {
            self.sub.push(b);
        }
    }

    fn finish_sub(&mut self, r: &mut Received) {
        if let [OPT_NAWS, c1, c0, r1, r0] = self.sub[..] {
            r.events.push(Event::WindowSize {
                cols: u16::from_be_bytes([c1, c0]),
                rows: u16::from_be_bytes([r1, r0]),
            });
        }
        self.sub.clear();
    }

    fn negotiate(&mut self, verb: u8, opt: u8, r: &mut Received) {
        let i = opt as usize;
        match verb {
            DO => self.us[i] = answer_request(self.us[i], OURS.contains(&opt), opt, WILL, WONT, r),
            WILL => {
                self.them[i] = answer_request(self.them[i], THEIRS.contains(&opt), opt, DO, DONT, r)
            }
            DONT => self.us[i] = answer_refusal(self.us[i], opt, WONT, r),
            WONT => self.them[i] = answer_refusal(self.them[i], opt, DONT, r),
            _ => {}
        }
    }
}

/// The peer asks that an option be on (DO for ours, WILL for theirs).
fn answer_request(
    state: OptState,
    supported: bool,
    opt: u8,
    yes: u8,
    no: u8,
    r: &mut Received,
) -> OptState {
    match state {
        OptState::Yes => OptState::Yes,
        OptState::WantYes => OptState::Yes,
        OptState::No if supported => {
            r.to_client.extend_from_slice(&[IAC, yes, opt]);
            OptState::Yes
        }
        OptState::No => {
            r.to_client.extend_from_slice(&[IAC, no, opt]);
            OptState::No
        }
    }
}

/// The peer says an option is (or must be) off (DONT for ours, WONT for theirs).
fn answer_refusal(state: OptState, opt: u8, no: u8, r: &mut Received) -> OptState {
    if state == OptState::Yes {
        r.to_client.extend_from_slice(&[IAC, no, opt]);
    }
    OptState::No
}

/// Appends `data` for the client with every IAC byte doubled.
pub fn escape_into(data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.split_inclusive(|&b| b == IAC) {
        out.extend_from_slice(chunk);
        if chunk.last() == Some(&IAC) {
            out.push(IAC);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_offers_echo_and_sga_and_asks_for_sga_and_naws() {
        let mut t = Telnet::new();
        assert_eq!(
            t.greeting(),
            [IAC, WILL, OPT_ECHO, IAC, WILL, OPT_SGA, IAC, DO, OPT_SGA, IAC, DO, OPT_NAWS]
        );
    }

    #[test]
    fn acknowledgements_of_our_requests_get_no_reply() {
        let mut t = Telnet::new();
        t.greeting();
        let r = t.receive(&[IAC, DO, OPT_ECHO, IAC, DO, OPT_SGA, IAC, WILL, OPT_SGA]);
        assert!(r.to_client.is_empty(), "{:?}", r.to_client);
        assert!(t.we_do(OPT_ECHO) && t.we_do(OPT_SGA) && t.they_do(OPT_SGA));
    }

    #[test]
    fn unknown_options_are_refused_once() {
        let mut t = Telnet::new();
        let r = t.receive(&[IAC, DO, 24, IAC, WILL, 24, IAC, WILL, 39]);
        assert_eq!(r.to_client, [IAC, WONT, 24, IAC, DONT, 24, IAC, DONT, 39]);
        assert!(r.to_terminal.is_empty());
    }

    #[test]
    fn supported_options_are_accepted_and_turned_off_on_request() {
        let mut t = Telnet::new();
        let r = t.receive(&[IAC, WILL, OPT_BINARY, IAC, DO, OPT_BINARY]);
        assert_eq!(r.to_client, [IAC, DO, OPT_BINARY, IAC, WILL, OPT_BINARY]);
        assert!(t.client_binary());
        let r = t.receive(&[IAC, WONT, OPT_BINARY, IAC, WONT, OPT_BINARY]);
        assert_eq!(r.to_client, [IAC, DONT, OPT_BINARY]);
        assert!(!t.client_binary());
    }

    #[test]
    fn doubled_iac_is_one_data_byte_and_commands_vanish() {
        let mut t = Telnet::new();
        let r = t.receive(&[b'a', IAC, IAC, b'b', IAC, 241, b'c']);
        assert_eq!(r.to_terminal, [b'a', 255, b'b', b'c']);
    }

    #[test]
    fn cr_lf_and_cr_nul_become_cr_in_nvt_mode_even_across_reads() {
        let mut t = Telnet::new();
        let mut got = t.receive(b"ls\r").to_terminal;
        got.extend(t.receive(b"\nx\r\0y\r").to_terminal);
        got.extend(t.receive(b"z").to_terminal);
        assert_eq!(got, b"ls\rx\ry\rz");
    }

    #[test]
    fn binary_mode_passes_cr_lf_through() {
        let mut t = Telnet::new();
        t.receive(&[IAC, WILL, OPT_BINARY]);
        assert_eq!(t.receive(b"a\r\nb").to_terminal, b"a\r\nb");
    }

    #[test]
    fn naws_subnegotiation_reports_the_window_even_with_escaped_255() {
        let mut t = Telnet::new();
        let r = t.receive(&[IAC, SB, OPT_NAWS, 0, 80, 0, 24, IAC, SE, b'x']);
        assert_eq!(r.events, [Event::WindowSize { cols: 80, rows: 24 }]);
        assert_eq!(r.to_terminal, b"x");
        let r = t.receive(&[IAC, SB, OPT_NAWS, 1, IAC, IAC, 0, 50, IAC, SE]);
        assert_eq!(
            r.events,
            [Event::WindowSize {
                cols: 511,
                rows: 50
            }]
        );
    }

    #[test]
    fn interrupt_process_becomes_ctrl_c() {
        let mut t = Telnet::new();
        assert_eq!(t.receive(&[IAC, IP]).to_terminal, [3]);
    }

    #[test]
    fn escaping_doubles_every_iac() {
        let mut out = Vec::new();
        escape_into(&[1, IAC, 2, IAC, IAC], &mut out);
        assert_eq!(out, [1, IAC, IAC, 2, IAC, IAC, IAC, IAC]);
        // And the receiver undoes it.
        let mut t = Telnet::new();
        assert_eq!(t.receive(&out).to_terminal, [1, IAC, 2, IAC, IAC]);
    }
}
