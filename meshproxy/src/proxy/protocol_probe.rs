//! Telling an endpoint that does not speak HTTP/2 from one that failed. When an exchange in h2c
//! breaks at the connection level, the error alone cannot say which: an HTTP/1.1 server answers
//! the preface with `400` and closes, which reaches the client as a broken pipe as often as a bad
//! frame. So the endpoint is asked once more, by a probe that only listens: it sends the preface
//! and reads what comes back.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the probe may take in all.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The HTTP/2 connection preface and an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Whether `address` answers an HTTP/2 preface in HTTP/1.1 (`HTTP/1.x ...`); false when it answers
/// in HTTP/2, not at all, or cannot be reached.
pub async fn answers_in_http1(address: SocketAddr) -> bool {
    let probe = async {
        let mut stream = TcpStream::connect(address).await.ok()?;
        stream.write_all(PREFACE).await.ok()?;
        let mut first = [0u8; 5];
        stream.read_exact(&mut first).await.ok()?;
        Some(&first == b"HTTP/")
    };
    tokio::time::timeout(PROBE_TIMEOUT, probe).await.ok().flatten().unwrap_or(false)
}
