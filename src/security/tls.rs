//! TLS for SSL and SASL_SSL listeners with rustls (ring provider): the server
//! certificate chain and key from PEM files, optional client-certificate
//! authentication against a PEM trust store, and reloading all of them in place
//! (on SIGHUP) without dropping connections.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Whether TLS clients must present a certificate (Kafka's `ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// A certificate is asked for; a client without one still connects.
    Requested,
    /// A client without a valid certificate is refused during the handshake.
    Required,
}

impl std::str::FromStr for ClientAuth {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "" => Ok(ClientAuth::None),
            "requested" => Ok(ClientAuth::Requested),
            "required" => Ok(ClientAuth::Required),
            other => Err(format!("{other:?}: expected none, requested or required")),
        }
    }
}

/// Why TLS settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file is missing, unreadable or holds nothing usable.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// rustls refused the certificates or key.
    #[error("tls: {0}")]
    Rustls(String),
}

/// Where a listener's TLS material comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, server certificate first.
    pub certificate: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Client-certificate policy.
    pub client_auth: ClientAuth,
    /// PEM CA certificates client certificates are verified against.
    pub truststore: Option<PathBuf>,
}

/// A listener's TLS configuration, swapped whole on [`TlsConfig::reload`]:
/// handshakes in progress finish with the old one, new ones use the new one.
#[derive(Debug)]
pub struct TlsConfig {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsConfig {
    /// Loads the files; fails if any is unusable.
    pub fn load(files: TlsFiles) -> Result<TlsConfig, TlsError> {
        let config = build(&files)?;
        Ok(TlsConfig { files, current: RwLock::new(Arc::new(config)) })
    }

    /// Reads the files again; on failure the previous configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = build(&self.files)?;
        *self.current.write() = Arc::new(config);
        Ok(())
    }

    /// The files this configuration is read from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// An acceptor for the next handshake, with the configuration in force now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().clone())
    }
}

fn pem_error(path: &std::path::Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Pem { path: path.to_owned(), message: e.to_string() }
}

fn read_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no CERTIFICATE block"));
    }
    Ok(certs)
}

fn build(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let certs = read_certs(&files.certificate)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| pem_error(&files.key, e))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match files.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let Some(path) = &files.truststore else {
                return Err(TlsError::Rustls("ssl_client_auth needs ssl_truststore_pem".into()));
            };
            let mut roots = RootCertStore::empty();
            for cert in read_certs(path)? {
                roots.add(cert).map_err(|e| pem_error(path, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Requested { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| TlsError::Rustls(e.to_string()))?)
        }
    };
    builder.with_single_cert(certs, key).map_err(|e| TlsError::Rustls(e.to_string()))
}

/// Reloads every listener's TLS files on each SIGHUP, until the process ends.
pub async fn reload_on_sighup(configs: Vec<Arc<TlsConfig>>) {
    #[cfg(unix)]
    {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGHUP: TLS files will not be reloaded");
                return;
            }
        };
        while hup.recv().await.is_some() {
            for config in &configs {
                match config.reload() {
                    Ok(()) => tracing::info!(certificate = %config.files().certificate.display(), "TLS files reloaded"),
                    Err(e) => tracing::error!(error = %e, "TLS reload failed; keeping the previous certificates"),
                }
            }
        }
    }
    #[cfg(not(unix))]
    drop(configs);
}
