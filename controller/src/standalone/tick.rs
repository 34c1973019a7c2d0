//! Standalone mode as a [`Platform`]: observing reads the state file and probes the endpoint groups;
//! questions go to webhooks and metrics; status and the effects of actions go to the state file,
//! from which the meshproxy config is derived.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use jiff::Timestamp;
use serin_crds::canary::AlertSeverity;

use serin_crds::CanaryStatus;
use serin_crds::canary::HookType;

use super::Standalone;
use super::error::StandaloneError;
use super::groups::{EndpointGroup, revision_source};
use super::manifests::LoadedCanary;
use super::state::{CanaryRecord, EventRecord, HISTORY_KEPT, HistoryPoint};
use crate::analysis::Subject;
use crate::engine::{
    Action, HookOutcome, MetricObservation, Observations, OperatorRequest, Readiness, RolloutDecision,
    revision::Revision,
};
use crate::hooks::alerts::{AlertDirectory, AlertMessage};
use crate::hooks::webhook::HookTarget;
use crate::reconcile::{CanaryRef, Observed, Platform, reconcile};

/// How long a readiness probe may take per endpoint.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// What one reconcile of one Canary works on, from observing to acting (private to this module).
pub struct Held {
    canary_group: EndpointGroup,
    revision: Revision,
    record: CanaryRecord,
}

impl Standalone {
    /// One reconcile of one Canary through the routine every platform shares; returns when the
    /// next one is due.
    pub(super) async fn tick(&mut self, canary: &LoadedCanary) -> Timestamp {
        let reference = canary.reference();
        let before = self.state.lock().expect("state lock").canaries.get(&canary.key()).and_then(|r| r.status.clone());
        match reconcile(self, reference).await {
            Ok(reconciled) => {
                let status = &reconciled.decision.status;
                if let Some(id) = &status.last_handled_request {
                    self.requests.handled(&canary.key(), id);
                }
                reconciled.log(&canary.key(), before.as_ref());
                Timestamp::now() + signed(reconciled.decision.requeue_after)
            }
            Err(problem) => {
                tracing::error!(canary = %canary.key(), %problem, label = problem.label(), "tick failed");
                Timestamp::now() + signed(crate::engine::strategy::interval(&canary.spec.analysis))
            }
        }
    }

    /// Keeps the record in memory and writes it when it changed; a change to what routing reads
    /// makes the meshproxy config stale.
    fn store(&mut self, key: String, record: CanaryRecord) -> Result<(), StandaloneError> {
        let shared = self.state.clone();
        let mut state = shared.lock().expect("state lock");
        let previous = state.canaries.get(&key);
        let wrote = self.store.save_if_changed(&key, &record, previous)?;
        self.config_stale |= wrote && previous.is_none_or(|p| p.routing() != record.routing());
        state.canaries.insert(key, record);
        Ok(())
    }

    /// Appends a history point when the phase, weight, checks or values moved.
    fn record_history(&mut self, key: &str, record: &mut CanaryRecord, point: HistoryPoint) {
        if record.history.last().is_some_and(|last| last.same_as(&point)) {
            return;
        }
        let lines = self.history_lines.entry(key.to_string()).or_default();
        if let Err(problem) = self.store.append_history(key, &point, *lines) {
            tracing::warn!(canary = %key, %problem, "cannot append to the history; charts miss a point");
        }
        *lines = if *lines >= 2 * HISTORY_KEPT { HISTORY_KEPT } else { *lines + 1 };
        record.history.push(point);
        if record.history.len() > HISTORY_KEPT {
            record.history.drain(..record.history.len() - HISTORY_KEPT);
        }
    }
}

impl Platform for Standalone {
    type Held = Held;
    type Error = StandaloneError;

    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    async fn observe(&mut self, canary: CanaryRef<'_>) -> Result<Observed<Held>, StandaloneError> {
        let group_name = canary.spec.canary_service_name();
        let canary_group = self
            .manifests
            .group(canary.namespace, &group_name)
            .cloned()
            .ok_or_else(|| StandaloneError::MissingGroup { canary: canary.key(), group: group_name })?;
        let record = self.state.lock().expect("state lock").canaries.get(&canary.key()).cloned().unwrap_or_default();
        let revision = Revision::of(&revision_source(&canary_group), BTreeMap::new());
        let observations = Observations {
            revision: revision.clone(),
            primary_revision: record.primary_revision.clone(),
            primary: match &record.primary {
                Some(primary) => self.readiness(primary).await,
                None => Readiness::Pending { reason: "the primary is not created yet".into(), since: Timestamp::now() },
            },
            canary: if record.canary_scaled_to_zero {
                Readiness::ScaledToZero
            } else {
                self.readiness(&canary_group).await
            },
            routes: record.routes.map(Into::into),
            deleting: false,
            operator: self.requests.pending(&canary.key()).and_then(|request| OperatorRequest::from_request(&request)),
        };
        Ok(Observed { status: record.status.clone(), observations, held: Held { canary_group, revision, record } })
    }

    async fn run_hooks(&mut self, canary: CanaryRef<'_>, kind: HookType, observed: &Observed<Held>) -> HookOutcome {
        let phase = observed.status.as_ref().map(|s| s.phase).unwrap_or_default();
        let target =
            HookTarget { name: canary.name, namespace: canary.namespace, phase, checksum: &observed.held.revision.id };
        self.webhooks.run(kind, &canary.spec.analysis.webhooks, &target).await
    }

