//! `serin-traffic`: the rig's client pod. It sends steady requests to a URL (a Service by name,
//! resolved through the cluster DNS as any pod's client would), for a bounded time, and tallies
//! what came back: which version answered (the sample app's `x-testapp-version` header), each
//! status, and every request that got no answer. Tests read the tally over HTTP (`GET /report`)
//! to assert what each version served and that nothing failed.

mod send;
mod tally;

pub use send::{TrafficSpec, run};
pub use tally::{Report, Tally};
