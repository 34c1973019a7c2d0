//! One tick of one Canary in standalone mode: observe, ask the engine (answering its questions with
//! webhooks and metrics), write the status, then carry out the actions.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use jiff::Timestamp;
use serin_crds::canary::AlertSeverity;

use super::Standalone;
use super::groups::EndpointGroup;
use super::manifests::LoadedCanary;
use super::state::{CanaryRecord, EventRecord, HistoryPoint};
use crate::analysis::Subject;
use crate::engine::{
    Action, Answers, EventKind, Observations, Question, Readiness, RolloutDecision, Step, TickInput, decide,
    revision::Revision,
};
use crate::hooks::alerts::{AlertMessage, ResolvedProvider};
use crate::hooks::webhook::HookTarget;

/// How long a readiness probe may take per endpoint.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

impl Standalone {
    pub(super) async fn tick(&mut self, canary: &LoadedCanary) {
        let Some(canary_group) = self.manifests.group(&canary.namespace, &canary.canary_group()).cloned() else {
            return;
        };
        let record = self.state.lock().expect("state lock").canaries.get(&canary.key()).cloned().unwrap_or_default();
        let revision = Revision::of(&canary_group.revision_source(), BTreeMap::new());
        let observed = Observations {
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
            operator: None,
        };
        let decision = self.decide(canary, &record, &observed).await;
        let mut record = record;
        record.status = Some(decision.status.clone());
        let requeue =
            jiff::SignedDuration::try_from(decision.requeue_after).unwrap_or(jiff::SignedDuration::from_secs(1));
        record.next_tick_at = Some(Timestamp::now() + requeue);
        record.push_history(HistoryPoint {
            at: Timestamp::now(),
            phase: decision.status.phase.to_string(),
            canary_weight: decision.status.canary_weight,
            failed_checks: decision.status.failed_checks,
            metrics: decision.status.metrics.iter().map(|m| (m.name.clone(), (m.value, m.primary_value))).collect(),
        });
        // The status first, then the actions: a crash in between re-issues them on the next tick.
        self.store(canary, record.clone());
        for action in &decision.actions {
            self.carry_out(canary, &canary_group, &revision, &mut record, action).await;
        }
        self.store(canary, record);
        tracing::info!(
            canary = %canary.key(),
            phase = %decision.status.phase,
            weight = decision.status.canary_weight,
            failed_checks = decision.status.failed_checks,
            message = %decision.status.message,
            "tick"
        );
    }

    fn store(&self, canary: &LoadedCanary, record: CanaryRecord) {
        self.state.lock().expect("state lock").canaries.insert(canary.key(), record);
        self.save();
    }

    async fn decide(&self, canary: &LoadedCanary, record: &CanaryRecord, observed: &Observations) -> RolloutDecision {
        let mut answers = Answers::default();
        loop {
            let input = TickInput {
                name: &canary.name,
                spec: &canary.spec,
                generation: canary.generation,
                status: record.status.as_ref(),
                observed,
                answers: &answers,
                now: Timestamp::now(),
            };
            match decide(&input) {
                Step::Decided(decision) => return *decision,
                Step::Need(Question::Hooks(kind)) => {
                    let phase = record.status.as_ref().map(|s| s.phase).unwrap_or_default();
                    let target = HookTarget {
                        name: &canary.name,
                        namespace: &canary.namespace,
                        phase,
                        checksum: &observed.revision.id,
                    };
                    let outcome = self.webhooks.run(kind, &canary.spec.analysis.webhooks, &target).await;
                    answers.hooks.insert(kind, outcome);
                }
                Step::Need(Question::Metrics) => {
                    let subject = Subject { name: &canary.name, namespace: &canary.namespace, spec: &canary.spec };
                    answers.metrics = Some(self.metrics.measure(subject, &self.manifests.catalog).await);
                }
            }
        }
    }

