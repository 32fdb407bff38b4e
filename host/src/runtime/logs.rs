//! The log lines of one delivery: what the plugin wrote through the `log` import and what it
//! printed on stdout/stderr, kept with the attempt for operators.
//!
//! Everything here is capped so a plugin cannot flood the host: at most [`MAX_LOG_LINES`]
//! lines and [`MAX_LOG_BYTES`] bytes per delivery, each message cut at [`MAX_MESSAGE_BYTES`],
//! and stdout + stderr together at most [`MAX_OUTPUT_BYTES`]. Past a cap, data is dropped and
//! counted, never refused: a refusal would make the guest trap or block. `finish` appends one
//! line saying how much was dropped.
//!
//! The buffer is shared (`SharedLogs`) between the `log` host import and the stdout/stderr
//! streams, which live inside the WASI context; the lock is only held to append.

use std::sync::{Arc, Mutex};

use crate::{ids::now_ms, store::LogLine};

/// Lines kept per delivery.
pub const MAX_LOG_LINES: usize = 1000;
/// Bytes (messages + field keys and values) kept per delivery.
pub const MAX_LOG_BYTES: usize = 256 * 1024;
/// Longest message kept; longer ones are cut (at a character boundary) and marked.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;
/// Fields kept per line.
pub const MAX_FIELDS: usize = 32;
/// Longest field key or value kept.
pub const MAX_FIELD_BYTES: usize = 1024;
/// Bytes of stdout and stderr together captured per delivery.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// Marks a cut message or field.
const CUT_MARK: &str = "…[cut]";

/// The log buffer shared by a delivery's host imports and output streams.
pub type SharedLogs = Arc<Mutex<LogBuffer>>;

/// Which output stream bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    Stdout,
    Stderr,
}

impl OutputKind {
    /// The `level` given to its lines.
    pub fn level(self) -> &'static str {
        match self {
            OutputKind::Stdout => "stdout",
            OutputKind::Stderr => "stderr",
        }
    }
}

/// The capped lines of one delivery.
#[derive(Debug, Default)]
pub struct LogBuffer {
    lines: Vec<LogLine>,
    bytes: usize,
    dropped_lines: u64,
    output_bytes: usize,
    dropped_output_bytes: u64,
    partial_stdout: Vec<u8>,
    partial_stderr: Vec<u8>,
}

impl LogBuffer {
    /// A new empty buffer, shared.
    pub fn shared() -> SharedLogs {
        Arc::new(Mutex::new(LogBuffer::default()))
    }

    /// Builds a line, cutting an oversized message and fields. The line is not stored yet.
    pub fn line(level: &str, message: &str, fields: Vec<(String, String)>) -> LogLine {
        let fields = fields
            .into_iter()
            .take(MAX_FIELDS)
            .map(|(k, v)| (cut(&k, MAX_FIELD_BYTES), cut(&v, MAX_FIELD_BYTES)))
            .collect();
        LogLine {
            at_ms: now_ms(),
            level: level.to_string(),
            message: cut(message, MAX_MESSAGE_BYTES),
            fields,
        }
    }

    /// Stores `line` unless a cap is reached; returns whether it was kept.
    pub fn push(&mut self, line: LogLine) -> bool {
        let size = line_size(&line);
        if self.lines.len() >= MAX_LOG_LINES || self.bytes + size > MAX_LOG_BYTES {
            self.dropped_lines += 1;
            return false;
        }
        self.bytes += size;
        self.lines.push(line);
        true
    }

    /// Captures output bytes: complete lines become log lines with level `stdout`/`stderr`.
    /// Bytes past [`MAX_OUTPUT_BYTES`] are counted and dropped. Returns the lines kept, for
    /// the caller to mirror into the host's log.
    pub fn write_output(&mut self, kind: OutputKind, bytes: &[u8]) -> Vec<LogLine> {
        let room = MAX_OUTPUT_BYTES - self.output_bytes;
        let keep = bytes.len().min(room);
        self.output_bytes += keep;
        self.dropped_output_bytes += (bytes.len() - keep) as u64;

        let mut complete = Vec::new();
        let partial = self.partial_mut(kind);
        for &b in &bytes[..keep] {
            if b == b'\n' {
                complete.push(std::mem::take(partial));
            } else {
                partial.push(b);
                // A very long line without a newline is flushed in pieces, so the partial
                // buffer never outgrows one message.
                if partial.len() >= MAX_MESSAGE_BYTES {
                    complete.push(std::mem::take(partial));
                }
            }
        }
        complete
            .into_iter()
            .filter_map(|raw| self.push_output_line(kind, &raw))
            .collect()
    }

