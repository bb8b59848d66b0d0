//! Ages and sizes as people read them on pages and in the command line,
//! and air time.

use std::fmt;
use std::time::Duration;

/// "42 s", "5 min", "3 h", "12 d".
pub fn human_age(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    }
}

/// "512 B", "4.0 KiB", "1.5 MiB", "2.0 GiB".
pub fn human_bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", n as f64 / 1_048_576.0),
        _ => format!("{:.1} GiB", n as f64 / 1_073_741_824.0),
    }
}

/// "1 item", "3 items": a count with its noun (English plural in -s).
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(count(1, "item"), "1 item");
        assert_eq!(count(0, "item"), "0 items");
        assert_eq!(human_age(-5), "0 s");
        assert_eq!(human_age(3599), "59 min");
        assert_eq!(human_age(90_000), "1 d");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}

/// Air time in microseconds (what the formula yields, rounded up).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Airtime(pub u64);

impl Airtime {
    pub fn from_micros(us: u64) -> Airtime {
        Airtime(us)
    }
    pub fn micros(self) -> u64 {
        self.0
    }
    pub fn as_duration(self) -> Duration {
        Duration::from_micros(self.0)
    }
    pub fn millis_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

impl std::ops::Add for Airtime {
    type Output = Airtime;
    fn add(self, o: Airtime) -> Airtime {
        Airtime(self.0 + o.0)
    }
}

impl std::ops::AddAssign for Airtime {
    fn add_assign(&mut self, o: Airtime) {
        self.0 += o.0;
    }
}

impl std::iter::Sum for Airtime {
    fn sum<I: Iterator<Item = Airtime>>(it: I) -> Airtime {
        Airtime(it.map(|a| a.0).sum())
    }
}

impl fmt::Display for Airtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 10_000_000 {
            write!(f, "{:.0} s", self.0 as f64 / 1e6)
        } else if self.0 >= 1_000_000 {
            write!(f, "{:.1} s", self.0 as f64 / 1e6)
        } else {
            write!(f, "{:.0} ms", self.0 as f64 / 1e3)
        }
    }
}
