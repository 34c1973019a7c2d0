//! A whole rollout in the simulated world, recorded as rows for printing.

use std::fmt::Write as _;

use serin_crds::CanaryPhase;

use super::world::{World, elapsed};
use crate::Action;

/// One tick of a simulated rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineRow {
    pub seconds: u64,
    pub phase: CanaryPhase,
    pub primary: u8,
    pub canary: u8,
    pub mirror: bool,
    pub iterations: i32,
    pub failed_checks: i32,
    pub message: String,
    /// The actions of the tick that change the world (events and alerts left out).
    pub actions: Vec<String>,
}

/// The rows of a rollout and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub rows: Vec<TimelineRow>,
    pub outcome: CanaryPhase,
}

/// Ticks `world` (whose target runs `v1`) until it is initialized, deploys `v2`, and ticks until the
/// run of `v2` ends or `max_ticks` pass.
pub fn simulate_rollout(mut world: World, max_ticks: usize) -> Timeline {
    let mut rows = Vec::new();
    let mut deployed = false;
    for _ in 0..max_ticks {
        let seconds = elapsed(world.now).as_secs();
        let decision = world.tick();
        let (primary, canary) = world.weights();
        rows.push(TimelineRow {
            seconds,
            phase: decision.status.phase,
            primary,
            canary,
            mirror: world.mirrored(),
            iterations: decision.status.iterations,
            failed_checks: decision.status.failed_checks,
            message: decision.status.message.clone(),
            actions: decision.actions.iter().filter_map(describe).collect(),
        });
        let phase = world.phase();
        if !deployed && phase == CanaryPhase::Initialized {
            world.deploy("v2");
            deployed = true;
        } else if deployed && matches!(phase, CanaryPhase::Succeeded | CanaryPhase::Failed) {
            break;
        }
    }
    Timeline { outcome: world.phase(), rows }
}

fn describe(action: &Action) -> Option<String> {
    Some(match action {
        Action::InitializePrimary => "init-primary".into(),
        Action::SetRoutes(r) => format!("routes {}/{}{}", r.primary, r.canary, if r.mirror { "+mirror" } else { "" }),
        Action::ScaleCanaryUp => "scale-up".into(),
        Action::ScaleCanaryToZero => "scale-to-zero".into(),
        Action::Promote { revision } => format!("promote {revision}"),
        Action::RestoreTarget => "restore-target".into(),
        Action::RemoveFinalizer => "remove-finalizer".into(),
        Action::RunHooks { kind, .. } => format!("hooks {kind}"),
        Action::Event { .. } | Action::Alert { .. } => return None,
    })
}

impl Timeline {
    /// A fixed-width table, one row per tick.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:>7}  {:<16} {:>7} {:>6}  {:>4} {:>6}  {:<34} message",
            "time", "phase", "primary", "canary", "iter", "failed", "actions"
        );
        for row in &self.rows {
            let canary = format!("{}{}", row.canary, if row.mirror { "+m" } else { "" });
            let _ = writeln!(
                out,
                "{:>7}  {:<16} {:>7} {:>6}  {:>4} {:>6}  {:<34} {}",
                format!("+{}s", row.seconds),
                row.phase.as_str(),
                row.primary,
                canary,
                row.iterations,
                row.failed_checks,
                row.actions.join(", "),
                row.message
            );
        }
        let _ = writeln!(out, "\nresult: {}", self.outcome);
        out
    }
}
