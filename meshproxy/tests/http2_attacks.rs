//! The known HTTP/2 attacks, sent as raw frames to the h2c listener: rapid reset (CVE-2023-44487),
//! a CONTINUATION flood (CVE-2024-27316 class), SETTINGS and PING floods, more streams than allowed,
//! and a peer that never opens its flow-control window. In each, meshproxy stays up, keeps serving
//! other clients meanwhile, and bounds what the attacker gets.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::{ScriptedBackend, app_config, client, get, proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
/// The GOAWAY code for a peer that misbehaves on purpose.
const ENHANCE_YOUR_CALM: u32 = 0xb;
const END_HEADERS: u8 = 0x4;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = payload.len() as u32;
    let mut bytes = vec![(length >> 16) as u8, (length >> 8) as u8, length as u8, kind, flags];
    bytes.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// A header block of literal fields without indexing (no Huffman), short names and values only.
fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in fields {
        block.push(0x00);
        block.push(name.len() as u8);
        block.extend_from_slice(name.as_bytes());
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    block
}

fn get_headers() -> Vec<u8> {
    header_block(&[(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "app.test")])
}

/// A connection that has sent the preface and its (empty, or given) SETTINGS.
async fn attacker(proxy: SocketAddr, settings: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.write_all(PREFACE).await.unwrap();
    stream.write_all(&frame(SETTINGS, 0, 0, settings)).await.unwrap();
    stream
}

/// Writes `frames` until done, the peer stops reading (a write stalls for a second), or it closes.
/// Returns how many were written.
async fn flood(stream: &mut TcpStream, frames: impl Iterator<Item = Vec<u8>>) -> usize {
    let mut written = 0;
    for bytes in frames {
        match tokio::time::timeout(Duration::from_secs(1), stream.write_all(&bytes)).await {
            Ok(Ok(())) => written += 1,
            _ => break,
        }
    }
    written
}

/// The frame types the peer sent until it closed or went quiet for `quiet`, with GOAWAY's code.
async fn frames_received(stream: &mut TcpStream, quiet: Duration) -> (Vec<u8>, Option<u32>) {
    let mut bytes = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(Ok(n)) = tokio::time::timeout(quiet, stream.read(&mut buffer)).await {
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buffer[..n]);
    }
    let (mut kinds, mut goaway) = (Vec::new(), None);
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let length = (usize::from(bytes[at]) << 16) | (usize::from(bytes[at + 1]) << 8) | usize::from(bytes[at + 2]);
        let kind = bytes[at + 3];
        if kind == GOAWAY && at + 9 + 8 <= bytes.len() {
            let code = &bytes[at + 13..at + 17];
            goaway = Some(u32::from_be_bytes([code[0], code[1], code[2], code[3]]));
        }
        kinds.push(kind);
        at += 9 + length;
    }
    (kinds, goaway)
}

/// Another client is served, promptly, while the attack goes on.
async fn others_are_served(proxy: SocketAddr) {
    let client = client();
    for _ in 0..5 {
        let started = Instant::now();
        let (status, _, _) =
            tokio::time::timeout(Duration::from_secs(3), get(&client, proxy, "app.test", "/", &[])).await.unwrap();
        assert_eq!(status, 200);
        assert!(started.elapsed() < Duration::from_secs(2), "served in {:?}", started.elapsed());
    }
}

