//! RequestMirror: a copy of the request goes to another backend while the original is served.
//! The copy's body is fed from the original's as it streams, through a small bounded channel;
//! when the mirror falls behind, its copy is cut off rather than slowing or buffering the real
//! request. Its answer is counted in metrics and thrown away: nothing about it reaches the client.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame};
use tokio::sync::mpsc;

use super::client::{Body, BoxError};

/// Frames a mirror may lag behind the original before its copy is cut.
const MIRROR_LAG: usize = 16;

/// The original request's body, copying each frame to mirrors.
pub struct TeeBody {
    inner: Body,
    copies: Vec<Copy>,
}

struct Copy {
    sender: mpsc::Sender<Frame<Bytes>>,
    cut: Arc<AtomicBool>,
}

/// A mirror's body: the frames the tee copied, then the end; an error if the copy was cut.
pub struct MirrorBody {
    receiver: mpsc::Receiver<Frame<Bytes>>,
    cut: Arc<AtomicBool>,
    size_hint: http_body::SizeHint,
}

impl TeeBody {
    pub fn new(inner: Body) -> TeeBody {
        TeeBody { inner, copies: Vec::new() }
    }

    /// A new copy of everything the original body gives from now on.
    pub fn copy(&mut self) -> MirrorBody {
        let (sender, receiver) = mpsc::channel(MIRROR_LAG);
        let cut = Arc::new(AtomicBool::new(false));
        self.copies.push(Copy { sender, cut: cut.clone() });
        MirrorBody { receiver, cut, size_hint: self.inner.size_hint() }
    }
}

fn duplicate(frame: &Frame<Bytes>) -> Option<Frame<Bytes>> {
    if let Some(data) = frame.data_ref() {
        Some(Frame::data(data.clone()))
    } else {
        frame.trailers_ref().map(|trailers| Frame::trailers(trailers.clone()))
    }
}

impl HttpBody for TeeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                this.copies.retain(|copy| {
                    let Some(frame) = duplicate(frame) else { return true };
                    let sent = copy.sender.try_send(frame).is_ok();
                    if !sent {
                        copy.cut.store(true, Ordering::Release);
                    }
                    sent
                });
            }
            Poll::Ready(Some(Err(_))) => {
                for copy in this.copies.drain(..) {
                    copy.cut.store(true, Ordering::Release);
                }
            }
            // The end: dropping the senders ends the copies cleanly.
            Poll::Ready(None) => this.copies.clear(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TeeBody {
    fn drop(&mut self) {
        // Dropped before its end (the original request failed or was cancelled).
        if !self.inner.is_end_stream() {
            for copy in &self.copies {
                copy.cut.store(true, Ordering::Release);
            }
        }
    }
}

impl HttpBody for MirrorBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match this.receiver.poll_recv(cx) {
            Poll::Ready(Some(frame)) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(None) if this.cut.load(Ordering::Acquire) => {
                Poll::Ready(Some(Err("the mirror fell behind the original request and was cut off".into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.size_hint
    }
}
