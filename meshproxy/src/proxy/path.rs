//! The request path as routes see it and the upstream gets it: normalised (RFC 3986 §6.2.2), as
//! Envoy and Istio do by default, so that `/public/../admin`, `/public/%2e%2e/admin` and
//! `//admin` cannot slip past a rule on `/admin`. Percent-encoded unreserved characters are decoded,
//! remaining escapes upper-cased, bytes outside ASCII percent-encoded (as a browser sends them),
//! runs of slashes merged, and dot-segments removed. An encoded slash
//! (`%2F`) stays as it is: it is data, not a separator. The query is left alone.

use std::borrow::Cow;

/// Why a path cannot be normalised.
#[derive(Debug, PartialEq, Eq)]
pub struct BadPath(pub String);

/// The normal form of `path` (which starts with `/`, or is `*`).
pub fn normalize(path: &str) -> Result<Cow<'_, str>, BadPath> {
    if path == "*" || is_normal(path) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(path)?;
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            "" => {}
            other => segments.push(other),
        }
    }
    let mut normal = String::with_capacity(decoded.len());
    for segment in &segments {
        normal.push('/');
        normal.push_str(segment);
    }
    // A path ending in a separator, `.` or `..` names a directory: keep its trailing slash.
    let last = decoded.rsplit('/').next().unwrap_or_default();
    if normal.is_empty() || decoded.ends_with('/') || last == "." || last == ".." {
        normal.push('/');
    }
    Ok(Cow::Owned(normal))
}

/// Nothing to do: ASCII without escapes, no empty segment and no dot segment. One scan, as this
/// runs for every request.
fn is_normal(path: &str) -> bool {
    let bytes = path.as_bytes();
    let dot_segment_at = |rest: &[u8]| {
        let dots = rest.iter().take_while(|&&b| b == b'.').count();
        (dots == 1 || dots == 2) && rest.get(dots).is_none_or(|&b| b == b'/')
    };
    if dot_segment_at(bytes) {
        return false;
    }
    for (i, &byte) in bytes.iter().enumerate() {
        if !byte.is_ascii() || byte == b'%' {
            return false;
        }
        if byte == b'/' && (bytes.get(i + 1) == Some(&b'/') || dot_segment_at(&bytes[i + 1..])) {
            return false;
        }
    }
    true
}

/// Decodes `%XX` of unreserved characters; other escapes stay, upper-cased, and bytes outside
/// ASCII are encoded.
fn decode_unreserved(path: &str) -> Result<String, BadPath> {
    let bytes = path.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii() {
            out.extend_from_slice(format!("%{:02X}", bytes[i]).as_bytes());
            i += 1;
            continue;
        }
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        let Some(value) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) else {
            return Err(BadPath(format!("the path has a broken percent-encoding at byte {i}")));
        };
        if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
            out.push(value);
        } else {
            out.extend_from_slice(format!("%{value:02X}").as_bytes());
        }
        i += 3;
    }
    Ok(String::from_utf8(out).expect("the normal form is ASCII"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(path: &str) -> String {
        normalize(path).unwrap().into_owned()
    }

    #[test]
    fn dot_segments_escapes_and_slashes_cannot_hide_a_path() {
        assert_eq!(normal("/public/../blocked/x"), "/blocked/x");
        assert_eq!(normal("/public/%2e%2e/blocked/x"), "/blocked/x");
        assert_eq!(normal("/public/%2E%2E/blocked/x"), "/blocked/x");
        assert_eq!(normal("/public/.%2e/blocked/x"), "/blocked/x");
        assert_eq!(normal("//blocked//x"), "/blocked/x");
        assert_eq!(normal("/%62locked/x"), "/blocked/x");
        assert_eq!(normal("/./blocked/./x"), "/blocked/x");
        assert_eq!(normal("/../../blocked"), "/blocked");
    }

    /// The one-scan check says what the plain definition says, on every path built from pieces
    /// normalisation cares about.
    #[test]
    fn the_fast_check_agrees_with_the_definition() {
        let plain = |p: &str| {
            p.is_ascii() && !p.contains('%') && !p.contains("//") && !p.split('/').any(|s| s == "." || s == "..")
        };
        let pieces = ["a", ".", "..", "", "...", ".a", "a.", "%41", "\u{e9}"];
        let mut paths = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> =
                paths.iter().flat_map(|p| pieces.iter().map(move |piece| format!("{p}/{piece}"))).collect();
            paths.extend(longer);
        }
        let unrooted: Vec<String> = paths.iter().filter_map(|p| p.strip_prefix('/').map(String::from)).collect();
        paths.extend(unrooted);
        for path in &paths {
            assert_eq!(is_normal(path), plain(path), "{path:?}");
        }
    }

    #[test]
    fn what_is_data_stays_data() {
        assert_eq!(normal("/a%2fb"), "/a%2Fb", "an encoded slash is not a separator");
        assert_eq!(normal("/a%20b"), "/a%20b");
        assert_eq!(normal("/caf\u{e9}/../menu"), "/menu");
        assert_eq!(normal("/caf\u{e9}"), "/caf%C3%A9", "as a browser would send it");
        assert_eq!(normal("/a/b/"), "/a/b/");
        assert_eq!(normal("/a/b/.."), "/a/");
        assert_eq!(normal("/"), "/");
        assert_eq!(normal("*"), "*");
        assert!(matches!(normalize("/plain/path"), Ok(Cow::Borrowed(_))), "a normal path is not copied");
        assert!(normalize("/a%zzb").is_err());
        assert!(normalize("/a%2").is_err());
    }
}
