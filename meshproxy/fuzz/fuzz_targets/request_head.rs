//! A request head as a client writes it, through what meshproxy does with it before anything is
//! sent: the request checks, host and route matching, URL rewrites, header filters and hop-by-hop
//! stripping (`proxy::preview`, the forward path's own steps). The input is the raw head, read by
//! httparse as hyper reads it.
//!
//! Whatever comes in: no panic; a refusal is blamed on the client or the proxy's policy, never on
//! an upstream; and what goes upstream is routed by the path it carries, so no spelling of
//! `/blocked/...` reaches any backend but the one the `/blocked` rule names.

#![no_main]

use std::sync::OnceLock;

use http::{HeaderName, HeaderValue, Method, Request, Uri, Version};
use libfuzzer_sys::fuzz_target;
use serin_meshproxy::config::parse_config;
use serin_meshproxy::proxy::{Blame, Peer, Preview, normalize_path, preview};
use serin_meshproxy::store::ConfigStore;

const CONFIG: &str = r#"
services:
  - {name: app, namespace: test}
  - {name: app-public, namespace: test, endpoints: [{address: "127.0.0.1:9001"}]}
  - {name: app-blocked, namespace: test, endpoints: [{address: "127.0.0.1:9002"}]}
  - {name: app-api, namespace: test, endpoints: [{address: "127.0.0.1:9003", appProtocol: kubernetes.io/h2c}]}
routes:
  - apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: app, namespace: test}
    spec:
      parentRefs: [{group: "", kind: Service, name: app}]
      rules:
        - matches: [{path: {type: PathPrefix, value: /blocked}}]
          backendRefs: [{name: app-blocked, port: 80}]
        - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x-canary, value: insider}]}]
          backendRefs: [{name: app-api, port: 80}]
          filters:
            - type: URLRewrite
              urlRewrite: {hostname: internal.app, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
        - matches: [{path: {type: Exact, value: /legacy}, method: POST}]
          backendRefs: [{name: app-api, port: 80}]
          filters:
            - type: URLRewrite
              urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /modern}}
        - matches: [{path: {type: RegularExpression, value: "^/re/[a-z]+$"}, queryParams: [{name: flavour, value: new}]}]
          backendRefs: [{name: app-api, port: 80}]
        - matches: [{path: {type: PathPrefix, value: /old}}]
          filters:
            - type: RequestRedirect
              requestRedirect: {scheme: https, statusCode: 301, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
        - backendRefs: [{name: app-public, port: 80}]
          filters:
            - type: RequestHeaderModifier
              requestHeaderModifier: {set: [{name: x-env, value: fuzz}], remove: [x-secret]}
"#;

/// Hop-by-hop headers that never go upstream (`Connection` and `Upgrade` only for an upgrade).
const HOP_BY_HOP: [&str; 7] = [
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "trailer",
    "transfer-encoding",
    "http2-settings",
];

fn store() -> &'static ConfigStore {
    static STORE: OnceLock<ConfigStore> = OnceLock::new();
    STORE.get_or_init(|| ConfigStore::new(parse_config("fuzz fixture", CONFIG).unwrap()).unwrap())
}

/// The head as hyper hands it to meshproxy, or None where hyper would answer 400 itself.
fn read_head(bytes: &[u8]) -> Option<Request<()>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    if !parsed.parse(bytes).ok()?.is_complete() {
        return None;
    }
    let mut request = Request::new(());
    *request.method_mut() = Method::from_bytes(parsed.method?.as_bytes()).ok()?;
    *request.uri_mut() = parsed.path?.parse::<Uri>().ok()?;
    *request.version_mut() = if parsed.version? == 0 { Version::HTTP_10 } else { Version::HTTP_11 };
    for header in parsed.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        request.headers_mut().append(name, HeaderValue::from_bytes(header.value).ok()?);
    }
    Some(request)
}

fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fuzz_target!(|bytes: &[u8]| {
    let Some(request) = read_head(bytes) else { return };
    let peer = Peer { address: "127.0.0.1:40000".parse().unwrap(), tls: false };
    let loaded = store().load();
    // With normalisation off, paths go through as sent: nothing to hold but no panic.
    let _ = preview(&loaded, peer, clone_head(&request), false);

    let asked_upgrade = request.headers().contains_key(http::header::UPGRADE);
    match preview(&loaded, peer, request, true) {
        Err(error) => {
            assert!(matches!(error.blame, Blame::Client | Blame::Policy), "blamed on {:?}: {error:?}", error.blame);
            if error.blame == Blame::Client {
                assert!(error.status.is_client_error(), "{error:?}");
            }
        }
        Ok(Preview::Redirect { status, location }) => {
            assert!(status.is_redirection(), "{status}");
            assert!(location.is_some_and(|l| l.starts_with("https://")), "the redirect names where");
        }
        Ok(Preview::Upstream { service, backend, head }) => {
            let path = head.path_and_query.path();
            assert_eq!(normalize_path(path).ok().as_deref(), Some(path), "sent upstream unnormalised");
            assert_eq!(head.headers.get_all(http::header::HOST).iter().count(), 1, "one Host upstream");
            for name in HOP_BY_HOP {
                assert!(!head.headers.contains_key(name), "{name} went upstream: {:?}", head.headers);
            }
            if let Some(te) = head.headers.get(http::header::TE) {
                assert_eq!(te, "trailers", "only TE: trailers goes upstream");
            }
            if !asked_upgrade {
                assert!(!head.headers.contains_key(http::header::CONNECTION), "{:?}", head.headers);
                assert!(!head.headers.contains_key(http::header::UPGRADE), "{:?}", head.headers);
            }
            // A client may address a backend's own Service: no route of `app` applies then.
            if service != "app" {
                assert_eq!(service, backend, "a Service without routes is its own backend");
                return;
            }
            match backend.as_str() {
                "app-blocked" => assert!(under(path, "/blocked"), "{path} routed to app-blocked"),
                "app-public" => {
                    assert!(!under(path, "/blocked") && !under(path, "/old"), "{path} dodged its rule");
                    assert_eq!(head.headers.get("x-env").map(|v| v.as_bytes()), Some(&b"fuzz"[..]));
                    assert!(!head.headers.contains_key("x-secret"));
                }
                "app-api" => assert!(under(path, "/v2") || path == "/modern" || path.starts_with("/re/"), "{path}"),
                other => panic!("routed to {other}, which no rule names"),
            }
        }
    }
});

fn clone_head(request: &Request<()>) -> Request<()> {
    let mut copy = Request::new(());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}
