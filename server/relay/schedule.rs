//! When an uplink may sync: always, by hand only, when its carrier appears,
//! or in time windows. Sans-I/O: the caller says what time it is.
//!
//! Windows are written like `08:00-18:00`, `mon-fri 08:00-18:00`,
//! `sat,sun 10:00-12:00 +02:00` (a UTC offset; UTC when absent), several
//! separated by `;`. A window that ends before it starts runs overnight
//! (`22:00-06:00`), its days naming the evening it starts.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Whenever there is something to move, and every few minutes to fetch.
    Always,
    /// Only by "Sync now" or `cairn sync`.
    Manual,
    /// When the carrier appears: a peer becomes reachable, a USB stick is
    /// mounted; and while it stays, as [`Schedule::Always`].
    Appear,
    /// As [`Schedule::Always`], inside these windows only.
    Windows(Vec<Window>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Bit 0 Monday … bit 6 Sunday.
    days: u8,
    /// Minutes after midnight; `end` may be 1440 (24:00).
    start: u16,
    end: u16,
    /// Offset from UTC in minutes.
    offset: i16,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const ALL_DAYS: u8 = 0x7f;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "schedule `{text}`: {why}. Write always, manual, appear, or windows such as `mon-fri 08:00-18:00; sat 10:00-12:00 +02:00`"
)]
pub struct ScheduleError {
    text: String,
    why: String,
}

fn day(s: &str) -> Option<u8> {
    DAYS.iter().position(|d| *d == s).map(|i| i as u8)
}

fn days(spec: &str) -> Option<u8> {
    let mut mask = 0u8;
    for part in spec.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    mask |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => mask |= 1 << day(part)?,
        }
    }
    Some(mask)
}

fn minutes(hhmm: &str) -> Option<u16> {
    let (h, m) = hhmm.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

fn offset(s: &str) -> Option<i16> {
    let s = s.strip_prefix("utc").unwrap_or(s);
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h.parse::<i16>().ok()?, m.parse::<i16>().ok()?),
        None => (rest.parse::<i16>().ok()?, 0),
    };
    (h <= 14 && m < 60).then_some(sign * (h * 60 + m))
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let norm = text.trim().to_ascii_lowercase();
        let err = |why: &str| ScheduleError {
            text: text.trim().to_string(),
            why: why.to_string(),
        };
        match norm.as_str() {
            "always" => return Ok(Schedule::Always),
            "manual" => return Ok(Schedule::Manual),
            "appear" => return Ok(Schedule::Appear),
            "" => return Err(err("it is empty")),
            _ => {}
        }
        let mut windows = Vec::new();
        for w in norm.split(';').map(str::trim).filter(|w| !w.is_empty()) {
            let mut win = Window {
                days: ALL_DAYS,
                start: 0,
                end: 0,
                offset: 0,
            };
            let mut time = false;
            for tok in w.split_whitespace() {
                if let Some((a, b)) = tok.split_once('-')
                    && a.contains(':')
                {
                    let (Some(a), Some(b)) = (minutes(a), minutes(b)) else {
                        return Err(err(&format!(
                            "`{tok}` is not a time range like 08:00-18:00"
                        )));
                    };
                    if a == b || a == 1440 {
                        return Err(err(&format!("`{tok}` is empty")));
                    }
                    (win.start, win.end, time) = (a, b, true);
                } else if let Some(o) = offset(tok) {
                    win.offset = o;
                } else if let Some(d) = days(tok) {
                    win.days = d;
                } else {
                    return Err(err(&format!(
                        "`{tok}` is neither days (mon-fri, sat,sun), a time range, nor an offset (+02:00)"
                    )));
                }
            }
            if !time {
                return Err(err(&format!("`{w}` has no time range")));
            }
            windows.push(win);
        }
        Ok(Schedule::Windows(windows))
    }

    /// Whether syncing is allowed at `unix` seconds (UTC).
    pub fn is_open(&self, unix: i64) -> bool {
        match self {
            Schedule::Always | Schedule::Appear => true,
            Schedule::Manual => false,
            Schedule::Windows(ws) => ws.iter().any(|w| w.is_open(unix)),
        }
    }
}

