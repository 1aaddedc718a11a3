//! Listeners: Kafka's named listeners, the older `listener`/`extra_listeners` flags, and
//! the advertised addresses clients are told.

use super::*;

/// One listener: where it binds, what it advertises and its security protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// The listener's name (`PLAINTEXT` for `listener` and `extra_listeners`).
    pub name: String,
    /// Bind address, `ip:port` or `host:port`.
    pub bind: String,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// Its security protocol.
    pub protocol: crate::security::SecurityProtocol,
}

impl Config {
    /// Every listener, primary first: the named `listeners` when set, else
    /// `listener` (advertised as `advertised_listener`) and `extra_listeners`, all PLAINTEXT.
    pub fn listener_specs(&self) -> Result<Vec<ListenerSpec>, ConfigError> {
        use crate::security::SecurityProtocol;
        let invalid = |key, message: String| ConfigError::Invalid { key, message };
        if self.listeners.is_empty() {
            return Ok(self
                .listeners()
                .into_iter()
                .map(|(bind, host, port)| ListenerSpec {
                    name: "PLAINTEXT".into(),
                    bind,
                    host,
                    port,
                    protocol: SecurityProtocol::Plaintext,
                })
                .collect());
        }
        let mut map = std::collections::HashMap::new();
        for entry in &self.listener_security_protocol_map {
            let (name, protocol) = entry
                .split_once(':')
                .ok_or_else(|| invalid("listener_security_protocol_map", format!("{entry:?}: expected NAME:PROTOCOL")))?;
            let protocol: SecurityProtocol =
                protocol.parse().map_err(|e| invalid("listener_security_protocol_map", e))?;
            map.insert(name.to_ascii_uppercase(), protocol);
        }
        let mut advertised = std::collections::HashMap::new();
        for entry in &self.advertised_listeners {
            let (name, host_port) = parse_named(entry)
                .ok_or_else(|| invalid("advertised_listeners", format!("{entry:?}: expected NAME://host:port")))?;
            let (host, port) = split_host_port(host_port)
                .ok_or_else(|| invalid("advertised_listeners", format!("{entry:?}: expected NAME://host:port")))?;
            advertised.insert(name, (host, port));
        }
        let mut specs: Vec<ListenerSpec> = Vec::new();
        for entry in &self.listeners {
            let bad = || invalid("listeners", format!("{entry:?}: expected NAME://host:port"));
            let (name, host_port) = parse_named(entry).ok_or_else(bad)?;
            let (host, port) = host_port.rsplit_once(':').ok_or_else(bad)?;
            let port: u16 = port.parse().map_err(|_| bad())?;
            let bind_host = if host.is_empty() { "0.0.0.0" } else { host };
            let protocol = match map.get(&name) {
                Some(p) => *p,
                None => name.parse().map_err(|_| {
                    invalid("listener_security_protocol_map", format!("no security protocol for listener {name}"))
                })?,
            };
            if specs.iter().any(|s| s.name == name) {
                return Err(invalid("listeners", format!("listener name {name} used twice")));
            }
            let (adv_host, adv_port) = advertised.remove(&name).unwrap_or_else(|| {
                let h = bind_host.trim_matches(['[', ']']);
                let wildcard = h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_unspecified());
                (if wildcard { "localhost".to_string() } else { h.to_string() }, port as i32)
            });
            specs.push(ListenerSpec {
                name,
                bind: format!("{bind_host}:{port}"),
                host: adv_host,
                port: adv_port,
                protocol,
            });
        }
        if let Some(name) = advertised.keys().next() {
            return Err(invalid("advertised_listeners", format!("{name} is not in listeners")));
        }
        Ok(specs)
    }

    /// The TLS files of SSL/SASL_SSL listeners, if a certificate is configured.
    pub fn tls_files(&self) -> Result<Option<crate::security::tls::TlsFiles>, ConfigError> {
        let invalid = |key, message: String| ConfigError::Invalid { key, message };
        let client_auth = self.ssl_client_auth.parse().map_err(|e| invalid("ssl_client_auth", e))?;
        if self.ssl_certificate_pem.is_empty() && self.ssl_key_pem.is_empty() {
            return Ok(None);
        }
        if self.ssl_certificate_pem.is_empty() || self.ssl_key_pem.is_empty() {
            return Err(invalid("ssl_certificate_pem", "ssl_certificate_pem and ssl_key_pem go together".into()));
        }
        if client_auth != crate::security::tls::ClientAuth::None && self.ssl_truststore_pem.is_empty() {
            return Err(invalid("ssl_truststore_pem", "ssl_client_auth needs a trust store".into()));
        }
        Ok(Some(crate::security::tls::TlsFiles {
            certificate: self.ssl_certificate_pem.clone().into(),
            key: self.ssl_key_pem.clone().into(),
            client_auth,
            truststore: (!self.ssl_truststore_pem.is_empty()).then(|| self.ssl_truststore_pem.clone().into()),
        }))
    }

    /// The SASL users as (name, password).
    pub fn sasl_user_list(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let mut users: Vec<(String, String)> = Vec::new();
        for entry in &self.sasl_users {
            match entry.split_once(':') {
                Some((name, password)) if !name.is_empty() && !password.is_empty() => {
                    if users.iter().any(|(n, _)| n == name) {
                        return Err(ConfigError::Invalid { key: "sasl_users", message: format!("user {name} given twice") });
                    }
                    users.push((name.to_string(), password.to_string()));
                }
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "sasl_users",
                        message: "expected name:password entries".into(),
                    })
                }
            }
        }
        Ok(users)
    }

    /// The SASL mechanisms offered.
    pub fn sasl_mechanisms(&self) -> Result<Vec<crate::security::sasl::Mechanism>, ConfigError> {
        let mechanisms = self
            .sasl_enabled_mechanisms
            .iter()
            .map(|m| {
                crate::security::sasl::Mechanism::parse(m.trim()).ok_or_else(|| ConfigError::Invalid {
                    key: "sasl_enabled_mechanisms",
                    message: format!("{m:?}: supported are PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(mechanisms)
    }

    pub(super) fn validate_security(&self) -> Result<(), ConfigError> {
        self.sasl_user_list()?;
        if self.sasl_mechanisms()?.is_empty() && self.listener_specs()?.iter().any(|s| s.protocol.uses_sasl()) {
            return Err(ConfigError::Invalid {
                key: "sasl_enabled_mechanisms",
                message: "a SASL listener needs at least one mechanism".into(),
            });
        }
        if !self.listeners.is_empty() && !self.extra_listeners.is_empty() {
            return Err(ConfigError::Invalid {
                key: "extra_listeners",
                message: "use either listeners or extra_listeners, not both".into(),
            });
        }
        let specs = self.listener_specs()?;
        let tls = self.tls_files()?;
        if tls.is_none() && specs.iter().any(|s| s.protocol.uses_tls()) {
            return Err(ConfigError::Invalid {
                key: "ssl_certificate_pem",
                message: "an SSL or SASL_SSL listener needs ssl_certificate_pem and ssl_key_pem".into(),
            });
        }
        Ok(())
    }
}

/// Splits `NAME://rest` into the upper-cased name and the rest.
pub(super) fn parse_named(s: &str) -> Option<(String, &str)> {
    let (name, rest) = s.split_once("://")?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return None;
    }
    Some((name.to_ascii_uppercase(), rest))
}

pub(super) fn split_host_port(s: &str) -> Option<(String, i32)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    if host.is_empty() {
        return None;
    }
    Some((host.trim_matches(['[', ']']).to_string(), port as i32))
}

/// Parses `bind_ip:port=host:port`.
pub(super) fn parse_extra_listener(s: &str) -> Option<(String, String, i32)> {
    let (bind, advertised) = s.split_once('=')?;
    bind.parse::<SocketAddr>().ok()?;
    let (host, port) = split_host_port(advertised)?;
    Some((bind.to_string(), host, port))
}
