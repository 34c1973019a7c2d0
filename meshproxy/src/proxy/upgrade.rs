//! HTTP/1.1 upgrades (WebSocket): the `Upgrade` request is forwarded with its `Connection:
//! upgrade`, and on a 101 answer the two connections are joined byte for byte until either side
//! closes.

use http::header::{self, HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// The protocol a request asks to upgrade to, if it does. An upgrade to `h2c` is not one:
/// meshproxy speaks HTTP/2 to an upstream only as the upstream's `appProtocol` says, and HTTP/2
/// by upgrade is deprecated (RFC 9113 §3.1), so such a request is served as plain HTTP/1.1.
pub fn requested(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    let protocol = headers.get(header::UPGRADE).filter(|p| asks && !names_h2c(p))?;
    Some(protocol.clone())
}

fn names_h2c(protocols: &HeaderValue) -> bool {
    protocols.to_str().is_ok_and(|p| p.split(',').any(|token| token.trim().eq_ignore_ascii_case("h2c")))
}

/// Puts back the two headers hop-by-hop stripping removed, so the endpoint sees the upgrade.
pub fn restore(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

/// Joins the client's and the endpoint's upgraded connections in the background.
pub fn tunnel(client: OnUpgrade, upstream: OnUpgrade) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(error) => {
                tracing::debug!(%error, "upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(%error, "upgraded connection ended with an error");
        }
    });
}
