//! Kubernetes as a [`Platform`]: observing reads the Canary, its target workload, the primary and
//! the generated HTTPRoute; status goes to the Canary's status subresource; actions become
//! server-side applies and patches with one field manager, and events through events.k8s.io.

use std::collections::BTreeSet;
use std::sync::Arc;

use ::kube::api::{Api, Patch, PatchParams};
use ::kube::runtime::events::{Event as KubeEvent, EventType};
use ::kube::{Resource, ResourceExt};
use gateway_api::apis::standard::httproutes::HttpRoute;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use serin_crds::canary::{Canary, HookType};
use serin_crds::operator_request::OperatorRequest as AnnotatedRequest;

use super::catalog::{alert_directory, metric_catalog};
use super::configs::{ConfigRef, config_map_checksum, primary_name, referenced, secret_checksum};
use super::error::KubeError;
use super::pods;
use super::services::service;
use super::waypoint::{self, WAYPOINT_LABEL};
use super::workloads::{REVISION_ANNOTATION, Workload, WorkloadKind, primary_from, readiness, template_value};
use super::{Context, FIELD_MANAGER, FINALIZER};
use crate::analysis::Subject;
use crate::engine::{
    Action, EventKind, HookOutcome, MetricObservation, Observations, OperatorRequest, Readiness, RolloutDecision,
    Routes, revision::Revision,
};
use crate::hooks::alerts::{AlertDirectory, AlertMessage};
use crate::hooks::webhook::HookTarget;
use crate::reconcile::{CanaryRef, Observed, Platform};
use crate::route::canary_route;

/// One reconcile of one Canary.
pub struct KubePlatform<'a> {
    pub context: &'a Context,
    pub canary: Arc<Canary>,
}

/// What observing found that acting needs.
pub struct Held {
    target: Workload,
    primary: Option<Workload>,
    revision: Revision,
    /// The ConfigMaps and Secrets the target uses, as read.
    configs: Vec<TrackedConfig>,
    /// The generated HTTPRoute exists (read with the live weights).
    route_exists: bool,
}

enum TrackedConfig {
    ConfigMap(ConfigMap),
    Secret(Secret),
}

impl TrackedConfig {
    fn reference(&self) -> ConfigRef {
        match self {
            TrackedConfig::ConfigMap(c) => ConfigRef::ConfigMap(c.name_any()),
            TrackedConfig::Secret(s) => ConfigRef::Secret(s.name_any()),
        }
    }

    fn checksum(&self) -> String {
        match self {
            TrackedConfig::ConfigMap(c) => config_map_checksum(c),
            TrackedConfig::Secret(s) => secret_checksum(s),
        }
    }
}

impl Held {
    fn tracked(&self) -> BTreeSet<ConfigRef> {
        self.configs.iter().map(TrackedConfig::reference).collect()
    }

    /// The primary's replicas, which the canary takes when scaled up.
    fn primary_replicas(&self) -> i32 {
        self.primary.as_ref().map_or(1, Workload::replicas).max(1)
    }
}

