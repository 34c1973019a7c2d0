//! What meshproxy would send upstream for a request head, without sending anything: the request
//! checks, routing and head building of the forward path, called in its order, with no I/O and no
//! policy (rate limits, faults and breakers act on traffic, not on a head). The fuzz targets drive
//! the request path through here, so what they find is what a client could reach.

use http::{Request, StatusCode, header};

use super::error::ProxyError;
use super::head::RequestHead;
use super::route::{Peer, Route, route};
use super::{request_checks, upgrade};
use crate::metrics::RequestLabels;
use crate::store::Loaded;

/// Where a request head would go.
pub enum Preview {
    /// A redirect meshproxy answers itself.
    Redirect { status: StatusCode, location: Option<String> },
    /// The head sent to the backend's endpoints, the backend, and the service the client addressed.
    Upstream { service: String, backend: String, head: RequestHead },
}

/// The forward path's answer to `request` up to the upstream send: an error blamed as the forward
/// path blames it, a redirect, or the head an endpoint of the chosen backend would receive.
pub fn preview<B>(
    loaded: &Loaded,
    client: Peer,
    mut request: Request<B>,
    normalize_paths: bool,
) -> Result<Preview, ProxyError> {
    request_checks::check(&mut request, normalize_paths)?;
    let mut labels = RequestLabels::default();
    let routed = match route(loaded, client, &request, &mut labels)? {
        Route::To(routed) => routed,
        Route::Redirect(response) => {
            let location = response.headers().get(header::LOCATION).and_then(|l| l.to_str().ok()).map(String::from);
            return Ok(Preview::Redirect { status: response.status(), location });
        }
    };
    let upgrade_protocol =
        if request.version() == http::Version::HTTP_11 { upgrade::requested(request.headers()) } else { None };
    let (parts, _) = request.into_parts();
    let head = RequestHead::build(parts, &routed, upgrade_protocol)?;
    Ok(Preview::Upstream { service: routed.service.name.to_string(), backend: routed.backend().name.to_string(), head })
}
