//! A generation of loaded plugins and the chain each topic gets from it. Generations are
//! immutable: a reload builds a new one and swaps it in, and a batch keeps the `Arc`s of the
//! plugins it started with.

use std::sync::Arc;

use super::loaded::LoadedPlugin;

/// The plugins of one load of the folder, sorted by (order, name).
#[derive(Debug, Default)]
pub struct Generation {
    pub number: u64,
    plugins: Vec<Arc<LoadedPlugin>>,
}

/// The produce and fetch chains of one topic, in call order.
#[derive(Debug, Default, Clone)]
pub struct Chains {
    pub produce: Vec<Arc<LoadedPlugin>>,
    pub fetch: Vec<Arc<LoadedPlugin>>,
}

impl Generation {
    pub fn new(number: u64, mut plugins: Vec<Arc<LoadedPlugin>>) -> Self {
        plugins.sort_by(|a, b| {
            a.manifest
                .order
                .cmp(&b.manifest.order)
                .then_with(|| a.name.cmp(&b.name))
        });
        Generation { number, plugins }
    }

    pub fn plugins(&self) -> &[Arc<LoadedPlugin>] {
        &self.plugins
    }

    pub fn get(&self, name: &str) -> Option<&Arc<LoadedPlugin>> {
        self.plugins.iter().find(|p| p.name == name)
    }

    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// The produce chain of `topic` (empty for most topics: one pattern test per plugin).
    pub fn produce_chain(&self, topic: &str) -> Vec<Arc<LoadedPlugin>> {
        self.chain(topic, |p| p.manifest.produce)
    }

    pub fn fetch_chain(&self, topic: &str) -> Vec<Arc<LoadedPlugin>> {
        self.chain(topic, |p| p.manifest.fetch)
    }

    fn chain(&self, topic: &str, hook: impl Fn(&LoadedPlugin) -> bool) -> Vec<Arc<LoadedPlugin>> {
        self.plugins
            .iter()
            .filter(|p| hook(p) && p.manifest.matches(topic))
            .cloned()
            .collect()
    }
}
