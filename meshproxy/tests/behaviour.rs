//! What a client sees from the proxy: errors that say who is to blame, forwarding headers, h2c,
//! and metrics that count exactly what was sent.

mod support;

use std::collections::BTreeMap;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{backend, canary_config, client, get, proxy, version_of};

#[tokio::test]
async fn failures_say_who_is_to_blame() {
    let v1 = backend("v1").await;
    // An address nothing listens on: bind, note the port, close.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let proxy = proxy(&canary_config(v1, closed, 0, 100, "")).await;
    let client = client();

    let (status, headers, _) = get(&client, proxy.addr, "unknown.test", "/", &[]).await;
    assert_eq!(status, 404);
    assert!(headers["x-meshproxy-error"].to_str().unwrap().starts_with("policy: no service for host"));

    let (status, headers, _) = get(&client, proxy.addr, "podinfo.test", "/", &[]).await;
    assert_eq!(status, 502);
    let why = headers["x-meshproxy-error"].to_str().unwrap();
    assert!(why.starts_with(&format!("upstream: connecting to endpoint {closed}")), "{why}");

    // A backend without endpoints: 503, not silently the other backend.
    let config = format!(
        "services: [{{name: app}}, {{name: app-canary}}, {{name: app-primary, endpoints: [{{address: \"{v1}\"}}]}}]\n\
         routes: [{{metadata: {{name: app}}, spec: {{parentRefs: [{{group: \"\", kind: Service, name: app}}], \
         rules: [{{backendRefs: [{{name: app-canary, weight: 1}}, {{name: app-primary, weight: 0}}]}}]}}}}]"
    );
    let proxy = support::proxy(&config).await;
    let (status, headers, _) = get(&client, proxy.addr, "app", "/", &[]).await;
    assert_eq!(status, 503);
    assert!(
        headers["x-meshproxy-error"]
            .to_str()
            .unwrap()
            .starts_with("upstream: backend default/app-canary has no endpoints")
    );
}

#[tokio::test]
async fn the_backend_sees_the_original_host_and_who_forwarded() {
    let v1 = backend("v1").await;
    let proxy = proxy(&canary_config(v1, v1, 1, 0, "")).await;
    let (status, _, body) = get(
        &client(),
        proxy.addr,
        "podinfo.test.svc.cluster.local:9898",
        "/headers",
        &[("x-forwarded-for", "10.1.2.3"), ("connection", "x-hop"), ("x-hop", "secret")],
    )
    .await;
    assert_eq!(status, 200);
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    let header = |name: &str| seen["headers"][name][0].as_str().map(str::to_string);
    assert_eq!(header("host").as_deref(), Some("podinfo.test.svc.cluster.local:9898"));
    assert_eq!(header("x-forwarded-for").as_deref(), Some("10.1.2.3, 127.0.0.1"));
    assert_eq!(header("x-forwarded-proto").as_deref(), Some("http"));
    assert!(header("forwarded").unwrap().starts_with("for=127.0.0.1;"));
    assert_eq!(header("x-hop"), None, "headers named by Connection stop at the proxy");
}

#[tokio::test]
async fn an_h2c_client_is_answered_in_http2_by_a_backend_spoken_to_in_its_own_protocol() {
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let proxy = proxy(&canary_config(v1, v2, 0, 100, "")).await;
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    for _ in 0..10 {
        let request = http::Request::get("http://podinfo.test/headers").body(Full::new(Bytes::new())).unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), http::Version::HTTP_2);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let seen: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(seen["version"], "HTTP/1.1", "the backend names no appProtocol: HTTP/1.1, the default");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_count_exactly_the_requests_sent() {
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let proxy = proxy(&canary_config(v1, v2, 70, 30, "")).await;
    let client = client();
    let mut sent = BTreeMap::<(String, u16), u64>::new();
    for i in 0..500 {
        let path = if i % 10 == 0 { "/status/503" } else { "/version" };
        let (status, headers, body) = get(&client, proxy.addr, "podinfo.test", path, &[]).await;
        let version = headers
            .get("x-testapp-version")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_else(|| version_of(&body));
        *sent.entry((version, status.as_u16())).or_default() += 1;
    }

    let (_, _, text) = get(&client, proxy.admin, "admin", "/metrics", &[]).await;
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("meshproxy's /metrics parses");
    let mut counted = BTreeMap::<(String, u16), u64>::new();
    for sample in &scrape.samples {
        if sample.metric != serin_meshproxy_api::metrics::REQUESTS_TOTAL {
            continue;
        }
        // OpenMetrics names the family `meshproxy_requests` and the sample `..._total`, which
        // prometheus-parse (a Prometheus text parser) reads as untyped.
        let value = match sample.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{other:?} is not a counter"),
        };
        assert_eq!(sample.labels.get("service"), Some("podinfo"));
        assert_eq!(sample.labels.get("route"), Some("test/podinfo"));
        let expected_backend =
            if sample.labels.get("version") == Some("v1") { "podinfo-primary" } else { "podinfo-canary" };
        assert_eq!(sample.labels.get("backend"), Some(expected_backend));
        let code: u16 = sample.labels.get("code").unwrap().parse().unwrap();
        assert_eq!(sample.labels.get("class"), Some(if code == 503 { "5xx" } else { "2xx" }));
        *counted.entry((sample.labels.get("version").unwrap().to_string(), code)).or_default() += value as u64;
    }
    assert_eq!(counted, sent);
    let histogram_count: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == serin_meshproxy_api::metrics::REQUEST_DURATION)
        .filter_map(|s| match &s.value {
            prometheus_parse::Value::Histogram(buckets) => buckets.iter().map(|b| b.count).reduce(f64::max),
            _ => None,
        })
        .sum();
    assert_eq!(histogram_count as u64, 500);
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_to_be_accepted() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let limits = serin_meshproxy::proxy::Limits { max_connections: 2, ..Default::default() };
    let proxy = support::proxy_with(&canary_config(v1, v2, 100, 0, ""), None, limits).await;
    let request = b"GET /version HTTP/1.1\r\nHost: podinfo.test\r\n\r\n";
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = [0u8; 12];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200");
        open.push(stream);
    }
    // The third connection is left in the kernel's queue: its request is not read.
    let mut third = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    third.write_all(request).await.unwrap();
    let mut answer = [0u8; 12];
    let early = tokio::time::timeout(std::time::Duration::from_millis(500), third.read_exact(&mut answer)).await;
    assert!(early.is_err(), "a third connection was served while two were open");
    // Closing one lets it in.
    drop(open.pop());
    tokio::time::timeout(std::time::Duration::from_secs(10), third.read_exact(&mut answer)).await.unwrap().unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
}

#[tokio::test]
async fn a_drain_finishes_requests_in_flight_and_stops_accepting() {
    let slow = support::ScriptedBackend::start(
        "slow",
        std::sync::Arc::new(|_, _| (http::StatusCode::OK, std::time::Duration::from_millis(800))),
    )
    .await;
    let proxy = proxy(&support::app_config(&[slow.addr], &[slow.addr], (1, 0), "", "  []")).await;
    let addr = proxy.addr;
    let in_flight = tokio::spawn(async move { get(&client(), addr, "app.test", "/", &[]).await.0 });
    while slow.count() == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let drained = tokio::spawn(proxy.server.drain(std::time::Duration::from_secs(10)));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no new connections once draining");
    assert_eq!(in_flight.await.unwrap(), http::StatusCode::OK, "the request in flight finished");
    assert!(drained.await.unwrap(), "the drain ended within its grace period");
}
