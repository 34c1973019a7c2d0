//! Webhooks (every Flagger type, with Flagger's payload), the built-in gates they can point at,
//! and alerts through AlertProviders.

pub mod alerts;
pub mod gates;
pub mod webhook;
