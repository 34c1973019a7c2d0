use std::borrow::Cow;

/// The host names a service answers to, as cluster DNS would resolve them: `svc.ns`,
/// `svc.ns.svc` and `svc.ns.svc.cluster.local` (plain `svc` is added by the table when only one
/// namespace has a service of that name).
pub fn host_forms(name: &str, namespace: &str) -> [String; 3] {
    [format!("{name}.{namespace}"), format!("{name}.{namespace}.svc"), format!("{name}.{namespace}.svc.cluster.local")]
}

/// The host part of a Host header or `:authority`, lower-cased, without port or trailing dot;
/// borrowed from `authority` when that is all it takes (the common case: no copy per request).
pub fn normalize_host(authority: &str) -> Cow<'_, str> {
    let host = match authority.as_bytes().iter().rposition(|&b| b == b':') {
        // An IPv6 literal keeps its colons inside brackets.
        Some(colon)
            if authority[colon + 1..].bytes().all(|b| b.is_ascii_digit()) && !authority[..colon].ends_with(':') =>
        {
            &authority[..colon]
        }
        _ => authority,
    };
    let host = host.trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_host;

    #[test]
    fn strips_port_dot_and_case() {
        assert_eq!(normalize_host("PodInfo.Test:9898"), "podinfo.test");
        assert_eq!(normalize_host("podinfo.test.svc.cluster.local."), "podinfo.test.svc.cluster.local");
        assert_eq!(normalize_host("podinfo"), "podinfo");
        assert_eq!(normalize_host("[::1]:80"), "[::1]");
    }
}
