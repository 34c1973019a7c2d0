//! Serin's Kubernetes API, group `serin.dev`, version `v1alpha1`.
//!
//! `Canary`, `MetricTemplate` and `AlertProvider` keep Flagger's `flagger.app/v1beta1` shapes field for
//! field, so a Flagger manifest loads after changing only `apiVersion`. `TrafficPolicy` carries what an
//! HTTPRoute cannot say (retries, timeouts, circuit breaking, outlier detection, faults, rate limits,
//! load balancing) and attaches to a Service by `targetRef`.
//!
//! This crate holds types and their validation only: no I/O.

pub mod alert_provider;
pub mod canary;
pub mod canary_status;
pub mod crdgen;
pub mod duration;
pub mod manifest;
pub mod metric_template;
pub mod operator_request;
pub mod revision;
pub mod traffic_policy;
pub mod validation;

pub use alert_provider::{AlertProvider, AlertProviderSpec};
pub use canary::{Canary, CanarySpec};
pub use canary_status::{CanaryPhase, CanaryStatus};
pub use metric_template::{MetricTemplate, MetricTemplateSpec};
pub use traffic_policy::{TrafficPolicy, TrafficPolicySpec};

/// The API group of every Serin kind.
pub const GROUP: &str = "serin.dev";
/// The API version of every Serin kind.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "serin.dev/v1alpha1";

/// The label that gives a Canary to one of several controllers sharing a cluster: a controller
/// started with `--instance ID` reconciles only Canaries labelled with that ID, and one started
/// without it only Canaries without the label (as Argo Rollouts' instance id does).
pub const CONTROLLER_INSTANCE_LABEL: &str = "serin.dev/controller-instance";
