//! URLRewrite and RequestRedirect: new paths and hosts from the matched request, by the Gateway
//! API's rules (a prefix replacement swaps whole path segments; well-known ports are left out of
//! a redirect's Location).

use http::StatusCode;

/// How a filter changes the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathChange {
    Full(String),
    /// Replaces the part the rule's PathPrefix match matched.
    Prefix(String),
}

impl PathChange {
    /// The new path for `path`, which the rule matched with `matched_prefix` (stored without a
    /// trailing slash; empty for `/`).
    pub fn apply(&self, path: &str, matched_prefix: Option<&str>) -> String {
        match self {
            PathChange::Full(full) => full.clone(),
            PathChange::Prefix(replacement) => {
                let Some(prefix) = matched_prefix else { return path.to_string() };
                let rest = path.get(prefix.len()..).unwrap_or("");
                let joined = format!("{}{rest}", replacement.trim_end_matches('/'));
                if joined.is_empty() { "/".to_string() } else { joined }
            }
        }
    }
}

/// A URLRewrite filter.
#[derive(Debug, Clone, Default)]
pub struct UrlRewrite {
    pub hostname: Option<String>,
    pub path: Option<PathChange>,
}

/// A RequestRedirect filter.
#[derive(Debug, Clone)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub path: Option<PathChange>,
    pub status: StatusCode,
}

impl Redirect {
    /// The `Location` for a request to `authority` (host, maybe with port) with `path` and
    /// `query`, received over `scheme`.
    pub fn location(
        &self,
        scheme: &str,
        authority: &str,
        path: &str,
        query: Option<&str>,
        matched_prefix: Option<&str>,
    ) -> String {
        let (request_host, request_port) = split_authority(authority);
        let new_scheme = self.scheme.as_deref().unwrap_or(scheme);
        let host = self.hostname.as_deref().unwrap_or(request_host);
        let port = match (self.port, &self.scheme) {
            (Some(port), _) => Some(port),
            (None, Some(_)) => None,
            (None, None) => request_port,
        };
        let well_known = matches!((new_scheme, port), ("http", Some(80)) | ("https", Some(443)));
        let port = match port {
            Some(port) if !well_known => format!(":{port}"),
            _ => String::new(),
        };
        let path = match &self.path {
            Some(change) => change.apply(path, matched_prefix),
            None => path.to_string(),
        };
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        format!("{new_scheme}://{host}{port}{path}{query}")
    }
}

fn split_authority(authority: &str) -> (&str, Option<u16>) {
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (authority, None),
        },
        _ => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_replacement_swaps_whole_segments() {
        let to = |r: &str| PathChange::Prefix(r.to_string());
        assert_eq!(to("/xyz").apply("/foo/bar", Some("/foo")), "/xyz/bar");
        assert_eq!(to("/").apply("/foo/bar", Some("/foo")), "/bar");
        assert_eq!(to("/").apply("/foo", Some("/foo")), "/");
        assert_eq!(to("/xyz/").apply("/foo/", Some("/foo")), "/xyz/");
        assert_eq!(to("/api").apply("/x", Some("")), "/api/x");
        assert_eq!(PathChange::Full("/new".into()).apply("/old/path", Some("/old")), "/new");
    }

    #[test]
    fn redirect_locations() {
        let redirect = Redirect {
            scheme: Some("https".into()),
            hostname: None,
            port: None,
            path: None,
            status: StatusCode::MOVED_PERMANENTLY,
        };
        assert_eq!(redirect.location("http", "podinfo:8080", "/a", Some("b=1"), None), "https://podinfo/a?b=1");
        let redirect = Redirect { scheme: None, hostname: Some("other".into()), port: Some(443), ..redirect };
        assert_eq!(redirect.location("http", "podinfo:8080", "/a", None, None), "http://other:443/a");
        let redirect = Redirect { port: None, ..redirect };
        assert_eq!(redirect.location("http", "podinfo:8080", "/a", None, None), "http://other:8080/a");
        assert_eq!(redirect.location("http", "podinfo:80", "/a", None, None), "http://other/a");
    }
}