impl KubePlatform<'_> {
    /// The workload `name` of `kind`, if it exists.
    async fn workload(&self, kind: WorkloadKind, namespace: &str, name: &str) -> Result<Option<Workload>, KubeError> {
        let client = self.context.client.clone();
        let failed = KubeError::api("reading", format!("{} {namespace}/{name}", kind.as_str()));
        match kind {
            WorkloadKind::Deployment => Api::<Deployment>::namespaced(client, namespace)
                .get_opt(name)
                .await
                .map(|d| d.map(Workload::Deployment)),
            WorkloadKind::DaemonSet => {
                Api::<DaemonSet>::namespaced(client, namespace).get_opt(name).await.map(|d| d.map(Workload::DaemonSet))
            }
        }
        .map_err(failed)
    }

    async fn apply_workload(&self, namespace: &str, workload: &Workload) -> Result<(), KubeError> {
        let client = self.context.client.clone();
        match workload {
            Workload::Deployment(d) => self.apply(&Api::namespaced(client, namespace), d).await,
            Workload::DaemonSet(d) => self.apply(&Api::namespaced(client, namespace), d).await,
        }
    }

    async fn apply<K>(&self, api: &Api<K>, object: &K) -> Result<(), KubeError>
    where
        K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(&name, &params, &Patch::Apply(object)).await.map(drop).map_err(KubeError::api(
            "applying",
            format!("{} {name}", std::any::type_name::<K>().rsplit("::").next().unwrap_or("object")),
        ))
    }

    async fn scale_target(&self, held: &Held, namespace: &str, target: &str, to: i32) -> Result<(), KubeError> {
        let kind = held.target.kind();
        let patch = Workload::scale_patch(kind, to);
        let params = PatchParams::default();
        let client = self.context.client.clone();
        match kind {
            WorkloadKind::Deployment => Api::<Deployment>::namespaced(client, namespace)
                .patch(target, &params, &Patch::Merge(&patch))
                .await
                .map(drop),
            WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(client, namespace)
                .patch(target, &params, &Patch::Merge(&patch))
                .await
                .map(drop),
        }
        .map_err(KubeError::api("scaling", format!("{} {namespace}/{target}", kind.as_str())))
    }

    async fn apply_route(
        &self,
        canary: CanaryRef<'_>,
        routes: Routes,
        decision: &RolloutDecision,
    ) -> Result<(), KubeError> {
        let mut route = canary_route(canary.namespace, canary.spec, routes, Some(&decision.status));
        route.metadata.owner_references = Some(vec![self.owner()]);
        let api: Api<HttpRoute> = Api::namespaced(self.context.client.clone(), canary.namespace);
        self.apply(&api, &route).await
    }

    /// The ConfigMaps and Secrets the target's pods use; one that does not exist is not tracked
    /// (the target's pods wait for it, and the deadline tells).
    async fn read_configs(&self, namespace: &str, target: &Workload) -> Result<Vec<TrackedConfig>, KubeError> {
        let template = target.template();
        let mut configs = Vec::new();
        for reference in referenced(&template) {
            match reference {
                ConfigRef::ConfigMap(name) => {
                    let api: Api<ConfigMap> = Api::namespaced(self.context.client.clone(), namespace);
                    let found = api
                        .get_opt(&name)
                        .await
                        .map_err(KubeError::api("reading", format!("ConfigMap {namespace}/{name}")))?;
                    configs.extend(found.map(TrackedConfig::ConfigMap));
                }
                ConfigRef::Secret(name) => {
                    let api: Api<Secret> = Api::namespaced(self.context.client.clone(), namespace);
                    let found = api
                        .get_opt(&name)
                        .await
                        .map_err(KubeError::api("reading", format!("Secret {namespace}/{name}")))?;
                    configs.extend(found.map(TrackedConfig::Secret));
                }
            }
        }
        Ok(configs)
    }

    /// Writes each tracked config's `-primary` copy, owned by the Canary.
    async fn copy_configs(&self, namespace: &str, held: &Held) -> Result<(), KubeError> {
        let owner = self.owner();
        let meta = |name: String| k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(primary_name(&name)),
            namespace: Some(namespace.to_string()),
            owner_references: Some(vec![owner.clone()]),
            ..Default::default()
        };
        for config in &held.configs {
            match config {
                TrackedConfig::ConfigMap(source) => {
                    let copy = ConfigMap {
                        metadata: meta(source.name_any()),
                        data: source.data.clone(),
                        binary_data: source.binary_data.clone(),
                        immutable: None,
                    };
                    self.apply(&Api::namespaced(self.context.client.clone(), namespace), &copy).await?;
                }
                TrackedConfig::Secret(source) => {
                    let copy = Secret {
                        metadata: meta(source.name_any()),
                        data: source.data.clone(),
                        type_: source.type_.clone(),
                        ..Default::default()
                    };
                    self.apply(&Api::namespaced(self.context.client.clone(), namespace), &copy).await?;
                }
            }
        }
        Ok(())
    }

    /// The primary from the target at `revision`: its configs copied, the workload applied, and
    /// with `autoscalerRef` its autoscaler.
    async fn apply_primary(
        &self,
        canary: CanaryRef<'_>,
        held: &Held,
        revision: &str,
        replicas: i32,
    ) -> Result<Workload, KubeError> {
        self.copy_configs(canary.namespace, held).await?;
        let name = canary.spec.primary_workload_name();
        let mut primary = primary_from(&held.target, &name, revision, replicas, &held.tracked());
        primary.meta_mut().owner_references = Some(vec![self.owner()]);
        self.apply_workload(canary.namespace, &primary).await?;
        self.apply_primary_autoscaler(canary).await?;
        Ok(primary)
    }

    /// With `autoscalerRef`: `<hpa>-primary`, the target's HorizontalPodAutoscaler pointed at the
    /// primary, owned by the Canary (refreshed at promotion, as the target's may have changed).
    async fn apply_primary_autoscaler(&self, canary: CanaryRef<'_>) -> Result<(), KubeError> {
        let Some(reference) = &canary.spec.autoscaler_ref else { return Ok(()) };
        let kind = reference.kind.as_deref().unwrap_or("HorizontalPodAutoscaler");
        if kind != "HorizontalPodAutoscaler" {
            return Err(KubeError::UnsupportedTarget { canary: canary.key(), kind: format!("autoscalerRef {kind}") });
        }
        let namespace = canary.namespace;
        let api: Api<HorizontalPodAutoscaler> = Api::namespaced(self.context.client.clone(), namespace);
        let object = format!("HorizontalPodAutoscaler {namespace}/{}", reference.name);
        let target =
            api.get_opt(&reference.name).await.map_err(KubeError::api("reading", object))?.ok_or_else(|| {
                KubeError::TargetNotFound {
                    canary: canary.key(),
                    kind: "HorizontalPodAutoscaler".into(),
                    namespace: namespace.to_string(),
                    name: reference.name.clone(),
                }
            })?;
        let mut spec = target.spec;
        spec.scale_target_ref.name = canary.spec.primary_workload_name();
        let primary = HorizontalPodAutoscaler {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(primary_name(&reference.name)),
                namespace: Some(namespace.to_string()),
                owner_references: Some(vec![self.owner()]),
                ..Default::default()
            },
            spec,
            status: None,
        };
        self.apply(&api, &primary).await
    }

    /// With `revertOnDeletion`, adds the controller's finalizer, so a deletion waits for what it
    /// restores; without, removes it (the setting was turned off), so that a Canary never outlives
    /// the controller by a finalizer nobody will remove (a namespace stuck deleting).
    pub async fn ensure_finalizer(&self, canary: CanaryRef<'_>) -> Result<(), KubeError> {
        if self.canary.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        if canary.spec.revert_on_deletion != Some(true) {
            return self.remove_finalizer(canary).await;
        }
        if self.canary.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(());
        }
        let mut finalizers = self.canary.finalizers().to_vec();
        finalizers.push(FINALIZER.to_string());
        self.patch_finalizers(canary, finalizers).await
    }

    /// Lets the Canary go.
    pub async fn remove_finalizer(&self, canary: CanaryRef<'_>) -> Result<(), KubeError> {
        if !self.canary.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(());
        }
        let finalizers = self.canary.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
        self.patch_finalizers(canary, finalizers).await
    }

    async fn patch_finalizers(&self, canary: CanaryRef<'_>, finalizers: Vec<String>) -> Result<(), KubeError> {
        // The resourceVersion makes the patch fail rather than drop another controller's finalizer
        // added meanwhile; the next reconcile tries again.
        let patch = serde_json::json!({"metadata": {
            "finalizers": finalizers,
            "resourceVersion": self.canary.metadata.resource_version,
        }});
        Api::<Canary>::namespaced(self.context.client.clone(), canary.namespace)
            .patch(canary.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
            .map_err(KubeError::api("updating the finalizers of", format!("Canary {}", canary.key())))
    }

    /// Writes `status` to the Canary's status subresource.
    pub async fn patch_status(
        &self,
        canary: CanaryRef<'_>,
        status: &serin_crds::CanaryStatus,
    ) -> Result<(), KubeError> {
        let api: Api<Canary> = Api::namespaced(self.context.client.clone(), canary.namespace);
        // The whole status, replaced: a merge patch would keep every field the new status leaves
        // out (`paused` once false, `openGates` once empty, a cleared failure reason), because
        // empty fields are not serialized. JSON Patch `add` on `/status` sets it whether or not
        // one exists; only the controller writes a Canary's status.
        let status = serde_json::to_value(status).expect("a status serializes");
        let patch = json_patch::Patch(vec![json_patch::PatchOperation::Add(json_patch::AddOperation {
            path: json_patch::jsonptr::PointerBuf::from_tokens(["status"]),
            value: status,
        })]);
        api.patch_status(canary.name, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
            .map(drop)
            .map_err(KubeError::api("writing the status of", format!("Canary {}", canary.key())))
    }

    /// Opens or closes a gate for a request not acted on yet; the change lives in the status, so
    /// it survives restarts and is the cluster's, not the controller's.
    async fn change_gate(&self, request: &AnnotatedRequest, status: &mut Option<serin_crds::CanaryStatus>) {
        let status = status.get_or_insert_with(Default::default);
        if status.last_handled_request.as_deref() == Some(request.id.as_str()) {
            return;
        }
        let gate = request.gate.clone().unwrap_or_default();
        let (reason, message) = if request.action == serin_crds::operator_request::RequestAction::OpenGate {
            status.open_gates.insert(gate.clone());
            ("GateOpened", format!("Gate {gate} opened by operator"))
        } else {
            status.open_gates.remove(&gate);
            ("GateClosed", format!("Gate {gate} closed by operator"))
        };
        status.last_handled_request = Some(request.id.clone());
        self.record(EventType::Normal, reason, &message).await;
    }

    /// A pending workload's readiness with what its pods' containers say is wrong, if anything.
    async fn explained(&self, readiness: Readiness, workload: Option<&Workload>, canary: CanaryRef<'_>) -> Readiness {
        match (readiness, workload) {
            (Readiness::Pending { mut reason, since }, Some(workload)) => {
                if let Some(trouble) = pods::trouble(&self.context.client, canary.namespace, &workload.selector()).await
                {
                    reason = format!("{reason}; {trouble}");
                }
                Readiness::Pending { reason, since }
            }
            (readiness, _) => readiness,
        }
    }

    /// Records a Warning event on the Canary.
    pub async fn warn(&self, reason: &str, message: &str) {
        self.record(EventType::Warning, reason, message).await;
    }

    async fn record(&self, type_: EventType, reason: &str, message: &str) {
        let event = KubeEvent {
            type_,
            reason: reason.to_string(),
            note: Some(message.to_string()),
            action: event_action(message),
            secondary: None,
        };
        if let Err(problem) = self.context.recorder.publish(&event, &self.canary.object_ref(&())).await {
            tracing::warn!(%problem, "event not recorded");
        }
    }

    /// The apex Service while the Canary steers it: to the namespace's waypoint, which enforces
    /// the route's weights, or, without one, to the primary's pods (with a Warning saying so).
    async fn apex_service(&self, canary: CanaryRef<'_>, primary: &Workload) -> Result<Service, KubeError> {
        let (name, namespace, port) = (canary.spec.apex_name(), canary.namespace, canary.spec.service.port);
        match waypoint::find(&self.context.client, namespace).await? {
            Some(waypoint) => {
                let mut apex = service(name, namespace, waypoint.selector, port, canary.spec);
                for service_port in apex.spec.iter_mut().flat_map(|s| s.ports.iter_mut().flatten()) {
                    service_port.target_port = Some(waypoint.target_port.clone());
                }
                Ok(apex)
            }
            None => {
                let message = format!(
                    "no waypoint in namespace {namespace} (a Service labelled {WAYPOINT_LABEL}=true): Service \
                     {name} selects the primary's pods, so the canary gets no share of its traffic; deploy \
                     meshproxy as the namespace's waypoint to split it"
                );
                self.warn("NoWaypoint", &message).await;
                Ok(service(name, namespace, primary.selector(), port, canary.spec))
            }
        }
    }

    fn owner(&self) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        self.canary.controller_owner_ref(&()).expect("a stored Canary has a name and uid")
    }
}

