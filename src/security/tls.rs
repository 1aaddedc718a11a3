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

/// Kafka's principal for a TLS client certificate (its default principal
/// builder): `User:` and the certificate's subject distinguished name in RFC 2253
/// form, as Java's `X500Principal.getName()` writes it, e.g.
/// `User:CN=alice,OU=eng,O=Acme,C=US`. Parsed with RustCrypto's `x509-cert`.
pub fn principal_from_certificate(der: &[u8]) -> Result<String, TlsError> {
    use x509_cert::der::Decode;
    let certificate =
        x509_cert::Certificate::from_der(der).map_err(|e| TlsError::Rustls(format!("client certificate: {e}")))?;
    Ok(format!("User:{}", rfc2253(&certificate.tbs_certificate.subject)))
}

/// A distinguished name in RFC 2253 form: the last RDN first, RDNs joined by `,`,
/// the attributes of a multi-valued RDN by `+`.
fn rfc2253(name: &x509_cert::name::Name) -> String {
    let rdns: Vec<String> =
        name.0.iter().map(|rdn| rdn.0.iter().map(attribute).collect::<Vec<_>>().join("+")).collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// One `type=value`: the RFC 2253 keyword for the attributes it names, else the
/// dotted OID with the value's DER encoding in hex (`1.2.840.113549.1.9.1=#16…`).
fn attribute(attr: &x509_cert::attr::AttributeTypeAndValue) -> String {
    use x509_cert::der::{Encode, Tagged};
    let oid = attr.oid.to_string();
    let keyword = match oid.as_str() {
        "2.5.4.3" => Some("CN"),
        "2.5.4.6" => Some("C"),
        "2.5.4.7" => Some("L"),
        "2.5.4.8" => Some("ST"),
        "2.5.4.9" => Some("STREET"),
        "2.5.4.10" => Some("O"),
        "2.5.4.11" => Some("OU"),
        "0.9.2342.19200300.100.1.1" => Some("UID"),
        "0.9.2342.19200300.100.1.25" => Some("DC"),
        _ => None,
    };
    match (keyword, string_value(attr.value.tag().octet(), attr.value.value())) {
        (Some(keyword), Some(text)) => format!("{keyword}={}", escape(&text)),
        _ => {
            let der = attr.value.to_der().unwrap_or_default();
            format!("{oid}=#{}", der.iter().map(|b| format!("{b:02x}")).collect::<String>())
        }
    }
}

/// The text of a directory string value (its tag octet and contents), whichever
/// string type encodes it.
fn string_value(tag: u8, data: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, NumericString, PrintableString, IA5String, VisibleString
        12 | 18 | 19 | 22 | 26 => std::str::from_utf8(data).ok().map(str::to_string),
        // TeletexString: Latin-1 in practice
        20 => Some(data.iter().map(|b| *b as char).collect()),
        // BMPString: UTF-16BE
        30 if data.len() % 2 == 0 => {
            let units: Vec<u16> = data.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16(&units).ok()
        }
        // UniversalString: UTF-32BE
        28 if data.len() % 4 == 0 => {
            data.chunks_exact(4).map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))).collect()
        }
        _ => None,
    }
}

/// RFC 2253 section 2.4 escaping.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{escape, string_value};

    #[test]
    fn directory_strings() {
        assert_eq!(string_value(12, "Zoë".as_bytes()).as_deref(), Some("Zoë"));
        assert_eq!(string_value(30, &[0, b'h', 0, b'i']).as_deref(), Some("hi"));
        assert_eq!(string_value(4, b"x"), None, "OCTET STRING is not a directory string");
    }

    #[test]
    fn rfc2253_escaping() {
        assert_eq!(escape("alice"), "alice");
        assert_eq!(escape("Smith, John"), "Smith\\, John");
        assert_eq!(escape("#x a+b "), "\\#x a\\+b\\ ");
        assert_eq!(escape(""), "");
    }
}
