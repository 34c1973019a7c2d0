//! W3C Trace Context: a valid `traceparent` passes through unchanged (meshproxy records no spans
//! of its own, so it must not become a parent); a missing or malformed one is replaced by a new
//! sampled trace, so every service behind the proxy joins the same trace.

use http::HeaderMap;
use http::header::HeaderValue;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// Makes sure the request carries a valid `traceparent`.
pub fn ensure_traceparent(headers: &mut HeaderMap) {
    if headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()).and_then(valid_trace_id).is_some() {
        return;
    }
    // Written into a fixed buffer: this runs for most requests, and allocations show in profiles.
    let mut value = *b"00-00000000000000000000000000000000-0000000000000000-01";
    write_hex(&mut value[3..35], fastrand::u128(1..));
    write_hex(&mut value[36..52], u128::from(fastrand::u64(1..)));
    headers.insert(TRACEPARENT, HeaderValue::from_bytes(&value).expect("hex digits are a valid header value"));
    // A tracestate without its traceparent means nothing (W3C Trace Context §3.3).
    headers.remove(TRACESTATE);
}

/// The trace id of the request's `traceparent` (after `ensure_traceparent`, always there).
pub fn trace_id(headers: &HeaderMap) -> &str {
    headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()).and_then(valid_trace_id).unwrap_or("")
}

/// Fills `out` with the low `out.len()` hex digits of `number`, most significant first.
fn write_hex(out: &mut [u8], mut number: u128) {
    for digit in out.iter_mut().rev() {
        *digit = b"0123456789abcdef"[(number & 0xf) as usize];
        number >>= 4;
    }
}

/// The trace id of a well-formed `traceparent` (version 00 or a later one with the same prefix).
fn valid_trace_id(value: &str) -> Option<&str> {
    let fields: Vec<&str> = value.trim().split('-').collect();
    let [version, trace_id, parent_id, flags, ..] = fields.as_slice() else { return None };
    let hex =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let ok = hex(version, 2)
        && *version != "ff"
        && (*version != "00" || fields.len() == 4)
        && hex(trace_id, 32)
        && trace_id.bytes().any(|b| b != b'0')
        && hex(parent_id, 16)
        && parent_id.bytes().any(|b| b != b'0')
        && hex(flags, 2);
    ok.then_some(trace_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_valid_traceparent() {
        let mut headers = HeaderMap::new();
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.insert(TRACEPARENT, HeaderValue::from_static(value));
        headers.insert(TRACESTATE, HeaderValue::from_static("congo=t61rcWkgMzE"));
        ensure_traceparent(&mut headers);
        assert_eq!(trace_id(&headers), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(headers.get(TRACEPARENT).unwrap(), value);
        assert!(headers.contains_key(TRACESTATE));
    }

    #[test]
    fn replaces_missing_or_malformed_ones() {
        for bad in [
            None,
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            Some("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"),
            Some("garbage"),
        ] {
            let mut headers = HeaderMap::new();
            if let Some(bad) = bad {
                headers.insert(TRACEPARENT, HeaderValue::from_static(bad));
                headers.insert(TRACESTATE, HeaderValue::from_static("a=b"));
            }
            ensure_traceparent(&mut headers);
            let value = headers.get(TRACEPARENT).unwrap().to_str().unwrap().to_string();
            assert_eq!(valid_trace_id(&value), Some(trace_id(&headers)), "{bad:?} -> {value}");
            assert!(value.ends_with("-01") && !headers.contains_key(TRACESTATE));
        }
    }
}
