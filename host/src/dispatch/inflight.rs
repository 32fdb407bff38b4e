//! The deliveries this process is running, with their lease tokens: what shutdown hands back
//! to the store when the grace period runs out, and what status and tests can inspect.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use crate::ids::{DeliveryId, LeaseToken, PluginName};

/// One running delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Running {
    pub delivery: DeliveryId,
    pub plugin: PluginName,
    pub lease: LeaseToken,
}

/// The set of running deliveries, shared by the loop, the workers and shutdown.
#[derive(Clone, Default)]
pub struct InFlight(Arc<Mutex<HashMap<DeliveryId, Running>>>);

impl InFlight {
    /// Records that `running` started.
    pub(super) fn start(&self, running: Running) {
        self.lock().insert(running.delivery.clone(), running);
    }

    /// Records that `delivery` ended (or was handed back).
    pub(super) fn end(&self, delivery: &DeliveryId) {
        self.lock().remove(delivery);
    }

    /// Takes every entry out (for shutdown).
    pub(super) fn take_all(&self) -> Vec<Running> {
        self.lock().drain().map(|(_, r)| r).collect()
    }

    /// Deliveries running now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is running.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// How many deliveries of `plugin` are running.
    pub fn of_plugin(&self, plugin: &PluginName) -> usize {
        self.lock().values().filter(|r| &r.plugin == plugin).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeliveryId, Running>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_and_go() {
        let set = InFlight::default();
        let running = |id: &str, plugin: &str| Running {
            delivery: DeliveryId::new(id),
            plugin: PluginName::new(plugin),
            lease: LeaseToken::generate(),
        };
        set.start(running("d1", "a"));
        set.start(running("d2", "a"));
        set.start(running("d3", "b"));
        assert_eq!(set.len(), 3);
        assert_eq!(set.of_plugin(&PluginName::new("a")), 2);
        set.end(&DeliveryId::new("d1"));
        assert_eq!(set.of_plugin(&PluginName::new("a")), 1);
        assert_eq!(set.take_all().len(), 2);
        assert!(set.is_empty());
    }
}
