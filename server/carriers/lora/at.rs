//! REYAX RYLR998/RYLR498 AT command lines, both directions.
//!
//! Lines end with `\r\n`. Data in `AT+SEND=<addr>,<len>,<data>` and
//! `+RCV=<addr>,<len>,<data>,<rssi>,<snr>` is taken by its declared length,
//! since it may hold commas (and, if a module proves binary-safe, any byte).
//! Sans-I/O: [`LineReader`] takes bytes as they come and yields whole lines
//! parsed into [`Reply`] (modem → host) or [`Command`] (host → modem).

/// The longest data of one `AT+SEND` (REYAX guide: "len ≤ 240 bytes";
/// longer sends answer `+ERR=13`).
pub const MAX_DATA: usize = 240;
/// The longest line either side writes: `AT+SEND=65535,240,` + data, or a
/// `+RCV` with RSSI and SNR. Longer runs without a line end are noise.
pub const MAX_LINE: usize = 300;

/// `+ERR=n` codes (REYAX guide, "ERROR CODE").
pub mod err {
    pub const NO_CRLF: u8 = 1;
    pub const NOT_AT: u8 = 2;
    pub const UNKNOWN: u8 = 4;
    pub const LENGTH_MISMATCH: u8 = 5;
    pub const TX_TIMEOUT: u8 = 10;
    pub const CRC: u8 = 12;
    pub const TOO_LONG: u8 = 13;
    pub const FLASH: u8 = 14;
    pub const UNKNOWN_FAILURE: u8 = 15;
    pub const TX_BUSY: u8 = 17;
    pub const PREAMBLE: u8 = 18;
    pub const RX_HEADER: u8 = 19;
    pub const SMART_TIMING: u8 = 20;
}

/// What an `+ERR=n` means, for logs and the radio page.
pub fn error_text(code: u8) -> &'static str {
    match code {
        err::NO_CRLF => "no \\r\\n at the end of the command",
        err::NOT_AT => "command does not start with AT",
        3 => "no '=' in the command",
        err::UNKNOWN => "unknown command",
        err::LENGTH_MISMATCH => "data length does not match the declared length",
        err::TX_TIMEOUT => "transmit timed out",
        11 => "receive timed out",
        err::CRC => "CRC error",
        err::TOO_LONG => "data longer than 240 bytes",
        err::FLASH => "flash write failed",
        err::UNKNOWN_FAILURE => "unknown failure",
        err::TX_BUSY => "the last transmission has not finished",
        err::PREAMBLE => "preamble value not allowed",
        err::RX_HEADER => "receive failed (header error)",
        err::SMART_TIMING => "invalid smart-receive timing",
        _ => "undocumented error",
    }
}

/// A line from the modem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Ok,
    Err(u8),
    Ready,
    Reset,
    Factory,
    /// A received packet.
    Rcv {
        address: u16,
        data: Vec<u8>,
        rssi: i16,
        snr: i16,
    },
    /// A query answer such as `+BAND=869525000` (`key` without the `+`).
    Value {
        key: String,
        value: String,
    },
}

/// A command from the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Plain `AT`.
    Test,
    /// `AT+SEND=<addr>,<len>,<data>`.
    Send { address: u16, data: Vec<u8> },
    /// `AT+KEY?`.
    Query(String),
    /// `AT+KEY=value` (other than SEND).
    Set { key: String, value: String },
    /// `AT+KEY` with neither `?` nor `=` (RESET, FACTORY).
    Run(String),
}

/// A line that did not parse, with the `+ERR` code a module would answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text} (+ERR={code})")]
pub struct LineError {
    pub code: u8,
    pub text: String,
}

fn bad(code: u8, text: impl Into<String>) -> LineError {
    LineError {
        code,
        text: text.into(),
    }
}

