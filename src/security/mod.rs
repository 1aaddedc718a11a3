//! Listener security: which protocol a listener speaks (Kafka's
//! `listener.security.protocol.map`), its TLS settings and who a connection is.
//!
//! Nothing here knows Kafka error codes; `handlers::error` maps [`SaslError`]
//! where it is reported to clients.

pub mod acl;
pub mod sasl;
pub mod tls;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// A listener's security protocol, as Kafka names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    Plaintext,
    /// TLS, optionally with client certificates.
    Ssl,
    /// SASL authentication without TLS.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Whether connections on such a listener are encrypted with TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections must authenticate with SASL before other requests.
    pub fn uses_sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }

    /// Kafka's name for the protocol.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SecurityProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            other => Err(format!("unknown security protocol {other:?} (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)")),
        }
    }
}

/// What one listener requires of its connections.
#[derive(Debug, Clone)]
pub struct ListenerSecurity {
    /// The listener's name (`PLAINTEXT`, `CLIENT`, …).
    pub name: String,
    /// Its security protocol.
    pub protocol: SecurityProtocol,
    /// Its TLS settings, on SSL and SASL_SSL listeners.
    pub tls: Option<Arc<tls::TlsConfig>>,
    /// Its users and mechanisms, on SASL_PLAINTEXT and SASL_SSL listeners.
    pub sasl: Option<Arc<sasl::Authenticator>>,
}

impl ListenerSecurity {
    /// A plaintext listener named `name`.
    pub fn plaintext(name: &str) -> ListenerSecurity {
        ListenerSecurity { name: name.to_string(), protocol: SecurityProtocol::Plaintext, tls: None, sasl: None }
    }
}

/// Why the listeners could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// The listener settings are inconsistent.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// The TLS files could not be loaded.
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// The SASL users could not be set up.
    #[error("SASL: {0}")]
    Sasl(String),
    /// A listener could not bind its address.
    #[error("listener {bind}: {source}")]
    Bind {
        /// The bind address.
        bind: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A bound listener with the address it advertises and its security settings.
pub type BoundListener = (tokio::net::TcpListener, Arc<crate::broker::Endpoint>, Arc<ListenerSecurity>);

/// Loads the TLS files (once, shared by every TLS listener) and binds every
/// configured listener, primary first. SASL listeners authenticate against
/// `users` (the broker's, which AlterUserScramCredentials changes at run time).
pub async fn bind_listeners(
    config: &crate::config::Config,
    users: Arc<sasl::ScramUsers>,
) -> Result<Vec<BoundListener>, ListenerError> {
    let specs = config.listener_specs()?;
    let tls = match config.tls_files()? {
        Some(files) if specs.iter().any(|s| s.protocol.uses_tls()) => Some(Arc::new(tls::TlsConfig::load(files)?)),
        _ => None,
    };
    let sasl = if specs.iter().any(|s| s.protocol.uses_sasl()) {
        let mechanisms = config.sasl_mechanisms()?;
        let delay = std::time::Duration::from_millis(config.connection_failed_authentication_delay_ms);
        let lifetime = std::time::Duration::from_millis(config.connections_max_reauth_ms);
        Some(Arc::new(sasl::Authenticator::new(&mechanisms, users, delay).with_session_lifetime(Some(lifetime))))
    } else {
        None
    };
    let mut bound = Vec::with_capacity(specs.len());
    for spec in specs {
        let listener = tokio::net::TcpListener::bind(&spec.bind)
            .await
            .map_err(|source| ListenerError::Bind { bind: spec.bind.clone(), source })?;
        tracing::info!(
            name = %spec.name,
            listener = %spec.bind,
            advertised = %format!("{}:{}", spec.host, spec.port),
            security_protocol = %spec.protocol,
            "listening"
        );
        let security = ListenerSecurity {
            name: spec.name,
            protocol: spec.protocol,
            tls: if spec.protocol.uses_tls() { tls.clone() } else { None },
            sasl: if spec.protocol.uses_sasl() { sasl.clone() } else { None },
        };
        bound.push((
            listener,
            Arc::new(crate::broker::Endpoint { host: spec.host, port: spec.port }),
            Arc::new(security),
        ));
    }
    Ok(bound)
}
