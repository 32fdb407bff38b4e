//! What the benchmark binaries share: latency summaries ([`stats`]), the command line every
//! benchmark takes ([`args`]) and the Markdown section each one can write for `BENCHMARKS.md`
//! ([`report`]). The benchmarks themselves are the binaries in `src/` (one file each).

pub mod args;
pub mod bare;
pub mod child;
pub mod load;
pub mod report;
pub mod stats;
