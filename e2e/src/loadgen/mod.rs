//! A load generator in the style of wrk2: requests are due at a fixed rate, and each one's latency
//! counts from when it was due, not from when it was sent, so a stalled server is charged for
//! the requests it held up (no coordinated omission). Or, with no rate, as many requests as the
//! connections can carry, for maximum throughput.
//!
//! It also measures the server under test: CPU time and peak resident memory of given processes.

mod pacer;
mod process;
mod report;
mod run;

pub use process::ProcessUsage;
pub use report::{Report, build_reports, render_markdown};
pub use run::{LoadResult, LoadSpec, run};
