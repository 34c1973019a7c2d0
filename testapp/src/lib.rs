//! `serin-testapp`: the sample service that rollouts are tried on, modelled on podinfo.
//!
//! It answers `/` with its version, and can be told to fail a fraction of those requests or to
//! answer them slowly, which is how a faulty release is played. It serves HTTP/1.1 and h2c on one
//! port, exposes its own Prometheus metrics, and drains on SIGTERM: `/readyz` turns 503, the
//! listener closes, and requests in flight finish.

mod config;
mod faults;
mod metrics;
mod routes;
mod server;

pub use config::Config;
pub use server::{Server, serve};
