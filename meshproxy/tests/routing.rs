//! Routing through a real proxy to real backends on loopback.

mod support;

use std::collections::BTreeMap;

use support::{backend, canary_config, client, get, proxy, version_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_90_10_route_lands_within_a_point_over_20000_requests() {
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let proxy = proxy(&canary_config(v1, v2, 90, 10, "")).await;
    let client = client();
    let total = 20_000;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let client = client.clone();
        let addr = proxy.addr;
        tasks.push(tokio::spawn(async move {
            let mut counts = BTreeMap::<String, u32>::new();
            for _ in 0..total / 16 {
                let (status, _, body) = get(&client, addr, "podinfo.test", "/version", &[]).await;
                assert_eq!(status, 200);
                *counts.entry(version_of(&body)).or_default() += 1;
            }
            counts
        }));
    }
    let mut counts = BTreeMap::<String, u32>::new();
    for task in tasks {
        for (version, n) in task.await.unwrap() {
            *counts.entry(version).or_default() += n;
        }
    }
    let canary_share = f64::from(counts["v2"]) / f64::from(total) * 100.0;
    println!("20000 requests: {counts:?} ({canary_share:.2}% canary)");
    assert_eq!(counts.values().sum::<u32>(), total);
    assert!((canary_share - 10.0).abs() <= 1.0, "canary share {canary_share:.2}% is not within 1 point of 10%");
}

#[tokio::test]
async fn header_and_cookie_matches_beat_weights() {
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let rules = r#"
        - matches: [{headers: [{name: x-canary, value: insider}]}]
          backendRefs: [{name: podinfo-canary, port: 9898}]
        - matches: [{headers: [{name: cookie, type: RegularExpression, value: "^(.*?;\\s*)?(canary=always)(;.*)?$"}]}]
          backendRefs: [{name: podinfo-canary, port: 9898}]"#;
    let proxy = proxy(&canary_config(v1, v2, 100, 0, rules)).await;
    let client = client();
    for _ in 0..50 {
        let (_, _, body) = get(&client, proxy.addr, "podinfo.test", "/version", &[("x-canary", "insider")]).await;
        assert_eq!(version_of(&body), "v2", "the header match wins over a 100/0 split");
        let (_, _, body) =
            get(&client, proxy.addr, "podinfo.test", "/version", &[("cookie", "a=1; canary=always; b=2")]).await;
        assert_eq!(version_of(&body), "v2", "the cookie match wins over a 100/0 split");
        let (_, _, body) = get(&client, proxy.addr, "podinfo.test", "/version", &[("cookie", "canary=never")]).await;
        assert_eq!(version_of(&body), "v1");
        let (_, _, body) = get(&client, proxy.addr, "podinfo.test", "/version", &[]).await;
        assert_eq!(version_of(&body), "v1");
    }
}

#[tokio::test]
async fn path_method_and_query_matches_follow_gateway_api_precedence() {
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    // Listed in the wrong order on purpose: precedence, not order, decides.
    let rules = r#"
        - matches: [{path: {type: PathPrefix, value: /api}}]
          backendRefs: [{name: podinfo-primary, port: 9898}]
        - matches: [{path: {type: PathPrefix, value: /api/v2}}]
          backendRefs: [{name: podinfo-canary, port: 9898}]
        - matches: [{path: {type: Exact, value: /api/v2/old}}]
          backendRefs: [{name: podinfo-primary, port: 9898}]
        - matches: [{path: {type: PathPrefix, value: /q}, queryParams: [{name: flavour, value: new}]}]
          backendRefs: [{name: podinfo-canary, port: 9898}]
        - matches: [{path: {type: PathPrefix, value: /m}, method: POST}]
          backendRefs: [{name: podinfo-canary, port: 9898}]"#;
    let proxy = proxy(&canary_config(v1, v2, 100, 0, rules)).await;
    let client = client();
    for (method, path, expected) in [
        ("GET", "/api/x", "v1"),
        ("GET", "/api/v2/x", "v2"),
        ("GET", "/api/v2", "v2"),
        ("GET", "/api/v2/old", "v1"),
        ("GET", "/api/v2old", "v1"),
        ("GET", "/q?flavour=new", "v2"),
        ("GET", "/q?flavour=old", "v1"),
        ("POST", "/m", "v2"),
        ("GET", "/m", "v1"),
        ("GET", "/elsewhere", "v1"),
    ] {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", proxy.addr))
            .header("host", "podinfo.test")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let response = client.request(request).await.unwrap();
        // The sample app names its version on every answer, 404s included.
        let version = response.headers().get("x-testapp-version").map(|v| v.to_str().unwrap().to_string());
        assert_eq!(version.as_deref(), Some(expected), "{method} {path}");
    }
}