    /// The delivery's lines: unfinished output lines are flushed and, if anything was dropped,
    /// one line at the end says how much.
    pub fn finish(&mut self) -> Vec<LogLine> {
        for kind in [OutputKind::Stdout, OutputKind::Stderr] {
            let raw = std::mem::take(self.partial_mut(kind));
            if !raw.is_empty() {
                self.push_output_line(kind, &raw);
            }
        }
        let mut lines = std::mem::take(&mut self.lines);
        // The notes bypass the caps: they are what tells an operator the caps were hit.
        if self.dropped_lines > 0 {
            lines.push(LogBuffer::line(
                "warn",
                &format!("log truncated: {} lines dropped", self.dropped_lines),
                Vec::new(),
            ));
        }
        if self.dropped_output_bytes > 0 {
            lines.push(LogBuffer::line(
                "warn",
                &format!(
                    "output truncated: {} bytes of stdout/stderr dropped",
                    self.dropped_output_bytes
                ),
                Vec::new(),
            ));
        }
        self.bytes = 0;
        self.dropped_lines = 0;
        self.dropped_output_bytes = 0;
        lines
    }

    /// Lines dropped so far because a cap was reached.
    #[cfg(test)]
    pub fn dropped_lines(&self) -> u64 {
        self.dropped_lines
    }

    fn partial_mut(&mut self, kind: OutputKind) -> &mut Vec<u8> {
        match kind {
            OutputKind::Stdout => &mut self.partial_stdout,
            OutputKind::Stderr => &mut self.partial_stderr,
        }
    }

    fn push_output_line(&mut self, kind: OutputKind, raw: &[u8]) -> Option<LogLine> {
        let text = String::from_utf8_lossy(raw);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        let line = LogBuffer::line(kind.level(), text, Vec::new());
        self.push(line.clone()).then_some(line)
    }
}

/// Bytes a line counts against [`MAX_LOG_BYTES`].
fn line_size(line: &LogLine) -> usize {
    line.message.len()
        + line
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

/// `text` cut to at most `max` bytes (plus the mark) at a character boundary.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT_MARK}", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_cap_are_dropped_and_counted() {
        let mut logs = LogBuffer::default();
        for i in 0..MAX_LOG_LINES + 5 {
            logs.push(LogBuffer::line("info", &format!("line {i}"), Vec::new()));
        }
        assert_eq!(logs.dropped_lines(), 5);
        let lines = logs.finish();
        assert_eq!(lines.len(), MAX_LOG_LINES + 1);
        assert_eq!(lines[0].message, "line 0");
        assert_eq!(
            lines.last().unwrap().message,
            "log truncated: 5 lines dropped"
        );
    }

    #[test]
    fn the_byte_cap_holds_across_lines() {
        let mut logs = LogBuffer::default();
        let big = "x".repeat(MAX_MESSAGE_BYTES);
        let mut kept = 0;
        for _ in 0..100 {
            if logs.push(LogBuffer::line("info", &big, Vec::new())) {
                kept += 1;
            }
        }
        assert_eq!(kept, MAX_LOG_BYTES / MAX_MESSAGE_BYTES);
    }

    #[test]
    fn long_messages_and_fields_are_cut_at_a_char_boundary() {
        let message = "é".repeat(MAX_MESSAGE_BYTES); // 2 bytes each
        let fields = (0..MAX_FIELDS + 3)
            .map(|i| (format!("k{i}"), "v".repeat(MAX_FIELD_BYTES + 1)))
            .collect();
        let line = LogBuffer::line("info", &message, fields);
        assert!(line.message.ends_with(CUT_MARK));
        assert!(line.message.len() <= MAX_MESSAGE_BYTES + CUT_MARK.len());
        assert_eq!(line.fields.len(), MAX_FIELDS);
        assert!(line.fields[0].1.ends_with(CUT_MARK));
    }

    #[test]
    fn output_is_split_into_lines_per_stream() {
        let mut logs = LogBuffer::default();
        let kept = logs.write_output(OutputKind::Stdout, b"hello\nwor");
        assert_eq!(kept.len(), 1);
        logs.write_output(OutputKind::Stderr, b"oops\r\n");
        logs.write_output(OutputKind::Stdout, b"ld");
        let lines = logs.finish();
        let seen: Vec<_> = lines
            .iter()
            .map(|l| (l.level.as_str(), l.message.as_str()))
            .collect();
        assert_eq!(
            seen,
            [("stdout", "hello"), ("stderr", "oops"), ("stdout", "world")]
        );
    }

    #[test]
    fn output_past_its_cap_is_discarded_and_counted() {
        let mut logs = LogBuffer::default();
        let chunk = vec![b'a'; 1000];
        for _ in 0..100 {
            logs.write_output(OutputKind::Stdout, &chunk);
        }
        let lines = logs.finish();
        let captured: usize = lines
            .iter()
            .filter(|l| l.level == "stdout")
            .map(|l| l.message.len())
            .sum();
        assert_eq!(captured, MAX_OUTPUT_BYTES);
        assert_eq!(
            lines.last().unwrap().message,
            format!(
                "output truncated: {} bytes of stdout/stderr dropped",
                100_000 - MAX_OUTPUT_BYTES
            )
        );
    }
}
