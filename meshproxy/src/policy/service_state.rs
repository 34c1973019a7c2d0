//! The counters of one Service that its TrafficPolicy acts on: the rate limiter's tokens and the
//! circuit breaker's slots. They outlive config swaps (see `state::RuntimeState`).

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use super::TokenBucket;

#[derive(Debug, Default)]
pub struct ServiceState {
    pub bucket: TokenBucket,
    breaker: Mutex<Option<BreakerSlots>>,
}

/// The breaker's slots and queue length, with the slot count they were made for.
type BreakerSlots = (usize, Arc<Semaphore>, Arc<AtomicUsize>);

impl ServiceState {
    /// The breaker's semaphore for `max_active` slots. Kept while the limit stays the same; a
    /// new limit starts a new semaphore (requests already in flight finish on the old one).
    pub fn breaker_slots(&self, max_active: usize) -> (Arc<Semaphore>, Arc<AtomicUsize>) {
        let mut breaker = self.breaker.lock().expect("the breaker lock is never poisoned");
        match &*breaker {
            Some((size, slots, pending)) if *size == max_active => (slots.clone(), pending.clone()),
            _ => {
                let slots = Arc::new(Semaphore::new(max_active));
                let pending = Arc::new(AtomicUsize::new(0));
                *breaker = Some((max_active, slots.clone(), pending.clone()));
                (slots, pending)
            }
        }
    }
}
