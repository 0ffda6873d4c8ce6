//! The [`Authorizer`] as a [`Reloadable`] target, and [`PolicyWatcher`], which reloads it when
//! its policy directory changes (through [`crate::reload`], like every watched file).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::reload::{Problem, Reloadable, Reloads, Sources, Watch, WatchError};

use super::decide::Authorizer;
use super::diagnostics::PolicyDiagnostic;
use super::load::{Generation, PolicyStore};
use super::schema::{ENTITIES_FILE, SCHEMA_FILE};

/// Quiet time after the last event before reloading.
pub use crate::reload::DEBOUNCE;
/// Longest delay between the first event and the reload.
pub const MAX_DELAY: Duration = Duration::from_millis(500);

impl Reloadable for Authorizer {
    type Next = Generation;
    type Error = Vec<PolicyDiagnostic>;

    fn kind(&self) -> &'static str {
        "policies"
    }

    /// Parses, validates and indexes the directory, off the request path.
    fn load(&self) -> Result<Generation, Vec<PolicyDiagnostic>> {
        PolicyStore::load(self.current().dir())
    }

    fn swap(&self, next: Generation) -> Option<u64> {
        let number = next.number();
        self.install(next);
        Some(number)
    }

    fn generation(&self) -> u64 {
        Authorizer::generation(self)
    }

    fn problems(&self, diagnostics: &Vec<PolicyDiagnostic>) -> Vec<Problem> {
        diagnostics
            .iter()
            .map(|d| {
                let message = match &d.help {
                    Some(help) => format!("{} (help: {help})", d.message),
                    None => d.message.clone(),
                };
                Problem::at(d.file.clone(), d.line, d.column, message)
            })
            .collect()
    }

    fn reloads(&self) -> &Reloads {
        &self.reloads
    }
}

/// Watches a policy directory until dropped.
#[derive(Debug)]
pub struct PolicyWatcher {
    _watch: Watch,
}

impl PolicyWatcher {
    /// Watches the directory of `authorizer`'s current generation; a change is served within
    /// about [`DEBOUNCE`] (at most [`MAX_DELAY`]) plus the load time.
    pub fn start(authorizer: Arc<Authorizer>) -> Result<Self, WatchError> {
        let sources = Sources {
            dirs: vec![authorizer.current().dir().to_path_buf()],
            relevant: Arc::new(is_policy_file),
            max_delay: MAX_DELAY,
        };
        let authorizer = Arc::downgrade(&authorizer);
        let watch = crate::reload::watch("policy-watcher", sources, move || {
            if let Some(authorizer) = authorizer.upgrade() {
                // Logged and kept by `reload`: the last good generation keeps serving.
                let _ = authorizer.reload();
            }
        })?;
        Ok(PolicyWatcher { _watch: watch })
    }
}

/// Whether a path is one the policy store reads.
fn is_policy_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.')
        && (name.ends_with(".cedar") || name == SCHEMA_FILE || name == ENTITIES_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_policy_files_are_relevant() {
        assert!(is_policy_file(Path::new("/p/a.cedar")));
        assert!(is_policy_file(Path::new("/p/schema.cedarschema")));
        assert!(is_policy_file(Path::new("/p/entities.json")));
        assert!(!is_policy_file(Path::new("/p/.a.cedar.swp")));
        assert!(!is_policy_file(Path::new("/p/README.md")));
    }
}
