//! TLS connections on the one SNI port, routed by the server name of their ClientHello.
//!
//! The name is read before the handshake goes on ([`LazyConfigAcceptor`]), resolved through the
//! [`SniDomain`], and only a name that names a node (or the bootstrap) completes the handshake,
//! with the configured (wildcard) certificate. Any other name, or none, is refused during the
//! handshake with a fatal `unrecognized_name` alert (RFC 6066): the client sees why, and a
//! connection is never routed by a guess.
//!
//! The caller bounds the whole of [`accept`] with its handshake timeout, as for any TLS
//! listener: a client that never sends its ClientHello must not hold a connection forever.

use std::io;
use std::sync::Arc;

use rustls::server::Acceptor;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use super::addressing::{Route, SniDomain, SniNameError};

/// A fatal `unrecognized_name` alert record, sent in the clear as alerts before the
/// ServerHello are: content type alert (21), legacy version TLS 1.2, length 2, level fatal (2),
/// description unrecognized_name (112).
const UNRECOGNIZED_NAME_ALERT: [u8; 7] = [21, 3, 3, 0, 2, 2, 112];

/// A TLS connection that completed its handshake, with where its name routes it.
pub struct SniConnection<IO> {
    pub route: Route,
    /// The server name the client sent, as sent.
    pub server_name: String,
    pub stream: TlsStream<IO>,
}

impl<IO> std::fmt::Debug for SniConnection<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SniConnection")
            .field("route", &self.route)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// A connection on the SNI port that was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SniError {
    #[error("tls connection failed before its client hello: {0}")]
    ClientHello(#[source] io::Error),
    #[error("refused tls connection: {0}")]
    Refused(#[source] SniNameError),
    #[error("tls handshake for `{name}` failed: {source}")]
    Handshake {
        name: String,
        #[source]
        source: io::Error,
    },
}

/// Reads the ClientHello of `io`, routes its server name through `domain`, and completes the
/// handshake with `config` if the name is one of the gateway's; refuses it otherwise.
pub async fn accept<IO>(
    io: IO,
    domain: &SniDomain,
    config: Arc<ServerConfig>,
) -> Result<SniConnection<IO>, SniError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let start = LazyConfigAcceptor::new(Acceptor::default(), io)
        .await
        .map_err(SniError::ClientHello)?;
    let server_name = start.client_hello().server_name().map(str::to_string);
    let route = match domain.route_for_name(server_name.as_deref()) {
        Ok(route) => route,
        Err(refused) => {
            refuse(start.io).await;
            return Err(SniError::Refused(refused));
        }
    };
    let name = server_name.unwrap_or_default();
    let stream = start
        .into_stream(config)
        .await
        .map_err(|source| SniError::Handshake {
            name: name.clone(),
            source,
        })?;
    Ok(SniConnection {
        route,
        server_name: name,
        stream,
    })
}

/// Tells the client its name is not served, then closes. Best effort: the client may be gone.
async fn refuse<IO: AsyncWrite + Unpin>(mut io: IO) {
    if io.write_all(&UNRECOGNIZED_NAME_ALERT).await.is_ok() {
        let _ = io.shutdown().await;
    }
}
