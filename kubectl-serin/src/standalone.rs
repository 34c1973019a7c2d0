//! The standalone controller's API, for `--standalone URL`: the Canaries, their events and targets,
//! and operator requests, as the Kubernetes API gives them in a cluster (see the controller's
//! `api` module for the paths).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serin_crds::canary::Canary;

/// How long one call may take: the API answers from memory, or from a folder of manifests.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A standalone controller's API.
pub struct Standalone {
    /// `http://host:port`, without a trailing slash.
    base: String,
    client: Client<HttpConnector, Empty<Bytes>>,
}

/// What went wrong talking to the standalone controller, and whose doing it is.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the standalone controller at {url} does not answer: {problem}")]
    Unreachable { url: String, problem: String },
    #[error("{method} {url}: {status}: {message}")]
    Refused { method: Method, url: String, status: StatusCode, message: String },
    #[error("{url}: not an answer a Serin controller gives: {problem}")]
    BadAnswer { url: String, problem: String },
}

impl ApiError {
    /// Whether asking again may help: the controller down, overloaded, or its manifests mid-edit.
    pub fn transient(&self) -> bool {
        match self {
            ApiError::Unreachable { .. } => true,
            ApiError::Refused { status, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT
                    || status.is_server_error()
            }
            ApiError::BadAnswer { .. } => false,
        }
    }

    fn not_found(&self) -> bool {
        matches!(self, ApiError::Refused { status: StatusCode::NOT_FOUND, .. })
    }
}

/// A Canary's target as the manifests on disk have it now.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub revision: String,
    pub canary: Group,
    pub primary: Option<Group>,
}

/// An endpoint group: what a standalone service runs.
#[derive(Debug, Deserialize)]
pub struct Group {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub endpoints: Vec<GroupEndpoint>,
}

#[derive(Debug, Deserialize)]
pub struct GroupEndpoint {
    pub address: String,
}

impl Group {
    /// What the status view shows for it, as it shows a Deployment's images: its labels (the
    /// version) and its endpoints.
    pub fn describe(&self) -> String {
        let labels: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let endpoints: Vec<&str> = self.endpoints.iter().map(|e| e.address.as_str()).collect();
        match (labels.is_empty(), endpoints.is_empty()) {
            (_, true) => format!("{} (no endpoints)", labels.join(",")).trim_start().to_string(),
            (true, false) => endpoints.join(", "),
            (false, false) => format!("{} at {}", labels.join(","), endpoints.join(", ")),
        }
    }
}

/// One event of a Canary, oldest first.
#[derive(Debug, Deserialize)]
pub struct Event {
    pub reason: String,
    pub message: String,
}

#[derive(Deserialize)]
struct List<T> {
    items: Vec<T>,
}

impl Standalone {
    /// Checks the URL's form only; the first call finds out whether anything answers there.
    pub fn new(url: &str) -> anyhow::Result<Standalone> {
        let base = url.trim_end_matches('/').to_string();
        let uri: Uri = base.parse().map_err(|e| anyhow::anyhow!("--standalone {url:?}: not a URL: {e}"))?;
        anyhow::ensure!(
            uri.scheme_str() == Some("http") && uri.host().is_some(),
            "--standalone {url:?}: the standalone controller's API is plain HTTP, e.g. http://127.0.0.1:9090"
        );
        anyhow::ensure!(
            uri.path().trim_matches('/').is_empty() && uri.query().is_none(),
            "--standalone {url:?}: give the API's address only, e.g. http://127.0.0.1:9090"
        );
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Standalone { base, client })
    }

    /// The Canaries of `namespace`, or of every namespace.
    pub async fn canaries(&self, namespace: Option<&str>) -> Result<Vec<Canary>, ApiError> {
        let path = match namespace {
            Some(namespace) => format!("/canaries/{namespace}"),
            None => "/canaries".to_string(),
        };
        Ok(self.call::<List<Canary>>(Method::GET, &path).await?.items)
    }

    pub async fn canary(&self, namespace: &str, name: &str) -> Result<Option<Canary>, ApiError> {
        match self.call(Method::GET, &format!("/canaries/{namespace}/{name}")).await {
            Ok(canary) => Ok(Some(canary)),
            Err(e) if e.not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn events(&self, namespace: &str, name: &str) -> Result<Vec<Event>, ApiError> {
        Ok(self.call::<List<Event>>(Method::GET, &format!("/canaries/{namespace}/{name}/events")).await?.items)
    }

    pub async fn target(&self, namespace: &str, name: &str) -> Result<Target, ApiError> {
        self.call(Method::GET, &format!("/canaries/{namespace}/{name}/target")).await
    }

    /// `POST /canaries/{ns}/{name}/{action}[/{gate}]?id=ID`; the controller's answer.
    pub async fn request(
        &self,
        namespace: &str,
        name: &str,
        action: &str,
        gate: Option<&str>,
        id: &str,
    ) -> Result<serde_json::Value, ApiError> {
        let gate = gate.map(|g| format!("/{g}")).unwrap_or_default();
        self.call(Method::POST, &format!("/canaries/{namespace}/{name}/{action}{gate}?id={id}")).await
    }

    async fn call<T: DeserializeOwned>(&self, method: Method, path: &str) -> Result<T, ApiError> {
        let url = format!("{}{path}", self.base);
        let request = Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| ApiError::BadAnswer { url: url.clone(), problem: format!("cannot ask: {e}") })?;
        let unreachable = |problem: String| ApiError::Unreachable { url: self.base.clone(), problem };
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| unreachable(chain(&e)))?;
            let status = response.status();
            let body = response.into_body().collect().await.map_err(|e| unreachable(chain(&e)))?.to_bytes();
            Ok::<_, ApiError>((status, body))
        };
        let (status, body) = tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| unreachable(format!("no answer within {}s", CALL_TIMEOUT.as_secs())))??;
        if !status.is_success() {
            // The controller's errors are {"error": "..."}; anything else is shown as it came.
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
            return Err(ApiError::Refused { method, url, status, message });
        }
        serde_json::from_slice(&body).map_err(|e| ApiError::BadAnswer { url, problem: e.to_string() })
    }
}

/// An error with its causes, which name the actual failure (refused, reset, timed out).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_http_address_is_taken() {
        assert!(Standalone::new("http://127.0.0.1:9090").is_ok());
        assert!(Standalone::new("http://127.0.0.1:9090/").is_ok());
        let https = Standalone::new("https://127.0.0.1:9090").err().unwrap().to_string();
        assert!(https.contains("plain HTTP"), "{https}");
        let path = Standalone::new("http://127.0.0.1:9090/status").err().unwrap().to_string();
        assert!(path.contains("address only"), "{path}");
        assert!(Standalone::new("127.0.0.1 9090").is_err());
    }

    #[test]
    fn a_group_is_shown_by_its_labels_and_endpoints() {
        let group: Group = serde_json::from_value(serde_json::json!({
            "name": "podinfo-canary", "labels": {"version": "2.0.1"},
            "endpoints": [{"address": "127.0.0.1:9001"}, {"address": "127.0.0.1:9002"}]
        }))
        .unwrap();
        assert_eq!(group.describe(), "version=2.0.1 at 127.0.0.1:9001, 127.0.0.1:9002");
    }
}
