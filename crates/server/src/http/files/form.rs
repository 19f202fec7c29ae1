//! A `multipart/form-data` request body, read to its very end.
//!
//! multer stops at the closing `--boundary--`; the line break after it, or the end of a
//! chunked body, may still be on its way. Answered before those bytes are read, a request
//! leaves hyper unable to reuse the connection, which it then drops after the answer, while
//! the client is already sending its next request down it. So the body's stream is shared
//! between multer and [`FormBody::finish`], which reads what multer left.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes};
use axum::http::{HeaderMap, header};
use futures_util::{Stream, StreamExt};

/// How much of what follows the file `finish` reads, and for how long, before giving up on
/// the connection.
const FINISH_BYTES: usize = 64 * 1024 * 1024;
const FINISH_TIME: Duration = Duration::from_secs(10);

/// The body's stream, shared by multer and [`FormBody::finish`] (never polled by both at once).
#[derive(Clone)]
struct SharedBody(Arc<Mutex<BodyDataStream>>);

impl Stream for SharedBody {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.0.lock() {
            Ok(mut body) => body.poll_next_unpin(cx),
            // A panic while polling: the body is unusable; end it.
            Err(_) => Poll::Ready(None),
        }
    }
}

pub(super) struct FormBody {
    parts: multer::Multipart<'static>,
    body: SharedBody,
}

impl FormBody {
    /// The body, if the request says it is `multipart/form-data` with a boundary.
    pub(super) fn new(headers: &HeaderMap, body: Body) -> Option<Self> {
        let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let boundary = multer::parse_boundary(content_type).ok()?;
        let body = SharedBody(Arc::new(Mutex::new(body.into_data_stream())));
        Some(Self {
            parts: multer::Multipart::new(body.clone(), boundary),
            body,
        })
    }

    /// The next part, or `None` after the closing boundary.
    pub(super) async fn next_part(&mut self) -> Result<Option<multer::Field<'static>>, String> {
        self.parts.next_field().await.map_err(|err| err.to_string())
    }

    /// Reads and drops the rest of the body, parts and all, up to [`FINISH_BYTES`] and
    /// [`FINISH_TIME`]: true when it ended, so the connection can serve another request.
    pub(super) async fn finish(&mut self) -> bool {
        let finish = async {
            let mut seen = 0usize;
            while let Some(mut part) = self.parts.next_field().await.ok()? {
                while let Some(chunk) = part.chunk().await.ok()? {
                    seen += chunk.len();
                    if seen > FINISH_BYTES {
                        return None;
                    }
                }
            }
            while let Some(chunk) = self.body.next().await {
                seen += chunk.ok()?.len();
                if seen > FINISH_BYTES {
                    return None;
                }
            }
            Some(())
        };
        matches!(
            tokio::time::timeout(FINISH_TIME, finish).await,
            Ok(Some(()))
        )
    }
}
