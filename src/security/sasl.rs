//! SASL authentication: PLAIN and SCRAM-SHA-256/512 (RFC 5802 / RFC 7677).
//!
//! Users come from the configuration; only salted credentials are kept in
//! memory (SCRAM's StoredKey and ServerKey for each hash, derived from the
//! password with a random salt at start-up), never the password. PLAIN is
//! checked against the SCRAM-SHA-256 credential. The hashing comes from the
//! RustCrypto crates (`sha2`, `hmac`, `pbkdf2`); only the message flow is ours.

use std::collections::HashMap;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// PBKDF2 iterations of credentials derived from configured passwords
/// (Kafka's minimum for SCRAM, and its usual setting).
pub const SCRAM_ITERATIONS: u32 = 4096;

/// Why an authentication step failed. Mapped to Kafka codes in `handlers::error`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SaslError {
    /// The client asked for a mechanism this listener does not offer.
    #[error("unsupported SASL mechanism {0}")]
    UnsupportedMechanism(String),
    /// Wrong credentials or a malformed exchange.
    #[error("{0}")]
    AuthenticationFailed(String),
    /// A SASL request that does not fit the connection's state.
    #[error("{0}")]
    IllegalState(String),
}

fn failed(message: &str) -> SaslError {
    SaslError::AuthenticationFailed(format!("Authentication failed: {message}"))
}

/// A SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 4616: user name and password in clear (use over TLS).
    Plain,
    /// SCRAM with SHA-256.
    ScramSha256,
    /// SCRAM with SHA-512.
    ScramSha512,
}

impl Mechanism {
    /// The IANA name clients ask for.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// Parses a mechanism name (case-sensitive, as Kafka compares them).
    pub fn parse(name: &str) -> Option<Mechanism> {
        [Mechanism::Plain, Mechanism::ScramSha256, Mechanism::ScramSha512].into_iter().find(|m| m.name() == name)
    }
}

/// The hash function of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl ScramHash {
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length: new_from_slice cannot fail.
        match self {
            ScramHash::Sha256 => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            ScramHash::Sha512 => {
                let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
            ScramHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec(),
            ScramHash::Sha512 => pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, salt, iterations).to_vec(),
        }
    }
}

/// A user's salted SCRAM credential for one hash: what the server stores.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScramCredential {
    /// The random salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// H(HMAC(SaltedPassword, "Client Key")).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential").field("iterations", &self.iterations).finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// Derives the credential of `password` with `salt` (RFC 5802 section 3).
    pub fn derive(hash: ScramHash, password: &str, salt: Vec<u8>, iterations: u32) -> ScramCredential {
        let salted = hash.salted_password(password.as_bytes(), &salt, iterations);
        let client_key = hash.hmac(&salted, b"Client Key");
        ScramCredential {
            stored_key: hash.hash(&client_key),
            server_key: hash.hmac(&salted, b"Server Key"),
            salt,
            iterations,
        }
    }

    /// The credential of a password the client already salted and hashed
    /// (AlterUserScramCredentials sends SaltedPassword, never the password).
    pub fn from_salted_password(hash: ScramHash, salted_password: &[u8], salt: Vec<u8>, iterations: u32) -> ScramCredential {
        let client_key = hash.hmac(salted_password, b"Client Key");
        ScramCredential {
            stored_key: hash.hash(&client_key),
            server_key: hash.hmac(salted_password, b"Server Key"),
            salt,
            iterations,
        }
    }
}

/// One user's credentials, at most one per SCRAM hash.
#[derive(Debug, Clone, Default)]
struct UserCredentials {
    sha256: Option<ScramCredential>,
    sha512: Option<ScramCredential>,
}

impl UserCredentials {
    fn for_hash(&self, hash: ScramHash) -> Option<&ScramCredential> {
        match hash {
            ScramHash::Sha256 => self.sha256.as_ref(),
            ScramHash::Sha512 => self.sha512.as_ref(),
        }
    }

