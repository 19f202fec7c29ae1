//! A `multipart/form-data` request body, read to its very end.
//!
//! multer stops at the closing `--boundary--`; the line break after it, or the end of a
//! chunked body, may still be on its way. Answered before those bytes are read, a request
//! leaves hyper unable to reuse the connection, which it then drops after the answer, while
//! the client is already sending its next request down it. So the body's stream is shared
//! between multer and [`FormBody::finish`], which reads what multer left (`http::drain`).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, BodyDataStream, Bytes};
use axum::http::{HeaderMap, header};
use futures_util::{Stream, StreamExt};

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

    /// Reads and drops the rest of the body (see `http::drain`): true when it ended, so the
    /// connection can serve another request.
    pub(super) async fn finish(&mut self) -> bool {
        crate::http::drain(Body::from_stream(self.body.clone())).await
    }
}
