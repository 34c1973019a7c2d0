//! The Prometheus provider: instant queries through the HTTP API (`/api/v1/query`), with bearer or
//! basic auth and extra headers, a deadline, and TLS. Every shape of answer maps to a value, no data
//! or an error that says what came back and what to do about it.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, StatusCode, header};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::Value;

use crate::engine::MetricValue;
use crate::outbound::{Outbound, OutboundError};

/// How long a query may take unless the provider says otherwise.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Credentials from the provider's secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Bearer(String),
    Basic { username: String, password: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret, not even in a debug dump.
        match self {
            Credentials::Bearer(_) => f.write_str("Bearer(..)"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ..)"),
        }
    }
}

impl Credentials {
    /// From a Flagger-style secret: `token`, or `username` and `password`.
    pub fn try_from_secret(
        name: &str,
        data: &std::collections::BTreeMap<String, String>,
    ) -> Result<Credentials, PrometheusError> {
        if let Some(token) = data.get("token") {
            return Ok(Credentials::Bearer(token.trim().to_string()));
        }
        match (data.get("username"), data.get("password")) {
            (Some(username), Some(password)) => {
                Ok(Credentials::Basic { username: username.trim().to_string(), password: password.trim().to_string() })
            }
            _ => Err(PrometheusError::Secret { secret: name.to_string() }),
        }
    }

    fn header(&self) -> String {
        use base64::Engine as _;
        match self {
            Credentials::Bearer(token) => format!("Bearer {token}"),
            Credentials::Basic { username, password } => {
                let pair = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
                format!("Basic {pair}")
            }
        }
    }
}

/// One Prometheus server, as a MetricTemplate's provider (or the controller's default) describes it.
#[derive(Clone)]
pub struct Prometheus {
    address: String,
    credentials: Option<Credentials>,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    skip_tls_verify: bool,
    client: Outbound,
}

