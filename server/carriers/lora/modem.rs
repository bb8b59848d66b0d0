//! Drivers for the two modem families over a [`Port`]: RNode (KISS) and
//! REYAX RYLR998 (AT commands). A driver detects the modem, configures it
//! and reads the settings back, then moves opaque frames of at most
//! [`Modem::mtu`] bytes and reports RSSI/SNR for each frame received.

use std::collections::VecDeque;
use std::time::Duration;

use base64::Engine;
use tokio::time::{Instant, timeout_at};

use super::at::{self, Command, LineReader, Reply};
use super::kiss::{self, Deframer, cmd};
use super::port::Port;
pub use crate::domain::lora::{Model, RNODE_MTU, RYLR_MTU, RYLR_PREAMBLE, Received, Settings};

/// The firmware the RNode driver needs (Reticulum's `REQUIRED_FW_VER`).
const RNODE_MIN_FW: (u8, u8) = (1, 52);
/// ESP32 boards reboot when the port opens; their boot takes this long.
pub const RNODE_BOOT: Duration = Duration::from_secs(2);
/// How long a modem may take to answer detection or a setting.
const ANSWER: Duration = Duration::from_millis(1500);
/// A frame whose bytes stop arriving for this long is abandoned
/// (Reticulum's 100 ms), so a glitch cannot glue two frames together.
const FRAME_GAP: Duration = Duration::from_millis(100);
/// How long an RNode's send queue may stay full before sending fails.
const QUEUE_FULL_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ModemError {
    #[error("{0}")]
    Gone(#[from] std::io::Error),
    #[error("no {model} answered on {port}: {hint}")]
    NoAnswer {
        model: &'static str,
        port: String,
        hint: &'static str,
    },
    #[error("the modem on {port} did not take the setting {what}: asked {asked}, it reports {got}")]
    Mismatch {
        port: String,
        what: &'static str,
        asked: String,
        got: String,
    },
    #[error("the modem on {port} reported error {code:#04x}: {text}")]
    Fatal {
        port: String,
        code: u8,
        text: &'static str,
    },
    #[error("the modem on {0} rebooted")]
    Rebooted(String),
    #[error("the modem on {port} refused a send: {text}")]
    Refused { port: String, text: String },
}

pub type Result<T, E = ModemError> = std::result::Result<T, E>;

/// What the modem says about itself and the channel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Status {
    /// "RNode firmware 1.86 (ESP32)" or the RYLR's `+VER`.
    pub identity: String,
    /// RNode channel-time report: own airtime over ~15 s and 1 h, percent.
    pub airtime_short: f32,
    pub airtime_long: f32,
    /// Noise floor, dBm (RNode).
    pub noise_floor: Option<i16>,
    /// Frames and bytes the parser threw away as noise.
    pub noise_frames: u64,
    /// Modem errors seen (RYLR `+ERR` on receive, RNode memory warnings).
    pub errors: u64,
    /// Times an RNode said its send queue was full and the host waited.
    pub queue_waits: u64,
}

/// An open, configured modem.
pub struct Modem {
    port: Port,
    settings: Settings,
    status: Status,
    inbox: VecDeque<Received>,
    kiss: Deframer,
    lines: LineReader,
    last_byte: Instant,
    rssi: Option<i16>,
    snr: Option<f32>,
    opening: bool,
    /// The RNode answers READY queries (all current firmware does).
    ready_answers: bool,
}

