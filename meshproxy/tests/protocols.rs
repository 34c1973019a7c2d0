//! Protocols through the proxy: WebSocket upgrades, gRPC with trailers over h2c, TLS with ALPN
//! for h2 and http/1.1, W3C trace context, and a 100 MB upload that must not be buffered.

mod support;

use std::convert::Infallible;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use support::{ScriptedBackend, TestTls, app_config, backend, client, get, proxy, proxy_with_tls, scrape};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves `handler` on a loopback port (HTTP/1.1 with upgrades, and h2c).
async fn serve<F, Fut>(handler: F) -> std::net::SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(request).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "connection closed inside the head");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test]
async fn a_websocket_upgrade_is_tunnelled_both_ways() {
    let echo = serve(|mut request: Request<Incoming>| async move {
        assert_eq!(request.headers()["sec-websocket-key"], "dGhlIHNhbXBsZSBub25jZQ==");
        let upgraded = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            let mut io = TokioIo::new(upgraded.await.unwrap());
            let mut buffer = [0u8; 1024];
            loop {
                match io.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => io.write_all(&buffer[..n]).await.unwrap(),
                }
            }
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            .body(Full::new(Bytes::new()).boxed())
            .unwrap()
    })
    .await;
    let proxy = proxy(&app_config(&[echo], &[echo], (1, 0), "", "  []")).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(
            b"GET /chat HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let head = read_head(&mut stream).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket") && head.contains("sec-websocket-accept"), "{head}");
    for message in ["hello", "through the proxy", "and back"] {
        stream.write_all(message.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; message.len()];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer, message.as_bytes());
    }
}

#[tokio::test]
async fn grpc_over_h2c_keeps_its_trailers() {
    let grpc = serve(|request: Request<Incoming>| async move {
        assert_eq!(request.version(), http::Version::HTTP_2);
        assert_eq!(request.headers()["te"], "trailers");
        assert_eq!(request.headers()["content-type"], "application/grpc");
        let message = request.into_body().collect().await.unwrap().to_bytes();
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        trailers.insert("grpc-message", "echoed".parse().unwrap());
        trailers.insert("x-echo-bytes", message.len().to_string().parse().unwrap());
        let frames = vec![Ok::<_, Infallible>(Frame::data(message)), Ok(Frame::trailers(trailers))];
        Response::builder()
            .header("content-type", "application/grpc")
            .body(StreamBody::new(futures::stream::iter(frames)).boxed())
            .unwrap()
    })
    .await;
    // A gRPC server speaks h2c, which its Service port says.
    let config = app_config(&[grpc], &[grpc], (1, 0), "", "  []")
        .replace("{name: app-a, namespace: test,", "{name: app-a, namespace: test, appProtocol: kubernetes.io/h2c,");
    let proxy = proxy(&config).await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    // One length-prefixed gRPC message: no compression, 5 bytes of payload.
    let message = Bytes::from_static(&[0, 0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o']);
    let request = Request::post("http://app.test/echo.Echo/Say")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(message.clone()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("the trailers came through");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "echoed");
    assert_eq!(trailers["x-echo-bytes"], "10");
    assert_eq!(collected.to_bytes(), message);
}

#[tokio::test]
async fn tls_with_alpn_serves_h2_and_http1() {
    let app = backend("v1").await;
    let tls_fixture = TestTls::new();
    let proxy =
        proxy_with_tls(&app_config(&[app], &[app], (1, 0), "", "  []"), Some(tls_fixture.acceptor.clone())).await;

    for (alpn, expected) in [("h2", http::Version::HTTP_2), ("http/1.1", http::Version::HTTP_11)] {
        let connector = tls_fixture.connector(alpn);
        let tcp = TcpStream::connect(proxy.addr).await.unwrap();
        let tls = connector.connect("app.test".try_into().unwrap(), tcp).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn.as_bytes()));
        let request = Request::get("https://app.test/headers").header("host", "app.test");
        let response = if expected == http::Version::HTTP_2 {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
            tokio::spawn(connection);
            let request = request.version(http::Version::HTTP_2).body(Full::new(Bytes::new())).unwrap();
            sender.send_request(request).await.unwrap()
        } else {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
            tokio::spawn(connection);
            sender.send_request(request.body(Full::new(Bytes::new())).unwrap()).await.unwrap()
        };
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.version(), expected);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let seen: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(seen["headers"]["x-forwarded-proto"][0], "https", "{seen}");
        // The sample app's Service port names no appProtocol: it is spoken to in HTTP/1.1.
        assert_eq!(seen["version"], "HTTP/1.1");
    }

    // A client that does not speak TLS gets nothing served, and the listener carries on.
    let mut plain = TcpStream::connect(proxy.addr).await.unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(!String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"));
}

