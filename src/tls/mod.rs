//! TLS for listeners: settings, material loading, hot reload, client principals, dev PKI.
//!
//! # Layout
//!
//! - [`settings`]: the `[tls]` config section ([`TlsSettings`]).
//! - [`material`]: reads and validates the PEM files into a `rustls::ServerConfig`
//!   (TLS 1.2 and 1.3 only, `ring` provider, client certificates verified by webpki).
//! - [`crl`]: CRL parsing; expired CRLs are refused.
//! - [`reload`]: [`TlsReloader`] swaps in new material when the files change.
//! - [`principal`] and [`mapping`]: the principal of a client certificate (subject DN through
//!   Kafka's `ssl.principal.mapping.rules`, or a SAN URI).
//! - [`dev_pki`]: `palisade certs dev`.
//!
//! # Use from a listener
//!
//! As `server::listener::serve_tls` does:
//!
//! ```text
//! let tls = TlsReloader::start(settings)?;           // once per listener
//! let stream = tls.acceptor().accept(tcp).await?;     // per connection: fresh acceptor
//! let principal = peer_principal(stream.get_ref().1, tls.principal_mapper())?;
//! ```

pub mod crl;
pub mod dev_pki;
pub mod error;
pub mod mapping;
pub mod material;
pub mod principal;
pub mod reload;
pub mod settings;

pub use dev_pki::{generate_dev_pki, CertsError, DevCa, DevClient, DevPki, Issued};
pub use error::{PrincipalError, TlsError};
pub use mapping::PrincipalMapper;
pub use material::provider;
pub use material::{load_material, Expiry, ExpiryKind, TlsMaterial, PROTOCOL_VERSIONS};
pub use principal::{peer_principal, principal_from_cert, subject_dn};
pub use reload::TlsReloader;
pub use settings::{ClientAuth, SanUriPrincipal, TlsSettings};
