//! `kubectl serin wait`: the CI gate. It waits for the rollout of the target's *current* revision
//! (recomputed at every look, so a push during the wait is waited for too) and never passes on an
//! earlier success.

use std::time::{Duration, Instant};

use serin_crds::{CanaryPhase, CanaryStatus};

use crate::source::{Source, transient};

/// What `wait` waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WaitFor {
    /// The current revision promoted (exit 0); a failure ends the wait at once (exit 1).
    Promoted,
    /// The current revision's run over, either way. Since a failure ends `promoted` at once too,
    /// the two behave alike: exit 0 promoted, 1 failed.
    Finished,
    /// As `finished`, and a run held for approval (a closed gate, a pause) ends it too (exit 3).
    Paused,
}

/// How a wait ended; the process exits with [`Outcome::code`].
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Promoted,
    Failed(String),
    TimedOut,
    WaitingForApproval(String),
    /// The rollout could not be read: no such Canary, no right to read it, or an API that did
    /// not answer until the timeout. Not a verdict on the rollout, so not exit 1.
    CannotTell(String),
}

impl Outcome {
    pub fn code(&self) -> u8 {
        match self {
            Outcome::Promoted => 0,
            Outcome::Failed(_) => 1,
            Outcome::TimedOut => 2,
            Outcome::WaitingForApproval(_) => 3,
            Outcome::CannotTell(_) => 4,
        }
    }
}

/// Where the current revision stands, from the Canary's status.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Promoted,
    Failed(String),
    Held(String),
    Running(String),
}

/// Judges the status for `revision`, the target's current revision.
pub fn judge(revision: &str, status: Option<&CanaryStatus>) -> Verdict {
    let Some(status) = status else { return Verdict::Running("not reconciled by the controller yet".into()) };
    let ours = |spec: &Option<String>| spec.as_deref() == Some(revision);
    let settled = !status.phase.is_running() && status.phase != CanaryPhase::Initializing;
    if ours(&status.last_promoted_spec) && settled {
        return Verdict::Promoted;
    }
    if ours(&status.last_applied_spec) {
        if status.phase == CanaryPhase::Failed {
            let reason = status.last_failure_reason.clone().unwrap_or_else(|| status.message.clone());
            return Verdict::Failed(reason);
        }
        if status.paused || matches!(status.phase, CanaryPhase::Waiting | CanaryPhase::WaitingPromotion) {
            return Verdict::Held(format!("{}: {}", status.phase, status.message));
        }
    }
    // Held at confirm-rollout, the controller has not recorded the new revision yet: it waits to
    // start the run of whatever the target runs now, which is not the promoted one.
    if status.phase == CanaryPhase::Waiting && !ours(&status.last_promoted_spec) {
        return Verdict::Held(format!("{}: {}", status.phase, status.message));
    }
    if !ours(&status.last_applied_spec) {
        return Verdict::Running(format!("{}: the controller has not taken up revision {revision} yet", status.phase));
    }
    Verdict::Running(format!("{}, canary weight {}%: {}", status.phase, status.canary_weight, status.message))
}

/// Waits, printing a line whenever the rollout moves, until the outcome or `timeout`. An API
/// that does not answer, or answers 5xx or 429, is asked again until the timeout; any other error
/// (no such Canary, no right to read it) ends the wait at once.
pub async fn wait(source: &Source, namespace: &str, name: &str, wanted: WaitFor, timeout: Duration) -> Outcome {
    let started = Instant::now();
    let mut last_line = String::new();
    loop {
        let (line, verdict) = match observe(source, namespace, name).await {
            Ok((revision, status)) => {
                let verdict = judge(&revision, status.as_ref());
                let line = match &verdict {
                    Verdict::Promoted => format!("revision {revision} promoted"),
                    Verdict::Failed(reason) => format!("revision {revision} failed: {reason}"),
                    Verdict::Held(why) | Verdict::Running(why) => format!("revision {revision}: {why}"),
                };
                (line, Some(verdict))
            }
            Err(problem) if transient(&problem) => {
                if started.elapsed() >= timeout {
                    return Outcome::CannotTell(format!(
                        "the rollout could not be read until the timeout: {problem:#}"
                    ));
                }
                (format!("cannot read the rollout, asking again: {problem:#}"), None)
            }
            Err(problem) => return Outcome::CannotTell(format!("{problem:#}")),
        };
        if line != last_line {
            println!("{} {namespace}/{name} {line}", jiff::Timestamp::now().strftime("%H:%M:%S"));
            last_line = line;
        }
        match verdict {
            Some(Verdict::Promoted) => return Outcome::Promoted,
            Some(Verdict::Failed(reason)) => return Outcome::Failed(reason),
            Some(Verdict::Held(why)) if wanted == WaitFor::Paused => return Outcome::WaitingForApproval(why),
            _ => {}
        }
        if started.elapsed() >= timeout {
            return Outcome::TimedOut;
        }
        tokio::time::sleep(Duration::from_secs(2).min(timeout.saturating_sub(started.elapsed()))).await;
    }
}

/// The target's current revision and the Canary's status.
async fn observe(source: &Source, namespace: &str, name: &str) -> anyhow::Result<(String, Option<CanaryStatus>)> {
    let canary =
        source.canary(namespace, name).await?.ok_or_else(|| anyhow::anyhow!("no Canary {namespace}/{name}"))?;
    let revision = source.revision(namespace, &canary).await?;
    Ok((revision, canary.status))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(phase: CanaryPhase, applied: &str, promoted: &str) -> CanaryStatus {
        CanaryStatus {
            phase,
            last_applied_spec: Some(applied.into()),
            last_promoted_spec: Some(promoted.into()),
            message: "m".into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_earlier_success_does_not_pass_for_a_new_revision() {
        // The target moved to r2; the controller has not seen it and still shows r1 promoted.
        let stale = status(CanaryPhase::Succeeded, "r1", "r1");
        assert!(matches!(judge("r2", Some(&stale)), Verdict::Running(_)));
        assert_eq!(judge("r1", Some(&stale)), Verdict::Promoted);
    }

    #[test]
    fn failure_hold_and_promotion_of_the_current_revision() {
        let failed = CanaryStatus {
            last_failure_reason: Some("error rate 7".into()),
            ..status(CanaryPhase::Failed, "r2", "r1")
        };
        assert_eq!(judge("r2", Some(&failed)), Verdict::Failed("error rate 7".into()));
        assert!(matches!(judge("r2", Some(&status(CanaryPhase::WaitingPromotion, "r2", "r1"))), Verdict::Held(_)));
        // At a closed confirm-rollout gate the new revision is not recorded yet.
        assert!(matches!(judge("r2", Some(&status(CanaryPhase::Waiting, "r1", "r1"))), Verdict::Held(_)));
        assert!(matches!(judge("r2", Some(&status(CanaryPhase::Promoting, "r2", "r2"))), Verdict::Running(_)));
        assert_eq!(judge("r2", Some(&status(CanaryPhase::Succeeded, "r2", "r2"))), Verdict::Promoted);
        // Reverted to the promoted revision after a failure: that revision is what the primary runs.
        assert_eq!(judge("r1", Some(&failed)), Verdict::Promoted);
        assert_eq!(judge("r1", Some(&status(CanaryPhase::Initialized, "r1", "r1"))), Verdict::Promoted);
    }
}
