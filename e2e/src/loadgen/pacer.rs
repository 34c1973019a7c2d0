//! The pacer: an OS thread that releases one "due" instant per request at the target rate.
//! A thread with 1 µs timer slack keeps schedule far more closely than tokio's 1 ms timer wheel,
//! which at 5,000 requests/s would bunch requests into bursts.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// Sends due instants from `start` at `rate` per second until `end`; stops early if nobody listens.
pub fn spawn(start: Instant, end: Instant, rate: f64, due: mpsc::UnboundedSender<Instant>) {
    std::thread::spawn(move || {
        let _ = nix::sys::prctl::set_timerslack(1_000);
        let interval = Duration::from_secs_f64(1.0 / rate);
        let mut next = start;
        while next < end {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            if due.send(next).is_err() {
                return;
            }
            next += interval;
        }
    });
}
