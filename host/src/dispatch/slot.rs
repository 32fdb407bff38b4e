//! A claimed delivery's hold on the dispatcher's capacity: one of the `workers` slots and one of
//! its plugin's `concurrency` slots, counted by the dispatch loop.
//!
//! Invariant: every slot is handed back exactly once, either explicitly when the plugin's run
//! ends or, whatever way the worker ends (an early return, a panic, an abort at shutdown), when
//! the slot is dropped; a slot handed back twice would let the loop run more than it may.

use tokio::sync::mpsc;

use crate::ids::PluginName;

/// Where the dispatch loop hears that a plugin's slot is free again.
pub(super) type Freed = mpsc::UnboundedSender<PluginName>;

/// One delivery's slot; see the module docs.
pub(super) struct Slot {
    /// `Some` until handed back.
    plugin: Option<PluginName>,
    freed: Freed,
}

impl Slot {
    /// A slot of `plugin`, handed back through `freed`.
    pub(super) fn new(plugin: PluginName, freed: Freed) -> Slot {
        Slot {
            plugin: Some(plugin),
            freed,
        }
    }

    /// Hands the slot back now; later calls (and the drop) do nothing.
    pub(super) fn release(&mut self) {
        if let Some(plugin) = self.plugin.take() {
            // The loop owns the receiver until it stops; after that nobody counts slots.
            let _ = self.freed.send(plugin);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_handed_back_once_whether_released_or_dropped() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut released = Slot::new(PluginName::new("a"), tx.clone());
        released.release();
        released.release();
        drop(released);
        drop(Slot::new(PluginName::new("b"), tx));
        let mut got = Vec::new();
        while let Ok(plugin) = rx.try_recv() {
            got.push(plugin.as_str().to_owned());
        }
        assert_eq!(got, ["a", "b"]);
    }
}