impl Command {
    /// The bytes on the wire, `\r\n` included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Command::Test => out.extend_from_slice(b"AT"),
            Command::Send { address, data } => {
                out.extend_from_slice(format!("AT+SEND={address},{},", data.len()).as_bytes());
                out.extend_from_slice(data);
            }
            Command::Query(key) => out.extend_from_slice(format!("AT+{key}?").as_bytes()),
            Command::Set { key, value } => {
                out.extend_from_slice(format!("AT+{key}={value}").as_bytes())
            }
            Command::Run(key) => out.extend_from_slice(format!("AT+{key}").as_bytes()),
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// Parses one line (without `\r\n`) as a module would.
    pub fn parse(line: &[u8]) -> Result<Command, LineError> {
        if line.len() < 2 || !line[..2].eq_ignore_ascii_case(b"AT") {
            return Err(bad(err::NOT_AT, "command does not start with AT"));
        }
        let rest = &line[2..];
        if rest.is_empty() {
            return Ok(Command::Test);
        }
        if rest[0] != b'+' {
            return Err(bad(err::UNKNOWN, "unknown command"));
        }
        let rest = &rest[1..];
        if let Some(eq) = rest.iter().position(|&b| b == b'=') {
            let key = ascii_key(&rest[..eq])?;
            let value = &rest[eq + 1..];
            if key == "SEND" {
                let (address, data) = addressed_data(value, MAX_DATA)?;
                if !data.1.is_empty() {
                    return Err(bad(
                        err::LENGTH_MISMATCH,
                        "data length does not match the declared length",
                    ));
                }
                return Ok(Command::Send {
                    address,
                    data: data.0,
                });
            }
            let value = std::str::from_utf8(value)
                .map_err(|_| bad(err::UNKNOWN, "value is not text"))?
                .to_string();
            return Ok(Command::Set { key, value });
        }
        if let Some(key) = rest.strip_suffix(b"?") {
            return Ok(Command::Query(ascii_key(key)?));
        }
        Ok(Command::Run(ascii_key(rest)?))
    }
}

fn ascii_key(b: &[u8]) -> Result<String, LineError> {
    if b.is_empty() || !b.iter().all(|c| c.is_ascii_alphanumeric()) {
        return Err(bad(err::UNKNOWN, "unknown command"));
    }
    Ok(String::from_utf8_lossy(b).to_ascii_uppercase())
}

fn number<T: std::str::FromStr>(b: &[u8], what: &str) -> Result<T, LineError> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| bad(err::UNKNOWN, format!("{what} is not a number")))
}

/// `<addr>,<len>,<data>…`: the address, exactly `len` data bytes, and what
/// follows them (which must start with `,` when not empty).
#[allow(clippy::type_complexity)]
fn addressed_data(value: &[u8], max: usize) -> Result<(u16, (Vec<u8>, &[u8])), LineError> {
    let c1 = value
        .iter()
        .position(|&b| b == b',')
        .ok_or_else(|| bad(err::UNKNOWN, "missing address"))?;
    let address: u16 = number(&value[..c1], "address")?;
    let after = &value[c1 + 1..];
    let c2 = after
        .iter()
        .position(|&b| b == b',')
        .ok_or_else(|| bad(err::UNKNOWN, "missing length"))?;
    let len: usize = number(&after[..c2], "length")?;
    if len > max {
        return Err(bad(err::TOO_LONG, "data longer than 240 bytes"));
    }
    let data = &after[c2 + 1..];
    if data.len() < len {
        return Err(bad(
            err::LENGTH_MISMATCH,
            "data length does not match the declared length",
        ));
    }
    let rest = &data[len..];
    if !rest.is_empty() && rest[0] != b',' {
        return Err(bad(
            err::LENGTH_MISMATCH,
            "data length does not match the declared length",
        ));
    }
    Ok((address, (data[..len].to_vec(), rest)))
}

