//! The per-delivery resource limiter: one memory budget shared by ALL linear memories of the
//! plugin's instance, plus caps on how many instances, memories and tables it may create.
//!
//! wasmtime's `StoreLimits` caps each memory on its own, so a component with two memories (or
//! several core modules) could use twice its budget. This limiter sums every approved growth,
//! initial allocations included (wasmtime reports those as growth from 0).
//!
//! Invariants: `used` is the sum of the current byte sizes of the store's memories as far as the
//! limiter approved them; a growth the limiter approved but the engine then failed is given
//! back; `refused` becomes true at the first refusal and stays true, so the runtime can report a
//! trap that follows as `MemoryExceeded` rather than a generic trap.

use wasmtime::ResourceLimiter;

/// Core instances one plugin instance may create. A Rust component has a handful; Python and
/// JavaScript components (interpreter + libc + adapters) a few dozen.
pub const MAX_INSTANCES: usize = 100;
/// Linear memories one plugin instance may create.
pub const MAX_MEMORIES: usize = 8;
/// Tables one plugin instance may create.
pub const MAX_TABLES: usize = 100;
/// Elements one table may hold (each costs a pointer in the host).
pub const MAX_TABLE_ELEMENTS: usize = 100_000;

/// A memory budget over all linear memories of one store.
#[derive(Debug)]
pub struct MemoryLimiter {
    /// Budget in bytes for all memories together.
    cap: usize,
    /// Bytes approved so far.
    used: usize,
    /// The last approved growth, in bytes, given back if the engine then fails it.
    last_growth: usize,
    /// Whether a memory growth was refused for exceeding the budget.
    refused: bool,
    /// The size that was asked for when the first refusal happened (for the message).
    refused_request: usize,
}

impl MemoryLimiter {
    /// A limiter allowing `cap` bytes over all memories. Caps past the address space saturate.
    pub fn new(cap: u64) -> MemoryLimiter {
        MemoryLimiter {
            cap: usize::try_from(cap).unwrap_or(usize::MAX),
            used: 0,
            last_growth: 0,
            refused: false,
            refused_request: 0,
        }
    }

    /// Whether a growth was refused for exceeding the budget.
    pub fn refused(&self) -> bool {
        self.refused
    }

    /// Bytes currently held by all memories.
    pub fn used(&self) -> usize {
        self.used
    }

    /// A message for operators when the budget was exceeded.
    pub fn refusal_message(&self) -> String {
        format!(
            "the plugin asked for {} bytes of linear memory in total; its manifest allows {} \
             (raise `memory` in the manifest if it really needs more)",
            self.refused_request, self.cap
        )
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // `desired >= current` always holds for growth; `saturating_sub` keeps a misbehaving
        // report from underflowing rather than trusting it.
        let growth = desired.saturating_sub(current);
        let total = self.used.saturating_add(growth);
        if total > self.cap {
            if !self.refused {
                self.refused = true;
                self.refused_request = total;
            }
            // `Ok(false)`: `memory.grow` returns -1 and the guest may recover (e.g. a failed
            // `try_reserve`); an infallible allocation then traps, which the runtime reports as
            // `MemoryExceeded` because `refused` is set.
            return Ok(false);
        }
        self.used = total;
        self.last_growth = growth;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // The engine refused a growth we approved (past the memory's declared maximum, or the
        // OS had no memory): that growth never happened, so give it back.
        self.used = self.used.saturating_sub(self.last_growth);
        self.last_growth = 0;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 64 * 1024;

    #[test]
    fn the_budget_covers_all_memories_together() {
        let mut limiter = MemoryLimiter::new(10 * PAGE as u64);
        // Two memories of 4 pages each: 8 pages, within the budget.
        assert!(limiter.memory_growing(0, 4 * PAGE, None).unwrap());
        assert!(limiter.memory_growing(0, 4 * PAGE, None).unwrap());
        assert_eq!(limiter.used(), 8 * PAGE);
        // Growing the first by 3 pages would make 11: refused, although that memory alone
        // (7 pages) is under the budget.
        assert!(!limiter.memory_growing(4 * PAGE, 7 * PAGE, None).unwrap());
        assert!(limiter.refused());
        assert_eq!(limiter.used(), 8 * PAGE);
        // Two more pages still fit.
        assert!(limiter.memory_growing(4 * PAGE, 6 * PAGE, None).unwrap());
        assert_eq!(limiter.used(), 10 * PAGE);
        assert!(limiter.refusal_message().contains(&(11 * PAGE).to_string()));
    }

    #[test]
    fn a_failed_growth_is_given_back() {
        let mut limiter = MemoryLimiter::new(10 * PAGE as u64);
        assert!(limiter.memory_growing(0, 2 * PAGE, None).unwrap());
        assert!(limiter.memory_growing(2 * PAGE, 5 * PAGE, None).unwrap());
        limiter
            .memory_grow_failed(wasmtime::Error::msg("past the maximum"))
            .unwrap();
        assert_eq!(limiter.used(), 2 * PAGE);
        assert!(!limiter.refused());
    }

    #[test]
    fn tables_are_capped() {
        let mut limiter = MemoryLimiter::new(0);
        assert!(limiter.table_growing(0, MAX_TABLE_ELEMENTS, None).unwrap());
        assert!(
            !limiter
                .table_growing(0, MAX_TABLE_ELEMENTS + 1, None)
                .unwrap()
        );
    }
}
