//! Sending one mirrored copy: in the background, bounded in time, counted in metrics under the
//! mirror's backend (so a shadow deployment's success rate and latency can be judged), and
//! otherwise forgotten.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;

use super::Shared;
use super::error::Blame;
use super::head::RequestHead;
use super::mirror::MirrorBody;
use crate::metrics::{RequestLabels, class_of};
use crate::routing::Backend;

/// A mirror that has not answered by then is abandoned.
const MIRROR_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn spawn(
    shared: Arc<Shared>,
    backend: Arc<Backend>,
    head: &RequestHead,
    body: MirrorBody,
    labels: &RequestLabels,
) {
    let mut labels = RequestLabels { backend: backend.name.clone(), ..labels.clone() };
    let Some(endpoint) = backend.pick_endpoint(Default::default()).cloned() else {
        tracing::debug!(backend = %backend.name, "mirror skipped: the backend has no endpoints");
        return;
    };
    labels.version = endpoint.version.clone();
    let Ok(request) = head.to(&endpoint, body.boxed()) else { return };
    let client = shared.upstreams.for_version(request.version()).clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let answer = tokio::time::timeout(MIRROR_TIMEOUT, client.request(request)).await;
        // Timed to the response headers, as for the requests clients see.
        let elapsed = started.elapsed();
        // A mirror that failed is the mirror backend's doing, as for a request clients see.
        let (code, blame) = match answer {
            Ok(Ok(response)) => {
                let code = response.status().as_u16();
                // Read and drop the answer frame by frame, so the connection can be reused.
                let mut body = response.into_body();
                while let Some(Ok(_)) = body.frame().await {}
                (code, "")
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, endpoint = %endpoint.address, "mirrored request failed");
                (502, Blame::Upstream.label())
            }
            Err(_) => (504, Blame::Upstream.label()),
        };
        labels.blame = blame;
        labels.code = code;
        labels.class = class_of(code);
        shared.metrics.observe(labels, elapsed.as_secs_f64());
    });
}