impl Reply {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Reply::Ok => out.extend_from_slice(b"+OK"),
            Reply::Err(n) => out.extend_from_slice(format!("+ERR={n}").as_bytes()),
            Reply::Ready => out.extend_from_slice(b"+READY"),
            Reply::Reset => out.extend_from_slice(b"+RESET"),
            Reply::Factory => out.extend_from_slice(b"+FACTORY"),
            Reply::Rcv {
                address,
                data,
                rssi,
                snr,
            } => {
                out.extend_from_slice(format!("+RCV={address},{},", data.len()).as_bytes());
                out.extend_from_slice(data);
                out.extend_from_slice(format!(",{rssi},{snr}").as_bytes());
            }
            Reply::Value { key, value } => {
                out.extend_from_slice(format!("+{key}={value}").as_bytes())
            }
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// Parses one line (without `\r\n`) from the modem.
    pub fn parse(line: &[u8]) -> Result<Reply, LineError> {
        let Some(rest) = line.strip_prefix(b"+") else {
            return Err(bad(0, "modem line does not start with +"));
        };
        match rest {
            b"OK" => return Ok(Reply::Ok),
            b"READY" => return Ok(Reply::Ready),
            b"RESET" => return Ok(Reply::Reset),
            b"FACTORY" => return Ok(Reply::Factory),
            _ => {}
        }
        if let Some(code) = rest.strip_prefix(b"ERR=") {
            return Ok(Reply::Err(number(code, "error code")?));
        }
        if let Some(v) = rest.strip_prefix(b"RCV=") {
            let (address, (data, tail)) = addressed_data(v, MAX_DATA)?;
            let tail = tail
                .strip_prefix(b",")
                .ok_or_else(|| bad(0, "+RCV without RSSI and SNR"))?;
            let comma = tail
                .iter()
                .position(|&b| b == b',')
                .ok_or_else(|| bad(0, "+RCV without SNR"))?;
            return Ok(Reply::Rcv {
                address,
                data,
                rssi: number(&tail[..comma], "RSSI")?,
                snr: number(&tail[comma + 1..], "SNR")?,
            });
        }
        let eq = rest
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad(0, "unknown modem line"))?;
        let key = ascii_key(&rest[..eq]).map_err(|_| bad(0, "unknown modem line"))?;
        let value = String::from_utf8_lossy(&rest[eq + 1..]).into_owned();
        Ok(Reply::Value { key, value })
    }
}

/// Splits a byte stream into lines, honouring the declared data length of
/// `AT+SEND=` and `+RCV=` so that data holding `\r\n` stays whole.
#[derive(Debug, Default)]
pub struct LineReader {
    buf: Vec<u8>,
    /// Lines dropped for running past [`MAX_LINE`].
    pub overlong: u64,
    skipping: bool,
}

/// Where the data of a length-prefixed line ends, if `buf` starts with
/// `prefix<addr>,<len>,`; `None` when it is not such a line (or not yet
/// known).
fn data_end(buf: &[u8], prefix: &[u8]) -> Option<usize> {
    if buf.len() < prefix.len() || !buf[..prefix.len()].eq_ignore_ascii_case(prefix) {
        return None;
    }
    let v = &buf[prefix.len()..];
    let c1 = v.iter().take(6).position(|&b| b == b',')?;
    let after = &v[c1 + 1..];
    let c2 = after.iter().take(4).position(|&b| b == b',')?;
    let len: usize = std::str::from_utf8(&after[..c2]).ok()?.parse().ok()?;
    Some(prefix.len() + c1 + 1 + c2 + 1 + len.min(MAX_DATA))
}

impl LineReader {
    pub fn new() -> LineReader {
        LineReader::default()
    }