impl Platform for KubePlatform<'_> {
    type Held = Held;
    type Error = KubeError;

    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    async fn observe(&mut self, canary: CanaryRef<'_>) -> Result<Observed<Held>, KubeError> {
        let target_ref = &canary.spec.target_ref;
        let Some(kind) = WorkloadKind::parse(target_ref.kind.as_deref()) else {
            let kind = target_ref.kind.clone().unwrap_or_default();
            return Err(KubeError::UnsupportedTarget { canary: canary.key(), kind });
        };
        let target = self.workload(kind, canary.namespace, &target_ref.name).await?.ok_or_else(|| {
            KubeError::TargetNotFound {
                canary: canary.key(),
                kind: kind.as_str().into(),
                namespace: canary.namespace.to_string(),
                name: target_ref.name.clone(),
            }
        })?;
        let primary_name = canary.spec.primary_workload_name();
        let primary = self.workload(kind, canary.namespace, &primary_name).await?;
        let route = Api::<HttpRoute>::namespaced(self.context.client.clone(), canary.namespace)
            .get_opt(canary.spec.apex_name())
            .await
            .map_err(KubeError::api(
                "reading",
                format!("HTTPRoute {}/{}", canary.namespace, canary.spec.apex_name()),
            ))?;
        let route_exists = route.is_some();
        let routes = route.and_then(|route| live_weights(&route, canary.spec));
        let now = Timestamp::now();
        let configs = self.read_configs(canary.namespace, &target).await?;
        let checksums = configs.iter().map(|c| (c.reference().key(), c.checksum())).collect();
        let revision = Revision::of(&template_value(&target), checksums);
        let observations = Observations {
            revision: revision.clone(),
            primary_revision: primary
                .as_ref()
                .and_then(|p| p.meta().annotations.as_ref()?.get(REVISION_ANNOTATION).cloned()),
            primary: self.explained(readiness(primary.as_ref(), &primary_name, now), primary.as_ref(), canary).await,
            canary: self.explained(readiness(Some(&target), &target_ref.name, now), Some(&target), canary).await,
            routes,
            deleting: self.canary.metadata.deletion_timestamp.is_some(),
            operator: None,
        };
        let mut status = self.canary.status.clone();
        let mut observations = observations;
        match annotated_request(&self.canary) {
            Some(Ok(request)) if request.action.is_gate() => self.change_gate(&request, &mut status).await,
            Some(Ok(request)) => observations.operator = OperatorRequest::from_request(&request),
            // Said where the user looks; repeats of the same refusal are aggregated into one event.
            Some(Err(problem)) => self.warn("OperatorRequestRefused", &problem.to_string()).await,
            None => {}
        }
        Ok(Observed { status, observations, held: Held { target, primary, revision, configs, route_exists } })
    }

    async fn run_hooks(&mut self, canary: CanaryRef<'_>, kind: HookType, observed: &Observed<Held>) -> HookOutcome {
        let phase = observed.status.as_ref().map(|s| s.phase).unwrap_or_default();
        let target =
            HookTarget { name: canary.name, namespace: canary.namespace, phase, checksum: &observed.held.revision.id };
        self.context.webhooks.run(kind, &canary.spec.analysis.webhooks, &target).await
    }

    async fn measure(&mut self, canary: CanaryRef<'_>, _observed: &Observed<Held>) -> Vec<MetricObservation> {
        let subject = Subject { name: canary.name, namespace: canary.namespace, spec: canary.spec };
        let catalog = metric_catalog(&self.context.client, canary).await;
        self.context.metrics.measure(subject, &catalog).await
    }

    async fn write_status(
        &mut self,
        canary: CanaryRef<'_>,
        _held: &mut Held,
        decision: &RolloutDecision,
    ) -> Result<(), KubeError> {
        self.patch_status(canary, &decision.status).await
    }

    async fn carry_out(
        &mut self,
        canary: CanaryRef<'_>,
        held: &mut Held,
        decision: &RolloutDecision,
        action: &Action,
    ) -> Result<(), KubeError> {
        let namespace = canary.namespace;
        let target_name = canary.spec.target_ref.name.as_str();
        match action {
            Action::InitializePrimary => {
                if held.primary.is_none() {
                    let revision = held.revision.id.clone();
                    let primary = self.apply_primary(canary, held, &revision, held.target.replicas().max(1)).await?;
                    held.primary = Some(primary);
                } else {
                    self.apply_primary_autoscaler(canary).await?;
                }
                let primary = held.primary.as_ref().expect("just ensured");
                let services: Api<Service> = Api::namespaced(self.context.client.clone(), namespace);
                let port = canary.spec.service.port;
                // The backends and the route first: once the apex Service sends clients to the
                // waypoint, the waypoint must already know where to send them.
                for (name, selector) in [
                    (canary.spec.primary_service_name(), primary.selector()),
                    (canary.spec.canary_service_name(), held.target.selector()),
                ] {
                    let mut object = service(&name, namespace, selector, port, canary.spec);
                    object.metadata.owner_references = Some(vec![self.owner()]);
                    self.apply(&services, &object).await?;
                }
                if !held.route_exists {
                    self.apply_route(canary, Routes::with_canary(0, false), decision).await?;
                    held.route_exists = true;
                }
                // Clients move only to a primary that serves: until then the apex Service (the
                // user's own, if any) keeps selecting what it selected.
                if readiness(Some(primary), &canary.spec.primary_workload_name(), Timestamp::now())
                    != crate::engine::Readiness::Ready
                {
                    return Ok(());
                }
                let apex = services
                    .get_opt(canary.spec.apex_name())
                    .await
                    .map_err(KubeError::api("reading", format!("Service {namespace}/{}", canary.spec.apex_name())))?;
                let mut object = self.apex_service(canary, primary).await?;
                match apex.as_ref().and_then(|a| take_over(a, &self.canary)) {
                    // The user's own Service: steered, never owned, so it outlives the Canary.
                    Some(annotations) => object.metadata.annotations = Some(annotations),
                    None => object.metadata.owner_references = Some(vec![self.owner()]),
                }
                self.apply(&services, &object).await?;
            }
            Action::SetRoutes(routes) => self.apply_route(canary, *routes, decision).await?,
            Action::ScaleCanaryUp => {
                let wanted = held.primary_replicas();
                self.scale_target(held, namespace, target_name, wanted).await?;
            }
            Action::RestoreTarget => {
                let wanted = held.primary_replicas();
                self.scale_target(held, namespace, target_name, wanted).await?;
                // Clients move to the target only once it serves: the apex Service selects its pods
                // and is no longer the Canary's, so it stays when the generated objects go.
                if readiness(Some(&held.target), target_name, Timestamp::now()) == crate::engine::Readiness::Ready {
                    let services: Api<Service> = Api::namespaced(self.context.client.clone(), namespace);
                    let current = services.get_opt(canary.spec.apex_name()).await.map_err(KubeError::api(
                        "reading",
                        format!("Service {namespace}/{}", canary.spec.apex_name()),
                    ))?;
                    // A Service that was the user's gets its own selector back.
                    let selector = current
                        .as_ref()
                        .and_then(|s| s.annotations().get(ORIGINAL_SELECTOR_ANNOTATION).cloned())
                        .and_then(|text| serde_json::from_str(&text).ok())
                        .unwrap_or_else(|| held.target.selector());
                    let apex =
                        service(canary.spec.apex_name(), namespace, selector, canary.spec.service.port, canary.spec);
                    self.apply(&services, &apex).await?;
                    self.apply_route(canary, Routes::with_canary(100, false), decision).await?;
                }
            }
            Action::ScaleCanaryToZero => self.scale_target(held, namespace, target_name, 0).await?,
            Action::Promote { revision } => {
                self.apply_primary(canary, held, revision, held.primary_replicas()).await?;
            }
            Action::RemoveFinalizer => self.remove_finalizer(canary).await?,
            Action::RunHooks { kind, phase } => {
                let target = HookTarget { name: canary.name, namespace, phase: *phase, checksum: &held.revision.id };
                self.context.webhooks.run_and_log(*kind, &canary.spec.analysis.webhooks, &target).await;
            }
            Action::Event { kind, reason, message } => {
                let type_ = match kind {
                    EventKind::Normal => EventType::Normal,
                    EventKind::Warning => EventType::Warning,
                };
                self.record(type_, reason, message).await;
                let phase = decision.status.phase;
                let target = HookTarget { name: canary.name, namespace, phase, checksum: &held.revision.id };
                let hooks = &canary.spec.analysis.webhooks;
                self.context.webhooks.post_event_and_log(hooks, &target, kind.as_str(), message).await;
            }
            Action::Alert { severity, message } => {
                let alert = AlertMessage::about(canary.name, namespace, &decision.status, *severity, message);
                let (providers, catalog) = alert_directory(&self.context.client, canary).await;
                let directory = AlertDirectory { providers: &providers, catalog: &catalog };
                self.context.alerts.send_all_and_log(&canary.spec.analysis.alerts, &alert, directory).await;
            }
        }
        Ok(())
    }

    async fn finish(&mut self, _canary: CanaryRef<'_>, _held: Held) -> Result<(), KubeError> {
        Ok(())
    }
}

