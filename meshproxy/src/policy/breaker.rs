//! The circuit breaker of a Service: at most `maxConnections` requests at its endpoints at once,
//! at most `maxPendingRequests` waiting for a slot; any more are shed at once with 503.
//!
//! Slots are counted per request rather than per TCP connection: with HTTP/1.1 the two are the
//! same, and with HTTP/2 a request count is what bounds the load an endpoint sees.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serin_crds::traffic_policy::ConnectionPool;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::FieldError;
use super::ServiceState;

/// Envoy's default queue when only `maxConnections` is set.
const DEFAULT_MAX_PENDING: usize = 1024;

#[derive(Debug, Clone)]
pub struct Breaker {
    slots: Arc<Semaphore>,
    pending: Arc<AtomicUsize>,
    max_active: usize,
    max_pending: usize,
}

/// Holds a slot until the response headers are back (or the request failed).
pub struct BreakerPermit(#[allow(dead_code)] OwnedSemaphorePermit);

/// The breaker is open: the request was not sent.
#[derive(Debug)]
pub struct Shed {
    pub active: usize,
    pub pending: usize,
}

impl Breaker {
    pub fn compile(pool: &ConnectionPool, state: &ServiceState) -> Result<Option<Breaker>, FieldError> {
        let max_pending = match pool.max_pending_requests {
            Some(n) if n < 0 => {
                return Err(("spec.connectionPool.maxPendingRequests".into(), format!("{n} is negative")));
            }
            Some(n) => n as usize,
            None => DEFAULT_MAX_PENDING,
        };
        let max_active = match pool.max_connections {
            None => return Ok(None),
            Some(n) if n < 1 => {
                return Err(("spec.connectionPool.maxConnections".into(), format!("{n} is less than 1")));
            }
            Some(n) => n as usize,
        };
        let (slots, pending) = state.breaker_slots(max_active);
        Ok(Some(Breaker { slots, pending, max_active, max_pending }))
    }

    /// A slot now, a slot after waiting in the queue, or `Shed` when the queue is full.
    pub async fn enter(&self) -> Result<BreakerPermit, Shed> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(BreakerPermit(permit));
        }
        let waiting = self.pending.fetch_add(1, Ordering::AcqRel);
        let _leave_queue = LeaveQueue(&self.pending);
        if waiting >= self.max_pending {
            let active = self.max_active.saturating_sub(self.slots.available_permits());
            return Err(Shed { active, pending: waiting });
        }
        let permit = self.slots.clone().acquire_owned().await.expect("breaker semaphores are never closed");
        Ok(BreakerPermit(permit))
    }
}

struct LeaveQueue<'a>(&'a AtomicUsize);

impl Drop for LeaveQueue<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
