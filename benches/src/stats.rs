//! Latency samples and their percentiles.

use std::time::Duration;

/// A sorted set of latency samples.
#[derive(Clone, Debug)]
pub struct Latencies {
    sorted: Vec<Duration>,
}

impl Latencies {
    /// Sorts `samples`. Panics on an empty set: a benchmark that measured nothing is broken.
    pub fn new(mut samples: Vec<Duration>) -> Latencies {
        assert!(!samples.is_empty(), "no latency samples were taken");
        samples.sort_unstable();
        Latencies { sorted: samples }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Never true (see [`Latencies::new`]); here for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The `p`-quantile (0.0..=1.0), nearest rank.
    pub fn percentile(&self, p: f64) -> Duration {
        let i = ((self.sorted.len() as f64 - 1.0) * p).round() as usize;
        self.sorted[i.min(self.sorted.len() - 1)]
    }

    /// The median.
    pub fn p50(&self) -> Duration {
        self.percentile(0.5)
    }

    /// The 99th percentile.
    pub fn p99(&self) -> Duration {
        self.percentile(0.99)
    }

    /// The largest sample.
    pub fn max(&self) -> Duration {
        self.sorted[self.sorted.len() - 1]
    }
}

/// `d` in microseconds with one decimal.
pub fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

/// `d` in milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let l = Latencies::new((1..=100).rev().map(Duration::from_micros).collect());
        assert_eq!(l.p50(), Duration::from_micros(51));
        assert_eq!(l.p99(), Duration::from_micros(99));
        assert_eq!(l.max(), Duration::from_micros(100));
        assert_eq!(l.percentile(0.0), Duration::from_micros(1));
    }

    #[test]
    fn one_sample_is_every_percentile() {
        let l = Latencies::new(vec![Duration::from_millis(3)]);
        assert_eq!(l.p50(), l.p99());
        assert_eq!(ms(l.max()), "3.00");
    }
}
