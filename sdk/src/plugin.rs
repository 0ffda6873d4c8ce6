//! The one trait a plugin implements.

use crate::records::RecordList;
use crate::verdict::{CallContext, FetchVerdict, ProduceVerdict};

/// A broker plugin. `export_plugin!(MyPlugin)` makes a type the plugin's entry point.
///
/// The broker calls `init` once per instance with the manifest's `[config]` table as JSON and
/// keeps the value it returns for every later call on that instance. It may run several
/// instances and replaces an instance after any trap, so keep no state that must survive one.
///
/// A panic is a trap: the broker refuses the batch (produce) or fails the partition (fetch).
/// Plugins have no filesystem, network, clock or randomness; touching them traps too.
pub trait Plugin: Sized + 'static {
    /// Builds the plugin from its configuration. An error refuses the plugin at load time and
    /// is shown to the operator.
    fn init(config: &str) -> Result<Self, String>;

    /// Called for every batch produced to a bound topic, before it is stored. Default: accept.
    fn on_produce(&self, ctx: &CallContext, records: &RecordList<'_>) -> ProduceVerdict {
        let _ = (ctx, records);
        ProduceVerdict::Accept
    }

    /// Called for every batch fetched from a bound topic, before it is returned to
    /// `ctx.principal`. Default: pass.
    fn on_fetch(&self, ctx: &CallContext, records: &RecordList<'_>) -> FetchVerdict {
        let _ = (ctx, records);
        FetchVerdict::Pass
    }
}
