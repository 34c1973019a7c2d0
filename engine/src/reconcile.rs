//! The one reconcile routine, over a [`Platform`]: observe, run the engine's ask/answer loop,
//! write the decided status **first**, then carry out the actions. Kubernetes, standalone and the
//! simulated world differ only in how they observe, store status and act; the order of those steps,
//! which is what makes a restart at any moment safe, lives here and nowhere else.

use jiff::Timestamp;
use serin_crds::{CanarySpec, CanaryStatus, canary::HookType};

use crate::{
    Action, Answers, HookOutcome, MetricObservation, Observations, Question, RolloutDecision, Step, TickInput, decide,
};

/// The Canary being reconciled.
#[derive(Debug, Clone, Copy)]
pub struct CanaryRef<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub spec: &'a CanarySpec,
    pub generation: i64,
}

impl CanaryRef<'_> {
    /// `namespace/name`, for logs and messages.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// What a platform saw at the start of a reconcile.
#[derive(Debug)]
pub struct Observed<H> {
    /// The status as last written.
    pub status: Option<CanaryStatus>,
    pub observations: Observations,
    /// What the platform keeps from observing to acting (the objects it read, its record).
    pub held: H,
}

/// How one platform observes, answers the engine's questions, stores status and acts. Used
/// generically (never as a trait object), so its futures need not be `Send`-boxed.
#[allow(async_fn_in_trait)]
pub trait Platform {
    /// What the platform keeps between observing and acting within one reconcile.
    type Held;
    type Error: std::error::Error;

    /// The platform's clock.
    fn now(&self) -> Timestamp;

    async fn observe(&mut self, canary: CanaryRef<'_>) -> Result<Observed<Self::Held>, Self::Error>;

    /// Runs every webhook of `kind` in order; the first failure is the outcome.
    async fn run_hooks(
        &mut self,
        canary: CanaryRef<'_>,
        kind: HookType,
        observed: &Observed<Self::Held>,
    ) -> HookOutcome;

    /// Measures every metric of the analysis.
    async fn measure(&mut self, canary: CanaryRef<'_>, observed: &Observed<Self::Held>) -> Vec<MetricObservation>;

    /// Stores the decided status durably. Runs before any action.
    async fn write_status(
        &mut self,
        canary: CanaryRef<'_>,
        held: &mut Self::Held,
        decision: &RolloutDecision,
    ) -> Result<(), Self::Error>;

    /// Carries out one action. Every action is idempotent: a lost one is decided again next time.
    async fn carry_out(
        &mut self,
        canary: CanaryRef<'_>,
        held: &mut Self::Held,
        decision: &RolloutDecision,
        action: &Action,
    ) -> Result<(), Self::Error>;

    /// After the actions: store what they changed.
    async fn finish(&mut self, canary: CanaryRef<'_>, held: Self::Held) -> Result<(), Self::Error>;
}

/// An error that can name itself in a word, for logs and metrics.
pub trait Labelled {
    fn label(&self) -> &'static str;
}

/// What one reconcile did.
#[derive(Debug)]
pub struct Reconciled<E> {
    pub decision: RolloutDecision,
    /// Actions that failed; each is decided again on the next reconcile.
    pub failed: Vec<(Action, E)>,
}

impl<E: std::fmt::Display + Labelled> Reconciled<E> {
    /// Logs the actions that failed and, when the status differs from `before`, the new one; a
    /// reconcile that changed nothing (an idle Canary's) is logged at debug level only.
    pub fn log(&self, key: &str, before: Option<&CanaryStatus>) {
        for (action, problem) in &self.failed {
            tracing::warn!(canary = %key, ?action, %problem, label = problem.label(), "action failed; it is decided again next time");
        }
        let status = &self.decision.status;
        if before == Some(status) {
            tracing::debug!(canary = %key, phase = %status.phase, "reconciled: nothing changed");
            return;
        }
        tracing::info!(
            canary = %key,
            phase = %status.phase,
            weight = status.canary_weight,
            failed_checks = status.failed_checks,
            message = %status.message,
            "reconciled"
        );
    }
}

/// Observe, decide (answering the engine's questions), write the status, act.
pub async fn reconcile<P: Platform>(platform: &mut P, canary: CanaryRef<'_>) -> Result<Reconciled<P::Error>, P::Error> {
    let mut observed = platform.observe(canary).await?;
    let decision = decide_with_answers(platform, canary, &observed).await;
    // The status first, then the actions: a crash in between re-issues them on the next reconcile.
    platform.write_status(canary, &mut observed.held, &decision).await?;
    let mut failed = Vec::new();
    for action in &decision.actions {
        if let Err(error) = platform.carry_out(canary, &mut observed.held, &decision, action).await {
            failed.push((action.clone(), error));
        }
    }
    platform.finish(canary, observed.held).await?;
    Ok(Reconciled { decision, failed })
}

/// The engine's ask/answer loop: each question is answered by the platform once, when asked.
async fn decide_with_answers<P: Platform>(
    platform: &mut P,
    canary: CanaryRef<'_>,
    observed: &Observed<P::Held>,
) -> RolloutDecision {
    let mut answers = Answers::default();
    loop {
        let input = TickInput {
            name: canary.name,
            spec: canary.spec,
            generation: canary.generation,
            status: observed.status.as_ref(),
            observed: &observed.observations,
            answers: &answers,
            now: platform.now(),
        };
        match decide(&input) {
            Step::Decided(decision) => return *decision,
            Step::Need(Question::Hooks(kind)) => {
                let outcome = platform.run_hooks(canary, kind, observed).await;
                answers.hooks.insert(kind, outcome);
            }
            Step::Need(Question::Metrics) => {
                answers.metrics = Some(platform.measure(canary, observed).await);
            }
        }
    }
}

/// Runs a future that never waits, such as a reconcile against the simulated world, to its end.
///
/// # Panics
/// If the future waits on anything: nothing would ever wake it.
pub fn run_to_completion<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("a future that was expected never to wait is waiting"),
    }
}
