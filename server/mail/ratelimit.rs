//! Token buckets keyed by sender or peer address: a burst, then a steady rate.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept before idle ones are dropped, so a flood of distinct keys
/// (addresses a peer invents) cannot grow memory without bound.
const MAX_KEYS: usize = 10_000;

pub struct RateLimiter<K> {
    per_minute: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        RateLimiter {
            per_minute: f64::from(per_minute),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one token now; `Err(wait)` says how long until one is free.
    pub fn take(&self, key: &K) -> Result<(), Duration> {
        self.take_at(key, Instant::now())
    }

    /// Whether a token is available, without taking it.
    pub fn peek_empty(&self, key: &K) -> Result<(), Duration> {
        let rate = self.per_minute / 60.0;
        let now = Instant::now();
        let map = self.buckets.lock().expect("rate limiter lock");
        match map.get(key) {
            None => Ok(()),
            Some((tokens, at)) => {
                let t = (tokens + now.saturating_duration_since(*at).as_secs_f64() * rate)
                    .min(self.burst);
                if t >= 1.0 {
                    Ok(())
                } else if rate <= 0.0 {
                    Err(Duration::from_secs(3600))
                } else {
                    Err(Duration::from_secs_f64((1.0 - t) / rate))
                }
            }
        }
    }

    pub fn take_at(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let rate = self.per_minute / 60.0;
        let mut map = self.buckets.lock().expect("rate limiter lock");
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            let burst = self.burst;
            map.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = map.entry(key.clone()).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.saturating_duration_since(*at).as_secs_f64() * rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else if rate <= 0.0 {
            Err(Duration::from_secs(3600))
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }

    /// Give back a token taken for work that turned out not to happen.
    pub fn refund(&self, key: &K) {
        let mut map = self.buckets.lock().expect("rate limiter lock");
        if let Some((tokens, _)) = map.get_mut(key) {
            *tokens = (*tokens + 1.0).min(self.burst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let rl = RateLimiter::new(60, 10);
        let t0 = Instant::now();
        for _ in 0..10 {
            rl.take_at(&"a", t0).unwrap();
        }
        let wait = rl.take_at(&"a", t0).unwrap_err();
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::from_millis(900),
            "{wait:?}"
        );
        // Another sender is not affected.
        rl.take_at(&"b", t0).unwrap();
        // One per second comes back.
        rl.take_at(&"a", t0 + Duration::from_millis(1001)).unwrap();
        assert!(rl.take_at(&"a", t0 + Duration::from_millis(1002)).is_err());
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..10 {
            rl.take_at(&"a", later).unwrap();
        }
        assert!(rl.take_at(&"a", later).is_err());
        // A refunded token can be taken again, but never beyond the burst.
        rl.refund(&"a");
        rl.take_at(&"a", later).unwrap();
        for _ in 0..20 {
            rl.refund(&"b");
        }
        for _ in 0..10 {
            rl.take_at(&"b", t0).unwrap();
        }
        assert!(rl.take_at(&"b", t0).is_err());
    }
}
