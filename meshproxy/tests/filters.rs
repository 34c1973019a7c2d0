//! HTTPRoute filters on real traffic: RequestMirror, URLRewrite, RequestRedirect, and
//! backendRef filters used for Flagger-style session affinity.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use support::{ScriptedBackend, app_route, client, get, proxy};

/// Services `app` (the apex), `app-primary` and `app-canary`, and one HTTPRoute with `rules`.
fn config(primary: &ScriptedBackend, canary: &ScriptedBackend, rules: &str) -> String {
    let services = format!(
        "  - {{name: app-primary, namespace: test, labels: {{version: v1}}, endpoints: [{{address: \"{}\"}}]}}\n  - {{name: app-canary, namespace: test, labels: {{version: v2}}, endpoints: [{{address: \"{}\"}}]}}\n  - {{name: app-gone, namespace: test, endpoints: [{{address: \"127.0.0.1:1\"}}]}}",
        primary.addr, canary.addr
    );
    app_route(&services, rules)
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn mirrored_copies_reach_the_shadow_and_its_failures_never_reach_the_client() {
    let primary = ScriptedBackend::ok("primary").await;
    // The shadow fails slowly: neither its status nor its delay may show to clients.
    let shadow =
        ScriptedBackend::start("shadow", Arc::new(|_, _| (StatusCode::INTERNAL_SERVER_ERROR, Duration::from_secs(2))))
            .await;
    let rules = r#"
        - backendRefs: [{name: app-primary, port: 80}]
          filters:
            - type: RequestMirror
              requestMirror: {backendRef: {name: app-canary, port: 80}}
            - type: RequestMirror
              requestMirror: {backendRef: {name: app-gone, port: 80}}
"#;
    let proxy = proxy(&config(&primary, &shadow, rules)).await;
    let client = client();
    let started = Instant::now();
    for i in 0..20 {
        let request = Request::post(format!("http://{}/orders?i={i}", proxy.addr))
            .header("host", "app.test")
            .body(Full::new(Bytes::from(vec![b'o'; 3000])))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert!(started.elapsed() < Duration::from_secs(2), "clients never wait for the shadow");
    assert_eq!(primary.count(), 20);
    wait_for("20 mirrored requests", || shadow.count() == 20).await;
    let seen = shadow.seen();
    assert!(seen.iter().all(|s| s.body_len == 3000 && s.method == http::Method::POST));
    assert!(seen.iter().any(|s| s.path_and_query == "/orders?i=7"));

    // A share: percent 25 over 400 requests.
    let counted = ScriptedBackend::ok("counted").await;
    let rules = r#"
        - backendRefs: [{name: app-primary, port: 80}]
          filters:
            - type: RequestMirror
              requestMirror: {backendRef: {name: app-canary, port: 80}, percent: 25}
"#;
    let proxy = support::proxy(&config(&primary, &counted, rules)).await;
    for _ in 0..400 {
        assert_eq!(get(&client, proxy.addr, "app.test", "/", &[]).await.0, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!((60..=140).contains(&counted.count()), "{} of 400 mirrored at 25 %", counted.count());
}

#[tokio::test]
async fn url_rewrite_and_redirect() {
    let primary = ScriptedBackend::ok("primary").await;
    let canary = ScriptedBackend::ok("canary").await;
    let rules = r#"
        - matches: [{path: {type: PathPrefix, value: /api}}]
          backendRefs: [{name: app-primary, port: 80}]
          filters:
            - type: URLRewrite
              urlRewrite: {hostname: internal.app, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
        - matches: [{path: {type: PathPrefix, value: /old}}]
          filters:
            - type: RequestRedirect
              requestRedirect: {scheme: https, statusCode: 301, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
        - matches: [{path: {type: Exact, value: /legacy}}]
          backendRefs: [{name: app-canary, port: 80}]
          filters:
            - type: URLRewrite
              urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /modern}}
"#;
    let proxy = proxy(&config(&primary, &canary, rules)).await;
    let client = client();

    assert_eq!(get(&client, proxy.addr, "app.test:8080", "/api/users?page=2", &[]).await.0, StatusCode::OK);
    assert_eq!(get(&client, proxy.addr, "app.test", "/api", &[]).await.0, StatusCode::OK);
    let seen = primary.seen();
    assert_eq!(seen[0].path_and_query, "/v2/users?page=2");
    assert_eq!(seen[0].headers["host"], "internal.app");
    assert_eq!(seen[1].path_and_query, "/v2");

    let (status, headers, _) = get(&client, proxy.addr, "app.test:8080", "/old/page?q=1", &[]).await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(headers["location"], "https://app.test/new/page?q=1");

    assert_eq!(get(&client, proxy.addr, "app.test", "/legacy", &[]).await.0, StatusCode::OK);
    assert_eq!(canary.seen()[0].path_and_query, "/modern");
    assert_eq!(primary.count() + canary.count(), 3, "the redirect never reached a backend");
}

#[tokio::test]
async fn a_session_cookie_pins_clients_to_the_canary_they_first_got() {
    // What Flagger writes for sessionAffinity on Gateway API: the canary's backendRef sets a
    // cookie, and a rule matching that cookie sends its holder to the canary only.
    let primary = ScriptedBackend::ok("primary").await;
    let canary = ScriptedBackend::ok("canary").await;
    let rules = r#"
        - matches: [{headers: [{name: cookie, type: RegularExpression, value: ".*canary-session=[^;]+.*"}]}]
          backendRefs: [{name: app-canary, port: 80}]
        - backendRefs:
            - {name: app-primary, port: 80, weight: 50}
            - name: app-canary
              port: 80
              weight: 50
              filters:
                - type: ResponseHeaderModifier
                  responseHeaderModifier: {add: [{name: Set-Cookie, value: "canary-session=abc; Max-Age=3600"}]}
"#;
    let proxy = proxy(&config(&primary, &canary, rules)).await;
    let client = client();
    let mut cookie = None;
    for _ in 0..100 {
        let (_, headers, body) = get(&client, proxy.addr, "app.test", "/", &[]).await;
        let set_cookie = headers.get("set-cookie").map(|v| v.to_str().unwrap().to_string());
        assert_eq!(set_cookie.is_some(), body.contains("canary"), "only canary answers set the cookie");
        if let Some(value) = set_cookie {
            cookie = Some(value.split(';').next().unwrap().to_string());
            break;
        }
    }
    let cookie = cookie.expect("one of 100 requests at 50 % reached the canary");
    for _ in 0..50 {
        let (_, _, body) =
            get(&client, proxy.addr, "app.test", "/", &[("cookie", &format!("theme=dark; {cookie}"))]).await;
        assert!(body.contains("canary"), "a pinned client stays on the canary: {body}");
    }
}

#[tokio::test]
async fn filters_meshproxy_cannot_apply_are_refused_by_field() {
    let primary = ScriptedBackend::ok("primary").await;
    let rules = r#"
        - matches: [{path: {type: Exact, value: /x}}]
          backendRefs: [{name: app-primary, port: 80}]
          filters:
            - type: URLRewrite
              urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /y}}
"#;
    let error = serin_meshproxy::config::parse_config("t", &config(&primary, &primary, rules)).unwrap_err();
    assert_eq!(error.object, "HTTPRoute test/app");
    assert_eq!(error.field, "spec.rules[0].filters[0].urlRewrite.path.type");
    assert!(error.message.contains("PathPrefix"), "{error}");

    let rules = r#"
        - backendRefs: [{name: app-primary, port: 80}]
          filters:
            - type: RequestMirror
              requestMirror: {backendRef: {name: nowhere, port: 80}, percent: 10}
"#;
    let error = serin_meshproxy::config::parse_config("t", &config(&primary, &primary, rules)).unwrap_err();
    assert_eq!(error.field, "spec.rules[0].filters[0].requestMirror.backendRef.name");
    assert!(error.message.contains("no Service test/nowhere"), "{error}");
}
