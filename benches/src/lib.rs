//! wasmhook's benchmarks. Each lives in `benches/` (criterion) or `src/` (a measuring binary)
//! and prints its figures; none is a test.