    fn slot(&mut self, hash: ScramHash) -> &mut Option<ScramCredential> {
        match hash {
            ScramHash::Sha256 => &mut self.sha256,
            ScramHash::Sha512 => &mut self.sha512,
        }
    }
}

impl ScramHash {
    /// Both SCRAM hashes, in Kafka's mechanism order (SCRAM-SHA-256 = 1, SCRAM-SHA-512 = 2).
    pub const ALL: [ScramHash; 2] = [ScramHash::Sha256, ScramHash::Sha512];

    /// The SCRAM mechanism of this hash.
    pub fn mechanism(self) -> Mechanism {
        match self {
            ScramHash::Sha256 => Mechanism::ScramSha256,
            ScramHash::Sha512 => Mechanism::ScramSha512,
        }
    }
}

/// The SCRAM users SASL listeners accept: those of the configuration and those
/// created at run time (AlterUserScramCredentials). Only salted credentials are held.
#[derive(Debug, Default)]
pub struct ScramUsers {
    users: parking_lot::RwLock<HashMap<String, UserCredentials>>,
}

impl ScramUsers {
    /// Users with both SCRAM credentials derived from these (name, password) pairs
    /// (random salts, [`SCRAM_ITERATIONS`]); the passwords are dropped.
    pub fn from_passwords(users: &[(String, String)]) -> Result<ScramUsers, String> {
        let mut map = HashMap::new();
        for (name, password) in users {
            let creds = UserCredentials {
                sha256: Some(ScramCredential::derive(ScramHash::Sha256, password, random_bytes(16)?, SCRAM_ITERATIONS)),
                sha512: Some(ScramCredential::derive(ScramHash::Sha512, password, random_bytes(16)?, SCRAM_ITERATIONS)),
            };
            map.insert(name.clone(), creds);
        }
        Ok(ScramUsers { users: parking_lot::RwLock::new(map) })
    }

    /// The user's credential for `hash`, if any.
    pub fn get(&self, user: &str, hash: ScramHash) -> Option<ScramCredential> {
        self.users.read().get(user).and_then(|c| c.for_hash(hash)).cloned()
    }

    /// Sets (adds or replaces) the user's credential for `hash`.
    pub fn set(&self, user: &str, hash: ScramHash, credential: ScramCredential) {
        *self.users.write().entry(user.to_string()).or_default().slot(hash) = Some(credential);
    }

    /// Removes the user's credential for `hash`; the user goes with its last one.
    /// Whether there was one.
    pub fn remove(&self, user: &str, hash: ScramHash) -> bool {
        let mut users = self.users.write();
        let Some(creds) = users.get_mut(user) else { return false };
        let had = creds.slot(hash).take().is_some();
        if creds.sha256.is_none() && creds.sha512.is_none() {
            users.remove(user);
        }
        had
    }

