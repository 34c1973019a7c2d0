use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// How many of the failures' messages a report keeps (the latest ones).
const KEPT_FAILURES: usize = 200;

/// What the traffic pod has seen so far. Counts only grow, so a test takes two reports and
/// subtracts to learn what happened in between.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Requests started.
    pub sent: u64,
    /// Requests that got a response, whatever its status.
    pub answered: u64,
    /// Requests that got no response: connect failures, resets, timeouts.
    pub unanswered: u64,
    /// Responses by the version that gave them (`none` when the header was missing).
    pub by_version: BTreeMap<String, u64>,
    /// Responses by status code.
    pub by_status: BTreeMap<u16, u64>,
    /// Requests skipped because too many were still in flight.
    pub skipped: u64,
    /// Requests sent a second time because the server closed a kept-alive connection first.
    #[serde(default)]
    pub retried: u64,
    /// The latest failures (unanswered requests and 5xx answers), oldest first.
    pub recent_failures: Vec<String>,
    /// Whether requests are still being sent.
    pub sending: bool,
}

impl Report {
    /// Responses with a 5xx status.
    pub fn server_errors(&self) -> u64 {
        self.by_status.range(500..600).map(|(_, n)| n).sum()
    }

    /// Requests that failed from the client's point of view: no answer, or a 5xx.
    pub fn failed(&self) -> u64 {
        self.unanswered + self.server_errors()
    }

    /// What happened between `earlier` and this report.
    pub fn since(&self, earlier: &Report) -> Report {
        let minus = |now: &BTreeMap<String, u64>, then: &BTreeMap<String, u64>| {
            now.iter()
                .map(|(k, n)| (k.clone(), n - then.get(k).copied().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .collect()
        };
        Report {
            sent: self.sent - earlier.sent,
            answered: self.answered - earlier.answered,
            unanswered: self.unanswered - earlier.unanswered,
            by_version: minus(&self.by_version, &earlier.by_version),
            by_status: self
                .by_status
                .iter()
                .map(|(k, n)| (*k, n - earlier.by_status.get(k).copied().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            skipped: self.skipped - earlier.skipped,
            retried: self.retried - earlier.retried,
            recent_failures: self
                .recent_failures
                .iter()
                .filter(|failure| !earlier.recent_failures.contains(failure))
                .cloned()
                .collect(),
            sending: self.sending,
        }
    }

    /// The share of answers each version gave, in percent.
    pub fn version_shares(&self) -> BTreeMap<String, f64> {
        let total: u64 = self.by_version.values().sum();
        self.by_version.iter().map(|(v, n)| (v.clone(), 100.0 * *n as f64 / total.max(1) as f64)).collect()
    }
}

/// The running tally, shared by the senders and the report server.
#[derive(Debug, Default)]
pub struct Tally {
    report: Mutex<Report>,
}

impl Tally {
    pub fn snapshot(&self) -> Report {
        self.lock().clone()
    }

    pub fn sending(&self, sending: bool) {
        self.lock().sending = sending;
    }

    pub fn sent(&self) {
        self.lock().sent += 1;
    }

    pub fn skipped(&self) {
        self.lock().skipped += 1;
    }

    pub fn retried(&self) {
        self.lock().retried += 1;
    }

    pub fn answered(&self, status: u16, version: Option<&str>) {
        let mut report = self.lock();
        report.answered += 1;
        *report.by_status.entry(status).or_default() += 1;
        *report.by_version.entry(version.unwrap_or("none").to_string()).or_default() += 1;
        if status >= 500 {
            let message = format!("status {status} from version {}", version.unwrap_or("none"));
            push_failure(&mut report, message);
        }
    }

    pub fn unanswered(&self, why: String) {
        let mut report = self.lock();
        report.unanswered += 1;
        push_failure(&mut report, why);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Report> {
        self.report.lock().expect("the tally lock is never poisoned")
    }
}

fn push_failure(report: &mut Report, message: String) {
    let at = jiff::Timestamp::now();
    report.recent_failures.push(format!("{at}: {message}"));
    if report.recent_failures.len() > KEPT_FAILURES {
        report.recent_failures.remove(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_report_minus_an_earlier_one_is_what_happened_between() {
        let tally = Tally::default();
        tally.sent();
        tally.answered(200, Some("v1"));
        let earlier = tally.snapshot();
        for _ in 0..3 {
            tally.sent();
        }
        tally.answered(200, Some("v2"));
        tally.answered(503, Some("v2"));
        tally.unanswered("connect refused".into());
        let between = tally.snapshot().since(&earlier);
        assert_eq!(between.sent, 3);
        assert_eq!(between.by_version, BTreeMap::from([("v2".to_string(), 2)]));
        assert_eq!(between.failed(), 2);
        assert_eq!(between.recent_failures.len(), 2, "only the failures after the earlier report");
        assert_eq!(between.version_shares()["v2"], 100.0);
    }
}