    /// Forgets a partial line.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.skipping = false;
    }

    /// Takes a chunk of bytes; returns every complete line (without its
    /// `\r\n`), in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        for &b in bytes {
            if self.skipping {
                if b == b'\n' {
                    self.skipping = false;
                }
                continue;
            }
            self.buf.push(b);
            if b == b'\n' {
                let protected = data_end(&self.buf, b"+RCV=")
                    .or_else(|| data_end(&self.buf, b"AT+SEND="))
                    .unwrap_or(0);
                if self.buf.len() - 1 > protected {
                    let mut line = std::mem::take(&mut self.buf);
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if !line.is_empty() {
                        lines.push(line);
                    }
                }
            } else if self.buf.len() > MAX_LINE {
                self.overlong += 1;
                self.buf.clear();
                self.skipping = true;
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reference_lines() {
        assert_eq!(
            Reply::parse(b"+RCV=50,5,HELLO,-99,40").unwrap(),
            Reply::Rcv {
                address: 50,
                data: b"HELLO".to_vec(),
                rssi: -99,
                snr: 40
            }
        );
        // Data holding commas is taken by its declared length.
        assert_eq!(
            Reply::parse(b"+RCV=7,3,a,b,-50,4").unwrap(),
            Reply::Rcv {
                address: 7,
                data: b"a,b".to_vec(),
                rssi: -50,
                snr: 4
            }
        );
        assert_eq!(Reply::parse(b"+ERR=17").unwrap(), Reply::Err(17));
        assert_eq!(
            Reply::parse(b"+PARAMETER=9,7,1,12").unwrap(),
            Reply::Value {
                key: "PARAMETER".into(),
                value: "9,7,1,12".into()
            }
        );
        assert_eq!(
            Reply::parse(b"+NETWORK=18").unwrap(),
            Reply::Value {
                key: "NETWORK".into(),
                value: "18".into()
            }
        );
        assert!(Reply::parse(b"+RCV=7,9,abc,-50,4").is_err());
        assert!(Reply::parse(b"garbage").is_err());
    }

    #[test]
    fn commands_parse_as_a_module_would() {
        assert_eq!(Command::parse(b"AT").unwrap(), Command::Test);
        assert_eq!(
            Command::parse(b"AT+SEND=0,3,a,b").unwrap(),
            Command::Send {
                address: 0,
                data: b"a,b".to_vec()
            }
        );
        assert_eq!(
            Command::parse(b"AT+BAND?").unwrap(),
            Command::Query("BAND".into())
        );
        assert_eq!(
            Command::parse(b"AT+PARAMETER=9,7,1,12").unwrap(),
            Command::Set {
                key: "PARAMETER".into(),
                value: "9,7,1,12".into()
            }
        );
        assert_eq!(
            Command::parse(b"AT+RESET").unwrap(),
            Command::Run("RESET".into())
        );
        assert_eq!(Command::parse(b"XX").unwrap_err().code, err::NOT_AT);
        assert_eq!(
            Command::parse(b"AT+SEND=0,4,abc").unwrap_err().code,
            err::LENGTH_MISMATCH
        );
        assert_eq!(
            Command::parse(b"AT+SEND=0,2,abc").unwrap_err().code,
            err::LENGTH_MISMATCH
        );
        let long = format!("AT+SEND=0,241,{}", "x".repeat(241));
        assert_eq!(
            Command::parse(long.as_bytes()).unwrap_err().code,
            err::TOO_LONG
        );
    }

    #[test]
    fn data_with_line_ends_stays_whole() {
        let mut r = LineReader::new();
        let rcv = Reply::Rcv {
            address: 1,
            data: b"a\r\nb".to_vec(),
            rssi: -40,
            snr: 9,
        };
        let mut wire = b"+OK\r\n".to_vec();
        wire.extend(rcv.encode());
        wire.extend(b"+READY\r\n");
        let lines = r.feed(&wire);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(Reply::parse(&lines[1]).unwrap(), rcv);
    }

    #[test]
    fn overlong_noise_is_dropped_to_the_next_line_end() {
        let mut r = LineReader::new();
        let mut wire = vec![b'z'; MAX_LINE + 50];
        wire.extend(b"\r\n+OK\r\n");
        assert_eq!(r.feed(&wire), vec![b"+OK".to_vec()]);
        assert_eq!(r.overlong, 1);
    }

    proptest! {
        #[test]
        fn replies_round_trip(
            address in any::<u16>(),
            data in proptest::collection::vec(any::<u8>(), 0..=MAX_DATA),
            rssi in -160i16..0,
            snr in -30i16..30,
            cut in 1usize..50,
        ) {
            let rcv = Reply::Rcv { address, data, rssi, snr };
            let mut wire = rcv.encode();
            wire.extend(Reply::Ok.encode());
            let mut r = LineReader::new();
            let mut lines = Vec::new();
            for piece in wire.chunks(cut) {
                lines.extend(r.feed(piece));
            }
            prop_assert_eq!(lines.len(), 2);
            prop_assert_eq!(Reply::parse(&lines[0]).unwrap(), rcv);
            prop_assert_eq!(Reply::parse(&lines[1]).unwrap(), Reply::Ok);
        }

        #[test]
        fn sends_round_trip(address in any::<u16>(), data in proptest::collection::vec(any::<u8>(), 0..=MAX_DATA)) {
            let c = Command::Send { address, data };
            let mut r = LineReader::new();
            let lines = r.feed(&c.encode());
            prop_assert_eq!(lines.len(), 1);
            prop_assert_eq!(Command::parse(&lines[0]).unwrap(), c);
        }

        #[test]
        fn random_bytes_are_harmless(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut r = LineReader::new();
            for line in r.feed(&bytes) {
                prop_assert!(line.len() <= MAX_LINE);
                let _ = Reply::parse(&line);
                let _ = Command::parse(&line);
            }
        }
    }
}
