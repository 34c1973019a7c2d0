//! HTTP/1.1 as a hostile client and a broken upstream speak it, over raw sockets: request framing
//! and smuggling, header and URI limits, Host rules, methods, paths that try to dodge a rule,
//! 1xx/204/304/HEAD, pipelining, idle and slow clients, and upstreams that break the protocol.
//! Each case checks what the client got, what the backend saw, and that meshproxy still serves.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serin_meshproxy::proxy::Limits;
use support::{Proxy, ScriptedBackend, app_route, proxy_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `app` routes `/blocked` to `app-blocked` and everything else to `app-public`.
fn config(public: SocketAddr, blocked: SocketAddr) -> String {
    app_route(
        &format!(
            "  - {{name: app-public, namespace: test, endpoints: [{{address: \"{public}\"}}]}}\n  - {{name: app-blocked, namespace: test, endpoints: [{{address: \"{blocked}\"}}]}}"
        ),
        "        - matches: [{path: {type: PathPrefix, value: /blocked}}]\n          backendRefs: [{name: app-blocked, port: 80}]\n        - backendRefs: [{name: app-public, port: 80}]",
    )
}

struct Setup {
    proxy: Proxy,
    public: ScriptedBackend,
    blocked: ScriptedBackend,
}

async fn setup(limits: Limits) -> Setup {
    let (public, blocked) = (ScriptedBackend::ok("public").await, ScriptedBackend::ok("blocked").await);
    let proxy = proxy_with(&config(public.addr, blocked.addr), None, limits).await;
    Setup { proxy, public, blocked }
}

/// Writes `request` on a new connection and reads until the proxy closes it (or 5 s pass).
async fn exchange(proxy: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_all(&mut stream, Duration::from_secs(5)).await
}

async fn read_all(stream: &mut TcpStream, limit: Duration) -> String {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// A plain request still gets through: the proxy is fine after whatever came before.
async fn still_serves(setup: &Setup) {
    let answer = exchange(setup.proxy.addr, b"GET /ok HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_of(&answer), 200, "{answer}");
}

#[tokio::test]
async fn framing_that_could_smuggle_a_request_is_refused_before_any_backend_sees_it() {
    let setup = setup(Limits::default()).await;
    // Both framings: read by Transfer-Encoding alone, and the connection closed after the answer
    // (RFC 9112 §6.1), so what follows the chunked body is never served as a request.
    let answer = exchange(
        setup.proxy.addr,
        b"POST /a HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n",
    )
    .await;
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "one answer, then the connection closed: {answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    let seen = setup.public.seen();
    assert_eq!(seen.iter().map(|s| (s.path_and_query.as_str(), s.body_len)).collect::<Vec<_>>(), [("/a", 0)]);
    assert!(seen[0].headers.get("content-length").is_none_or(|l| l == "0"), "{:?}", seen[0].headers);

    let cases: [(&str, &[u8]); 3] = [
        (
            "two different Content-Lengths",
            b"POST /a HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc",
        ),
        (
            "a Transfer-Encoding that is not chunked last",
            b"POST /a HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        ),
        ("a folded header line", b"GET /a HTTP/1.1\r\nHost: app.test\r\nX-Folded: one\r\n two\r\n\r\n"),
    ];
    for (what, request) in cases {
        let answer = exchange(setup.proxy.addr, request).await;
        assert_eq!(status_of(&answer), 400, "{what}: {answer}");
        assert!(!answer.contains("HTTP/1.1 200"), "{what}: nothing behind it was served: {answer}");
    }
    assert_eq!(setup.public.count() + setup.blocked.count(), 1, "no backend saw any of these");
    still_serves(&setup).await;
}

#[tokio::test]
async fn oversized_heads_and_targets_are_refused() {
    let setup = setup(Limits { max_header_bytes: 8 * 1024, ..Limits::default() }).await;
    let big_header = format!("GET /a HTTP/1.1\r\nHost: app.test\r\nX-Big: {}\r\n\r\n", "x".repeat(16 * 1024));
    let answer = exchange(setup.proxy.addr, big_header.as_bytes()).await;
    assert_eq!(status_of(&answer), 431, "{answer}");
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: app.test\r\n\r\n", "a".repeat(16 * 1024));
    let answer = exchange(setup.proxy.addr, long_target.as_bytes()).await;
    assert!(matches!(status_of(&answer), 414 | 431), "{answer}");
    assert_eq!(setup.public.count(), 0);
    still_serves(&setup).await;
}

#[tokio::test]
async fn host_rules_one_host_and_the_targets_over_the_headers() {
    let setup = setup(Limits::default()).await;
    let answer = exchange(setup.proxy.addr, b"GET /a HTTP/1.1\r\nHost: app.test\r\nHost: evil.test\r\n\r\n").await;
    assert_eq!(status_of(&answer), 400, "two Host headers: {answer}");
    assert!(answer.contains("more than one Host header"), "{answer}");
    let answer = exchange(setup.proxy.addr, b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_of(&answer), 400, "no Host at all: {answer}");
    // A bare host as the target (authority-form) is for CONNECT alone: not a way to name a service.
    let answer = exchange(setup.proxy.addr, b"GET app.test HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_of(&answer), 400, "authority-form: {answer}");
    assert!(answer.contains("bare host"), "{answer}");
    assert_eq!(setup.public.count(), 0);

    // An absolute-form target wins over a conflicting Host, and the upstream sees the target's.
    let answer = exchange(
        setup.proxy.addr,
        b"GET http://app.test/abs HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    let seen = setup.public.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["host"], "app.test");
    assert_eq!(seen[0].headers.get_all("host").iter().count(), 1);
    still_serves(&setup).await;
}

#[tokio::test]
async fn connect_is_refused_and_never_reaches_a_backend() {
    let setup = setup(Limits::default()).await;
    let answer = exchange(setup.proxy.addr, b"CONNECT app.test:443 HTTP/1.1\r\nHost: app.test:443\r\n\r\n").await;
    assert_eq!(status_of(&answer), 405, "{answer}");
    assert!(answer.to_ascii_lowercase().contains("x-meshproxy-error: client: connect is not served"), "{answer}");
    assert_eq!(setup.public.count() + setup.blocked.count(), 0);
    still_serves(&setup).await;
}

#[tokio::test]
async fn a_path_cannot_dodge_a_rule_by_dots_escapes_or_slashes() {
    let setup = setup(Limits::default()).await;
    for path in
        ["/public/../blocked/x", "/public/%2e%2e/blocked/x", "/public/%2E%2E/blocked/x", "//blocked/x", "/%62locked/x"]
    {
        let request = format!("GET {path} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n");
        let answer = exchange(setup.proxy.addr, request.as_bytes()).await;
        assert_eq!(status_of(&answer), 200, "{path}: {answer}");
        assert!(answer.contains("\"version\":\"blocked\""), "{path} went by the /blocked rule: {answer}");
    }
    assert_eq!(setup.public.count(), 0, "none escaped the /blocked rule");
    assert!(setup.blocked.seen().iter().all(|s| s.path_and_query == "/blocked/x"), "{:?}", setup.blocked.seen());
    let answer = exchange(setup.proxy.addr, b"GET /a%zz HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_of(&answer), 400, "a broken escape: {answer}");

    // Turned off, the path goes as received.
    let raw = proxy_with(
        &config(setup.public.addr, setup.blocked.addr),
        None,
        Limits { normalize_paths: false, ..Limits::default() },
    )
    .await;
    let answer =
        exchange(raw.addr, b"GET /public/%2e%2e/blocked/x HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
            .await;
    assert!(answer.contains("\"version\":\"public\""), "{answer}");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_and_bodiless_answers_keep_the_connection() {
    let backend = ScriptedBackend::start(
        "app",
        std::sync::Arc::new(|_, seen| {
            let status = match seen.path_and_query.as_str() {
                "/204" => http::StatusCode::NO_CONTENT,
                "/304" => http::StatusCode::NOT_MODIFIED,
                _ => http::StatusCode::OK,
            };
            (status, Duration::ZERO)
        }),
    )
    .await;
    let proxy = proxy_with(&config(backend.addr, backend.addr), None, Limits::default()).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(
            b"GET /204 HTTP/1.1\r\nHost: app.test\r\n\r\nGET /304 HTTP/1.1\r\nHost: app.test\r\n\r\nHEAD /head HTTP/1.1\r\nHost: app.test\r\n\r\nGET /last HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = read_all(&mut stream, Duration::from_secs(5)).await;
    let statuses: Vec<&str> = answer.match_indices("HTTP/1.1 ").map(|(i, _)| &answer[i + 9..i + 12]).collect();
    assert_eq!(statuses, ["204", "304", "200", "200"], "{answer}");
    assert!(answer.ends_with(r#"{"n":3,"version":"app"}"#), "{answer}");
    assert_eq!(answer.matches(r#"{"n""#).count(), 1, "only the last answer has a body: {answer}");
    let paths: Vec<String> = backend.seen().into_iter().map(|s| s.path_and_query).collect();
    assert_eq!(paths, ["/204", "/304", "/head", "/last"]);
}

#[tokio::test]
async fn idle_and_slow_clients_are_dropped_at_the_header_timeout_and_free_their_slots() {
    let limits = Limits { header_read_timeout: Duration::from_secs(1), max_connections: 2, ..Limits::default() };
    let setup = setup(limits).await;
    // Two clients that never send a byte take every slot.
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(TcpStream::connect(setup.proxy.addr).await.unwrap());
    }
    // One that sends its head a byte at a time, slower than the timeout allows.
    let started = Instant::now();
    for mut stream in silent {
        let closed = read_all(&mut stream, Duration::from_secs(5)).await;
        assert!(closed.is_empty(), "nothing is sent to a silent client: {closed}");
    }
    assert!(started.elapsed() < Duration::from_secs(4), "silent clients are dropped after about 1 s");
    still_serves(&setup).await;

    let mut slow = TcpStream::connect(setup.proxy.addr).await.unwrap();
    let started = Instant::now();
    let mut cut = false;
    for byte in b"GET /a HTTP/1.1\r\nHost: app.test\r\nX-Slow: ".iter().chain([b'x'; 64].iter()) {
        if slow.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    let rest = read_all(&mut slow, Duration::from_secs(2)).await;
    assert!(cut || rest.is_empty() || status_of(&rest) == 408, "a slowloris head is cut off: {rest}");
    assert!(started.elapsed() < Duration::from_secs(6), "within the header timeout, give or take");
    assert_eq!(setup.public.count(), 1, "only the plain request reached a backend");
    still_serves(&setup).await;
}

/// An upstream that answers every request with `answer`, then closes.
async fn canned_upstream(answer: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = stream.read(&mut head).await;
                let _ = stream.write_all(answer).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_upstream_breaking_the_protocol_is_blamed_and_never_passed_on_ambiguously() {
    // Both framings: Transfer-Encoding wins, and no Content-Length goes on to the client.
    let both = canned_upstream(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n7\r\nchunked\r\n0\r\n\r\n",
    )
    .await;
    let garbage = canned_upstream(b"SPDY/9 what\r\n\r\n").await;
    let cut_short =
        canned_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nonly this").await;
    let proxy = proxy_with(&config(both, garbage), None, Limits::default()).await;
    let answer = exchange(proxy.addr, b"GET /a HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    let head = answer.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(!head.contains("content-length: 5"), "the conflicting length is not passed on: {answer}");
    assert!(answer.contains("chunked"), "the body is the chunked one: {answer}");

    let answer = exchange(proxy.addr, b"GET /blocked HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_of(&answer), 502, "{answer}");
    assert!(answer.to_ascii_lowercase().contains("x-meshproxy-error: upstream:"), "{answer}");

    let short = proxy_with(&config(cut_short, cut_short), None, Limits::default()).await;
    let answer = exchange(short.addr, b"GET /a HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("only this"), "{answer}");
    // The client learns of the cut by the connection closing short of the length.
    let answer = exchange(short.addr, b"GET /a HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "meshproxy still serves: {answer}");
}

/// Reads one response head (up to the blank line) from `stream`.
async fn read_one_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let setup = setup(Limits::default()).await;
    let mut stream = TcpStream::connect(setup.proxy.addr).await.unwrap();
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    // A client that waits for the go-ahead before sending its body gets it.
    let interim = read_one_head(&mut stream).await;
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim:?}");
    stream.write_all(b"hello").await.unwrap();
    let answer = read_one_head(&mut stream).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    let seen = setup.public.seen();
    assert_eq!(seen.iter().map(|s| (s.path_and_query.as_str(), s.body_len)).collect::<Vec<_>>(), [("/upload", 5)]);
    still_serves(&setup).await;
}

#[tokio::test]
async fn an_upstreams_interim_answer_is_not_taken_for_its_final_one() {
    let hints = canned_upstream(
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nfinal",
    )
    .await;
    let proxy = proxy_with(&config(hints, hints), None, Limits::default()).await;
    let answer = exchange(proxy.addr, b"GET /a HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n").await;
    let last = answer.rfind("HTTP/1.1 ").map(|i| &answer[i..]).unwrap_or_default();
    assert_eq!(status_of(last), 200, "{answer}");
    assert!(answer.ends_with("final"), "{answer}");
}

#[tokio::test]
async fn upgrades_go_through_only_when_asked_for_and_agreed_to() {
    let setup = setup(Limits::default()).await;
    // HTTP/2 by upgrade from HTTP/1.1 (h2c) is deprecated (RFC 9113 §3.1) and meshproxy speaks to
    // an upstream in the upstream's protocol: the request is served as plain HTTP/1.1.
    let answer = exchange(
        setup.proxy.addr,
        b"GET /h2c HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    let seen = &setup.public.seen()[0];
    for name in ["upgrade", "http2-settings", "connection"] {
        assert!(!seen.headers.contains_key(name), "{name} reached the backend: {:?}", seen.headers);
    }

    // A backend that declines an upgrade answers as usual, and the connection goes on as HTTP/1.1.
    let mut stream = TcpStream::connect(setup.proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .await
        .unwrap();
    let head = read_one_head(&mut stream).await;
    assert_eq!(status_of(&head), 200, "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(|n| n.trim().parse().unwrap()))
        .expect("a length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    stream.write_all(b"GET /after HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n").await.unwrap();
    let after = read_all(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status_of(&after), 200, "{after}");
    assert_eq!(setup.public.count(), 3);

    // A 101 nobody asked for is the upstream breaking the protocol: not passed on, not tunnelled.
    let switches =
        canned_upstream(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n").await;
    let proxy = proxy_with(&config(switches, switches), None, Limits::default()).await;
    let answer = exchange(proxy.addr, b"GET /a HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_of(&answer), 502, "{answer}");
    assert!(answer.to_ascii_lowercase().contains("x-meshproxy-error: upstream:"), "{answer}");
}

#[tokio::test]
async fn methods_other_than_connect_are_forwarded_as_sent() {
    let setup = setup(Limits::default()).await;
    for request in [
        &b"OPTIONS * HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"[..],
        b"PURGE /cached HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
        b"DELETE /blocked/item HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    ] {
        let answer = exchange(setup.proxy.addr, request).await;
        assert_eq!(status_of(&answer), 200, "{}: {answer}", String::from_utf8_lossy(request));
    }
    let public: Vec<(String, String)> =
        setup.public.seen().into_iter().map(|s| (s.method.to_string(), s.path_and_query)).collect();
    assert_eq!(public, [("OPTIONS".into(), "*".into()), ("PURGE".into(), "/cached".into())]);
    let blocked: Vec<String> = setup.blocked.seen().into_iter().map(|s| s.method.to_string()).collect();
    assert_eq!(blocked, ["DELETE"]);
    // A method name is a token: one with a separator in it never reaches a backend.
    let answer = exchange(setup.proxy.addr, b"GE(T /a HTTP/1.1\r\nHost: app.test\r\n\r\n").await;
    assert_eq!(status_of(&answer), 400, "{answer}");
    assert_eq!(setup.public.count() + setup.blocked.count(), 3);
    still_serves(&setup).await;
}
