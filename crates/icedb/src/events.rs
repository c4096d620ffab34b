//! The standard event workload: a deterministic, seeded generator of the
//! event shape every IceDB benchmark and many tests use.
//!
//! ```json
//! {"id":"7-0","ts":1790812800123,"event":"page_view","user_id":"u4211",
//!  "properties":{"page":"/pricing","duration_ms":5120,"referrer":null,
//!  "score":41.75,"device":"mobile","country":"NL"}}
//! ```
//!
//! 20 event names with a skewed (Zipf, s = 1) distribution, 50 000 users,
//! `ts` uniform in epoch milliseconds over the 30 days from
//! 2026-10-01T00:00:00Z, `id` unique per (seed, sequence). The same seed gives
//! the same events on every machine and release (ChaCha8).

use std::fmt::Write;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The 20 event names, most frequent first.
pub const EVENT_NAMES: [&str; 20] = [
    "page_view",
    "click",
    "scroll",
    "session_start",
    "session_end",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "checkout_start",
    "purchase",
    "signup",
    "login",
    "logout",
    "share",
    "comment",
    "like",
    "video_play",
    "video_pause",
    "download",
    "error",
];

/// Number of distinct users.
pub const USERS: u64 = 50_000;
/// 2026-10-01T00:00:00Z in epoch milliseconds: the start of the `ts` range.
pub const START_MS: i64 = 1_790_812_800_000;
/// Length of the `ts` range: 30 days.
pub const SPAN_MS: i64 = 30 * 86_400_000;

const PAGES: [&str; 12] = [
    "/",
    "/pricing",
    "/docs",
    "/docs/getting-started",
    "/docs/api",
    "/blog",
    "/blog/launch",
    "/about",
    "/careers",
    "/signup",
    "/login",
    "/account/settings",
];
const REFERRERS: [&str; 5] = [
    "https://www.google.com/",
    "https://news.ycombinator.com/",
    "https://twitter.com/",
    "https://github.com/",
    "https://duckduckgo.com/",
];
const DEVICES: [&str; 3] = ["desktop", "mobile", "tablet"];
const COUNTRIES: [&str; 8] = ["US", "DE", "NL", "FR", "GB", "IN", "BR", "JP"];

/// Generates standard events as JSON text, one object per call.
pub struct EventGenerator {
    rng: ChaCha8Rng,
    seed: u64,
    sequence: u64,
    /// Cumulative Zipf weights of `EVENT_NAMES`, scaled to integers.
    event_cdf: [u32; 20],
}

impl EventGenerator {
    pub fn new(seed: u64) -> Self {
        let mut event_cdf = [0u32; 20];
        let mut total = 0u32;
        for (k, slot) in event_cdf.iter_mut().enumerate() {
            total += 1_000_000 / (k as u32 + 1);
            *slot = total;
        }
        EventGenerator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            seed,
            sequence: 0,
            event_cdf,
        }
    }

    /// The next event, as one line of JSON (no trailing newline).
    pub fn next_event(&mut self) -> String {
        let mut line = String::with_capacity(256);
        self.write_event(&mut line);
        line
    }

    /// `count` events.
    pub fn batch(&mut self, count: usize) -> Vec<String> {
        (0..count).map(|_| self.next_event()).collect()
    }

    /// `count` events as NDJSON (one per line, each line ending in `\n`).
    pub fn ndjson(&mut self, count: usize) -> String {
        let mut out = String::with_capacity(count * 230);
        for _ in 0..count {
            self.write_event(&mut out);
            out.push('\n');
        }
        out
    }

    fn write_event(&mut self, out: &mut String) {
        let rng = &mut self.rng;
        let ts = START_MS + rng.random_range(0..SPAN_MS);
        let pick = rng.random_range(0..self.event_cdf[19]);
        let event = EVENT_NAMES[self.event_cdf.partition_point(|&c| c <= pick)];
        let user = rng.random_range(0..USERS);
        let page = PAGES[rng.random_range(0..PAGES.len())];
        let duration_ms = rng.random_range(0..30_000u32);
        let referrer = rng
            .random_bool(0.6)
            .then(|| REFERRERS[rng.random_range(0..REFERRERS.len())]);
        let score = rng.random_range(0..10_000u32) as f64 / 100.0;
        let device = DEVICES[rng.random_range(0..DEVICES.len())];
        let country = COUNTRIES[rng.random_range(0..COUNTRIES.len())];
        let referrer = match referrer {
            Some(r) => format!("\"{r}\""),
            None => "null".to_owned(),
        };
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            r#"{{"id":"{}-{}","ts":{ts},"event":"{event}","user_id":"u{user}","properties":{{"page":"{page}","duration_ms":{duration_ms},"referrer":{referrer},"score":{score},"device":"{device}","country":"{country}"}}}}"#,
            self.seed, self.sequence
        );
        self.sequence += 1;
    }
}

impl Iterator for EventGenerator {
    type Item = String;
    fn next(&mut self) -> Option<String> {
        Some(self.next_event())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value as Json;

    #[test]
    fn same_seed_same_events() {
        assert_eq!(
            EventGenerator::new(7).batch(50),
            EventGenerator::new(7).batch(50)
        );
        assert_ne!(
            EventGenerator::new(7).batch(50),
            EventGenerator::new(8).batch(50)
        );
    }

    #[test]
    fn events_have_the_standard_shape() {
        let events = EventGenerator::new(1).batch(20_000);
        let mut counts = std::collections::HashMap::new();
        let mut bytes = 0;
        for line in &events {
            bytes += line.len();
            let event: Json = serde_json::from_str(line).unwrap();
            let ts = event["ts"].as_i64().unwrap();
            assert!((START_MS..START_MS + SPAN_MS).contains(&ts));
            assert!(event["user_id"].as_str().unwrap().starts_with('u'));
            assert!(event["properties"]["duration_ms"].is_i64());
            assert!(event["properties"]["score"].is_f64() || event["properties"]["score"].is_i64());
            *counts
                .entry(event["event"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 20, "all 20 event names appear");
        assert!(
            counts["page_view"] > 5 * counts["error"],
            "skewed: {counts:?}"
        );
        let average = bytes / events.len();
        assert!(
            (180..=260).contains(&average),
            "about 200 bytes of JSON, got {average}"
        );
    }
}
