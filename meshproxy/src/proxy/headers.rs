//! Header rules of a proxy hop (RFC 9110 §7.6): drop hop-by-hop headers, say who forwarded.

use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

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
/// client reached this proxy. Each value is written once into the buffer the header then owns,
/// without `format!`: formatting an address through `Display` cost more than the rest of the
/// request's head work together.
pub fn add_forwarded(headers: &mut HeaderMap, client: SocketAddr, host: &str, proto: &'static str) {
    let mut ip = String::with_capacity(40);
    push_ip(&mut ip, client.ip());
    let mut xff = String::with_capacity(48);
    if let Some(earlier) = headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        xff.push_str(earlier);
        xff.push_str(", ");
    }
    xff.push_str(&ip);
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
    let mut element = String::with_capacity(32 + ip.len() + host.len());
    element.push_str("for=");
    if client.is_ipv6() {
        // RFC 7239 §6: an IPv6 node is quoted and bracketed.
        element.push_str("\"[");
        element.push_str(&ip);
        element.push_str("]\"");
    } else {
        element.push_str(&ip);
    }
    element.push_str(";host=\"");
    element.push_str(host);
    element.push_str("\";proto=");
    element.push_str(proto);
    if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(element)) {
        headers.append(header::FORWARDED, value);
    }
}

/// Writes `ip` as text: IPv4 digit by digit, IPv6 (rare on this path) through `Display`.
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
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
    fn addresses_are_written_as_display_writes_them() {
        for ip in ["0.0.0.0", "10.0.0.1", "127.0.0.1", "192.168.100.255", "255.255.255.255", "::1", "fd00::a:1"] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = String::new();
            push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string());
        }
        let mut headers = HeaderMap::new();
        add_forwarded(&mut headers, "[fd00::1]:5000".parse().unwrap(), "app.test", "https");
        assert_eq!(headers.get(header::FORWARDED).unwrap(), "for=\"[fd00::1]\";host=\"app.test\";proto=https");
        assert_eq!(headers.get("x-forwarded-for").unwrap(), "fd00::1");
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
