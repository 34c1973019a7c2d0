//! The names and labels of meshproxy's metrics, as meshproxy registers them and as the analysis
//! (PromQL builtins and the embedded scraper) reads them.

/// Requests proxied, by destination and response code (a counter; exposed as [`REQUESTS_TOTAL`]).
pub const REQUESTS: &str = "meshproxy_requests";
/// The counter's sample name in the exposition format.
pub const REQUESTS_TOTAL: &str = "meshproxy_requests_total";
/// Time to the response headers, a histogram with the same labels as [`REQUESTS`].
pub const REQUEST_DURATION: &str = "meshproxy_request_duration_seconds";
/// The histogram's bucket series.
pub const REQUEST_DURATION_BUCKET: &str = "meshproxy_request_duration_seconds_bucket";
/// Attempts sent again under a TrafficPolicy's retry rule (a counter).
pub const RETRIES: &str = "meshproxy_retries";
pub const RETRIES_TOTAL: &str = "meshproxy_retries_total";
/// Generation of the config in use (a gauge).
pub const CONFIG_GENERATION: &str = "meshproxy_config_generation";
/// Open connections to an endpoint (a gauge).
pub const UPSTREAM_CONNECTIONS: &str = "meshproxy_upstream_connections";
/// 1 while outlier detection keeps an endpoint out (a gauge).
pub const ENDPOINT_EJECTED: &str = "meshproxy_endpoint_ejected";

/// Label names.
pub mod label {
    /// The service the client addressed.
    pub const SERVICE: &str = "service";
    pub const NAMESPACE: &str = "namespace";
    /// The HTTPRoute that routed the request.
    pub const ROUTE: &str = "route";
    /// The backendRef (service) the request was sent to: `podinfo-primary`, `podinfo-canary`.
    pub const BACKEND: &str = "backend";
    /// The endpoint's `version` label.
    pub const VERSION: &str = "version";
    /// The response status code.
    pub const CODE: &str = "code";
    /// `2xx`, `3xx`, `4xx` or `5xx`.
    pub const CLASS: &str = "class";
    /// `ip:port` of an endpoint.
    pub const ENDPOINT: &str = "endpoint";
    /// Who is to blame for a response meshproxy gave itself: `client` (a malformed request, a
    /// body that broke off), `policy` (no route, a rate limit, an open circuit breaker), `fault`
    /// (an injected fault), `upstream` (no endpoints, a refused connection, a reset, a timeout).
    /// Empty when the upstream answered. The analysis counts only what the upstream did:
    /// everything but `client` and `policy` (see [`NOT_THE_UPSTREAMS`]).
    pub const BLAME: &str = "blame";
    /// The [`BLAME`] values the analysis leaves out, as a PromQL regular expression.
    pub const NOT_THE_UPSTREAMS: &str = "client|policy";
    /// The value of [`CLASS`] for server errors.
    pub const SERVER_ERROR_CLASS: &str = "5xx";
}