    /// Every user with the (hash, iterations) of each credential, by name.
    pub fn describe(&self) -> Vec<(String, Vec<(ScramHash, u32)>)> {
        let users = self.users.read();
        let mut out: Vec<(String, Vec<(ScramHash, u32)>)> = users
            .iter()
            .map(|(name, c)| {
                let infos = ScramHash::ALL.iter().filter_map(|h| c.for_hash(*h).map(|cred| (*h, cred.iterations))).collect();
                (name.clone(), infos)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

fn random_bytes(n: usize) -> Result<Vec<u8>, String> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(bytes)
}

/// Kafka's bounds on SCRAM iterations (`ScramMechanism` min and max).
pub const SCRAM_MAX_ITERATIONS: i32 = 16384;

impl ScramHash {
    /// The hash of Kafka's SCRAM mechanism type (1 SCRAM-SHA-256, 2 SCRAM-SHA-512).
    pub fn from_kafka_type(code: i8) -> Option<ScramHash> {
        match code {
            1 => Some(ScramHash::Sha256),
            2 => Some(ScramHash::Sha512),
            _ => None,
        }
    }

    /// Kafka's SCRAM mechanism type of this hash.
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramHash::Sha256 => 1,
            ScramHash::Sha512 => 2,
        }
    }
}

/// Why one user's SCRAM credential change or description is refused (Kafka's
/// messages); mapped to Kafka codes in `handlers::error`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ScramUserError {
    /// The mechanism type is not SCRAM-SHA-256 or SCRAM-SHA-512.
    #[error("Unknown SCRAM mechanism {0}")]
    UnknownMechanism(i8),
    /// Fewer than 4096 iterations.
    #[error("Too few iterations")]
    TooFewIterations,
    /// More than 16384 iterations.
    #[error("Too many iterations")]
    TooManyIterations,
    /// The user name is empty.
    #[error("Username must not be empty")]
    EmptyUser,
    /// The salt or the salted password is empty.
    #[error("Salt and salted password must not be empty")]
    EmptyCredential,
    /// A deletion names a credential that does not exist.
    #[error("Attempt to delete a user credential that does not exist")]
    DeleteNotFound,
    /// One request alters the same user twice.
    #[error("A user credential cannot be altered twice in the same request")]
    AlteredTwice,
    /// A description names a user without credentials.
    #[error("Attempt to describe a user credential that does not exist: {0}")]
    DescribeNotFound(String),
    /// One request describes the same user twice.
    #[error("Cannot describe SCRAM credentials for the same user twice in a single request: {0}")]
    DescribedTwice(String),
}

/// The users and mechanisms of SASL listeners, and how long a failure is delayed.
#[derive(Debug)]
pub struct Authenticator {
    mechanisms: Vec<Mechanism>,
    users: std::sync::Arc<ScramUsers>,
    failure_delay: Duration,
    /// KIP-368: how long an authentication lasts (`connections.max.reauth.ms`); none: forever.
    session_lifetime: Option<Duration>,
}

impl Authenticator {
    /// Offers `mechanisms` to `users` (shared with the broker, which changes them
    /// at run time).
    pub fn new(mechanisms: &[Mechanism], users: std::sync::Arc<ScramUsers>, failure_delay: Duration) -> Authenticator {
        Authenticator { mechanisms: mechanisms.to_vec(), users, failure_delay, session_lifetime: None }
    }

    /// Sessions expire `lifetime` after each (re-)authentication (KIP-368): the
    /// client must re-authenticate on the connection before then, or it is closed.
    pub fn with_session_lifetime(mut self, lifetime: Option<Duration>) -> Authenticator {
        self.session_lifetime = lifetime.filter(|l| !l.is_zero());
        self
    }

    /// How long an authentication lasts, if it expires.
    pub fn session_lifetime(&self) -> Option<Duration> {
        self.session_lifetime
    }

    /// The mechanisms offered, in configuration order.
    pub fn mechanisms(&self) -> &[Mechanism] {
        &self.mechanisms
    }

    /// How long to wait before answering a failed authentication
    /// (`connection_failed_authentication_delay_ms`).
    pub fn failure_delay(&self) -> Duration {
        self.failure_delay
    }

    fn check_plain(&self, token: &[u8]) -> Result<String, SaslError> {
        let text = std::str::from_utf8(token).map_err(|_| failed("PLAIN token is not UTF-8"))?;
        let mut parts = text.split('\0');
        let (Some(authzid), Some(user), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(failed("invalid PLAIN token: expected authzid NUL username NUL password"));
        };
        if user.is_empty() || password.is_empty() {
            return Err(failed("username or password is empty"));
        }
        if !authzid.is_empty() && authzid != user {
            return Err(failed("client requested an authorization id that is different from username"));
        }
        // Checked against the user's SCRAM-SHA-256 credential, else its SHA-512 one.
        let Some((hash, c)) = ScramHash::ALL.iter().find_map(|h| self.users.get(user, *h).map(|c| (*h, c))) else {
            return Err(failed("Invalid username or password"));
        };
        let candidate = ScramCredential::derive(hash, password, c.salt.clone(), c.iterations);
        if bool::from(candidate.stored_key.ct_eq(&c.stored_key)) {
            Ok(user.to_string())
        } else {
            Err(failed("Invalid username or password"))
        }
    }
}

