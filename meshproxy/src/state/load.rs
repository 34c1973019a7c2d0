//! An endpoint's load, as the balancer weighs it: requests in flight and a peak-EWMA latency
//! estimate (linkerd2-proxy's), kept across config swaps.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How fast the latency estimate forgets: linkerd2-proxy's decay.
const DECAY: Duration = Duration::from_secs(10);
/// The estimate for an endpoint that has not answered yet.
const DEFAULT_RTT: Duration = Duration::from_millis(10);

/// Latency and requests in flight of one endpoint.
#[derive(Debug, Default)]
pub struct EndpointLoad {
    in_flight: AtomicU32,
    /// Peak-EWMA latency in seconds and when it was last updated; None before the first answer.
    estimate: Mutex<Option<(f64, Instant)>>,
}

/// Counts a request in flight until dropped.
pub struct InFlight<'a>(&'a EndpointLoad);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl EndpointLoad {
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// Folds in one observed latency: a slower sample replaces the estimate at once (peak), a
    /// faster one pulls it down gradually.
    pub fn observe(&self, rtt: Duration) {
        let now = Instant::now();
        let sample = rtt.as_secs_f64();
        let mut estimate = self.estimate.lock().expect("the load lock is never poisoned");
        let next = match *estimate {
            Some((current, at)) if sample < current => {
                let keep = (-now.duration_since(at).as_secs_f64() / DECAY.as_secs_f64()).exp();
                current * keep + sample * (1.0 - keep)
            }
            _ => sample,
        };
        *estimate = Some((next, now));
    }

    /// Expected cost of one more request: latency times (requests in flight + 1).
    pub fn cost(&self) -> f64 {
        let latency = self
            .estimate
            .lock()
            .expect("the load lock is never poisoned")
            .map_or(DEFAULT_RTT.as_secs_f64(), |(latency, _)| latency);
        latency * f64::from(self.in_flight.load(Ordering::Relaxed) + 1)
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_then_decay() {
        let load = EndpointLoad::default();
        load.observe(Duration::from_millis(100));
        load.observe(Duration::from_millis(1));
        // Just after the peak, a fast sample barely moves the estimate.
        assert!(load.cost() > 0.09, "{}", load.cost());
        let _busy = load.start();
        assert!(load.cost() > 0.18, "in-flight requests double the cost: {}", load.cost());
    }
}
