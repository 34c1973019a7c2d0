//! The client's request body as meshproxy streams it upstream, remembering whether it broke off
//! (bad chunked framing, a client gone mid-body). When an exchange then fails, the failure is the
//! client's, not the endpoint's: it must not count against the endpoint's version, its outlier
//! health, or be retried.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;

use super::client::BoxError;

/// Why the client's body broke off, once it has.
#[derive(Clone, Default)]
pub struct BodyBreak(Arc<OnceLock<String>>);

impl BodyBreak {
    pub fn reason(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

pub struct ClientBody {
    inner: Incoming,
    broke: BodyBreak,
}

impl ClientBody {
    pub fn new(inner: Incoming) -> (ClientBody, BodyBreak) {
        let broke = BodyBreak::default();
        (ClientBody { inner, broke: broke.clone() }, broke)
    }
}

impl HttpBody for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(error))) => {
                let _ = self.broke.0.set(error.to_string());
                Poll::Ready(Some(Err(error.into())))
            }
            other => other.map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
