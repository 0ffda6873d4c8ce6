//! Authorization: every request is decided by Cedar policies.
//!
//! # Layout
//!
//! - [`schema`]: the Cedar vocabulary ([`Action`], [`ResourceKind`], type names).
//! - [`load`]: [`PolicyStore::load`] turns a policy directory into a [`Generation`].
//! - [`ids`]: stable policy ids (`@id` or `"<file>:<n>"`) and their [`PolicyRef`]s.
//! - [`diagnostics`]: [`PolicyDiagnostic`], Cedar's errors as `file:line:col` plus help.
//! - [`index`]: policies partitioned by (action, resource type) at load time.
//! - [`request`]: [`Request`], [`Resource`] and [`RequestContextFacts`], and their Cedar form.
//! - [`decide`]: [`Authorizer::authorize`] and its [`Decision`] (default deny, forbid wins,
//!   any evaluation error denies, super users bypass).
//! - [`cache`]: the sharded decision cache.
//! - [`acls`], [`acl_store`]: Kafka ACL bindings as generated Cedar policies in a managed file.
//! - [`reload`]: the [`Authorizer`] as a [`crate::reload::Reloadable`], and [`PolicyWatcher`].

pub mod acl_store;
pub mod acls;
pub mod api_map;
pub mod cache;
pub mod decide;
pub mod diagnostics;
pub mod ids;
pub mod index;
pub mod load;
pub mod reload;
pub mod request;
pub mod schema;

pub use decide::{Authorizer, Decision};
pub use diagnostics::PolicyDiagnostic;
pub use ids::PolicyRef;
pub use load::{Generation, PolicyStore};
pub use reload::PolicyWatcher;
pub use request::{Request, RequestContextFacts, Resource};
pub use schema::{Action, ResourceKind};
