//! Durations and sizes as humans write them: `"250ms"`, `"10s"`, `"72h"`, `"64MiB"`, `"1MB"`.

use std::time::Duration;

/// Parses `"10s"`, `"1m 30s"`, `"72h"`, `"250ms"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("`{text}` is not a duration ({e}); write e.g. \"500ms\", \"30s\" or \"72h\"")
    })
}

/// Parses `"64MiB"`, `"1 MB"`, `"512KiB"`, `"1048576"` into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("`{text}` is not a size ({e}); write e.g. \"64MiB\" or \"1MB\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(
            parse_duration("72h").unwrap(),
            Duration::from_secs(72 * 3600)
        );
        assert!(parse_duration("ten seconds").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 * 1024 * 1024);
        assert_eq!(parse_size("1MB").unwrap(), 1_000_000);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert!(parse_size("lots").is_err());
    }
}
