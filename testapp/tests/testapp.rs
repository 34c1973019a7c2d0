//! The sample app over real loopback sockets: every route, the fault flags, its metrics, h2c, and
//! draining on shutdown.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serin_testapp::{Config, Server};
use tokio::net::TcpStream;

async fn start(config: Config) -> Server {
    Server::start(&config).await.expect("binding loopback")
}

/// One HTTP/1.1 request on a fresh connection; returns status and body.
async fn send(addr: SocketAddr, method: Method, path: &str, body: Bytes) -> (StatusCode, Bytes) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let request = Request::builder().method(method).uri(path).header("host", "testapp").body(Full::new(body)).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    (status, response.into_body().collect().await.unwrap().to_bytes())
}

async fn get(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let (status, body) = send(addr, Method::GET, path, Bytes::new()).await;
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn answers_every_route() {
    let server = start(Config::for_tests("v7")).await;
    let addr = server.local_addr();
    let (status, body) = get(addr, "/").await;
    assert_eq!(status, 200);
    let root: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(root["version"], "v7");
    assert_eq!(get(addr, "/version").await, (StatusCode::OK, r#"{"version":"v7"}"#.to_string()));
    assert_eq!(get(addr, "/status/503").await.0, 503);
    assert_eq!(get(addr, "/status/204").await.0, 204);
    assert_eq!(get(addr, "/status/99").await.0, 400, "not a final status code");
    assert_eq!(get(addr, "/status/abc").await.0, 400);
    assert_eq!(get(addr, "/healthz").await.0, 200);
    assert_eq!(get(addr, "/nowhere").await.0, 404);

    let started = Instant::now();
    assert_eq!(get(addr, "/delay/0.3").await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(get(addr, "/delay/-1").await.0, 400);

    let (status, body) = get(addr, "/bytes/1024").await;
    assert_eq!((status, body.len()), (StatusCode::OK, 1024));
    assert!(body.bytes().all(|b| b == b'x'));
    assert_eq!(get(addr, "/bytes/0").await, (StatusCode::OK, String::new()));
    assert_eq!(get(addr, "/bytes/99999999999").await.0, 400, "bounded");

    assert_eq!(get(addr, "/readyz").await.0, 200);
    assert_eq!(send(addr, Method::POST, "/readyz/disable", Bytes::new()).await.0, 503);
    assert_eq!(get(addr, "/readyz").await.0, 503);
    assert_eq!(send(addr, Method::POST, "/readyz/enable", Bytes::new()).await.0, 200);
    assert_eq!(get(addr, "/readyz").await.0, 200);

    let (_, headers) = get(addr, "/headers").await;
    let headers: serde_json::Value = serde_json::from_str(&headers).unwrap();
    assert_eq!(headers["headers"]["host"], serde_json::json!(["testapp"]));
    assert_eq!(headers["method"], "GET");
}

#[tokio::test]
async fn fails_exactly_the_share_it_is_told_and_adds_latency() {
    let mut config = Config::for_tests("bad");
    config.error_rate = 0.1;
    config.latency_ms = 20;
    let server = start(config).await;
    let mut failures = 0;
    let started = Instant::now();
    for _ in 0..100 {
        if get(server.local_addr(), "/").await.0 == StatusCode::INTERNAL_SERVER_ERROR {
            failures += 1;
        }
    }
    assert_eq!(failures, 10);
    assert!(started.elapsed() >= Duration::from_millis(100 * 20), "every request waits 20 ms");
    // Faults are for `/` only: probes and the version stay truthful.
    assert_eq!(get(server.local_addr(), "/healthz").await.0, 200);
}

#[tokio::test]
async fn counts_requests_in_its_metrics() {
    let server = start(Config::for_tests("v1")).await;
    let addr = server.local_addr();
    for _ in 0..3 {
        get(addr, "/").await;
    }
    get(addr, "/status/502").await;
    let (status, metrics) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains(r#"http_requests_total{version="v1",method="GET",path="/",status="200"} 3"#), "{metrics}");
    assert!(
        metrics.contains(r#"http_requests_total{version="v1",method="GET",path="/status/{code}",status="502"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"http_request_duration_seconds_count{version="v1",method="GET",path="/"} 3"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn echoes_a_large_body_as_a_stream() {
    let server = start(Config::for_tests("v1")).await;
    let stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    // 64 MiB in 64 KiB chunks, sent as a stream without a length.
    let chunks =
        (0..1024u32).map(|i| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![(i % 251) as u8; 65536]))));
    let body = StreamBody::new(futures::stream::iter(chunks));
    let request = Request::post("/echo").header("host", "testapp").body(body).unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let (mut total, mut index) = (0usize, 0usize);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            for byte in data.iter() {
                assert_eq!(*byte, ((index / 65536) % 251) as u8, "byte {index}");
                index += 1;
            }
            total += data.len();
        }
    }
    assert_eq!(total, 1024 * 65536);
}

#[tokio::test]
async fn speaks_h2c_with_prior_knowledge() {
    let server = start(Config::for_tests("v2")).await;
    let stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let request = Request::get("http://testapp/version").body(Full::new(Bytes::new())).unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), r#"{"version":"v2"}"#);
}

#[tokio::test]
async fn drains_requests_in_flight_and_refuses_new_connections() {
    let server = start(Config::for_tests("v1")).await;
    let addr = server.local_addr();
    let slow = tokio::spawn(async move { get(addr, "/delay/1").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let drained = tokio::spawn(server.drain(Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed while draining");
    assert_eq!(slow.await.unwrap().0, 200, "the request in flight finished");
    assert!(drained.await.unwrap(), "drain completed within its grace period");
}