    async fn measure(&mut self, canary: CanaryRef<'_>, _observed: &Observed<Held>) -> Vec<MetricObservation> {
        let subject = Subject { name: canary.name, namespace: canary.namespace, spec: canary.spec };
        self.metrics.measure(subject, &self.manifests.catalog).await
    }

    async fn write_status(
        &mut self,
        canary: CanaryRef<'_>,
        held: &mut Held,
        decision: &RolloutDecision,
    ) -> Result<(), StandaloneError> {
        let record = &mut held.record;
        record.status = Some(decision.status.clone());
        let point = HistoryPoint {
            at: Timestamp::now(),
            phase: decision.status.phase.to_string(),
            canary_weight: decision.status.canary_weight,
            failed_checks: decision.status.failed_checks,
            metrics: decision.status.metrics.iter().map(|m| (m.name.clone(), (m.value, m.primary_value))).collect(),
        };
        self.record_history(&canary.key(), record, point);
        self.store(canary.key(), record.clone())
    }

    async fn carry_out(
        &mut self,
        canary: CanaryRef<'_>,
        held: &mut Held,
        decision: &RolloutDecision,
        action: &Action,
    ) -> Result<(), StandaloneError> {
        let Held { canary_group, revision, record } = held;
        let primary_group = || canary_group.renamed(&canary.spec.primary_service_name());
        match action {
            Action::InitializePrimary => {
                if record.primary.is_none() {
                    record.primary = Some(primary_group());
                    record.primary_revision = Some(revision.id.clone());
                }
                record.routes.get_or_insert(crate::engine::Routes::with_canary(0, false).into());
            }
            Action::SetRoutes(routes) => record.routes = Some((*routes).into()),
            Action::ScaleCanaryUp | Action::RestoreTarget => record.canary_scaled_to_zero = false,
            Action::ScaleCanaryToZero => record.canary_scaled_to_zero = true,
            Action::Promote { revision: promoted } => {
                // The canary's endpoints become the primary's: what "copy the spec" means here.
                record.primary = Some(primary_group());
                record.primary_revision = Some(promoted.clone());
            }
            Action::RemoveFinalizer => {}
            Action::RunHooks { kind, phase } => {
                let target = HookTarget {
                    name: canary.name,
                    namespace: canary.namespace,
                    phase: *phase,
                    checksum: &revision.id,
                };
                self.webhooks.run_and_log(*kind, &canary.spec.analysis.webhooks, &target).await;
            }
            Action::Event { kind, reason, message } => {
                let kind = kind.as_str();
                tracing::info!(canary = %canary.key(), kind, %reason, %message, "event");
                record.push_event(EventRecord {
                    at: Timestamp::now(),
                    kind: kind.to_string(),
                    reason: reason.clone(),
                    message: message.clone(),
                });
                let phase = decision.status.phase;
                let target =
                    HookTarget { name: canary.name, namespace: canary.namespace, phase, checksum: &revision.id };
                self.webhooks.post_event_and_log(&canary.spec.analysis.webhooks, &target, kind, message).await;
            }
            Action::Alert { severity, message } => self.alert(canary, &decision.status, *severity, message).await,
        }
        Ok(())
    }

    async fn finish(&mut self, canary: CanaryRef<'_>, held: Held) -> Result<(), StandaloneError> {
        self.store(canary.key(), held.record)
    }
}

impl Standalone {
    async fn alert(&self, canary: CanaryRef<'_>, status: &CanaryStatus, severity: AlertSeverity, message: &str) {
        let alert = AlertMessage::about(canary.name, canary.namespace, status, severity, message);
        let directory = AlertDirectory { providers: &self.manifests.alert_providers, catalog: &self.manifests.catalog };
        self.alerts.send_all_and_log(&canary.spec.analysis.alerts, &alert, directory).await;
    }

    /// A group is ready when every endpoint accepts a TCP connection; not ready since the first
    /// time one did not.
    async fn readiness(&mut self, group: &EndpointGroup) -> Readiness {
        let key = format!("{}/{}", group.namespace, group.name);
        let addresses = group.addresses();
        let mut down: Vec<SocketAddr> = Vec::new();
        for address in &addresses {
            let connected = tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(address)).await;
            if !matches!(connected, Ok(Ok(_))) {
                down.push(*address);
            }
        }
        if addresses.is_empty() {
            down.clear();
        }
        if down.is_empty() && !addresses.is_empty() {
            self.not_ready_since.remove(&key);
            return Readiness::Ready;
        }
        let since = *self.not_ready_since.entry(key.clone()).or_insert_with(Timestamp::now);
        let reason = if addresses.is_empty() {
            format!("{key} has no endpoints")
        } else {
            let down: Vec<String> = down.iter().map(ToString::to_string).collect();
            format!(
                "{key}: {} of {} endpoints do not accept connections ({})",
                down.len(),
                addresses.len(),
                down.join(", ")
            )
        };
        Readiness::Pending { reason, since }
    }
}

fn signed(duration: std::time::Duration) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(duration).unwrap_or(jiff::SignedDuration::from_secs(1))
}
