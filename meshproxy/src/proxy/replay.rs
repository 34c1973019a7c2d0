//! A request body that can be sent again, for retries. The first attempt streams the client's
//! body as it arrives and keeps a copy of what it read, up to a bound; a retry replays the copy
//! and then goes on reading the client. Once more than the bound has been read, the copy is
//! dropped and the request can no longer be retried: memory stays bounded whatever the size.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::client::{Body, BoxError};

/// Bodies up to this size can be retried.
pub const REPLAY_LIMIT: usize = 64 * 1024;

struct Recording {
    /// The client's body, read by whichever attempt is current.
    client: Body,
    chunks: Vec<Bytes>,
    recorded: usize,
    /// More than the limit was read: nothing can be replayed any more.
    overflowed: bool,
    trailers: Option<HeaderMap>,
    ended: bool,
    /// Bumped for each new attempt; a body of an earlier attempt stops reading.
    attempt: u64,
    size_hint: SizeHint,
}

pub struct ReplayBody {
    recording: Arc<Mutex<Recording>>,
    attempt: u64,
    /// Chunks of the recording this copy has already given out.
    position: usize,
    trailers_sent: bool,
}

impl ReplayBody {
    pub fn new(client: Body) -> ReplayBody {
        let size_hint = client.size_hint();
        let recording = Recording {
            client,
            chunks: Vec::new(),
            recorded: 0,
            overflowed: false,
            trailers: None,
            ended: false,
            attempt: 0,
            size_hint,
        };
        ReplayBody { recording: Arc::new(Mutex::new(recording)), attempt: 0, position: 0, trailers_sent: false }
    }

    /// A body for the next attempt, or None when the request's body was too large to keep.
    pub fn next_attempt(&self) -> Option<ReplayBody> {
        let mut recording = self.recording.lock().expect("the replay lock is never poisoned");
        if recording.overflowed {
            return None;
        }
        recording.attempt += 1;
        Some(ReplayBody {
            recording: self.recording.clone(),
            attempt: recording.attempt,
            position: 0,
            trailers_sent: false,
        })
    }

    /// Whether a later attempt could still replay this body.
    pub fn replayable(&self) -> bool {
        !self.recording.lock().expect("the replay lock is never poisoned").overflowed
    }
}

impl HttpBody for ReplayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let mut recording = this.recording.lock().expect("the replay lock is never poisoned");
        if recording.attempt != this.attempt {
            return Poll::Ready(Some(Err("request body superseded by a retry".into())));
        }
        if !recording.overflowed && this.position < recording.chunks.len() {
            let chunk = recording.chunks[this.position].clone();
            this.position += 1;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if recording.ended {
            if !this.trailers_sent
                && let Some(trailers) = recording.trailers.clone()
            {
                this.trailers_sent = true;
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            return Poll::Ready(None);
        }
        let frame = match Pin::new(&mut recording.client).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {
                recording.ended = true;
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        if let Some(data) = frame.data_ref() {
            if !recording.overflowed {
                recording.recorded += data.len();
                if recording.recorded > REPLAY_LIMIT {
                    recording.overflowed = true;
                    recording.chunks = Vec::new();
                } else {
                    recording.chunks.push(data.clone());
                    this.position = recording.chunks.len();
                }
            }
        } else if let Some(trailers) = frame.trailers_ref() {
            recording.trailers = Some(trailers.clone());
            recording.ended = true;
            this.trailers_sent = true;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        let recording = self.recording.lock().expect("the replay lock is never poisoned");
        recording.ended
            && (recording.overflowed || self.position >= recording.chunks.len())
            && (recording.trailers.is_none() || self.trailers_sent)
    }

    fn size_hint(&self) -> SizeHint {
        self.recording.lock().expect("the replay lock is never poisoned").size_hint
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, Full};

    use super::*;

    fn body(bytes: Vec<u8>) -> Body {
        Full::new(Bytes::from(bytes)).map_err(|never| match never {}).boxed()
    }

    #[tokio::test]
    async fn a_small_body_replays_whole() {
        let first = ReplayBody::new(body(b"hello".to_vec()));
        let second = first.next_attempt().unwrap();
        // The first attempt was superseded before it read anything; the second reads everything.
        assert!(first.collect().await.is_err());
        assert_eq!(second.collect().await.unwrap().to_bytes(), "hello");
    }

    #[tokio::test]
    async fn a_read_body_replays_to_the_next_attempt() {
        let first = ReplayBody::new(body(b"hello".to_vec()));
        let keep = first.next_attempt().unwrap();
        let mut reading = keep;
        let read = (&mut reading).collect().await.unwrap().to_bytes();
        assert_eq!(read, "hello");
        let retry = reading.next_attempt().unwrap();
        assert_eq!(retry.collect().await.unwrap().to_bytes(), "hello");
    }

    #[tokio::test]
    async fn a_large_body_cannot_be_replayed() {
        let first = ReplayBody::new(body(vec![7; REPLAY_LIMIT + 1]));
        let mut reading = first.next_attempt().unwrap();
        assert_eq!((&mut reading).collect().await.unwrap().to_bytes().len(), REPLAY_LIMIT + 1);
        assert!(!reading.replayable() && reading.next_attempt().is_none());
    }
}