/// Where a SCRAM exchange stands after the server-first message.
#[derive(Debug, Clone)]
struct ScramPending {
    hash: ScramHash,
    user: String,
    credential: ScramCredential,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    client_nonce: String,
}

/// A connection's SASL state.
#[derive(Debug, Default)]
pub struct SaslSession {
    state: State,
    /// While re-authenticating (KIP-368): who the connection was, with which mechanism.
    previous: Option<(String, Mechanism)>,
}

#[derive(Debug, Default)]
enum State {
    /// No handshake yet.
    #[default]
    Start,
    /// Handshake done; `raw` after a v0 handshake (tokens without Kafka framing).
    Mechanism { mechanism: Mechanism, raw: bool },
    /// SCRAM server-first sent; the client-final message is next.
    ScramFinal { pending: Box<ScramPending>, raw: bool, mechanism: Mechanism },
    /// Authenticated as this user, until `expires` (KIP-368) if set.
    Done { user: String, mechanism: Mechanism, expires: Option<std::time::Instant> },
    /// Authentication failed: the connection is to be closed.
    Failed,
}

impl SaslSession {
    /// Whether the client has authenticated.
    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Done { .. })
    }

    /// Whether authentication failed (nothing more is served on this connection).
    pub fn has_failed(&self) -> bool {
        matches!(self.state, State::Failed)
    }

    /// Whether the next frame is a bare SASL token (after a v0 SaslHandshake).
    pub fn expects_raw_token(&self) -> bool {
        matches!(self.state, State::Mechanism { raw: true, .. } | State::ScramFinal { raw: true, .. })
    }

    /// The authenticated principal (`User:name`), if any.
    pub fn principal(&self) -> Option<String> {
        match &self.state {
            State::Done { user, .. } => Some(format!("User:{user}")),
            // Re-authenticating: still who it was until the exchange ends.
            _ => self.previous.as_ref().map(|(user, _)| format!("User:{user}")),
        }
    }

    /// Whether the authentication has expired (KIP-368): then only a
    /// re-authentication may follow.
    pub fn expired(&self, now: std::time::Instant) -> bool {
        matches!(&self.state, State::Done { expires: Some(at), .. } if *at <= now)
    }

    /// Whether a re-authentication is under way.
    pub fn reauthenticating(&self) -> bool {
        self.previous.is_some() && !matches!(self.state, State::Done { .. } | State::Failed)
    }

    /// SaslHandshake: selects `mechanism`; `raw` for a v0 handshake.
    pub fn handshake(&mut self, auth: &Authenticator, mechanism: &str, raw: bool) -> Result<(), SaslError> {
        match &self.state {
            State::Start => {}
            // KIP-368: an authenticated client re-authenticates with a new handshake
            // (v1) and the same mechanism, when sessions expire.
            State::Done { user, mechanism: used, .. } if auth.session_lifetime.is_some() && !raw => {
                if Mechanism::parse(mechanism) != Some(*used) {
                    self.state = State::Failed;
                    return Err(failed("re-authentication must use the same SASL mechanism"));
                }
                self.previous = Some((user.clone(), *used));
            }
            _ => return Err(SaslError::IllegalState("Unexpected SaslHandshake request: handshake already done".into())),
        }
        match Mechanism::parse(mechanism).filter(|m| auth.mechanisms.contains(m)) {
            Some(mechanism) => {
                self.state = State::Mechanism { mechanism, raw };
                Ok(())
            }
            None => {
                self.state = State::Failed;
                self.previous = None;
                Err(SaslError::UnsupportedMechanism(mechanism.to_string()))
            }
        }
    }

    /// One SaslAuthenticate token: the server's answer to send back. A failure
    /// leaves the session failed.
    pub fn authenticate(&mut self, auth: &Authenticator, token: &[u8]) -> Result<Vec<u8>, SaslError> {
        let result = self.step(auth, token);
        if let Err(SaslError::AuthenticationFailed(_)) = &result {
            self.state = State::Failed;
            self.previous = None;
        }
        result
    }

    /// Ends an exchange as `user`: a re-authentication must keep the principal.
    fn done(&mut self, auth: &Authenticator, user: String, mechanism: Mechanism) -> Result<(), SaslError> {
        if let Some((previous, _)) = self.previous.take() {
            if previous != user {
                return Err(failed("Cannot change principals during re-authentication"));
            }
        }
        let expires = auth.session_lifetime.map(|l| std::time::Instant::now() + l);
        self.state = State::Done { user, mechanism, expires };
        Ok(())
    }

    fn step(&mut self, auth: &Authenticator, token: &[u8]) -> Result<Vec<u8>, SaslError> {
        match std::mem::take(&mut self.state) {
            State::Mechanism { mechanism: Mechanism::Plain, .. } => {
                let user = auth.check_plain(token)?;
                self.done(auth, user, Mechanism::Plain)?;
                Ok(Vec::new())
            }
            State::Mechanism { mechanism, raw } => {
                let hash = if mechanism == Mechanism::ScramSha512 { ScramHash::Sha512 } else { ScramHash::Sha256 };
                let (pending, server_first) = scram_first(auth, hash, token)?;
                self.state = State::ScramFinal { pending: Box::new(pending), raw, mechanism };
                Ok(server_first.into_bytes())
            }
            State::ScramFinal { pending, mechanism, .. } => {
                let server_final = scram_final(&pending, token)?;
                self.done(auth, pending.user.clone(), mechanism)?;
                Ok(server_final.into_bytes())
            }
            state @ State::Done { .. } => {
                self.state = state;
                Err(SaslError::IllegalState("SaslAuthenticate request received after successful authentication".into()))
            }
            State::Start => Err(SaslError::IllegalState("SaslAuthenticate request received before SaslHandshake".into())),
            State::Failed => Err(SaslError::IllegalState("authentication already failed".into())),
        }
    }
}

