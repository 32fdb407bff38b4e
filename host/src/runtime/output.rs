//! The plugin's WASI stdout and stderr: captured into the delivery's log lines (level `stdout` /
//! `stderr`) and mirrored into the host's log with the delivery's ids.
//!
//! Invariants: a write never fails, never blocks and never reports the stream closed, whatever
//! the plugin prints: past the per-delivery cap ([`super::logs::MAX_OUTPUT_BYTES`]) bytes are
//! silently discarded and counted. A failing stdout would make many guest runtimes panic (Rust's
//! `println!` does), turning log spam into a trap.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::{
    cli::{IsTerminal, StdoutStream},
    p2::{OutputStream, Pollable, StreamResult},
};

use super::{
    host_log::emit,
    logs::{OutputKind, SharedLogs},
    state::DeliveryTags,
};

/// The write permit offered to the guest each time: the size of one WASI stream chunk, so a
/// guest never has to wait and never allocates more than this per write.
const WRITE_PERMIT: usize = 64 * 1024;

/// One output stream of a delivery. Clones share the same log buffer.
#[derive(Clone)]
pub struct CaptureStream {
    kind: OutputKind,
    logs: SharedLogs,
    tags: Arc<DeliveryTags>,
}

impl CaptureStream {
    /// A stream writing `kind` lines into `logs`.
    pub fn new(kind: OutputKind, logs: SharedLogs, tags: Arc<DeliveryTags>) -> CaptureStream {
        CaptureStream { kind, logs, tags }
    }

    /// Captures `bytes`, mirroring the complete lines kept into the host's log.
    fn capture(&self, bytes: &[u8]) {
        let kept = self
            .logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_output(self.kind, bytes);
        // Emitted after the lock is released: a slow log subscriber must not hold it.
        let level = match self.kind {
            OutputKind::Stdout => tracing::Level::INFO,
            OutputKind::Stderr => tracing::Level::WARN,
        };
        for line in kept {
            emit(level, &self.tags, self.kind.level(), &line.message, "");
        }
    }
}

impl IsTerminal for CaptureStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CaptureStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for CaptureStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.capture(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CaptureStream {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CaptureStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.capture(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ids::{DeliveryId, EventId, PluginName, TenantId},
        runtime::logs::{LogBuffer, MAX_OUTPUT_BYTES},
    };

    fn tags() -> Arc<DeliveryTags> {
        Arc::new(DeliveryTags {
            plugin: PluginName::new("p"),
            event_id: EventId::new("e"),
            delivery_id: DeliveryId::new("d"),
            tenant: TenantId::new("t"),
        })
    }

    #[test]
    fn writes_never_fail_past_the_cap() {
        let logs = LogBuffer::shared();
        let mut out = CaptureStream::new(OutputKind::Stdout, logs.clone(), tags()).p2_stream();
        let chunk = Bytes::from(vec![b'x'; 1000]);
        for _ in 0..200 {
            let permit = out.check_write().expect("stdout stays open");
            assert!(permit >= chunk.len());
            out.write(chunk.clone()).expect("writes never fail");
            out.flush().expect("flush never fails");
        }
        let lines = logs.lock().unwrap().finish();
        let kept: usize = lines
            .iter()
            .filter(|l| l.level == "stdout")
            .map(|l| l.message.len())
            .sum();
        assert_eq!(kept, MAX_OUTPUT_BYTES);
        assert!(
            lines
                .last()
                .unwrap()
                .message
                .starts_with("output truncated")
        );
    }

    #[test]
    fn stdout_and_stderr_share_the_buffer() {
        let logs = LogBuffer::shared();
        let mut out = CaptureStream::new(OutputKind::Stdout, logs.clone(), tags()).p2_stream();
        let mut err = CaptureStream::new(OutputKind::Stderr, logs.clone(), tags()).p2_stream();
        out.write(Bytes::from_static(b"to stdout\n")).unwrap();
        err.write(Bytes::from_static(b"to stderr\n")).unwrap();
        let lines = logs.lock().unwrap().finish();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (lines[0].level.as_str(), lines[0].message.as_str()),
            ("stdout", "to stdout")
        );
        assert_eq!(
            (lines[1].level.as_str(), lines[1].message.as_str()),
            ("stderr", "to stderr")
        );
    }
}
