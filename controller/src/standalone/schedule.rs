//! When each Canary's next tick is due, and how late ticks run. A tick costs the same with ten
//! Canaries or ten thousand: the loop pops what is due instead of looking at every Canary.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use jiff::Timestamp;

#[derive(Debug, Default)]
pub struct Schedule {
    queue: BinaryHeap<Reverse<(Timestamp, String)>>,
    /// The current due time per Canary; queue entries that disagree are stale and skipped.
    due: HashMap<String, Timestamp>,
    lateness: Lateness,
}

impl Schedule {
    /// Puts `key` at `at`, replacing any earlier entry.
    pub fn set(&mut self, key: &str, at: Timestamp) {
        self.due.insert(key.to_string(), at);
        self.queue.push(Reverse((at, key.to_string())));
    }

    /// Keeps only these Canaries; the ones new to it are due now.
    pub fn retain_and_add<'a>(&mut self, keys: impl Iterator<Item = &'a str>, now: Timestamp) {
        let mut kept = HashMap::new();
        for key in keys {
            let at = self.due.get(key).copied().unwrap_or(now);
            kept.insert(key.to_string(), at);
        }
        self.due = kept;
        self.queue = self.due.iter().map(|(key, at)| Reverse((*at, key.clone()))).collect();
    }

    /// The next Canary due at or before `now`, with how late it is.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<String> {
        while let Some(Reverse((at, _))) = self.queue.peek() {
            if *at > now {
                return None;
            }
            let Reverse((at, key)) = self.queue.pop().expect("peeked");
            if self.due.get(&key) != Some(&at) {
                continue;
            }
            self.due.remove(&key);
            self.lateness.record(now.duration_since(at).unsigned_abs());
            return Some(key);
        }
        None
    }

    /// When the earliest Canary is due.
    pub fn next_due(&mut self) -> Option<Timestamp> {
        while let Some(Reverse((at, key))) = self.queue.peek() {
            if self.due.get(key) == Some(at) {
                return Some(*at);
            }
            self.queue.pop();
        }
        None
    }

    pub fn len(&self) -> usize {
        self.due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }

    /// How late the ticks since the last call ran, and forgets them.
    pub fn take_lateness(&mut self) -> Lateness {
        std::mem::take(&mut self.lateness)
    }
}

/// How late ticks ran, in milliseconds.
#[derive(Debug, Default, Clone)]
pub struct Lateness {
    samples: Vec<u32>,
}

impl Lateness {
    fn record(&mut self, late: Duration) {
        self.samples.push(u32::try_from(late.as_millis()).unwrap_or(u32::MAX));
    }

    pub fn ticks(&self) -> usize {
        self.samples.len()
    }

    /// The `q` quantile (0..=1) in milliseconds; 0 without ticks.
    pub fn quantile_ms(&mut self, q: f64) -> u32 {
        if self.samples.is_empty() {
            return 0;
        }
        self.samples.sort_unstable();
        let index = ((self.samples.len() - 1) as f64 * q).round() as usize;
        self.samples[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn due_canaries_come_out_in_order_and_a_rescheduled_one_only_at_its_new_time() {
        let mut schedule = Schedule::default();
        schedule.set("b", at(2));
        schedule.set("a", at(1));
        schedule.set("c", at(5));
        schedule.set("b", at(10));
        assert_eq!(schedule.pop_due(at(3)), Some("a".to_string()));
        assert_eq!(schedule.pop_due(at(3)), None);
        assert_eq!(schedule.pop_due(at(6)), Some("c".to_string()));
        assert_eq!(schedule.pop_due(at(10)), Some("b".to_string()));
        let mut lateness = schedule.take_lateness();
        assert_eq!(lateness.ticks(), 3);
        assert_eq!(lateness.quantile_ms(1.0), 2000);
    }

    #[test]
    fn a_reload_keeps_known_times_drops_the_removed_and_makes_the_new_due() {
        let mut schedule = Schedule::default();
        schedule.set("kept", at(100));
        schedule.set("gone", at(1));
        schedule.retain_and_add(["kept", "new"].into_iter(), at(0));
        assert_eq!(schedule.len(), 2);
        assert_eq!(schedule.pop_due(at(0)), Some("new".to_string()));
        assert_eq!(schedule.pop_due(at(50)), None);
    }
}
