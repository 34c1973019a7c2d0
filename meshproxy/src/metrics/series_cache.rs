//! The request series each label set resolved to, found again by the identity of the label
//! strings rather than their text: the two `Family` lookups it replaces hash every label's text
//! with SipHash, twice per request, which profiles showed as a tenth of the proxy's own work.
//!
//! A request's labels are `Arc`s the compiled config holds (and a static empty one), so the same
//! service, route, backend and version are the same pointers from request to request. A key keeps
//! clones of its `Arc`s, so no address is reused for other text while it is a key; keys of configs
//! gone by are dropped when the cache outgrows its bound.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use super::RequestLabels;

/// More distinct label sets than a proxy with ten thousand routes sees between two config swaps.
const MOST_KEYS: usize = 65_536;

/// The handles of one label set's series.
#[derive(Clone)]
pub struct Series {
    pub requests: Counter,
    pub duration: Histogram,
}

#[derive(Default)]
pub struct SeriesCache {
    by_identity: Mutex<HashMap<IdentityKey, Series, BuildHasherDefault<PointerHasher>>>,
}

impl SeriesCache {
    /// The series for `labels`, made by `resolve` the first time these label strings are seen.
    pub fn get(&self, labels: RequestLabels, resolve: impl FnOnce(&RequestLabels) -> Series) -> Series {
        let mut cache = self.by_identity.lock().expect("the series cache lock is never poisoned");
        let key = IdentityKey(labels);
        if let Some(series) = cache.get(&key) {
            return series.clone();
        }
        if cache.len() >= MOST_KEYS {
            cache.clear();
        }
        let series = resolve(&key.0);
        cache.insert(key, series.clone());
        series
    }
}

/// Labels compared and hashed by the addresses of their strings.
struct IdentityKey(RequestLabels);

impl IdentityKey {
    fn strings(&self) -> [&Arc<String>; 5] {
        let l = &self.0;
        [&l.service, &l.namespace, &l.route, &l.backend, &l.version]
    }
}

impl PartialEq for IdentityKey {
    fn eq(&self, other: &Self) -> bool {
        self.strings().iter().zip(other.strings()).all(|(a, b)| Arc::ptr_eq(a, b))
            && self.0.code == other.0.code
            && self.0.class == other.0.class
            && self.0.blame == other.0.blame
    }
}

impl Eq for IdentityKey {}

impl Hash for IdentityKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for string in self.strings() {
            state.write_usize(Arc::as_ptr(string) as usize);
        }
        state.write_u16(self.0.code);
        // By length, not address: equal text may sit at two addresses, and equal keys must
        // hash alike.
        state.write_usize(self.0.blame.len());
    }
}

/// Multiply-rotate mixing of a few machine words (the Fx hash of rustc): plenty for pointers,
/// which no client chooses.
#[derive(Default)]
struct PointerHasher(u64);

impl Hasher for PointerHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    fn write_u16(&mut self, word: u16) {
        self.write_u64(u64::from(word));
    }
}
