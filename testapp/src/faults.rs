use std::sync::atomic::{AtomicU64, Ordering};

/// Decides which requests fail so that, over any run of N requests, exactly round(N * rate) do,
/// spread evenly. Tests can then assert an error rate exactly instead of within a random band.
#[derive(Debug)]
pub struct ErrorSchedule {
    rate: f64,
    seen: AtomicU64,
}

impl ErrorSchedule {
    pub fn new(rate: f64) -> Self {
        ErrorSchedule { rate, seen: AtomicU64::new(0) }
    }

    /// Whether the next request should fail.
    pub fn next_fails(&self) -> bool {
        if self.rate <= 0.0 {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed) as f64;
        // The n-th request fails when it carries the running count of failures past an integer.
        ((n + 1.0) * self.rate + 0.5).floor() > (n * self.rate + 0.5).floor()
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorSchedule;

    #[test]
    fn fails_exactly_the_rounded_share() {
        for (rate, n, expected) in [(0.0, 100, 0), (1.0, 100, 100), (0.1, 1000, 100), (0.25, 10, 3), (0.333, 300, 100)]
        {
            let schedule = ErrorSchedule::new(rate);
            let failed = (0..n).filter(|_| schedule.next_fails()).count();
            assert_eq!(failed, expected, "rate {rate} over {n}");
        }
    }
}