impl Prometheus {
    /// `address` is the server's base URL, e.g. `http://127.0.0.1:9090`.
    pub fn new(address: &str, client: Outbound) -> Result<Prometheus, PrometheusError> {
        let address = address.trim_end_matches('/').to_string();
        let uri: http::Uri = match address.parse() {
            Ok(uri) => uri,
            Err(e) => return Err(PrometheusError::NotAUrl { address, reason: e.to_string() }),
        };
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
            return Err(PrometheusError::NotHttp { address });
        }
        Ok(Prometheus {
            address,
            credentials: None,
            headers: Vec::new(),
            timeout: DEFAULT_QUERY_TIMEOUT,
            skip_tls_verify: false,
            client,
        })
    }

    pub fn with_credentials(mut self, credentials: Option<Credentials>) -> Self {
        self.credentials = credentials;
        self
    }

    /// Extra headers, as a MetricTemplate's `provider.headers` (a name may repeat).
    pub fn with_headers(
        mut self,
        headers: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> Result<Self, PrometheusError> {
        for (name, values) in headers {
            let header_name =
                HeaderName::try_from(name.as_str()).map_err(|_| PrometheusError::HeaderName(name.clone()))?;
            for value in values {
                let header_value = HeaderValue::try_from(value.as_str())
                    .map_err(|_| PrometheusError::HeaderValue { name: name.clone(), value: value.clone() })?;
                self.headers.push((header_name.clone(), header_value));
            }
        }
        Ok(self)
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn skip_tls_verify(mut self, skip: bool) -> Self {
        self.skip_tls_verify = skip;
        self
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Runs an instant query and maps the answer; `what` names the query in messages.
    pub async fn query(&self, promql: &str) -> MetricValue {
        match self.instant(promql).await {
            Ok(answer) => answer.into_value(),
            Err(error) => MetricValue::Error(error.to_string()),
        }
    }

    /// Flagger's availability check: `vector(1)` must answer 1.
    pub async fn is_online(&self) -> Result<(), PrometheusError> {
        match self.instant("vector(1)").await? {
            Answer::Samples(samples) if samples.len() == 1 && samples[0].1 == 1.0 => Ok(()),
            other => Err(PrometheusError::NotOnline { address: self.address.clone(), answer: other.describe() }),
        }
    }

    async fn instant(&self, promql: &str) -> Result<Answer, PrometheusError> {
        let url = format!("{}/api/v1/query", self.address);
        let mut request = Request::post(&url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        if let Some(credentials) = &self.credentials {
            request = request.header(header::AUTHORIZATION, credentials.header());
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let body = format!("query={}", form_encode(promql));
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| PrometheusError::BadRequest { url: url.clone(), reason: e.to_string() })?;
        let reply = self.client.send(request, self.timeout, self.skip_tls_verify).await.map_err(|e| match e {
            OutboundError::Timeout { .. } => PrometheusError::Timeout(e),
            other => PrometheusError::Unreachable(other),
        })?;
        let envelope: Envelope = match serde_json::from_slice(&reply.body) {
            Ok(envelope) => envelope,
            Err(_) => {
                let hint = match reply.status.as_u16() {
                    401 | 403 => " (check the provider's secret: token, or username and password)",
                    404 => " (is the address the Prometheus server's base URL?)",
                    _ => "",
                };
                return Err(PrometheusError::NotPrometheus {
                    url,
                    status: reply.status,
                    hint,
                    body: reply.body_excerpt(200),
                });
            }
        };
        if envelope.status != "success" {
            return Err(PrometheusError::Refused {
                status: reply.status,
                error_type: envelope.error_type.unwrap_or_default(),
                error: envelope.error.unwrap_or_default(),
            });
        }
        let data = envelope.data.ok_or(PrometheusError::NoData { url })?;
        Answer::from_data(data)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    status: String,
    data: Option<Data>,
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: Value,
}

/// What an instant query returned.
#[derive(Debug, PartialEq)]
enum Answer {
    /// An instant vector (labels, value) or a scalar (no labels).
    Samples(Vec<(String, f64)>),
    Matrix(usize),
    Text(String),
}

impl Answer {
    fn from_data(data: Data) -> Result<Answer, PrometheusError> {
        let bad = |what: &'static str| PrometheusError::Malformed { what, result: data.result.to_string() };
        match data.result_type.as_str() {
            "vector" => {
                let series = data.result.as_array().ok_or_else(|| bad("vector"))?;
                let samples = series
                    .iter()
                    .map(|s| Ok((labels_of(&s["metric"]), sample_value(&s["value"]).ok_or_else(|| bad("vector"))?)))
                    .collect::<Result<_, PrometheusError>>()?;
                Ok(Answer::Samples(samples))
            }
            "scalar" => {
                Ok(Answer::Samples(vec![(String::new(), sample_value(&data.result).ok_or_else(|| bad("scalar"))?)]))
            }
            "matrix" => Ok(Answer::Matrix(data.result.as_array().map_or(0, Vec::len))),
            "string" => Ok(Answer::Text(data.result[1].as_str().unwrap_or_default().to_string())),
            other => Err(PrometheusError::UnknownResultType(other.to_string())),
        }
    }

    fn into_value(self) -> MetricValue {
        match self {
            Answer::Samples(samples) => match samples.as_slice() {
                [] => MetricValue::NoData("the query returned no series (no requests in the window?)".into()),
                [(_, v)] if v.is_nan() => {
                    MetricValue::NoData("the query returned NaN (0/0: no requests in the window?)".into())
                }
                [(_, v)] => MetricValue::Value(*v),
                many => {
                    let shown: Vec<&str> = many.iter().take(3).map(|(labels, _)| labels.as_str()).collect();
                    MetricValue::Error(format!(
                        "the query returned {} series ({}{}) where one value is needed; aggregate it, e.g. with sum(...)",
                        many.len(),
                        shown.join(", "),
                        if many.len() > 3 { ", ..." } else { "" }
                    ))
                }
            },
            Answer::Matrix(n) => MetricValue::Error(format!(
                "the query returned a range vector ({n} series); make it an instant vector, e.g. with rate(...[1m]) and sum(...)"
            )),
            Answer::Text(text) => MetricValue::Error(format!("the query returned the string {text:?}, not a number")),
        }
    }

    fn describe(&self) -> String {
        match self {
            Answer::Samples(s) => format!("{} sample(s): {:?}", s.len(), s.iter().map(|(_, v)| *v).collect::<Vec<_>>()),
            Answer::Matrix(n) => format!("a range vector of {n} series"),
            Answer::Text(t) => format!("the string {t:?}"),
        }
    }
}

/// What went wrong configuring or querying a Prometheus server.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    #[error("address {address:?} is not a URL: {reason}")]
    NotAUrl { address: String, reason: String },
    #[error("address {address:?} must be an http:// or https:// URL with a host")]
    NotHttp { address: String },
    #[error("headers: {0:?} is not a header name")]
    HeaderName(String),
    #[error("headers.{name}: {value:?} is not a valid header value")]
    HeaderValue { name: String, value: String },
    #[error("secret {secret:?} has neither `token` nor `username` and `password`")]
    Secret { secret: String },
    #[error("{url}: {reason}")]
    BadRequest { url: String, reason: String },
    #[error("prometheus did not answer in time: {0}")]
    Timeout(OutboundError),
    #[error("prometheus is unreachable: {0}")]
    Unreachable(OutboundError),
    #[error("{url} answered {status} with no Prometheus JSON{hint}: {body}")]
    NotPrometheus { url: String, status: StatusCode, hint: &'static str, body: String },
    #[error("prometheus refused the query ({status}): {error_type}: {error}")]
    Refused { status: StatusCode, error_type: String, error: String },
    #[error("{url}: a success without data")]
    NoData { url: String },
    #[error("prometheus sent a malformed {what} result: {result}")]
    Malformed { what: &'static str, result: String },
    #[error("prometheus answered with an unknown result type {0:?}")]
    UnknownResultType(String),
    #[error("prometheus {address} answered vector(1) with {answer}")]
    NotOnline { address: String, answer: String },
}

impl PrometheusError {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            PrometheusError::NotAUrl { .. }
            | PrometheusError::NotHttp { .. }
            | PrometheusError::HeaderName(_)
            | PrometheusError::HeaderValue { .. }
            | PrometheusError::Secret { .. } => "bad_config",
            PrometheusError::BadRequest { .. } => "bad_request",
            PrometheusError::Timeout(_) => "timeout",
            PrometheusError::Unreachable(error) => error.label(),
            PrometheusError::NotPrometheus { .. } => "bad_status",
            PrometheusError::Refused { .. } => "query_refused",
            PrometheusError::NoData { .. }
            | PrometheusError::Malformed { .. }
            | PrometheusError::UnknownResultType(_)
            | PrometheusError::NotOnline { .. } => "bad_answer",
        }
    }
}

/// `[timestamp, "value"]`, where the value may be `NaN`, `+Inf` or `-Inf`.
fn sample_value(pair: &Value) -> Option<f64> {
    let text = pair.get(1)?.as_str()?;
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        number => number.parse().ok(),
    }
}

fn labels_of(metric: &Value) -> String {
    let Some(map) = metric.as_object() else { return "{}".into() };
    let pairs: Vec<String> = map.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
    format!("{{{}}}", pairs.join(","))
}

/// `application/x-www-form-urlencoded` for one value.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str) -> MetricValue {
        let data: Data = serde_json::from_str(json).unwrap();
        match Answer::from_data(data) {
            Ok(answer) => answer.into_value(),
            Err(e) => MetricValue::Error(e.to_string()),
        }
    }

    #[test]
    fn each_result_shape_maps_explicitly() {
        assert_eq!(
            answer(r#"{"resultType":"vector","result":[{"metric":{},"value":[1,"99.5"]}]}"#),
            MetricValue::Value(99.5)
        );
        assert_eq!(answer(r#"{"resultType":"scalar","result":[1,"3"]}"#), MetricValue::Value(3.0));
        assert!(
            matches!(answer(r#"{"resultType":"vector","result":[]}"#), MetricValue::NoData(why) if why.contains("no series"))
        );
        assert!(
            matches!(answer(r#"{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}"#), MetricValue::NoData(why) if why.contains("NaN"))
        );
        assert_eq!(answer(r#"{"resultType":"scalar","result":[1,"+Inf"]}"#), MetricValue::Value(f64::INFINITY));
        let many = answer(
            r#"{"resultType":"vector","result":[{"metric":{"code":"200"},"value":[1,"1"]},{"metric":{"code":"500"},"value":[1,"2"]}]}"#,
        );
        assert!(
            matches!(&many, MetricValue::Error(why) if why.contains("2 series ({code=200}, {code=500})") && why.contains("sum(")),
            "{many:?}"
        );
        assert!(
            matches!(answer(r#"{"resultType":"matrix","result":[{"metric":{},"values":[]}]}"#), MetricValue::Error(why) if why.contains("range vector"))
        );
        assert!(
            matches!(answer(r#"{"resultType":"string","result":[1,"hi"]}"#), MetricValue::Error(why) if why.contains("\"hi\""))
        );
        assert!(
            matches!(answer(r#"{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}"#), MetricValue::Error(why) if why.contains("malformed"))
        );
    }

    #[test]
    fn queries_are_form_encoded() {
        assert_eq!(form_encode("sum(rate(x{a=\"b\"}[1m])) / 2"), "sum%28rate%28x%7Ba%3D%22b%22%7D%5B1m%5D%29%29+%2F+2");
    }

    #[test]
    fn credentials_come_from_token_or_username_and_password() {
        let token = [("token".to_string(), "abc\n".to_string())].into();
        assert_eq!(Credentials::try_from_secret("s", &token).unwrap(), Credentials::Bearer("abc".into()));
        let basic = [("username".to_string(), "u".to_string()), ("password".to_string(), "p".to_string())].into();
        assert_eq!(Credentials::try_from_secret("s", &basic).unwrap().header(), "Basic dTpw");
        let error = Credentials::try_from_secret("prom", &Default::default()).unwrap_err();
        assert!(error.to_string().contains("\"prom\""));
        let typed = Credentials::try_from_secret("prom", &Default::default()).unwrap_err();
        assert_eq!(typed.label(), "bad_config");
        assert_eq!(format!("{:?}", Credentials::Bearer("abc".into())), "Bearer(..)");
    }
}