async fn target() -> (support::Proxy, ScriptedBackend) {
    let app = ScriptedBackend::ok("app").await;
    let proxy = proxy(&app_config(&[app.addr], &[app.addr], (1, 0), "", "  []")).await;
    (proxy, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_is_cut_off_and_others_are_served() {
    let (proxy, app) = target().await;
    let mut stream = attacker(proxy.addr, &[]).await;
    let headers = get_headers();
    let attack = (0..20_000u32).map(move |i| {
        let id = 2 * i + 1;
        let mut bytes = frame(HEADERS, END_STREAM | END_HEADERS, id, &headers);
        bytes.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
        bytes
    });
    let sender = tokio::spawn(async move {
        let written = flood(&mut stream, attack).await;
        (stream, written)
    });
    others_are_served(proxy.addr).await;
    let (mut stream, written) = sender.await.unwrap();
    let (_, goaway) = frames_received(&mut stream, Duration::from_secs(2)).await;
    assert!(written < 20_000, "20,000 streams opened and reset on one connection");
    assert_eq!(goaway, Some(ENHANCE_YOUR_CALM), "the connection is told to go away, and why");
    assert!(app.count() < 20_000, "the endpoint did not get a request per reset stream ({})", app.count());
    others_are_served(proxy.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuation_flood_is_cut_off() {
    let (proxy, app) = target().await;
    let mut stream = attacker(proxy.addr, &[]).await;
    stream.write_all(&frame(HEADERS, 0, 1, &get_headers())).await.unwrap();
    let junk = header_block(&[("x-junk", &"j".repeat(100))]);
    let written = flood(&mut stream, (0..100_000).map(|_| frame(CONTINUATION, 0, 1, &junk))).await;
    let (_, goaway) = frames_received(&mut stream, Duration::from_secs(2)).await;
    assert!(written < 100_000, "10 MB of header block was read without end");
    assert!(goaway.is_some(), "the connection is told why it is closed");
    assert_eq!(app.count(), 0);
    others_are_served(proxy.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_ping_floods_get_no_unbounded_answers() {
    let (proxy, _app) = target().await;
    for (what, flood_frame) in [("SETTINGS", frame(SETTINGS, 0, 0, &[])), ("PING", frame(PING, 0, 0, &[0; 8]))] {
        // The attacker never reads its answers, which can then only pile up in the proxy, unless
        // it stops reading until they are taken. Five million frames (45 MB and more of answers)
        // are more than socket buffers hold: the flood must stall before its end.
        let mut stream = attacker(proxy.addr, &[]).await;
        let batch: Vec<u8> = flood_frame.iter().copied().cycle().take(flood_frame.len() * 1_000).collect();
        let sender = tokio::spawn(async move { flood(&mut stream, (0..5_000).map(move |_| batch.clone())).await });
        others_are_served(proxy.addr).await;
        let batches = sender.await.unwrap();
        assert!(batches < 5_000, "{what}: five million frames read while none of the answers were");
    }
    others_are_served(proxy.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_streams_than_allowed_are_refused() {
    let (proxy, _app) = target().await;
    let mut stream = attacker(proxy.addr, &[]).await;
    // POSTs whose bodies never come: each stream stays open.
    let headers = header_block(&[(":method", "POST"), (":scheme", "http"), (":path", "/"), (":authority", "app.test")]);
    let written = flood(&mut stream, (0..1_000u32).map(|i| frame(HEADERS, END_HEADERS, 2 * i + 1, &headers))).await;
    assert_eq!(written, 1_000);
    let (kinds, goaway) = frames_received(&mut stream, Duration::from_secs(2)).await;
    let resets = kinds.iter().filter(|k| **k == RST_STREAM).count();
    assert!(resets >= 700 || goaway.is_some(), "streams beyond the limit are refused: {resets} resets");
    others_are_served(proxy.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_opens_its_window_holds_only_itself() {
    let (proxy, _app) = target().await;
    // SETTINGS_INITIAL_WINDOW_SIZE = 0: no response body can be sent to it.
    let mut streams = Vec::new();
    for _ in 0..20 {
        let mut stream = attacker(proxy.addr, &[0x00, 0x04, 0, 0, 0, 0]).await;
        let requests: Vec<u8> =
            (0..50u32).flat_map(|i| frame(HEADERS, END_STREAM | END_HEADERS, 2 * i + 1, &get_headers())).collect();
        stream.write_all(&requests).await.unwrap();
        streams.push(stream);
    }
    others_are_served(proxy.addr).await;
    drop(streams);
    others_are_served(proxy.addr).await;
}