#[tokio::test]
async fn a_backend_ref_port_picks_that_port_of_a_service_with_several() {
    let (http, admin) = (backend("http-port").await, backend("admin-port").await);
    let config = |port: &str| {
        format!(
            r#"
services:
- {{name: app, namespace: test, endpoints: [{{address: "{http}"}}]}}
- name: app-backend
  namespace: test
  ports: [9898, 9999]
  endpoints:
  - {{address: "{http}", servicePort: 9898}}
  - {{address: "{admin}", servicePort: 9999}}
routes:
- metadata: {{name: app, namespace: test}}
  spec:
    parentRefs: [{{group: "", kind: Service, name: app}}]
    rules: [{{backendRefs: [{{name: app-backend{port}}}]}}]
"#
        )
    };
    let client = client();
    for (port, wanted) in [(9898, "http-port"), (9999, "admin-port")] {
        let proxy = proxy(&config(&format!(", port: {port}"))).await;
        for _ in 0..10 {
            let (status, _, body) = get(&client, proxy.addr, "app.test", "/version", &[]).await;
            assert_eq!((status.as_u16(), version_of(&body)), (200, wanted.to_string()), "backendRef port {port}");
        }
    }

    // A port the Service lacks, or none where it has two, is refused naming the field.
    for (port, why) in [(", port: 8080", "has no port 8080"), ("", "name one with port")] {
        let refused = serin_meshproxy::config::parse_config("test", &config(port))
            .and_then(|c| serin_meshproxy::store::ConfigStore::new(c).map(|_| ()))
            .unwrap_err()
            .to_string();
        assert!(refused.contains("spec.rules[0].backendRefs[0].port") && refused.contains(why), "{refused}");
    }
}

#[tokio::test]
async fn a_request_without_a_body_refused_by_one_endpoint_is_sent_to_another() {
    let live = backend("live").await;
    // A port nothing listens on: what a pod that is going away leaves behind.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    // Round robin, so that every other request is sent to the endpoint that is gone.
    let config = format!(
        r#"
services:
- {{name: app, namespace: test, endpoints: [{{address: "{live}"}}, {{address: "{gone}"}}]}}
trafficPolicies:
- apiVersion: serin.dev/v1alpha1
  kind: TrafficPolicy
  metadata: {{name: app, namespace: test}}
  spec:
    targetRef: {{kind: Service, name: app}}
    loadBalancer: {{algorithm: round-robin}}
"#
    );
    let proxy = proxy(&config).await;
    let client = client();
    for _ in 0..40 {
        let (status, _, body) = get(&client, proxy.addr, "app.test", "/version", &[]).await;
        assert_eq!((status.as_u16(), version_of(&body)), (200, "live".to_string()));
    }

    // A request with a body is not sent twice without a retry policy that allows it: refused by
    // the endpoint that is gone, it fails and says where.
    let mut refused = 0;
    for _ in 0..40 {
        let request = http::Request::post(format!("http://{}/echo", proxy.addr))
            .header("host", "app.test")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(b"payload")))
            .unwrap();
        let response = client.request(request).await.unwrap();
        if response.status() == 502 {
            let why = response.headers().get("x-meshproxy-error").map(|v| v.to_str().unwrap().to_string());
            assert!(why.as_deref().is_some_and(|w| w.contains(&gone.to_string())), "{why:?}");
            refused += 1;
        }
    }
    assert!(refused >= 10, "about half the POSTs went to the endpoint that is gone and failed: {refused}");
}
