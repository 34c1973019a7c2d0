//! Simulation: the engine run against a simulated world, tick by tick, with no I/O.
//!
//! `serin-controller simulate CANARY.yaml` prints the timeline of a rollout so anyone can see what a
//! Canary will do before applying it; the engine's scenario tests use the same world.

#[cfg(feature = "cli")]
mod command;
mod timeline;
mod world;

#[cfg(feature = "cli")]
pub use command::SimulateArgs;
pub use timeline::{Timeline, TimelineRow, simulate_rollout};
pub use world::{Behaviour, World, elapsed, epoch};