    async fn carry_out(
        &mut self,
        canary: &LoadedCanary,
        canary_group: &EndpointGroup,
        revision: &Revision,
        record: &mut CanaryRecord,
        action: &Action,
    ) {
        match action {
            Action::InitializePrimary => {
                if record.primary.is_none() {
                    record.primary = Some(canary_group.renamed(&canary.primary_group()));
                    record.primary_revision = Some(revision.id.clone());
                }
                record.routes.get_or_insert(crate::engine::Routes::with_canary(0, false).into());
            }
            Action::SetRoutes(routes) => record.routes = Some((*routes).into()),
            Action::ScaleCanaryUp | Action::RestoreTarget => record.canary_scaled_to_zero = false,
            Action::ScaleCanaryToZero => record.canary_scaled_to_zero = true,
            Action::Promote { revision: promoted } => {
                // The canary's endpoints become the primary's: what "copy the spec" means here.
                record.primary = Some(canary_group.renamed(&canary.primary_group()));
                record.primary_revision = Some(promoted.clone());
            }
            Action::RemoveFinalizer => {}
            Action::RunHooks { kind, phase } => {
                let target = HookTarget {
                    name: &canary.name,
                    namespace: &canary.namespace,
                    phase: *phase,
                    checksum: &revision.id,
                };
                if let crate::engine::HookOutcome::Failed { hook, message } =
                    self.webhooks.run(*kind, &canary.spec.analysis.webhooks, &target).await
                {
                    tracing::warn!(canary = %canary.key(), %hook, %message, "{kind} webhook failed");
                }
            }
            Action::Event { kind, reason, message } => {
                let kind = match kind {
                    EventKind::Normal => "Normal",
                    EventKind::Warning => "Warning",
                };
                tracing::info!(canary = %canary.key(), kind, %reason, %message, "event");
                record.push_event(EventRecord {
                    at: Timestamp::now(),
                    kind: kind.to_string(),
                    reason: reason.clone(),
                    message: message.clone(),
                });
                let phase = record.status.as_ref().map(|s| s.phase).unwrap_or_default();
                let target =
                    HookTarget { name: &canary.name, namespace: &canary.namespace, phase, checksum: &revision.id };
                for problem in self.webhooks.post_event(&canary.spec.analysis.webhooks, &target, kind, message).await {
                    tracing::warn!(canary = %canary.key(), %problem, "event webhook failed");
                }
            }
            Action::Alert { severity, message } => self.alert(canary, record, *severity, message).await,
        }
    }

    async fn alert(&self, canary: &LoadedCanary, record: &CanaryRecord, severity: AlertSeverity, message: &str) {
        let status = record.status.clone().unwrap_or_default();
        let alert = AlertMessage {
            name: &canary.name,
            namespace: &canary.namespace,
            severity,
            message,
            fields: vec![
                ("Phase".into(), status.phase.to_string()),
                ("Canary weight".into(), format!("{}%", status.canary_weight)),
                ("Failed checks".into(), status.failed_checks.to_string()),
            ],
        };
        let providers = &self.manifests.alert_providers;
        let catalog = &self.manifests.catalog;
        let resolve = |alert: &serin_crds::canary::CanaryAlert| {
            let namespace = alert.provider_ref.namespace.clone().unwrap_or_else(|| canary.namespace.clone());
            let (name, spec) = providers
                .get(&(namespace.clone(), alert.provider_ref.name.clone()))
                .ok_or_else(|| format!("AlertProvider {namespace}/{} not found", alert.provider_ref.name))?;
            let secret = match &spec.secret_ref {
                Some(secret) => Some(
                    catalog
                        .secret(&namespace, &secret.name)
                        .ok_or_else(|| format!("AlertProvider {name}: secret {:?} not found", secret.name))?,
                ),
                None => None,
            };
            ResolvedProvider::resolve(name, spec, secret)
        };
        for problem in self.alerts.send_all(&canary.spec.analysis.alerts, &alert, resolve).await {
            tracing::warn!(canary = %canary.key(), %problem, "alert not sent");
        }
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