#[tokio::test]
async fn traceparent_is_kept_or_created_and_connections_are_counted() {
    let app = ScriptedBackend::ok("app").await;
    let proxy = proxy(&app_config(&[app.addr], &[app.addr], (1, 0), "", "  []")).await;
    let client = client();
    let given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    get(&client, proxy.addr, "app.test", "/", &[("traceparent", given), ("tracestate", "x=1")]).await;
    get(&client, proxy.addr, "app.test", "/", &[]).await;
    get(&client, proxy.addr, "app.test", "/", &[("traceparent", "00-zzz-1-01"), ("tracestate", "x=1")]).await;
    let seen = app.seen();
    assert_eq!(seen[0].headers["traceparent"], given);
    assert_eq!(seen[0].headers["tracestate"], "x=1");
    for created in &seen[1..] {
        let value = created.headers["traceparent"].to_str().unwrap();
        let parts: Vec<&str> = value.split('-').collect();
        assert_eq!((parts.len(), parts[0], parts[1].len(), parts[2].len(), parts[3]), (5 - 1, "00", 32, 16, "01"));
        assert!(!created.headers.contains_key("tracestate"), "a tracestate without its traceparent is dropped");
    }
    assert_ne!(seen[1].headers["traceparent"], seen[2].headers["traceparent"]);

    let scrape = scrape(proxy.admin).await;
    let open = support::endpoint_gauge(&scrape, serin_meshproxy_api::metrics::UPSTREAM_CONNECTIONS, app.addr);
    assert_eq!(open, Some(1.0), "three sequential requests share one pooled connection");
}

/// Peak resident memory of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_upload_streams_through_with_bounded_memory() {
    const TOTAL: usize = 100 * 1024 * 1024;
    const CHUNK: usize = 64 * 1024;
    let app = backend("v1").await;
    // With a retry policy the replay buffer is in play too; it must give up, not grow.
    let retries = "  - apiVersion: serin.dev/v1alpha1\n    kind: TrafficPolicy\n    metadata: {name: retry, namespace: test}\n    spec:\n      targetRef: {kind: Service, name: app-a}\n      retries: {attempts: 3, retryOn: [5xx, reset]}\n";
    let dir = std::env::temp_dir().join(format!("meshproxy-upload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("proxy.yaml");
    std::fs::write(&file, app_config(&[app], &[app], (1, 0), "", retries)).unwrap();
    let (mut child, listen, _) = support::spawn_meshproxy(&file, &[], Stdio::null());
    let idle_rss = peak_rss(child.id());

    let chunks = futures::stream::iter(
        (0..TOTAL / CHUNK).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'u'; CHUNK])))),
    );
    let stream = TcpStream::connect(listen).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let request = Request::post("/echo").header("host", "app.test").body(StreamBody::new(chunks)).unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut echoed = 0usize;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.unwrap().data_ref() {
            assert!(data.iter().all(|b| *b == b'u'));
            echoed += data.len();
        }
    }
    assert_eq!(echoed, TOTAL, "every byte went there and back");
    let peak = peak_rss(child.id());
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("meshproxy peak RSS: idle {} KiB, after 100 MB through {} KiB", idle_rss / 1024, peak / 1024);
    assert!(peak < 48 * 1024 * 1024, "peak RSS {} KiB: the upload was buffered", peak / 1024);
}
