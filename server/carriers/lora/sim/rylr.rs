//! A REYAX RYLR998 as its UART behaves: `\r\n` lines, `+OK` after the
//! transmission ends, the documented `+ERR` codes, `+RCV` for frames of its
//! network addressed to it (or broadcast), eight bytes of on-air overhead,
//! no carrier sense, and `AT+RESET` answered with `+RESET` then `+READY`.

use std::time::Duration;

use tokio::time::{Instant, sleep_until};

use super::ether::{Ether, Family, Tuning, TxId, USB_LATENCY};
use crate::carriers::lora::at::{Command, LineReader, MAX_DATA, Reply, err};
use crate::carriers::lora::port::Port;
use crate::domain::lora::Modulation;

/// "the payload part will increase more 8 bytes than the actual data
/// length": target address (2), network (1), source address (2), length
/// (1) and two bytes the guide does not describe.
pub const OVERHEAD: usize = 8;
/// From `AT+RESET` to `+READY`.
const RESET_TIME: Duration = Duration::from_millis(100);

struct Settings {
    band: u32,
    sf: u8,
    bw_code: u8,
    cr: u8,
    preamble: u16,
    address: u16,
    network: u8,
    crfop: u8,
    cpin: Option<String>,
}

impl Settings {
    fn factory() -> Settings {
        Settings {
            band: 915_000_000,
            sf: 9,
            bw_code: 7,
            cr: 1,
            preamble: 12,
            address: 0,
            network: 18,
            crfop: 22,
            cpin: None,
        }
    }
    fn bandwidth(&self) -> u32 {
        match self.bw_code {
            7 => 125_000,
            8 => 250_000,
            _ => 500_000,
        }
    }
    fn tuning(&self) -> Tuning {
        Tuning {
            family: Family::Rylr,
            frequency: self.band,
            bandwidth: self.bandwidth(),
            sf: self.sf,
        }
    }
}