/// Decodes a SCRAM `saslname` (`=2C` is `,`, `=3D` is `=`).
fn decode_saslname(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// client-first → server-first.
fn scram_first(auth: &Authenticator, hash: ScramHash, token: &[u8]) -> Result<(ScramPending, String), SaslError> {
    let text = std::str::from_utf8(token).map_err(|_| failed("SCRAM message is not UTF-8"))?;
    // gs2-header: cbind-flag "," [authzid] ","
    let mut parts = text.splitn(3, ',');
    let (Some(cbind), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(failed("invalid SCRAM client-first message"));
    };
    if cbind != "n" && cbind != "y" {
        return Err(failed("channel binding is not supported"));
    }
    let mut user = None;
    let mut client_nonce = None;
    for (i, attr) in bare.split(',').enumerate() {
        match (i, attr.split_once('=')) {
            (0, Some(("n", name))) => user = decode_saslname(name),
            (1, Some(("r", nonce))) if !nonce.is_empty() => client_nonce = Some(nonce.to_string()),
            (_, Some(("tokenauth", value))) if value.eq_ignore_ascii_case("true") => {
                return Err(failed("delegation tokens are not supported"))
            }
            (i, _) if i < 2 => return Err(failed("invalid SCRAM client-first message")),
            _ => {} // extensions: ignored
        }
    }
    let (Some(user), Some(client_nonce)) = (user, client_nonce) else {
        return Err(failed("invalid SCRAM client-first message"));
    };
    if let Some(a) = authzid.strip_prefix("a=") {
        if decode_saslname(a).as_deref() != Some(user.as_str()) {
            return Err(failed("client requested an authorization id that is different from username"));
        }
    }
    let Some(credential) = auth.users.get(&user, hash) else {
        return Err(failed("Invalid user credentials"));
    };
    // Alphanumeric, as Kafka's (some clients mishandle '+' and '/' in nonces).
    let server_nonce: String =
        random_bytes(24).map_err(|e| failed(&e))?.iter().map(|b| format!("{b:02x}")).collect();
    let nonce = format!("{client_nonce}{server_nonce}");
    let client_nonce = client_nonce.to_string();
    let server_first = format!("r={nonce},s={},i={}", B64.encode(&credential.salt), credential.iterations);
    Ok((ScramPending { hash, user, credential, client_first_bare: bare.to_string(), server_first: server_first.clone(), nonce, client_nonce }, server_first))
}

/// client-final → server-final, checking the client's proof.
fn scram_final(p: &ScramPending, token: &[u8]) -> Result<String, SaslError> {
    let text = std::str::from_utf8(token).map_err(|_| failed("SCRAM message is not UTF-8"))?;
    let Some((without_proof, proof)) = text.rsplit_once(",p=") else {
        return Err(failed("invalid SCRAM client-final message"));
    };
    let mut nonce_ok = false;
    for attr in without_proof.split(',') {
        if let Some(n) = attr.strip_prefix("r=") {
            // Exactly the server's nonce (RFC 5802); librdkafka before 2.6.1 sends its own
            // nonce once more in front of it, which Kafka 3.8.1-3.9 accept too. Either
            // way the fresh server part must be there, so nothing can be replayed.
            nonce_ok = n == p.nonce || n.strip_suffix(p.nonce.as_str()) == Some(p.client_nonce.as_str());
        }
    }
    if !nonce_ok {
        return Err(failed("invalid SCRAM nonce"));
    }
    let proof = B64.decode(proof).map_err(|_| failed("invalid SCRAM proof"))?;
    let auth_message = format!("{},{},{}", p.client_first_bare, p.server_first, without_proof);
    let client_signature = p.hash.hmac(&p.credential.stored_key, auth_message.as_bytes());
    if proof.len() != client_signature.len() {
        return Err(failed("Invalid user credentials"));
    }
    let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(a, b)| a ^ b).collect();
    if !bool::from(p.hash.hash(&client_key).ct_eq(&p.credential.stored_key)) {
        return Err(failed("Invalid user credentials"));
    }
    let server_signature = p.hash.hmac(&p.credential.server_key, auth_message.as_bytes());
    Ok(format!("v={}", B64.encode(server_signature)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        let all = [Mechanism::Plain, Mechanism::ScramSha256, Mechanism::ScramSha512];
        let users = ScramUsers::from_passwords(&[("alice".into(), "alice-secret".into())]).unwrap();
        Authenticator::new(&all, std::sync::Arc::new(users), Duration::ZERO)
    }

    /// The client side of RFC 5802, computed independently of the server code paths.
    fn client_exchange(hash: ScramHash, session: &mut SaslSession, a: &Authenticator, password: &str) -> Result<(), SaslError> {
        let bare = "n=alice,r=clientnonce123";
        let server_first = String::from_utf8(session.authenticate(a, format!("n,,{bare}").as_bytes())?).unwrap();
        let attrs: HashMap<&str, &str> = server_first.split(',').filter_map(|x| x.split_once('=')).collect();
        assert!(attrs["r"].starts_with("clientnonce123") && attrs["r"].len() > "clientnonce123".len());
        let salt = B64.decode(attrs["s"]).unwrap();
        let iterations: u32 = attrs["i"].parse().unwrap();
        assert_eq!(iterations, SCRAM_ITERATIONS);
        let salted = hash.salted_password(password.as_bytes(), &salt, iterations);
        let client_key = hash.hmac(&salted, b"Client Key");
        let without_proof = format!("c=biws,r={}", attrs["r"]);
        let auth_message = format!("{bare},{server_first},{without_proof}");
        let signature = hash.hmac(&hash.hash(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        let server_final = session.authenticate(a, format!("{without_proof},p={}", B64.encode(proof)).as_bytes())?;
        let expected = hash.hmac(&hash.hmac(&salted, b"Server Key"), auth_message.as_bytes());
        assert_eq!(String::from_utf8(server_final).unwrap(), format!("v={}", B64.encode(expected)));
        Ok(())
    }

    #[test]
    fn scram_exchanges_succeed_with_the_password_and_fail_without() {
        let a = auth();
        for (name, hash) in [("SCRAM-SHA-256", ScramHash::Sha256), ("SCRAM-SHA-512", ScramHash::Sha512)] {
            let mut s = SaslSession::default();
            s.handshake(&a, name, false).unwrap();
            client_exchange(hash, &mut s, &a, "alice-secret").unwrap();
            assert_eq!(s.principal().as_deref(), Some("User:alice"));
            let mut bad = SaslSession::default();
            bad.handshake(&a, name, false).unwrap();
            assert!(matches!(client_exchange(hash, &mut bad, &a, "wrong"), Err(SaslError::AuthenticationFailed(_))));
            assert!(bad.has_failed() && !bad.is_authenticated());
        }
    }

    #[test]
    fn plain_checks_the_salted_credential() {
        let a = auth();
        let mut s = SaslSession::default();
        s.handshake(&a, "PLAIN", false).unwrap();
        s.authenticate(&a, b"\0alice\0alice-secret").unwrap();
        assert!(s.is_authenticated());
        for token in [&b"\0alice\0nope"[..], b"\0bob\0alice-secret", b"garbage", b"mallory\0alice\0alice-secret"] {
            let mut s = SaslSession::default();
            s.handshake(&a, "PLAIN", false).unwrap();
            assert!(matches!(s.authenticate(&a, token), Err(SaslError::AuthenticationFailed(_))), "{token:?}");
        }
        let mut s = SaslSession::default();
        assert!(matches!(s.handshake(&a, "GSSAPI", false), Err(SaslError::UnsupportedMechanism(_))));
        assert!(format!("{:?}", a).find("alice-secret").is_none());
    }

    #[test]
    fn runtime_users_from_salted_passwords() {
        let a = auth();
        let salt = b"pepper".to_vec();
        let salted = ScramHash::Sha512.salted_password(b"bob-secret", &salt, 8192);
        let c = ScramCredential::from_salted_password(ScramHash::Sha512, &salted, salt.clone(), 8192);
        assert_eq!(c, ScramCredential::derive(ScramHash::Sha512, "bob-secret", salt, 8192));
        a.users.set("bob", ScramHash::Sha512, c);
        let mut s = SaslSession::default();
        s.handshake(&a, "PLAIN", false).unwrap();
        s.authenticate(&a, b"\0bob\0bob-secret").unwrap();
        assert_eq!(s.principal().as_deref(), Some("User:bob"), "PLAIN against the SHA-512 credential");
        assert_eq!(a.users.describe()[1], ("bob".to_string(), vec![(ScramHash::Sha512, 8192)]));
        assert!(!a.users.remove("bob", ScramHash::Sha256));
        assert!(a.users.remove("bob", ScramHash::Sha512));
        assert_eq!(a.users.describe().len(), 1, "bob went with his last credential");
        let mut s = SaslSession::default();
        s.handshake(&a, "PLAIN", false).unwrap();
        assert!(s.authenticate(&a, b"\0bob\0bob-secret").is_err());
    }

    #[test]
    fn saslnames_decode() {
        assert_eq!(decode_saslname("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(decode_saslname("bad=xx"), None);
    }
}
