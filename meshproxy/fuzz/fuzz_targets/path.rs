//! Path normalisation, on every path a request target can carry: the normal form is a fixed point,
//! starts with `/`, and holds no empty or dot segment and no escaped unreserved character, so a
//! rule on `/admin` sees every spelling of `/admin` the same way.

#![no_main]

use http::uri::PathAndQuery;
use libfuzzer_sys::fuzz_target;
use serin_meshproxy::proxy::normalize_path;

fuzz_target!(|target: &str| {
    // Only what http accepts as a request target reaches the proxy's normalisation.
    let Ok(path_and_query) = target.parse::<PathAndQuery>() else { return };
    let path = path_and_query.path();
    let Ok(normal) = normalize_path(path) else { return };
    if path == "*" {
        assert_eq!(normal, "*");
        return;
    }
    assert_eq!(normalize_path(&normal).as_deref().ok(), Some(&*normal), "not a fixed point: {path:?} -> {normal:?}");
    assert!(normal.starts_with('/'), "{path:?} -> {normal:?}");
    let inner = &normal[1..];
    let segments: Vec<&str> = inner.strip_suffix('/').unwrap_or(inner).split('/').collect();
    assert!(
        normal == "/" || segments.iter().all(|s| !s.is_empty() && *s != "." && *s != ".."),
        "an empty or dot segment is left: {path:?} -> {normal:?}"
    );
    for escape in normal.match_indices('%').map(|(i, _)| &normal[i..]) {
        let hex = escape.get(1..3).and_then(|h| u8::from_str_radix(h, 16).ok());
        let byte = hex.unwrap_or_else(|| panic!("a broken escape is left: {path:?} -> {normal:?}"));
        let unreserved = byte.is_ascii_alphanumeric() || b"-._~".contains(&byte);
        assert!(!unreserved, "an escaped unreserved character is left: {path:?} -> {normal:?}");
        assert_eq!(&escape[1..3], escape[1..3].to_ascii_uppercase(), "escapes are upper-cased: {normal:?}");
    }
    // The normal form is itself a valid request target.
    assert!(normal.parse::<PathAndQuery>().is_ok(), "{path:?} -> {normal:?}");
});
