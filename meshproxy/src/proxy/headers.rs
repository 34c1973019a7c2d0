//! Header rules of a proxy hop (RFC 9110 §7.6): drop hop-by-hop headers, say who forwarded.

use std::net::SocketAddr;

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    // Connection-specific (RFC 7540 §3.2.1): it belongs to an h2c upgrade, never passed on.
    HeaderName::from_static("http2-settings"),
];

/// Removes hop-by-hop headers, including any the `Connection` header names. `TE: trailers` is
/// kept: gRPC needs it to reach the server.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    let keeps_trailers = headers.get_all(header::TE).iter().any(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
    if keeps_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Appends the client to `x-forwarded-for` and `forwarded`, and sets `x-forwarded-proto` and
/// `x-forwarded-host` unless an earlier proxy already did. `proto` is `http` or `https`: how the
/// client reached this proxy.
pub fn add_forwarded(headers: &mut HeaderMap, client: SocketAddr, host: &str, proto: &'static str) {
    let ip = client.ip().to_string();
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {ip}"),
        None => ip.clone(),
    };
    if let Ok(value) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", value);
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto", HeaderValue::from_static(proto));
    }
    if !headers.contains_key("x-forwarded-host")
        && let Ok(value) = HeaderValue::from_str(host)
    {
        headers.insert("x-forwarded-host", value);
    }
    let node = if client.is_ipv6() { format!("\"[{ip}]\"") } else { ip };
    let element = format!("for={node};host=\"{host}\";proto={proto}");
    if let Ok(value) = HeaderValue::from_str(&element) {
        headers.append(header::FORWARDED, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_named_headers_but_keeps_te_trailers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert("x-app", HeaderValue::from_static("kept"));
        strip_hop_by_hop(&mut headers);
        assert!(headers.get("x-secret").is_none() && headers.get("keep-alive").is_none());
        assert_eq!(headers.get(header::TE).unwrap(), "trailers");
        assert_eq!(headers.get("x-app").unwrap(), "kept");
    }

    #[test]
    fn appends_to_forwarding_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        add_forwarded(&mut headers, "127.0.0.1:5000".parse().unwrap(), "podinfo.test", "http");
        assert_eq!(headers.get("x-forwarded-for").unwrap(), "10.0.0.1, 127.0.0.1");
        assert_eq!(headers.get("x-forwarded-host").unwrap(), "podinfo.test");
        assert_eq!(headers.get(header::FORWARDED).unwrap(), "for=127.0.0.1;host=\"podinfo.test\";proto=http");
    }
}
