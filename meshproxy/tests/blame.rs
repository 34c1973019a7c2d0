//! Who is to blame for each answer meshproxy gives itself, as the client, the access log and the
//! request metrics see it: the canary analysis counts only what the upstream did, so a hostile
//! client or the proxy's own policy must never show as a version's errors.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use support::{ScriptedBackend, app_config, client, endpoint_gauge, get, proxy, scrape};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn policy(spec: &str) -> String {
    format!(
        "  - apiVersion: serin.dev/v1alpha1\n    kind: TrafficPolicy\n    metadata: {{name: app-a-policy, namespace: test}}\n    spec:\n      targetRef: {{kind: Service, name: app-a}}\n{spec}"
    )
}

/// Sends `bytes` on a fresh connection; what came back before the proxy closed it or 5 s passed.
async fn raw(proxy: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Requests counted on `/metrics` for backend `app-a` with this code and blame.
async fn counted(admin: SocketAddr, code: &str, blame: &str) -> f64 {
    scrape(admin)
        .await
        .samples
        .iter()
        .filter(|s| s.metric == "meshproxy_requests_total")
        .filter(|s| s.labels.get("backend") == Some("app-a") && s.labels.get("code") == Some(code))
        .filter(|s| s.labels.get("blame").unwrap_or_default() == blame)
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn a_body_with_broken_chunked_framing_is_the_clients_fault_not_the_endpoints() {
    let app = ScriptedBackend::ok("a").await;
    // One failure would eject the endpoint, were the broken body blamed on it.
    let outlier = policy("      outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 100}\n");
    let proxy = proxy(&app_config(&[app.addr], &[app.addr], (1, 0), "", &outlier)).await;
    for _ in 0..3 {
        let answer = raw(
            proxy.addr,
            b"POST /orders HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nnot-a-size\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("x-meshproxy-error: client: the request body broke off"),
            "{answer}"
        );
    }
    assert_eq!(counted(proxy.admin, "400", "client").await, 3.0);
    assert_eq!(counted(proxy.admin, "502", "upstream").await, 0.0, "nothing is blamed on the endpoint");
    let metrics = scrape(proxy.admin).await;
    assert_eq!(endpoint_gauge(&metrics, "meshproxy_endpoint_ejected", app.addr), Some(0.0), "the endpoint stays in");
    let (status, _, _) = get(&client(), proxy.addr, "app.test", "/", &[]).await;
    assert_eq!(status, StatusCode::OK, "meshproxy still serves");
    assert_eq!(counted(proxy.admin, "200", "").await, 1.0, "an answer of the upstream carries no blame");
}

#[tokio::test]
async fn the_policys_answers_are_the_policys_and_an_injected_fault_counts_as_the_upstreams() {
    let app = ScriptedBackend::ok("a").await;
    let limited = policy("      rateLimit: {requestsPerSecond: 0.001, burst: 1}\n");
    let proxy_limited = proxy(&app_config(&[app.addr], &[app.addr], (1, 0), "", &limited)).await;
    let client = client();
    assert_eq!(get(&client, proxy_limited.addr, "app.test", "/", &[]).await.0, StatusCode::OK);
    let (status, headers, _) = get(&client, proxy_limited.addr, "app.test", "/", &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers["x-meshproxy-error"].to_str().unwrap().starts_with("policy: rate limit of"));
    assert_eq!(counted(proxy_limited.admin, "429", "policy").await, 1.0);

    let faulty = policy("      fault: {abort: {percent: 100, httpStatus: 500}}\n");
    let proxy_faulty = proxy(&app_config(&[app.addr], &[app.addr], (1, 0), "", &faulty)).await;
    assert_eq!(get(&client, proxy_faulty.addr, "app.test", "/", &[]).await.0, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(counted(proxy_faulty.admin, "500", "fault").await, 1.0);

    // An endpoint that refuses connections: the upstream's.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let proxy_closed = proxy(&app_config(&[closed], &[closed], (1, 0), "", "  []")).await;
    assert_eq!(get(&client, proxy_closed.addr, "app.test", "/", &[]).await.0, StatusCode::BAD_GATEWAY);
    assert_eq!(counted(proxy_closed.admin, "502", "upstream").await, 1.0);
}

#[tokio::test]
async fn a_request_the_breaker_sheds_is_not_mirrored() {
    let slow = ScriptedBackend::start("slow", Arc::new(|_, _| (StatusCode::OK, Duration::from_millis(800)))).await;
    let shadow = ScriptedBackend::ok("shadow").await;
    let breaker = policy("      connectionPool: {maxConnections: 1, maxPendingRequests: 0}\n");
    let mirror = "          filters:\n            - type: RequestMirror\n              requestMirror: {backendRef: {name: app-b, port: 80}}\n";
    let proxy = proxy(&app_config(&[slow.addr], &[shadow.addr], (1, 0), mirror, &breaker)).await;
    let client = client();
    let burst: Vec<_> = (0..6)
        .map(|_| {
            let (client, addr) = (client.clone(), proxy.addr);
            tokio::spawn(async move { get(&client, addr, "app.test", "/", &[]).await.0 })
        })
        .collect();
    let mut statuses = Vec::new();
    for request in burst {
        statuses.push(request.await.unwrap());
    }
    let admitted = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let shed = statuses.iter().filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE).count();
    assert_eq!(admitted + shed, 6, "{statuses:?}");
    assert!(shed >= 1, "the burst was shed in part: {statuses:?}");
    // Mirrors are sent in the background; give them time to land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(shadow.count(), admitted, "only admitted requests are mirrored");
    assert_eq!(counted(proxy.admin, "503", "policy").await, shed as f64);
}