impl Modem {
    /// Detects the modem on `port`, configures it and checks every
    /// setting it echoes back.
    pub async fn open(port: Port, settings: &Settings) -> Result<Modem> {
        let mut m = Modem {
            port,
            settings: settings.clone(),
            status: Status::default(),
            inbox: VecDeque::new(),
            kiss: Deframer::new(),
            lines: LineReader::new(),
            last_byte: Instant::now(),
            rssi: None,
            snr: None,
            opening: true,
            ready_answers: true,
        };
        match settings.model {
            Model::Rnode => m.open_rnode().await?,
            Model::Rylr => m.open_rylr().await?,
        }
        m.opening = false;
        Ok(m)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn status(&self) -> &Status {
        &self.status
    }

    pub fn mtu(&self) -> usize {
        self.settings.mtu()
    }

    pub fn port_name(&self) -> &str {
        &self.port.name
    }

    // ---- RNode -------------------------------------------------------

    /// Reads KISS frames until `want` says it has what it waits for, or
    /// the deadline passes. Data frames that arrive meanwhile are kept.
    async fn kiss_until(
        &mut self,
        deadline: Instant,
        mut want: impl FnMut(&kiss::Frame) -> bool,
    ) -> Result<bool> {
        loop {
            let bytes = match timeout_at(deadline, self.port.read()).await {
                Err(_) => return Ok(false),
                Ok(r) => r?,
            };
            // Every frame of the read is handled, also those after the one
            // waited for: a data frame in the same read is kept.
            let mut found = false;
            for frame in self.kiss.feed(&bytes) {
                if !found && want(&frame) {
                    found = true;
                } else {
                    self.on_kiss(frame)?;
                }
            }
            if found {
                return Ok(true);
            }
        }
    }

    /// RNode: waits until the modem's queue has room for one more frame.
    /// The firmware drops serial bytes silently when its queue is full,
    /// and READY is a query (`C0 0F 00 C0` → `0F 01` room, `0F 00` full).
    /// A modem that does not answer it is paced by air time alone from
    /// then on.
    async fn rnode_room(&mut self) -> Result<()> {
        if !self.ready_answers {
            return Ok(());
        }
        let give_up = Instant::now() + QUEUE_FULL_LIMIT;
        // Room comes back as the modem sends: about one frame's air time.
        let poll = self
            .settings
            .airtime(self.mtu())
            .as_duration()
            .max(Duration::from_millis(50));
        loop {
            self.port.write(&kiss::encode(cmd::READY, &[0])).await?;
            let mut room = None;
            let answered = self
                .kiss_until(Instant::now() + ANSWER, |f| {
                    if f.command == cmd::READY {
                        room = f.data.first().copied();
                        true
                    } else {
                        false
                    }
                })
                .await?;
            if !answered {
                self.ready_answers = false;
                tracing::warn!(port = %self.port.name, "RNode does not answer READY: pacing by air time only");
                return Ok(());
            }
            if room != Some(0) {
                return Ok(());
            }
            self.status.queue_waits += 1;
            if Instant::now() >= give_up {
                return Err(ModemError::Refused {
                    port: self.port.name.clone(),
                    text: format!(
                        "its send queue stayed full for {} s: is the channel busy, or the air-time lock set too low?",
                        QUEUE_FULL_LIMIT.as_secs()
                    ),
                });
            }
            tokio::time::sleep(poll).await;
        }
    }

    async fn open_rnode(&mut self) -> Result<()> {
        let name = self.port.name.clone();
        // ESP32 boards reboot when the port opens and announce it with
        // C0 55 F8 C0; what comes before the boot is over is noise.
        let boot_end = Instant::now() + RNODE_BOOT;
        while let Ok(r) = timeout_at(boot_end, self.port.read()).await {
            r?;
        }
        self.kiss.reset();
        let mut detect = kiss::encode(cmd::DETECT, &[cmd::DETECT_REQ]);
        detect.extend(kiss::encode(cmd::FW_VERSION, &[0]));
        detect.extend(kiss::encode(cmd::PLATFORM, &[0]));
        detect.extend(kiss::encode(cmd::MCU, &[0]));
        self.port.write(&detect).await?;
        let (mut detected, mut fw, mut platform) = (false, None, None);
        let deadline = Instant::now() + ANSWER;
        self.kiss_until(deadline, |f| {
            match f.command {
                cmd::DETECT => detected = f.data.first() == Some(&cmd::DETECT_RESP),
                cmd::FW_VERSION if f.data.len() >= 2 => fw = Some((f.data[0], f.data[1])),
                cmd::PLATFORM if !f.data.is_empty() => platform = Some(f.data[0]),
                cmd::MCU => return detected && fw.is_some(),
                _ => {}
            }
            false
        })
        .await?;
        if !detected {
            return Err(ModemError::NoAnswer {
                model: "RNode",
                port: name,
                hint: "check that the port is the modem's and that it runs RNode firmware (1.52 or newer)",
            });
        }
        let fw = fw.unwrap_or((0, 0));
        if fw < RNODE_MIN_FW {
            return Err(ModemError::Mismatch {
                port: name,
                what: "firmware version",
                asked: format!("{}.{} or newer", RNODE_MIN_FW.0, RNODE_MIN_FW.1),
                got: format!("{}.{}", fw.0, fw.1),
            });
        }
        let platform = match platform {
            Some(0x80) => "ESP32",
            Some(0x70) => "NRF52",
            Some(0x90) => "AVR",
            _ => "unknown platform",
        };
        self.status.identity = format!("RNode firmware {}.{} ({platform})", fw.0, fw.1);

        // Configure in Reticulum's order, then the airtime lock as a
        // safety net behind the ledger, then the radio on.
        let s = self.settings.clone();
        let band =
            s.region
                .band_for(s.frequency, s.bandwidth)
                .map_err(|e| ModemError::Refused {
                    port: name.clone(),
                    text: e,
                })?;
        let lock = (band.duty_permille * 10).min(9_999) as u16;
        let mut setup = Vec::new();
        setup.extend(kiss::encode(cmd::FREQUENCY, &s.frequency.to_be_bytes()));
        setup.extend(kiss::encode(cmd::BANDWIDTH, &s.bandwidth.to_be_bytes()));
        setup.extend(kiss::encode(cmd::TXPOWER, &[s.txpower]));
        setup.extend(kiss::encode(cmd::SF, &[s.sf]));
        setup.extend(kiss::encode(cmd::CR, &[s.cr + 4]));
        if band.duty_permille < 1000 {
            setup.extend(kiss::encode(cmd::LT_ALOCK, &lock.to_be_bytes()));
        }
        setup.extend(kiss::encode(cmd::RADIO_STATE, &[1]));
        self.port.write(&setup).await?;
        let mut echo = Echo::default();
        let deadline = Instant::now() + ANSWER;
        self.kiss_until(deadline, |f| {
            match f.command {
                cmd::FREQUENCY => echo.frequency = kiss::u32_arg(&f.data),
                cmd::BANDWIDTH => echo.bandwidth = kiss::u32_arg(&f.data),
                cmd::TXPOWER => echo.txpower = f.data.first().copied(),
                cmd::SF => echo.sf = f.data.first().copied(),
                cmd::CR => echo.cr = f.data.first().copied(),
                cmd::RADIO_STATE => {
                    echo.state = f.data.first().copied();
                    return true;
                }
                _ => {}
            }
            false
        })
        .await?;
        let check = |what: &'static str, asked: String, got: Option<String>| -> Result<()> {
            match got {
                Some(g) if g == asked => Ok(()),
                got => Err(ModemError::Mismatch {
                    port: name.clone(),
                    what,
                    asked,
                    got: got.unwrap_or_else(|| "nothing".into()),
                }),
            }
        };
        let freq_ok = echo
            .frequency
            .is_some_and(|f| f.abs_diff(s.frequency) <= 100);
        check(
            "frequency",
            s.frequency.to_string(),
            if freq_ok {
                Some(s.frequency.to_string())
            } else {
                echo.frequency.map(|f| f.to_string())
            },
        )?;
        check(
            "bandwidth",
            s.bandwidth.to_string(),
            echo.bandwidth.map(|v| v.to_string()),
        )?;
        check(
            "txpower",
            s.txpower.to_string(),
            echo.txpower.map(|v| v.to_string()),
        )?;
        check("sf", s.sf.to_string(), echo.sf.map(|v| v.to_string()))?;
        check("cr", (s.cr + 4).to_string(), echo.cr.map(|v| v.to_string()))?;
        check("radio state", "1".into(), echo.state.map(|v| v.to_string()))?;
        Ok(())
    }