impl Window {
    fn is_open(&self, unix: i64) -> bool {
        let local = unix + i64::from(self.offset) * 60;
        let day_no = local.div_euclid(86_400);
        // 1970-01-01 was a Thursday (index 3).
        let weekday = (day_no + 3).rem_euclid(7) as u8;
        let minute = (local.rem_euclid(86_400) / 60) as u16;
        let on = |d: u8| self.days & (1 << d) != 0;
        if self.start < self.end {
            on(weekday) && (self.start..self.end).contains(&minute)
        } else {
            (on(weekday) && minute >= self.start) || (on((weekday + 6) % 7) && minute < self.end)
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Always => f.write_str("always"),
            Schedule::Manual => f.write_str("manual"),
            Schedule::Appear => f.write_str("appear"),
            Schedule::Windows(ws) => {
                for (i, w) in ws.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    if w.days != ALL_DAYS {
                        let names: Vec<&str> = (0..7)
                            .filter(|d| w.days & (1 << d) != 0)
                            .map(|d| DAYS[d as usize])
                            .collect();
                        write!(f, "{} ", names.join(","))?;
                    }
                    write!(
                        f,
                        "{:02}:{:02}-{:02}:{:02}",
                        w.start / 60,
                        w.start % 60,
                        w.end / 60,
                        w.end % 60
                    )?;
                    if w.offset != 0 {
                        let sign = if w.offset < 0 { '-' } else { '+' };
                        let o = w.offset.unsigned_abs();
                        write!(f, " {sign}{:02}:{:02}", o / 60, o % 60)?;
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Monday 2026-11-23 00:00 UTC.
    const MONDAY: i64 = 1_795_392_000;
    const H: i64 = 3600;

    #[test]
    fn monday_is_a_monday() {
        let w = Schedule::parse("mon 00:00-01:00").unwrap();
        assert!(w.is_open(MONDAY));
        assert!(!w.is_open(MONDAY - 1));
        assert!(!w.is_open(MONDAY + H));
    }

    #[test]
    fn windows_open_and_close_on_their_days() {
        let s = Schedule::parse("Mon-Fri 08:00-18:00; sat,sun 10:00-12:00").unwrap();
        assert!(!s.is_open(MONDAY + 7 * H + 3599));
        assert!(s.is_open(MONDAY + 8 * H));
        assert!(s.is_open(MONDAY + 18 * H - 1));
        assert!(!s.is_open(MONDAY + 18 * H));
        let saturday = MONDAY + 5 * 24 * H;
        assert!(!s.is_open(saturday + 9 * H));
        assert!(s.is_open(saturday + 11 * H));
        assert_eq!(
            s.to_string(),
            "mon,tue,wed,thu,fri 08:00-18:00; sat,sun 10:00-12:00"
        );
    }

    #[test]
    fn overnight_windows_and_offsets() {
        // Friday 22:00 to Saturday 06:00, local time two hours ahead of UTC.
        let s = Schedule::parse("fri 22:00-06:00 +02:00").unwrap();
        let friday = MONDAY + 4 * 24 * H;
        assert!(!s.is_open(friday + 19 * H)); // 21:00 local
        assert!(s.is_open(friday + 20 * H)); // 22:00 local
        assert!(s.is_open(friday + 27 * H)); // Saturday 05:00 local
        assert!(!s.is_open(friday + 28 * H)); // Saturday 06:00 local
        assert!(!s.is_open(MONDAY + 2 * H)); // Monday 04:00 local: the evening before was Sunday
        let all_day = Schedule::parse("sun 00:00-24:00").unwrap();
        assert!(all_day.is_open(MONDAY - 1));
    }

    #[test]
    fn keywords_and_mistakes() {
        assert_eq!(Schedule::parse(" Always ").unwrap(), Schedule::Always);
        assert!(!Schedule::parse("manual").unwrap().is_open(MONDAY));
        assert!(Schedule::parse("appear").unwrap().is_open(MONDAY));
        for bad in [
            "",
            "sometimes",
            "mon-fri",
            "25:00-26:00",
            "08:00-08:00",
            "8-18",
            "funday 08:00-09:00",
        ] {
            let e = Schedule::parse(bad).unwrap_err().to_string();
            assert!(e.contains("mon-fri 08:00-18:00"), "{bad}: {e}");
        }
    }
}
