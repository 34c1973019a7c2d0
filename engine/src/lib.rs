//! Serin's rollout engine, shared by the controller and `kubectl serin`.
//!
//! The rollout state machine: a pure function from (Canary spec, status, observations, now) to
//! (new status, actions). No I/O, no clock, no randomness.
//!
//! One tick is one idempotent step, as in Flagger. A platform (Kubernetes or standalone) gathers
//! [`Observations`], calls [`decide`], and answers the [`Question`]s it asks (webhook gates and metric
//! checks have side effects, so they run only when the engine needs them) by calling again with the
//! answer added to [`Answers`]. The final [`RolloutDecision`] carries the new status and the
//! [`Action`]s to carry out.
//!
//! Restart safety: platforms write the decided status first and carry out the actions after. Every
//! tick re-issues what the status implies but the live state lacks (route weights, the primary's
//! revision during promotion, a canary scaled to zero mid-run), so a controller killed between the
//! two resumes without a double promotion or a lost rollback. There is no state outside the status
//! and the live routes.

pub mod conditions;
mod decision;
mod judge;
mod observations;
mod operator;
pub mod reconcile;
pub mod revision;
pub mod simulate;
pub mod strategy;
mod tick;
mod transitions;

pub use decision::{Action, EventKind, Question, RolloutDecision, Step};
pub use observations::{
    Answers, HookOutcome, MetricObservation, MetricValue, Observations, OperatorAction, OperatorRequest, Readiness,
    Routes,
};
pub use tick::{TickInput, decide};
