//! Helpers for tests against the e2e rig. They run inside the rig's network namespace
//! (`e2e/rig/rig exec cargo test -p serin-e2e --features rig`), with KUBECONFIG set by the rig.

use std::future::Future;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub mod cluster;

/// A client for the rig, with a clear message when the test runs outside it.
pub async fn rig_client() -> Client {
    let client = Client::try_default().await.unwrap_or_else(|e| {
        panic!("no kubeconfig for the rig ({e}); run the tests with: e2e/rig/rig exec cargo test -p serin-e2e --features rig")
    });
    client.apiserver_version().await.unwrap_or_else(|e| {
        panic!("the rig's apiserver does not answer ({e}); is it up? (e2e/rig/rig up; e2e/rig/rig status)")
    });
    client
}

/// A program `rig up` built beside the control plane (helm, krew, gitops-verdicts); `rig exec`
/// says where, in SERIN_RIG_BIN.
pub fn rig_tool(name: &str) -> std::path::PathBuf {
    let bin = std::env::var("SERIN_RIG_BIN").expect("SERIN_RIG_BIN, set by `rig exec`");
    std::path::Path::new(&bin).join(name)
}

/// A namespace of the test's own, deleted when the test ends well (`rig down` removes the rest).
pub struct TestNamespace {
    pub client: Client,
    pub name: String,
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> TestNamespace {
        let suffix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("{prefix}-{suffix:x}");
        let namespace: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
        Api::<Namespace>::all(client.clone())
            .patch(&name, &PatchParams::apply("serin-e2e"), &Patch::Apply(&namespace))
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        TestNamespace { client: client.clone(), name }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// The notes of the namespace's events, oldest first, each as many times as its series counts.
    /// A Canary's events are published as actions, just after the status they go with: read them
    /// inside `eventually` when the status was the trigger.
    pub async fn event_notes(&self) -> Result<Vec<String>, String> {
        let api = self.api::<k8s_openapi::api::events::v1::Event>();
        let mut events = api.list(&Default::default()).await.map_err(|e| e.to_string())?.items;
        events.sort_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0));
        let repeated = |e: &k8s_openapi::api::events::v1::Event| e.series.as_ref().map_or(1, |s| s.count.max(1));
        Ok(events
            .iter()
            .flat_map(|e| std::iter::repeat_n(e.note.clone().unwrap_or_default(), repeated(e) as usize))
            .collect())
    }

    pub async fn delete(self) {
        let _ = Api::<Namespace>::all(self.client).delete(&self.name, &DeleteParams::default()).await;
    }
}

/// Server-side apply of a typed object, as `kubectl apply --server-side` does.
pub async fn apply<K>(api: &Api<K>, object: &K) -> K
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = object.meta().name.clone().expect("objects to apply have names");
    api.patch(&name, &PatchParams::apply("serin-e2e").force(), &Patch::Apply(object))
        .await
        .unwrap_or_else(|e| panic!("applying {name}: {e}"))
}

/// Polls `check` every 250 ms until it returns Some, or panics after `timeout` naming `what` and the
/// last thing `describe` saw.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => panic!("{what}: not within {timeout:?}; last seen: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// A plain HTTP/1.1 GET to `ip:port`; returns the status code and the body.
pub async fn http_get(ip: Ipv4Addr, port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect((ip, port))).await??;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await??;
    let text = String::from_utf8_lossy(&response).into_owned();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let chunked = head.lines().any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    Ok((code, if chunked { dechunk(body) } else { body.to_string() }))
}

/// The payload of a chunked body (sizes in hex, each chunk followed by CRLF, ending with size 0).
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}
