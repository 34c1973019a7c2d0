//! Which protocol meshproxy speaks to an endpoint is the endpoint's (its Service port's
//! `appProtocol`, HTTP/1.1 by default), never the client's: every pairing of an HTTP/1.1, h2c or
//! TLS h2 client with an HTTP/1.1-only or h2c-only backend is served, and a backend that does not
//! speak what its `appProtocol` says is the config's fault, not the version's.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{TestTls, app_route, proxy, proxy_with_tls, scrape};
use tokio::net::{TcpListener, TcpStream};

/// A backend that speaks only `version`, answering `<version seen> <host seen>`.
async fn backend_speaking(version: Version) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
                let host = request
                    .headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
                    .or_else(|| request.uri().authority().map(|a| a.to_string()))
                    .unwrap_or_default();
                let body = format!("{:?} {host}", request.version());
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
            });
            tokio::spawn(async move {
                let io = TokioIo::new(stream);
                let _ = if version == Version::HTTP_2 {
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new()).serve_connection(io, service).await
                } else {
                    hyper::server::conn::http1::Builder::new().serve_connection(io, service).await
                };
            });
        }
    });
    addr
}

/// Service `app` routed to `app-h1` (an HTTP/1.1-only backend, no appProtocol) or `app-h2c` (an
/// h2c-only one, `appProtocol: kubernetes.io/h2c`) by path.
fn config(h1: SocketAddr, h2c: SocketAddr, h2c_protocol: &str) -> String {
    app_route(
        &format!(
            "  - {{name: app-h1, namespace: test, endpoints: [{{address: \"{h1}\"}}]}}\n  - {{name: app-h2c, namespace: test, appProtocol: {h2c_protocol}, endpoints: [{{address: \"{h2c}\"}}]}}"
        ),
        "        - matches: [{path: {type: PathPrefix, value: /h2c}}]\n          backendRefs: [{name: app-h2c, port: 80}]\n        - backendRefs: [{name: app-h1, port: 80}]",
    )
}

/// Sends GET `path` for `app.test` over an established connection in `version`.
async fn get_over<T>(io: T, version: Version, path: &str) -> (StatusCode, String)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let request = Request::get(format!("http://app.test{path}")).header("host", "app.test");
    let response = if version == Version::HTTP_2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await.unwrap();
        tokio::spawn(connection);
        sender.send_request(request.version(Version::HTTP_2).body(Full::new(Bytes::new())).unwrap()).await.unwrap()
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await.unwrap();
        tokio::spawn(connection);
        sender.send_request(request.body(Full::new(Bytes::new())).unwrap()).await.unwrap()
    };
    let status = response.status();
    let error = response.headers().get("x-meshproxy-error").map(|v| v.to_str().unwrap().to_string());
    let body = String::from_utf8_lossy(&response.into_body().collect().await.unwrap().to_bytes()).into_owned();
    (status, error.unwrap_or(body))
}

#[tokio::test]
async fn every_client_protocol_reaches_every_backend_protocol() {
    let (h1, h2c) = (backend_speaking(Version::HTTP_11).await, backend_speaking(Version::HTTP_2).await);
    let proxy = proxy(&config(h1, h2c, "kubernetes.io/h2c")).await;
    for client in [Version::HTTP_11, Version::HTTP_2] {
        for (path, expected) in [("/h1", "HTTP/1.1 app.test"), ("/h2c", "HTTP/2.0 app.test")] {
            let stream = TcpStream::connect(proxy.addr).await.unwrap();
            let (status, answer) = get_over(stream, client, path).await;
            assert_eq!((status, answer.as_str()), (StatusCode::OK, expected), "{client:?} client, {path}");
        }
    }
}

