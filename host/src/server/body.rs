//! Reading a webhook body under its limits: a size cap enforced while reading (never after
//! buffering), a deadline for the whole body, and a count of the bytes actually read.
//!
//! Invariants: at most `max` bytes are kept, and reading stops at the first frame that would
//! exceed them, so a huge body costs at most `max` plus one frame (hyper's frames are at most
//! its read buffer, which `serve` caps at 64 KiB; HTTP/2 frames are 16 KiB). A declared
//! `Content-Length` over the cap is refused before reading anything.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use axum::{
    body::Body,
    http::{HeaderMap, header::CONTENT_LENGTH},
};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

use super::error::HttpError;

/// Where read bytes are counted: the `wasmhook_ingress_body_bytes_total{source}` counter and a
/// total the caller can inspect (tests).
pub(super) struct ReadCounter<'a> {
    pub source: &'a str,
    pub total: &'a AtomicU64,
}

/// Reads the whole body, refusing it as soon as it exceeds `max` bytes or when it is not
/// complete within `timeout`.
pub(super) async fn read_body(
    body: Body,
    headers: &HeaderMap,
    max: usize,
    timeout: Duration,
    counter: ReadCounter<'_>,
) -> Result<Bytes, HttpError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(HttpError::body_too_large(max));
    }
    // Reserve what was declared (already known to be within the cap), else a small start.
    let capacity = declared.map_or(8 * 1024, |len| len as usize);
    match tokio::time::timeout(timeout, collect(body, max, capacity, &counter)).await {
        Err(_elapsed) => Err(HttpError::body_timeout(timeout)),
        Ok(result) => result,
    }
}

async fn collect(
    mut body: Body,
    max: usize,
    capacity: usize,
    counter: &ReadCounter<'_>,
) -> Result<Bytes, HttpError> {
    let bytes_read = metrics::counter!("wasmhook_ingress_body_bytes_total", "source" => counter.source.to_string());
    let mut buffer = BytesMut::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| HttpError::bad_body())?;
        let Ok(data) = frame.into_data() else {
            // Trailers carry nothing we sign or store.
            continue;
        };
        bytes_read.increment(data.len() as u64);
        counter
            .total
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        if buffer.len() + data.len() > max {
            return Err(HttpError::body_too_large(max));
        }
        buffer.extend_from_slice(&data);
    }
    Ok(buffer.freeze())
}

#[cfg(test)]
mod tests {
    use std::{
        convert::Infallible,
        pin::Pin,
        task::{Context, Poll},
    };

    use axum::http::{HeaderValue, StatusCode};
    use http_body::Frame;

    use super::*;

    /// A body of `chunks` chunks of `size` bytes each, then (if `stall`) a pause forever.
    struct Chunks {
        left: usize,
        size: usize,
        stall: bool,
    }

    impl http_body::Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            if self.left == 0 {
                return if self.stall {
                    Poll::Pending
                } else {
                    Poll::Ready(None)
                };
            }
            self.left -= 1;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; self.size])))))
        }
    }

    async fn read(body: Chunks, headers: HeaderMap, max: usize) -> (Result<Bytes, HttpError>, u64) {
        let total = AtomicU64::new(0);
        let result = read_body(
            Body::new(body),
            &headers,
            max,
            Duration::from_millis(200),
            ReadCounter {
                source: "test",
                total: &total,
            },
        )
        .await;
        (result, total.load(Ordering::Relaxed))
    }

    #[tokio::test]
    async fn a_body_within_the_cap_is_read_whole() {
        let (body, total) = read(
            Chunks {
                left: 4,
                size: 25,
                stall: false,
            },
            HeaderMap::new(),
            100,
        )
        .await;
        assert_eq!(body.unwrap().len(), 100);
        assert_eq!(total, 100);
    }

    #[tokio::test]
    async fn reading_stops_at_the_first_frame_over_the_cap() {
        let (body, total) = read(
            Chunks {
                left: 1000,
                size: 64,
                stall: false,
            },
            HeaderMap::new(),
            1000,
        )
        .await;
        assert_eq!(body.unwrap_err().status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(total, 1024, "16 frames were read: the 16th crossed the cap");
    }

    #[tokio::test]
    async fn a_declared_length_over_the_cap_reads_nothing() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("50000000"));
        let (body, total) = read(
            Chunks {
                left: 10,
                size: 10,
                stall: false,
            },
            headers,
            1000,
        )
        .await;
        assert_eq!(body.unwrap_err().code(), "body_too_large");
        assert_eq!(total, 0);
    }

    #[tokio::test]
    async fn a_stalled_body_times_out() {
        let (body, total) = read(
            Chunks {
                left: 1,
                size: 10,
                stall: true,
            },
            HeaderMap::new(),
            1000,
        )
        .await;
        assert_eq!(body.unwrap_err().status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(total, 10);
    }
}
