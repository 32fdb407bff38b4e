//! The header read deadline of a connection, for HTTP/1.1 and HTTP/2 alike: a connection with
//! no request in progress must complete a request's headers within the timeout, counted from
//! when it opened or its last response ended. A slow (or silent) sender is cut there.
//!
//! How: [`Watched`] wraps the connection's byte stream under hyper. The service marks requests
//! in progress with an [`Activity`] guard (taken when hyper hands it a request, i.e. when the
//! headers are complete, and dropped when the response body is done). While none is in
//! progress, a read that would wait past the deadline ends the stream instead:
//! - HTTP/1.1 with part of a request head received: the client is sent a `408` JSON response
//!   (`header_timeout`) and the connection is closed;
//! - otherwise (HTTP/2, or an idle keep-alive connection): the stream reports end-of-file, and
//!   hyper closes the connection.
//!
//! Body deadlines are the handler's (`ingress::read_body`, 408), since only it knows a request
//! is a webhook. Invariant: nothing is written by the watchdog while hyper has unflushed bytes
//! or a request in progress, so a response is never interleaved with the 408.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

/// What a client that was too slow with its headers gets (HTTP/1.1 only).
const TIMEOUT_RESPONSE: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: 109\r\nconnection: close\r\n\r\n{\"error\":{\"code\":\"header_timeout\",\"message\":\"the request headers were not complete within the time allowed\"}}";

/// Requests in progress on one connection, and when it last became idle.
pub struct Activity {
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
    /// Bytes arrived since the connection became idle (a request head has begun).
    partial: AtomicBool,
    /// The reader to wake when the connection becomes idle (so its deadline starts).
    reader: Mutex<Option<Waker>>,
}

/// Marks one request in progress; dropping it (when the response body is done) ends it.
pub struct RequestGuard(Arc<Activity>);

impl Activity {
    /// A connection that opened now.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            partial: AtomicBool::new(false),
            reader: Mutex::new(None),
        })
    }

    /// A request's headers are complete and it is being served.
    pub fn begin(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.partial.store(false, Ordering::Release);
        RequestGuard(Arc::clone(self))
    }

    /// When the header deadline of an idle connection is, or `None` while requests run.
    fn deadline(&self, timeout: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(
            *self
                .idle_since
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                + timeout,
        )
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self
                .0
                .idle_since
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Instant::now();
            self.0.partial.store(false, Ordering::Release);
            // The reader may be parked without a deadline (it was set while busy): wake it so
            // it starts one.
            if let Some(waker) = self
                .0
                .reader
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
            {
                waker.wake();
            }
        }
    }
}

/// Which protocol the connection speaks, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Unknown,
    Http1,
    Http2,
}

/// What the watchdog is doing with the stream.
enum Phase {
    Open,
    /// Writing the 408 response; `usize` bytes written so far.
    Answering(usize),
    /// Cut: reads see end-of-file.
    Closed,
}

/// A connection's byte stream with the header deadline applied.
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    protocol: Protocol,
    /// The connection's first bytes, until the protocol is known.
    seen: ([u8; 4], usize),
    phase: Phase,
    /// hyper wrote bytes it has not flushed yet.
    unflushed: bool,
    listener: &'static str,
}

impl<S> Watched<S> {
    /// Watches `inner` (a TCP or TLS stream) with `timeout` as the header deadline.
    pub fn new(
        inner: S,
        activity: Arc<Activity>,
        timeout: Duration,
        listener: &'static str,
    ) -> Self {
        Watched {
            inner,
            activity,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            protocol: Protocol::Unknown,
            seen: ([0; 4], 0),
            phase: Phase::Open,
            unflushed: false,
            listener,
        }
    }

    fn note_bytes(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.protocol == Protocol::Unknown {
            // The HTTP/2 connection preface starts "PRI * HTTP/2.0"; no HTTP/1 method does.
            const PREFACE: &[u8; 4] = b"PRI ";
            let (seen, len) = &mut self.seen;
            let take = bytes.len().min(4 - *len);
            seen[*len..*len + take].copy_from_slice(&bytes[..take]);
            *len += take;
            self.protocol = if seen[..*len] != PREFACE[..*len] {
                Protocol::Http1
            } else if *len == PREFACE.len() {
                Protocol::Http2
            } else {
                Protocol::Unknown
            };
        }
        if self.activity.in_flight.load(Ordering::Acquire) == 0 {
            self.activity.partial.store(true, Ordering::Release);
        }
    }