#[tokio::test]
async fn a_browser_over_tls_h2_reaches_an_http1_only_backend() {
    let (h1, h2c) = (backend_speaking(Version::HTTP_11).await, backend_speaking(Version::HTTP_2).await);
    let tls = TestTls::new();
    let proxy = proxy_with_tls(&config(h1, h2c, "h2c"), Some(tls.acceptor.clone())).await;
    let connector = tls.connector("h2");
    for (path, expected) in [("/h1", "HTTP/1.1 app.test"), ("/h2c", "HTTP/2.0 app.test")] {
        let tcp = TcpStream::connect(proxy.addr).await.unwrap();
        let stream = connector.connect("app.test".try_into().unwrap(), tcp).await.unwrap();
        let (status, answer) = get_over(stream, Version::HTTP_2, path).await;
        assert_eq!((status, answer.as_str()), (StatusCode::OK, expected), "{path}");
    }
}

/// An HTTP/1.1-only server as nginx is one: whatever arrives that is not HTTP/1.1 (an HTTP/2
/// preface among it) gets `400 Bad Request` and the connection closed.
async fn nginx_like() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = [0u8; 1024];
                let _ = stream.read(&mut head).await;
                let answer = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                let _ = stream.write_all(answer).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_backend_that_does_not_speak_its_app_protocol_is_the_configs_fault() {
    // `app-h2c` is said to speak h2c, but its endpoint speaks only HTTP/1.1.
    let h1 = nginx_like().await;
    let proxy = proxy(&config(h1, h1, "kubernetes.io/h2c")).await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (status, why) = get_over(stream, Version::HTTP_11, "/h2c").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(why.starts_with(&format!("policy: endpoint {h1} does not speak HTTP/2 (h2c)")), "{why}");
    let blamed_on_the_version = scrape(proxy.admin).await.samples.iter().any(|s| {
        s.metric == "meshproxy_requests_total"
            && s.labels.get("backend") == Some("app-h2c")
            && s.labels.get("blame").unwrap_or_default() != "policy"
    });
    assert!(!blamed_on_the_version, "the mismatch is not counted as the backend's");

    // An appProtocol meshproxy cannot speak is refused by name.
    let refused = serin_meshproxy::config::parse_config("test", &config(h1, h1, "kubernetes.io/wss")).unwrap_err();
    assert!(refused.to_string().contains("Service test/app-h2c: appProtocol: \"kubernetes.io/wss\""), "{refused}");
}

/// HEAD over HTTP/2, straight to the sample app and through meshproxy to it: the answer's headers
/// (Content-Length among them) and no body, never a reset stream.
#[tokio::test]
async fn head_over_http2_is_answered_with_headers_and_no_body() {
    let app = support::backend("v1").await;
    let h2c_app = support::app_config(&[app], &[app], (1, 0), "", "  []")
        .replace("{name: app-a, namespace: test,", "{name: app-a, namespace: test, appProtocol: h2c,");
    let through_h1 = proxy(&support::app_config(&[app], &[app], (1, 0), "", "  []")).await;
    let through_h2c = proxy(&h2c_app).await;
    // hyper's HTTP/2 server sends a HEAD answer's body: meshproxy must not pass it on.
    let (h1, h2c) = (backend_speaking(Version::HTTP_11).await, backend_speaking(Version::HTTP_2).await);
    let to_body_sender = proxy(&config(h1, h2c, "h2c")).await;
    let targets = [
        ("the app", app, "/"),
        ("meshproxy to h1", through_h1.addr, "/"),
        ("meshproxy to h2c", through_h2c.addr, "/"),
        ("meshproxy to an h2c server sending a HEAD body", to_body_sender.addr, "/h2c"),
    ];
    for (what, target, path) in targets {
        let stream = TcpStream::connect(target).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        let request = Request::head(format!("http://app.test{path}"))
            .version(Version::HTTP_2)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = sender.send_request(request).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(response.status(), StatusCode::OK, "{what}");
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{what}: the stream broke: {e:?} {headers:?}"));
        assert!(body.to_bytes().is_empty(), "{what}");
    }
}
