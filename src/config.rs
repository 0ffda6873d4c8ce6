//! Configuration.

/// The broker configuration.
#[derive(Debug, Clone)]
pub struct Config {}