/// Runs one RYLR998 until the host closes the port or the task is dropped.
pub async fn run(ether: Ether, node: usize, mut port: Port) {
    let mut air_rx = ether.listen(node);
    let mut s = Settings::factory();
    ether.tune(node, Some(s.tuning()));
    let mut lines = LineReader::new();
    let mut on_air: Option<(Instant, TxId)> = None;
    let mut ready_at: Option<Instant> = None;
    if port.write(&Reply::Ready.encode()).await.is_err() {
        return;
    }
    loop {
        let far = Instant::now() + Duration::from_secs(3600);
        let tx_end = on_air.as_ref().map(|(t, _)| *t);
        tokio::select! {
            bytes = port.rx.recv() => {
                let Some(bytes) = bytes else { return };
                let mut out = Vec::new();
                for line in lines.feed(&bytes) {
                    let reply = match Command::parse(&line) {
                        Err(e) => Some(Reply::Err(e.code)),
                        Ok(c) => command(c, &mut s, &ether, node, &mut on_air, &mut ready_at),
                    };
                    if let Some(r) = reply {
                        out.extend(r.encode());
                    }
                }
                ether.tune(node, Some(s.tuning()));
                if !out.is_empty() && port.write(&out).await.is_err() {
                    return;
                }
            }
            air = air_rx.recv() => {
                let Some(air) = air else { return };
                let b = &air.bytes;
                if b.len() < OVERHEAD {
                    continue;
                }
                let target = u16::from_be_bytes([b[0], b[1]]);
                let network = b[2];
                let source = u16::from_be_bytes([b[3], b[4]]);
                let len = usize::from(b[5]);
                let data = &b[OVERHEAD..];
                // Another network, or addressed to someone else: unheard.
                if network != s.network || (target != 0 && target != s.address) || len != data.len() {
                    continue;
                }
                tokio::time::sleep(USB_LATENCY).await;
                let line = Reply::Rcv {
                    address: source,
                    data: data.to_vec(),
                    rssi: air.rssi,
                    snr: air.snr.round() as i16,
                };
                if port.write(&line.encode()).await.is_err() {
                    return;
                }
            }
            _ = sleep_until(tx_end.unwrap_or(far)), if tx_end.is_some() => {
                if let Some((_, id)) = on_air.take() {
                    ether.finish(id);
                }
                if port.write(&Reply::Ok.encode()).await.is_err() {
                    return;
                }
            }
            _ = sleep_until(ready_at.unwrap_or(far)), if ready_at.is_some() => {
                ready_at = None;
                if port.write(&Reply::Ready.encode()).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn value(key: &str, v: impl std::fmt::Display) -> Option<Reply> {
    Some(Reply::Value {
        key: key.to_string(),
        value: v.to_string(),
    })
}

fn command(
    c: Command,
    s: &mut Settings,
    ether: &Ether,
    node: usize,
    on_air: &mut Option<(Instant, TxId)>,
    ready_at: &mut Option<Instant>,
) -> Option<Reply> {
    match c {
        Command::Test => Some(Reply::Ok),
        Command::Send { address, data } => {
            if on_air.is_some() {
                return Some(Reply::Err(err::TX_BUSY));
            }
            if data.len() > MAX_DATA {
                return Some(Reply::Err(err::TOO_LONG));
            }
            let mut frame = Vec::with_capacity(OVERHEAD + data.len());
            frame.extend(address.to_be_bytes());
            frame.push(s.network);
            frame.extend(s.address.to_be_bytes());
            frame.push(data.len() as u8);
            frame.extend([0, 0]);
            frame.extend(&data);
            let m = Modulation::new(s.sf, s.bandwidth(), s.cr, s.preamble);
            let toa = m.time_on_air(frame.len());
            let id = ether.transmit(node, s.tuning(), frame, toa);
            // +OK comes when the transmission has ended.
            *on_air = Some((Instant::now() + toa.as_duration(), id));
            None
        }
        Command::Query(key) => match key.as_str() {
            "BAND" => value("BAND", s.band),
            "PARAMETER" => value(
                "PARAMETER",
                format!("{},{},{},{}", s.sf, s.bw_code, s.cr, s.preamble),
            ),
            "NETWORKID" => value("NETWORKID", s.network),
            "ADDRESS" => value("ADDRESS", s.address),
            "CRFOP" => value("CRFOP", s.crfop),
            "CPIN" => value("CPIN", s.cpin.clone().unwrap_or("No Password!".into())),
            "MODE" => value("MODE", 0),
            "IPR" => value("IPR", 115_200),
            "VER" => value("VER", "RYLR998_V1.2.3 (cairn simulator)"),
            "UID" => value("UID", format!("{:024X}", node)),
            _ => Some(Reply::Err(err::UNKNOWN)),
        },
        Command::Set { key, value } => {
            let nums: Vec<Option<u32>> = value
                .split(',')
                .map(|p| p.trim().parse::<u32>().ok())
                .collect();
            match key.as_str() {
                "BAND" => match nums.first().copied().flatten() {
                    Some(hz) if (100_000_000..=1_000_000_000).contains(&hz) => {
                        s.band = hz;
                        Some(Reply::Ok)
                    }
                    _ => Some(Reply::Err(err::UNKNOWN)),
                },
                "PARAMETER" => {
                    let v: Option<Vec<u32>> = nums.into_iter().collect();
                    match v.as_deref() {
                        Some(&[sf, bw, cr, pre])
                            if (5..=11).contains(&sf)
                                && (7..=9).contains(&bw)
                                && (1..=4).contains(&cr) =>
                        {
                            let allowed = if s.network == 18 {
                                (4..=24).contains(&pre)
                            } else {
                                pre == 12
                            };
                            if !allowed {
                                return Some(Reply::Err(err::PREAMBLE));
                            }
                            s.sf = sf as u8;
                            s.bw_code = bw as u8;
                            s.cr = cr as u8;
                            s.preamble = pre as u16;
                            Some(Reply::Ok)
                        }
                        _ => Some(Reply::Err(err::UNKNOWN)),
                    }
                }
                "NETWORKID" => match nums.first().copied().flatten() {
                    Some(n) if (3..=15).contains(&n) || n == 18 => {
                        s.network = n as u8;
                        Some(Reply::Ok)
                    }
                    _ => Some(Reply::Err(err::UNKNOWN)),
                },
                "ADDRESS" => match nums.first().copied().flatten() {
                    Some(n) if n <= 65_535 => {
                        s.address = n as u16;
                        Some(Reply::Ok)
                    }
                    _ => Some(Reply::Err(err::UNKNOWN)),
                },
                "CRFOP" => match nums.first().copied().flatten() {
                    Some(n) if n <= 22 => {
                        s.crfop = n as u8;
                        Some(Reply::Ok)
                    }
                    _ => Some(Reply::Err(err::UNKNOWN)),
                },
                "CPIN" => {
                    s.cpin = Some(value.split(',').next().unwrap_or("").to_string());
                    Some(Reply::Ok)
                }
                "MODE" | "IPR" => Some(Reply::Ok),
                _ => Some(Reply::Err(err::UNKNOWN)),
            }
        }
        Command::Run(key) => match key.as_str() {
            "RESET" => {
                if let Some((_, id)) = on_air.take() {
                    ether.abort(id);
                }
                s.cpin = None;
                *ready_at = Some(Instant::now() + RESET_TIME);
                Some(Reply::Reset)
            }
            "FACTORY" => {
                *s = Settings::factory();
                Some(Reply::Factory)
            }
            _ => Some(Reply::Err(err::UNKNOWN)),
        },
    }
}
