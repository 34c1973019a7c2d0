//! The client's request as RFC 9110 and RFC 9112 let a proxy take it, before it is routed (the
//! framing hyper has checked already): one Host, no CONNECT (meshproxy is no forward proxy) and no
//! bare-host target, the Host of an absolute-form target taken from the target, and the path in
//! its normal form. What fails here is the client's doing.

use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Request, StatusCode, Uri, header};

use super::error::ProxyError;
use super::path;

pub fn check<B>(request: &mut Request<B>, normalize_paths: bool) -> Result<(), ProxyError> {
    if request.headers().get_all(header::HOST).iter().nth(1).is_some() {
        // RFC 9112 §3.2: a request with more than one Host is answered 400.
        return Err(ProxyError::client(StatusCode::BAD_REQUEST, "the request has more than one Host header"));
    }
    if request.method() == Method::CONNECT {
        return Err(ProxyError::client(
            StatusCode::METHOD_NOT_ALLOWED,
            "CONNECT is not served: meshproxy routes requests to services, it does not open tunnels",
        ));
    }
    // RFC 9112 §3.2.3: the authority-form (`host:port` alone) is for CONNECT only.
    if request.uri().scheme().is_none() && request.uri().authority().is_some() {
        return Err(ProxyError::client(
            StatusCode::BAD_REQUEST,
            "the request target is a bare host, which only CONNECT may send: send a path",
        ));
    }
    // RFC 9112 §3.2.2: with an absolute-form target the received Host is ignored, and a proxy
    // sends on a Host made from the target. (An HTTP/2 request's :authority is the same.)
    if let Some(authority) = request.uri().authority() {
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| ProxyError::client(StatusCode::BAD_REQUEST, "the request target's host is not valid"))?;
        request.headers_mut().insert(header::HOST, host);
    }
    if normalize_paths {
        let normal =
            path::normalize(request.uri().path()).map_err(|bad| ProxyError::client(StatusCode::BAD_REQUEST, bad.0))?;
        if normal != request.uri().path() {
            let with_query = match request.uri().query() {
                Some(query) => format!("{normal}?{query}"),
                None => normal.into_owned(),
            };
            let path_and_query: PathAndQuery = with_query.parse().map_err(|_| {
                ProxyError::client(StatusCode::BAD_REQUEST, format!("the normalised path {with_query:?} is not valid"))
            })?;
            let mut parts = request.uri().clone().into_parts();
            parts.path_and_query = Some(path_and_query);
            *request.uri_mut() = Uri::from_parts(parts).expect("the same URI with another path is valid");
        }
    }
    Ok(())
}
