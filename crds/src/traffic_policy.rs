//! The `TrafficPolicy` kind: what an HTTPRoute cannot say about how meshproxy treats a Service's
//! traffic. Attached to a Service by `targetRef` (Gateway API policy attachment).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

const DURATION: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

/// Retries, timeouts, circuit breaking, outlier detection, faults, rate limits and load balancing for
/// the requests meshproxy sends to one Service.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "serin.dev",
    version = "v1alpha1",
    kind = "TrafficPolicy",
    namespaced,
    category = "serin",
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.targetRef.name"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficPolicySpec {
    /// The Service this policy applies to.
    pub target_ref: PolicyTargetRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<RetryPolicy>,
    /// Whole-request timeout, retries included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION))]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultInjection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,
}

/// The object a policy is attached to (Gateway API `LocalPolicyTargetReference`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyTargetRef {
    /// API group; `""` (core) for a Service.
    #[serde(default)]
    pub group: String,
    /// Kind; `Service`.
    #[serde(default = "service_kind")]
    #[schemars(extend("enum" = ["Service"]))]
    pub kind: String,
    pub name: String,
}

fn service_kind() -> String {
    "Service".to_string()
}

/// Retry failed requests.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicy {
    /// Total attempts including the first (Istio counts retries; 1 here means no retry).
    #[schemars(range(min = 1, max = 10))]
    pub attempts: i32,
    /// Timeout of each attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION))]
    pub per_try_timeout: Option<String>,
    /// Which failures are retried. Default `[connect-failure, reset]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry_on: Vec<RetryOn>,
    /// Status codes retried when `retry-on` holds `retriable-status-codes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(range(min = 100, max = 599)))]
    pub retriable_status_codes: Vec<i32>,
}

/// A class of failure that may be retried.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOn {
    /// Any 5xx response.
    #[serde(rename = "5xx")]
    ServerError,
    /// 502, 503 and 504.
    GatewayError,
    /// The connection was reset or closed before a response.
    Reset,
    /// The connection could not be made.
    ConnectFailure,
    /// The codes in `retriableStatusCodes`.
    RetriableStatusCodes,
}

/// Circuit breaking by connection and queue limits.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionPool {
    /// Most open connections to the Service's endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_connections: Option<i32>,
    /// Most requests waiting for a connection; more are answered 503 at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_pending_requests: Option<i32>,
    /// Requests per connection before it is closed; unset means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_requests_per_connection: Option<i32>,
}

/// Passive health checking: eject an endpoint that keeps failing.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlierDetection {
    /// Consecutive 5xx responses that eject an endpoint. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "consecutive5xxErrors")]
    #[schemars(range(min = 1))]
    pub consecutive_5xx_errors: Option<i32>,
    /// How often ejections are re-evaluated. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION))]
    pub interval: Option<String>,
    /// Shortest ejection; doubles with each repeat ejection. Default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION))]
    pub base_ejection_time: Option<String>,
    /// Most endpoints ejected at once, in percent. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_ejection_percent: Option<i32>,
}

/// Deliberate faults, to test how clients cope.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultInjection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelay>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbort>,
}

/// Delay a share of requests.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultDelay {
    #[schemars(range(min = 0.0, max = 100.0))]
    pub percent: f64,
    #[schemars(pattern(DURATION))]
    pub fixed_delay: String,
}

/// Answer a share of requests with an error status without forwarding them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultAbort {
    #[schemars(range(min = 0.0, max = 100.0))]
    pub percent: f64,
    #[schemars(range(min = 200, max = 599))]
    pub http_status: i32,
}

/// Token-bucket rate limit over all of the Service's requests through one proxy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    #[schemars(range(min = 0.001))]
    pub requests_per_second: f64,
    /// Bucket size; default one second's worth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub burst: Option<i32>,
}

/// How an endpoint is picked among a backend's endpoints.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancer {
    #[serde(default)]
    pub algorithm: LoadBalancerAlgorithm,
}

/// Load-balancing algorithms.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LoadBalancerAlgorithm {
    /// Power of two choices over peak-EWMA latency (linkerd2-proxy's default).
    #[default]
    P2cEwma,
    RoundRobin,
    LeastRequest,
}