    /// One KISS frame outside a request: received data with its signal
    /// report, channel statistics, errors, a reboot.
    fn on_kiss(&mut self, f: kiss::Frame) -> Result<()> {
        match f.command {
            cmd::STAT_RSSI => self.rssi = f.data.first().map(|b| i16::from(*b) - 157),
            cmd::STAT_SNR => self.snr = f.data.first().map(|b| f32::from(*b as i8) * 0.25),
            cmd::DATA if !f.data.is_empty() => {
                self.inbox.push_back(Received {
                    data: f.data,
                    rssi: self.rssi.take().unwrap_or(-157),
                    snr: self.snr.take().unwrap_or(0.0),
                });
            }
            cmd::STAT_CHTM if f.data.len() >= 11 => {
                self.status.airtime_short =
                    f32::from(u16::from_be_bytes([f.data[0], f.data[1]])) / 100.0;
                self.status.airtime_long =
                    f32::from(u16::from_be_bytes([f.data[2], f.data[3]])) / 100.0;
                self.status.noise_floor = Some(i16::from(f.data[9]) - 157);
            }
            cmd::RESET if f.data.first() == Some(&cmd::RESET_BYTE) => {
                return Err(ModemError::Rebooted(self.port.name.clone()));
            }
            cmd::ERROR => {
                let code = f.data.first().copied().unwrap_or(0);
                let text = match code {
                    0x01 => "radio initialisation failed",
                    0x02 => "transmit failed",
                    0x05 => "memory low",
                    0x06 => "transmit did not finish (the modem resets)",
                    _ => "unknown error",
                };
                if code == 0x05 {
                    self.status.errors += 1;
                    tracing::warn!(port = %self.port.name, "RNode: {text}");
                } else {
                    return Err(ModemError::Fatal {
                        port: self.port.name.clone(),
                        code,
                        text,
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }

    // ---- RYLR --------------------------------------------------------

    /// Sends one AT command and waits for its answer, keeping received
    /// frames that arrive meanwhile.
    async fn at(&mut self, c: &Command, wait: Duration) -> Result<Option<Reply>> {
        self.port.write(&c.encode()).await?;
        let deadline = Instant::now() + wait;
        loop {
            let bytes = match timeout_at(deadline, self.port.read()).await {
                Err(_) => return Ok(None),
                Ok(r) => r?,
            };
            for line in self.lines.feed(&bytes) {
                match Reply::parse(&line) {
                    Ok(Reply::Rcv {
                        data, rssi, snr, ..
                    }) => self.take_rylr(&data, rssi, snr),
                    // A power-up announcement while opening is expected.
                    Ok(Reply::Ready) | Ok(Reply::Reset) if self.opening => {}
                    Ok(Reply::Ready) | Ok(Reply::Reset) => {
                        return Err(ModemError::Rebooted(self.port.name.clone()));
                    }
                    Ok(r) => return Ok(Some(r)),
                    Err(_) => self.status.noise_frames += 1,
                }
            }
        }
    }

    fn take_rylr(&mut self, data: &[u8], rssi: i16, snr: i16) {
        match base64::engine::general_purpose::STANDARD.decode(data) {
            Ok(bytes) if !bytes.is_empty() => self.inbox.push_back(Received {
                data: bytes,
                rssi,
                snr: f32::from(snr),
            }),
            _ => self.status.noise_frames += 1,
        }
    }

    async fn open_rylr(&mut self) -> Result<()> {
        let name = self.port.name.clone();
        let mut answered = false;
        for _ in 0..3 {
            if let Some(Reply::Ok) = self.at(&Command::Test, ANSWER).await? {
                answered = true;
                break;
            }
            self.lines.reset();
        }
        if !answered {
            return Err(ModemError::NoAnswer {
                model: "RYLR998",
                port: name,
                hint: "check the port, its speed (115200) and that the module answers AT with +OK",
            });
        }
        if let Some(Reply::Value { value, .. }) =
            self.at(&Command::Query("VER".into()), ANSWER).await?
        {
            self.status.identity = value;
        } else {
            self.status.identity = "RYLR (no version)".into();
        }
        let s = self.settings.clone();
        let bw_code = match s.bandwidth {
            125_000 => 7,
            250_000 => 8,
            _ => 9,
        };
        let sets: [(&'static str, String); 5] = [
            ("NETWORKID", s.network.to_string()),
            ("ADDRESS", s.address.to_string()),
            ("BAND", s.frequency.to_string()),
            (
                "PARAMETER",
                format!("{},{},{},{}", s.sf, bw_code, s.cr, RYLR_PREAMBLE),
            ),
            ("CRFOP", s.txpower.to_string()),
        ];
        for (key, value) in sets {
            let c = Command::Set {
                key: key.to_string(),
                value: value.clone(),
            };
            match self.at(&c, ANSWER).await? {
                Some(Reply::Ok) => {}
                got => {
                    return Err(ModemError::Mismatch {
                        port: name,
                        what: key,
                        asked: value,
                        got: describe(got),
                    });
                }
            }
            // Read it back: the module's own answer is the truth.
            let got = self.at(&Command::Query(key.to_string()), ANSWER).await?;
            let echoed = match &got {
                Some(Reply::Value { value, .. }) => value.clone(),
                other => describe(other.clone()),
            };
            if echoed != value {
                return Err(ModemError::Mismatch {
                    port: name,
                    what: key,
                    asked: value,
                    got: echoed,
                });
            }
        }
        Ok(())
    }

    // ---- both --------------------------------------------------------

    /// Hands a burst of frames to the modem. RNode queues them (each
    /// after a READY query says there is room) and sends them back to back
    /// after one channel check; an RYLR sends one at a
    /// time and answers `+OK` when each has left. The caller paces bursts
    /// by their air time ([`Settings::airtime`]).
    pub async fn send(&mut self, frames: &[Vec<u8>]) -> Result<()> {
        for f in frames {
            assert!(f.len() <= self.mtu(), "frame over the modem MTU");
        }
        match self.settings.model {
            Model::Rnode => {
                for f in frames {
                    self.rnode_room().await?;
                    self.port.write(&kiss::encode(cmd::DATA, f)).await?;
                }
                Ok(())
            }
            Model::Rylr => {
                for f in frames {
                    let data = base64::engine::general_purpose::STANDARD
                        .encode(f)
                        .into_bytes();
                    let wait = self.settings.airtime(f.len()).as_duration() + ANSWER;
                    let c = Command::Send { address: 0, data };
                    let mut tries = 0;
                    loop {
                        match self.at(&c, wait).await? {
                            Some(Reply::Ok) => break,
                            Some(Reply::Err(at::err::TX_BUSY)) if tries < 5 => {
                                tries += 1;
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                            Some(Reply::Err(code)) => {
                                return Err(ModemError::Refused {
                                    port: self.port.name.clone(),
                                    text: at::error_text(code).to_string(),
                                });
                            }
                            _ => {
                                return Err(ModemError::Refused {
                                    port: self.port.name.clone(),
                                    text: "no +OK after the transmission time".into(),
                                });
                            }
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// The next frame heard. Cancel-safe: bytes are only consumed once
    /// they are parsed into the inbox.
    pub async fn recv(&mut self) -> Result<Received> {
        loop {
            if let Some(r) = self.inbox.pop_front() {
                return Ok(r);
            }
            let bytes = self.port.read().await?;
            let now = Instant::now();
            match self.settings.model {
                Model::Rnode => {
                    if self.kiss.mid_frame() && now.duration_since(self.last_byte) > FRAME_GAP {
                        self.kiss.reset();
                        self.status.noise_frames += 1;
                    }
                    self.last_byte = now;
                    for f in self.kiss.feed(&bytes) {
                        self.on_kiss(f)?;
                    }
                }
                Model::Rylr => {
                    for line in self.lines.feed(&bytes) {
                        match Reply::parse(&line) {
                            Ok(Reply::Rcv {
                                data, rssi, snr, ..
                            }) => self.take_rylr(&data, rssi, snr),
                            Ok(Reply::Ready) | Ok(Reply::Reset) => {
                                return Err(ModemError::Rebooted(self.port.name.clone()));
                            }
                            Ok(Reply::Err(_)) => self.status.errors += 1,
                            Ok(_) => {}
                            Err(_) => self.status.noise_frames += 1,
                        }
                    }
                }
            }
        }
    }

    /// Switches the radio off and tells the modem the host leaves.
    pub async fn close(self) {
        if self.settings.model == Model::Rnode {
            let mut out = kiss::encode(cmd::RADIO_STATE, &[0]);
            out.extend(kiss::encode(cmd::LEAVE, &[0xFF]));
            let _ = self.port.write(&out).await;
        }
    }
}

fn describe(r: Option<Reply>) -> String {
    match r {
        None => "no answer".into(),
        Some(Reply::Err(code)) => format!("+ERR={code} ({})", at::error_text(code)),
        Some(other) => String::from_utf8_lossy(&other.encode()).trim().to_string(),
    }
}

#[derive(Default)]
struct Echo {
    frequency: Option<u32>,
    bandwidth: Option<u32>,
    txpower: Option<u8>,
    sf: Option<u8>,
    cr: Option<u8>,
    state: Option<u8>,
}
