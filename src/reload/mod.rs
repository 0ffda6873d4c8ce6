//! Hot reload: everything the broker serves from files (policies, TLS material, credentials,
//! plugins, the plugin keyring) is replaced the same way.
//!
//! A target implements [`Reloadable`]: it loads and fully validates its next generation off to
//! the side, then swaps it in whole (readers keep the `Arc` they took, see [`Slot`]). [`run`]
//! is the only caller of that pair: on any error the generation serving stays, and one log line
//! says `<kind> reloaded generation N` or `<kind> kept generation N (keeping the last good
//! one): file:line:column: ...`. The target's observers (the audit trail and metrics, attached
//! by the broker) hear of each swap or refusal as it happens, in order.
//!
//! [`watch`] is the only file watcher: it decides *when* to reload (directories, not files;
//! rename-into-place and truncate+write saves; debounced).
//!
//! # Layout
//!
//! - [`reloadable`]: [`Reloadable`], [`Reloads`] (per-target state), [`run`], [`Outcome`].
//! - [`watcher`]: [`watch`] over [`Sources`], and the debounce.
//! - [`slot`]: [`Slot`], a generation swapped whole with its number.
//! - [`problem`]: [`Problem`], a refusal located as `file:line:column`.
//!
//! This module imports nothing else of the crate: the leaves (`authz`, `tls`, `sasl`,
//! `plugin`) implement [`Reloadable`], `audit` observes.

pub mod problem;
pub mod reloadable;
pub mod slot;
pub mod watcher;

#[cfg(test)]
mod tests;

pub use problem::Problem;
pub use reloadable::{run, Change, Observer, Outcome, Reloadable, Reloads};
pub use slot::Slot;
pub use watcher::{parent_dir, watch, Sources, Watch, WatchError, DEBOUNCE};