/// The event's `action`, which with its type and reason keys the recorder's aggregation: the note
/// with its numbers blanked, so a message repeated with new figures (a halt each interval) is one
/// series, while different messages under Flagger's one reason ("Synced") stay separate events.
fn event_action(note: &str) -> String {
    let mut action = String::new();
    let mut in_number = false;
    for c in note.chars() {
        // A decimal point inside a number is part of it.
        let digit = c.is_ascii_digit() || (c == '.' && in_number);
        let next = match (digit, in_number) {
            (true, true) => continue,
            (true, false) => 'N',
            (false, _) => c,
        };
        in_number = digit;
        if action.len() + next.len_utf8() > 128 {
            break;
        }
        action.push(next);
    }
    action
}

/// Remembers the selector a user's own apex Service had before the Canary steered it.
const ORIGINAL_SELECTOR_ANNOTATION: &str = "serin.dev/original-selector";

/// For an apex Service the Canary did not create: the annotations it carries while steered — its
/// original selector (kept from the first time) and what stops Flux from reverting the selector.
/// `None` for a Service this Canary owns.
fn take_over(apex: &Service, canary: &Canary) -> Option<std::collections::BTreeMap<String, String>> {
    let uid = canary.metadata.uid.as_deref();
    if apex.owner_references().iter().any(|o| Some(o.uid.as_str()) == uid) {
        return None;
    }
    let original = apex.annotations().get(ORIGINAL_SELECTOR_ANNOTATION).cloned().unwrap_or_else(|| {
        let selector = apex.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
        serde_json::to_string(&selector).expect("a selector serializes")
    });
    Some(
        [
            (ORIGINAL_SELECTOR_ANNOTATION, original.as_str()),
            ("kustomize.toolkit.fluxcd.io/reconcile", "disabled"),
            ("helm.toolkit.fluxcd.io/driftDetection", "disabled"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    )
}

/// The weights of the generated route's weighted rule: the last one (which every request can
/// reach), or for an A/B test the one before it (the requests that match; the last rule keeps
/// everyone else on the primary).
fn live_weights(route: &HttpRoute, spec: &serin_crds::CanarySpec) -> Option<Routes> {
    let (primary, canary) = (spec.primary_service_name(), spec.canary_service_name());
    let (primary, canary) = (primary.as_str(), canary.as_str());
    let rules = route.spec.rules.as_ref()?;
    let rule = if spec.analysis.is_ab_test() { rules.iter().rev().nth(1)? } else { rules.last()? };
    let weight = |name: &str| {
        rule.backend_refs.iter().flatten().find(|b| b.name == name).map(|b| b.weight.unwrap_or(1).clamp(0, 100) as u8)
    };
    let (primary, canary) = (weight(primary)?, weight(canary).unwrap_or(0));
    let mirror = rule.filters.iter().flatten().any(|f| f.request_mirror.is_some());
    Some(Routes { primary, canary, mirror })
}

/// The operator request in the Canary's annotation, or what is wrong with it.
fn annotated_request(canary: &Canary) -> Option<Result<AnnotatedRequest, serin_crds::operator_request::RequestError>> {
    let value = canary.annotations().get(serin_crds::operator_request::ANNOTATION)?;
    Some(AnnotatedRequest::parse(value))
}

#[cfg(test)]
mod tests {
    use super::event_action;

    #[test]
    fn event_actions_blank_numbers_so_only_true_repeats_aggregate() {
        let halt = |value: &str| event_action(&format!("Halt advancement: metric error-rate {value} is above 1"));
        assert_eq!(halt("12.5"), halt("3"));
        assert_ne!(halt("3"), event_action("Canary failed! Scaling down podinfo: 2 failed checks"));
        assert!(event_action(&"é".repeat(200)).len() <= 128);
    }
}
