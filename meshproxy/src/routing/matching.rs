use std::cmp::Reverse;

use gateway_api::apis::standard::httproutes::{
    HttpRouteRulesMatches, HttpRouteRulesMatchesHeadersType, HttpRouteRulesMatchesPathType,
    HttpRouteRulesMatchesQueryParamsType,
};
use http::{HeaderMap, Method};
use regex::Regex;

/// What matching looks at in a request.
pub struct RequestFacts<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

#[derive(Debug, Clone)]
enum PathMatch {
    Exact(String),
    /// Stored without a trailing slash; matches whole path segments.
    Prefix(String),
    Regex(Regex),
}

#[derive(Debug, Clone)]
enum ValueMatch {
    Exact(String),
    Regex(Regex),
}

impl ValueMatch {
    fn matches(&self, value: &str) -> bool {
        match self {
            ValueMatch::Exact(expected) => value == expected,
            ValueMatch::Regex(regex) => regex.is_match(value),
        }
    }
}

/// One compiled `matches[]` entry: all its conditions must hold.
#[derive(Debug, Clone)]
pub struct RequestMatch {
    path: PathMatch,
    method: Option<Method>,
    headers: Vec<(http::header::HeaderName, ValueMatch)>,
    query: Vec<(String, ValueMatch)>,
}

/// Gateway API precedence, smaller first: exact path, then the longest prefix (regular
/// expressions rank after prefixes, an implementation-specific choice), then a method match, then
/// the most header matches, then the most query matches.
pub type Precedence = (u8, Reverse<usize>, u8, Reverse<usize>, Reverse<usize>);

impl RequestMatch {
    /// `None` is a rule without matches: a prefix match on `/`.
    pub fn compile(spec: Option<&HttpRouteRulesMatches>) -> Result<RequestMatch, (String, String)> {
        let Some(spec) = spec else {
            return Ok(RequestMatch {
                path: PathMatch::Prefix(String::new()),
                method: None,
                headers: vec![],
                query: vec![],
            });
        };
        let path = match &spec.path {
            None => PathMatch::Prefix(String::new()),
            Some(path) => {
                let value = path.value.clone().unwrap_or_else(|| "/".to_string());
                match path.r#type.clone().unwrap_or(HttpRouteRulesMatchesPathType::PathPrefix) {
                    HttpRouteRulesMatchesPathType::Exact => PathMatch::Exact(value),
                    HttpRouteRulesMatchesPathType::PathPrefix => {
                        if !value.starts_with('/') {
                            return Err(("path.value".into(), format!("{value:?} must start with /")));
                        }
                        PathMatch::Prefix(value.trim_end_matches('/').to_string())
                    }
                    HttpRouteRulesMatchesPathType::RegularExpression => {
                        PathMatch::Regex(full_match(&value).map_err(|e| ("path.value".to_string(), e))?)
                    }
                }
            }
        };
        let method = match &spec.method {
            None => None,
            Some(method) => {
                let text =
                    serde_json::to_value(method).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                Some(Method::from_bytes(text.as_bytes()).map_err(|_| ("method".to_string(), format!("{text:?}")))?)
            }
        };
        let mut headers = Vec::new();
        for (i, header) in spec.headers.iter().flatten().enumerate() {
            let name = http::header::HeaderName::from_bytes(header.name.as_bytes())
                .map_err(|_| (format!("headers[{i}].name"), format!("{:?} is not a header name", header.name)))?;
            let value = match header.r#type.clone().unwrap_or(HttpRouteRulesMatchesHeadersType::Exact) {
                HttpRouteRulesMatchesHeadersType::Exact => ValueMatch::Exact(header.value.clone()),
                HttpRouteRulesMatchesHeadersType::RegularExpression => {
                    ValueMatch::Regex(full_match(&header.value).map_err(|e| (format!("headers[{i}].value"), e))?)
                }
            };
            headers.push((name, value));
        }
        let mut query = Vec::new();
        for (i, param) in spec.query_params.iter().flatten().enumerate() {
            let value = match param.r#type.clone().unwrap_or(HttpRouteRulesMatchesQueryParamsType::Exact) {
                HttpRouteRulesMatchesQueryParamsType::Exact => ValueMatch::Exact(param.value.clone()),
                HttpRouteRulesMatchesQueryParamsType::RegularExpression => {
                    ValueMatch::Regex(full_match(&param.value).map_err(|e| (format!("queryParams[{i}].value"), e))?)
                }
            };
            query.push((param.name.clone(), value));
        }
        Ok(RequestMatch { path, method, headers, query })
    }

    /// The prefix a PathPrefix match matched (without a trailing slash; empty for `/`), which
    /// ReplacePrefixMatch replaces. None for exact and regular-expression matches.
    pub fn matched_prefix(&self) -> Option<&str> {
        match &self.path {
            PathMatch::Prefix(prefix) => Some(prefix),
            _ => None,
        }
    }

    pub fn precedence(&self) -> Precedence {
        let (kind, length) = match &self.path {
            PathMatch::Exact(p) => (0, p.len()),
            PathMatch::Prefix(p) => (1, p.len()),
            PathMatch::Regex(_) => (2, 0),
        };
        (kind, Reverse(length), u8::from(self.method.is_none()), Reverse(self.headers.len()), Reverse(self.query.len()))
    }

    pub fn matches(&self, request: &RequestFacts<'_>) -> bool {
        let path_ok = match &self.path {
            PathMatch::Exact(expected) => request.path == expected,
            PathMatch::Prefix(prefix) => {
                request.path.starts_with(prefix.as_str())
                    && matches!(request.path.as_bytes().get(prefix.len()), None | Some(b'/'))
            }
            PathMatch::Regex(regex) => regex.is_match(request.path),
        };
        path_ok
            && self.method.as_ref().is_none_or(|m| m == request.method)
            && self.headers.iter().all(|(name, expected)| {
                // Repeated headers are matched as one comma-joined value, as HTTP allows.
                let values: Vec<&str> = request.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
                !values.is_empty() && expected.matches(&values.join(","))
            })
            && self
                .query
                .iter()
                .all(|(name, expected)| query_value(request.query, name).is_some_and(|value| expected.matches(&value)))
    }
}

/// Regular expressions match the whole value, as Envoy and Istio do (Flagger's A/B cookie
/// expressions are written for that).
fn full_match(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("{pattern:?} is not a regular expression: {e}"))
}

/// The first value of `name` in a query string, percent-decoded.
fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high * 16 + low);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::{percent_decode, query_value};

    #[test]
    fn reads_query_values() {
        assert_eq!(query_value(Some("a=1&b=two%20words&c"), "b").as_deref(), Some("two words"));
        assert_eq!(query_value(Some("a=1"), "z"), None);
        assert_eq!(query_value(Some("c"), "c").as_deref(), Some(""));
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
