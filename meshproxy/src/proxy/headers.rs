//! Header rules of a proxy hop (RFC 9110 §7.6): drop hop-by-hop headers, say who forwarded.

use std::fmt::Write;
use std::net::SocketAddr;

use bytes::Bytes;
use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

const HOP_BY_HOP: [HeaderName; 10] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    // Connection-specific (RFC 7540 §3.2.1): it belongs to an h2c upgrade, never passed on.
    HeaderName::from_static("http2-settings"),
];

/// Removes hop-by-hop headers, including any the `Connection` header names. `TE: trailers` is
/// kept: gRPC needs it to reach the server.
///
/// One pass over the message's own headers (a handful, usually none of them hop-by-hop) finds
/// what to drop: removing each name of the list would hash all ten for every request and
/// response.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut drop: Vec<HeaderName> = Vec::new();
    let mut keeps_trailers = false;
    for (name, value) in headers.iter() {
        if !HOP_BY_HOP.contains(name) {
            continue;
        }
        if !drop.contains(name) {
            drop.push(name.clone());
        }
        if name == header::TE && value.as_bytes().eq_ignore_ascii_case(b"trailers") {
            keeps_trailers = true;
        }
        if name == header::CONNECTION {
            let named = value.to_str().unwrap_or_default().split(',');
            drop.extend(named.filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok()));
        }
    }
    for name in &drop {
        headers.remove(name);
    }
    if keeps_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Appends the client to `x-forwarded-for` and `forwarded`, and sets `x-forwarded-proto` and
/// `x-forwarded-host` unless an earlier proxy already did. `proto` is `http` or `https`: how the
/// client reached this proxy. Each value is written once into the buffer the header then owns.
pub fn add_forwarded(headers: &mut HeaderMap, client: SocketAddr, host: &str, proto: &'static str) {
    let ip = client.ip();
    let mut xff = String::with_capacity(48);
    if let Some(earlier) = headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        xff.push_str(earlier);
        xff.push_str(", ");
    }
    let _ = write!(xff, "{ip}");
    if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(xff)) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if !headers.contains_key(&X_FORWARDED_HOST)
        && let Ok(value) = HeaderValue::from_str(host)
    {
        headers.insert(X_FORWARDED_HOST, value);
    }
    let mut element = String::with_capacity(64 + host.len());
    let _ = match ip {
        std::net::IpAddr::V4(ip) => write!(element, "for={ip}"),
        std::net::IpAddr::V6(ip) => write!(element, "for=\"[{ip}]\""),
    };
    let _ = write!(element, ";host=\"{host}\";proto={proto}");
    if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(element)) {
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