    /// The deadline passed with no request in progress: cut the connection.
    fn expire(&mut self) {
        let answer = self.protocol == Protocol::Http1
            && self.activity.partial.load(Ordering::Acquire)
            && !self.unflushed;
        let reason = if answer || self.activity.partial.load(Ordering::Acquire) {
            "header_timeout"
        } else {
            "idle"
        };
        metrics::counter!("wasmhook_connections_cut_total", "listener" => self.listener, "reason" => reason)
            .increment(1);
        tracing::debug!(
            listener = self.listener,
            reason,
            "connection cut at the header deadline"
        );
        self.phase = if answer {
            Phase::Answering(0)
        } else {
            Phase::Closed
        };
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Watched<S> {
    /// Drives the 408 response out; Ready once it is written and the write side shut.
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while let Phase::Answering(written) = self.phase {
            if written == TIMEOUT_RESPONSE.len() {
                // Best effort: the client may already be gone.
                let _ = std::task::ready!(Pin::new(&mut self.inner).poll_shutdown(cx));
                self.phase = Phase::Closed;
                break;
            }
            match std::task::ready!(
                Pin::new(&mut self.inner).poll_write(cx, &TIMEOUT_RESPONSE[written..])
            ) {
                Ok(0) | Err(_) => self.phase = Phase::Closed,
                Ok(n) => self.phase = Phase::Answering(written + n),
            }
        }
        Poll::Ready(())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.phase {
                Phase::Closed => return Poll::Ready(Ok(())),
                Phase::Answering(_) => {
                    std::task::ready!(this.poll_answer(cx));
                    continue;
                }
                Phase::Open => {}
            }
            let before = buf.filled().len();
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Ready(Ok(())) => {
                    // Only the first bytes matter (protocol detection), so copy at most four.
                    let fresh = &buf.filled()[before..];
                    let mut head = [0u8; 4];
                    let n = fresh.len().min(head.len());
                    head[..n].copy_from_slice(&fresh[..n]);
                    if !fresh.is_empty() {
                        this.note_bytes(&head[..n]);
                    }
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
            *this
                .activity
                .reader
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
            let Some(deadline) = this.activity.deadline(this.timeout) else {
                // A request is in progress; its guard wakes us when it ends.
                return Poll::Pending;
            };
            if Instant::now() >= deadline {
                this.expire();
                continue;
            }
            this.sleep.as_mut().reset(deadline);
            if this.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, buf));
        if matches!(written, Ok(n) if n > 0) {
            this.unflushed = true;
        }
        Poll::Ready(written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = std::task::ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs));
        if matches!(written, Ok(n) if n > 0) {
            this.unflushed = true;
        }
        Poll::Ready(written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = std::task::ready!(Pin::new(&mut this.inner).poll_flush(cx));
        if flushed.is_ok() {
            this.unflushed = false;
        }
        Poll::Ready(flushed)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    const TIMEOUT: Duration = Duration::from_millis(100);

    #[test]
    fn the_canned_response_has_a_correct_length() {
        let text = std::str::from_utf8(TIMEOUT_RESPONSE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "header_timeout");
    }

    #[tokio::test]
    async fn a_partial_http1_head_gets_408_at_the_deadline() {
        let (server, mut client) = duplex(4096);
        let mut watched = Watched::new(server, Activity::new(), TIMEOUT, "test");
        client
            .write_all(b"POST /webhooks/x HTTP/1.1\r\nhost: a\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = watched.read(&mut buf).await.unwrap();
        assert!(n > 0);
        let started = Instant::now();
        assert_eq!(watched.read(&mut buf).await.unwrap(), 0, "cut: end of file");
        assert!(started.elapsed() >= TIMEOUT - Duration::from_millis(20));
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert!(
            answer.starts_with(b"HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }

    #[tokio::test]
    async fn http2_and_idle_connections_are_closed_without_an_answer() {
        let (server, mut client) = duplex(4096);
        let mut watched = Watched::new(server, Activity::new(), TIMEOUT, "test");
        client
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        assert!(watched.read(&mut buf).await.unwrap() > 0);
        assert_eq!(watched.read(&mut buf).await.unwrap(), 0);
        drop(watched);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert!(answer.is_empty(), "nothing written into an HTTP/2 stream");

        // A connection that never sends a byte is cut too.
        let (server, _client) = duplex(64);
        let mut watched = Watched::new(server, Activity::new(), TIMEOUT, "test");
        assert_eq!(watched.read(&mut buf).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn no_deadline_while_a_request_runs_and_a_fresh_one_after() {
        let (server, _client) = duplex(64);
        let activity = Activity::new();
        let mut watched = Watched::new(server, activity.clone(), TIMEOUT, "test");
        let guard = activity.begin();
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(TIMEOUT * 3, watched.read(&mut buf)).await;
        assert!(read.is_err(), "still waiting: a request is in progress");
        let ended = Instant::now();
        drop(guard);
        assert_eq!(watched.read(&mut buf).await.unwrap(), 0);
        assert!(
            ended.elapsed() >= TIMEOUT - Duration::from_millis(20),
            "the deadline starts at the end of the request"
        );
    }
}
