//! SASL on a SASL_PLAINTEXT listener: SaslHandshake (v0 with bare tokens, v1),
//! SaslAuthenticate with PLAIN and SCRAM-SHA-256/512 (the client side computed
//! here with the RustCrypto crates), wrong passwords, requests before
//! authentication, and SASL requests on a plaintext listener.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use kafka_protocol::messages::{
    ApiVersionsRequest, MetadataRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use protocol_tests::{decode_records, encode_batch, fluxo_bin, sample_records, sb, Client};
use sha2::{Digest, Sha256, Sha512};

const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;
const SASL_AUTHENTICATION_FAILED: i16 = 58;
const FAILURE_DELAY_MS: u64 = 300;

struct Broker {
    child: Child,
    plain: SocketAddr,
    sasl: SocketAddr,
    log: std::path::PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(!log.contains("panicked at"), "the broker panicked:\n{log}");
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start() -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = start_at(dir.path(), &[]);
    broker._dir = Some(dir);
    broker
}

/// A broker on `dir` (data and log) with the users alice and c=d, and `extra` flags.
fn start_at(dir: &std::path::Path, extra: &[&str]) -> Broker {
    let (plain, sasl) = (free_port(), free_port());
    let log_path = dir.join("broker.log");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).unwrap();
    let child = Command::new(fluxo_bin())
        .args(["--listeners", &format!("PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl}")])
        .args(["--sasl-user", "alice:alice-secret", "--sasl-user", "c=d:p=ss:w0rd"])
        .args(["--connection-failed-authentication-delay-ms", &FAILURE_DELAY_MS.to_string()])
        .args(["--metrics-listener", "", "--auto-create-topics", "true"])
        .args(extra)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn fluxo");
    let broker = Broker {
        child,
        plain: format!("127.0.0.1:{plain}").parse().unwrap(),
        sasl: format!("127.0.0.1:{sasl}").parse().unwrap(),
        log: log_path,
        _dir: None,
    };
    for addr in [broker.plain, broker.sasl] {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "broker did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    broker
}

fn handshake(client: &mut Client, version: i16, mechanism: &str) -> (i16, Vec<String>) {
    let r = client.call(version, &SaslHandshakeRequest::default().with_mechanism(sb(mechanism)));
    (r.error_code, r.mechanisms.iter().map(|m| m.to_string()).collect())
}

fn authenticate(client: &mut Client, version: i16, token: &[u8]) -> (i16, Option<String>, Vec<u8>, i64) {
    let r = client.call(version, &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)));
    (r.error_code, r.error_message.map(|m| m.to_string()), r.auth_bytes.to_vec(), r.session_lifetime_ms)
}

/// A produce and a fetch on an authenticated connection: the records come back intact.
fn assert_serves(client: &mut Client, topic: &str) {
    client.create_topic(topic, 1);
    let records = sample_records(topic, 3);
    let base = client.produce_ok(topic, 0, encode_batch(&records));
    let fetched = client.fetch(topic, 0, base);
    let got = decode_records(&fetched.records);
    assert_eq!(got.len(), 3);
    for (g, r) in got.iter().zip(&records) {
        assert_eq!((&g.key, &g.value), (&r.key, &r.value));
    }
}

#[test]
fn handshake_lists_mechanisms_and_refuses_unknown_ones() {
    let b = start();
    let mut c = Client::connect(b.sasl);
    let versions = c.call(3, &ApiVersionsRequest::default().with_client_software_name(sb("t")).with_client_software_version(sb("1")));
    assert_eq!(versions.error_code, 0);
    assert_eq!(handshake(&mut c, 1, "GSSAPI"), (UNSUPPORTED_SASL_MECHANISM, vec![
        "PLAIN".to_string(), "SCRAM-SHA-256".into(), "SCRAM-SHA-512".into()
    ]));
    c.send(12, &MetadataRequest::default().with_topics(Some(vec![])));
    c.expect_closed("request after a refused mechanism");
}

#[test]
fn requests_before_authentication_close_the_connection() {
    let b = start();
    let mut c = Client::connect(b.sasl);
    c.send(12, &MetadataRequest::default().with_topics(Some(vec![])));
    c.expect_closed("Metadata before SaslHandshake");
    let mut c = Client::connect(b.sasl);
    assert_eq!(handshake(&mut c, 1, "PLAIN").0, 0);
    c.send(12, &MetadataRequest::default().with_topics(Some(vec![])));
    c.expect_closed("Metadata between SaslHandshake and SaslAuthenticate");
}

#[test]
fn plain_good_and_bad_passwords() {
    let b = start();
    let mut c = Client::connect(b.sasl);
    assert_eq!(handshake(&mut c, 1, "PLAIN").0, 0);
    let (code, message, bytes, lifetime) = authenticate(&mut c, 2, b"\0alice\0alice-secret");
    assert_eq!((code, message, bytes, lifetime), (0, None, vec![], 0));
    assert_serves(&mut c, "sasl-plain");
    assert_eq!(handshake(&mut c, 1, "PLAIN").0, ILLEGAL_SASL_STATE, "second handshake");

    let mut c = Client::connect(b.sasl);
    assert_eq!(handshake(&mut c, 1, "PLAIN").0, 0);
    let started = Instant::now();
    let (code, message, _, _) = authenticate(&mut c, 1, b"\0alice\0wrong");
    assert_eq!(code, SASL_AUTHENTICATION_FAILED);
    assert!(message.unwrap_or_default().contains("Invalid username or password"));
    assert!(started.elapsed() >= Duration::from_millis(FAILURE_DELAY_MS), "failure answered without delay");
    c.send(12, &MetadataRequest::default().with_topics(Some(vec![])));
    c.expect_closed("request after a failed authentication");

    let mut c = Client::connect(b.sasl);
    assert_eq!(handshake(&mut c, 1, "PLAIN").0, 0);
    assert_eq!(authenticate(&mut c, 0, b"\0nobody\0alice-secret").0, SASL_AUTHENTICATION_FAILED);
}

fn hmac<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// Runs the client side of a SCRAM exchange (RFC 5802); returns the final error code.
fn scram(client: &mut Client, mechanism: &str, user: &str, password: &str) -> i16 {
    let sha512 = mechanism == "SCRAM-SHA-512";
    let mac = |k: &[u8], d: &[u8]| if sha512 { hmac::<Hmac<Sha512>>(k, d) } else { hmac::<Hmac<Sha256>>(k, d) };
    let hash = |d: &[u8]| if sha512 { Sha512::digest(d).to_vec() } else { Sha256::digest(d).to_vec() };
    assert_eq!(handshake(client, 1, mechanism).0, 0);
    let name = user.replace('=', "=3D").replace(',', "=2C");
    let bare = format!("n={name},r=fyko+d2lbbFgONRv9qkxdawL");
    let (code, _, server_first, _) = authenticate(client, 2, format!("n,,{bare}").as_bytes());
    if code != 0 {
        return code;
    }
    let server_first = String::from_utf8(server_first).unwrap();
    let attrs: HashMap<&str, &str> = server_first.split(',').filter_map(|a| a.split_once('=')).collect();
    assert!(attrs["r"].starts_with("fyko+d2lbbFgONRv9qkxdawL") && attrs["r"].len() > 24, "{server_first}");
    let salt = B64.decode(attrs["s"]).unwrap();
    let iterations: u32 = attrs["i"].parse().unwrap();
    assert!(iterations >= 4096);
    let salted = if sha512 {
        pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password.as_bytes(), &salt, iterations).to_vec()
    } else {
        pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password.as_bytes(), &salt, iterations).to_vec()
    };
    let client_key = mac(&salted, b"Client Key");
    let without_proof = format!("c=biws,r={}", attrs["r"]);
    let auth_message = format!("{bare},{server_first},{without_proof}");
    let signature = mac(&hash(&client_key), auth_message.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
    let (code, message, server_final, _) =
        authenticate(client, 2, format!("{without_proof},p={}", B64.encode(proof)).as_bytes());
    if code != 0 {
        assert!(message.unwrap_or_default().contains("Authentication failed"));
        return code;
    }
    let server_signature = mac(&mac(&salted, b"Server Key"), auth_message.as_bytes());
    assert_eq!(String::from_utf8(server_final).unwrap(), format!("v={}", B64.encode(server_signature)));
    0
}

#[test]
fn scram_sha_256_and_512_full_exchanges() {
    let b = start();
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let mut c = Client::connect(b.sasl);
        assert_eq!(scram(&mut c, mechanism, "alice", "alice-secret"), 0, "{mechanism}");
        assert_serves(&mut c, &format!("sasl-{}", mechanism.to_lowercase()));
        let mut c = Client::connect(b.sasl);
        assert_eq!(scram(&mut c, mechanism, "c=d", "p=ss:w0rd"), 0, "{mechanism}: a user name with = (saslname escaping)");
        let mut c = Client::connect(b.sasl);
        assert_eq!(scram(&mut c, mechanism, "alice", "wrong"), SASL_AUTHENTICATION_FAILED, "{mechanism}");
        c.send(12, &MetadataRequest::default().with_topics(Some(vec![])));
        c.expect_closed("request after a failed SCRAM exchange");
        let mut c = Client::connect(b.sasl);
        assert_eq!(scram(&mut c, mechanism, "mallory", "x"), SASL_AUTHENTICATION_FAILED, "{mechanism} unknown user");
    }
}

#[test]
fn v0_handshake_takes_bare_tokens() {
    let b = start();
    let mut c = Client::connect(b.sasl);
    assert_eq!(handshake(&mut c, 0, "PLAIN").0, 0);
    c.write_frame(b"\0alice\0alice-secret").unwrap();
    assert_eq!(c.read_frame().unwrap().len(), 0, "PLAIN's empty server token, framed");
    assert_serves(&mut c, "sasl-v0");
    let mut c = Client::connect(b.sasl);
    assert_eq!(handshake(&mut c, 0, "PLAIN").0, 0);
    c.write_frame(b"\0alice\0wrong").unwrap();
    c.expect_closed("bad bare PLAIN token");
}

#[test]
fn plaintext_listener_needs_no_authentication_and_refuses_sasl() {
    let b = start();
    let mut c = Client::connect(b.plain);
    assert_eq!(handshake(&mut c, 1, "PLAIN").0, ILLEGAL_SASL_STATE);
    assert_eq!(authenticate(&mut c, 2, b"\0alice\0alice-secret").0, ILLEGAL_SASL_STATE);
    assert_serves(&mut c, "sasl-plaintext-listener");
}

/// PBKDF2 of `password` as a client computes it for AlterUserScramCredentials.
fn salted_password(sha512: bool, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    if sha512 {
        pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password.as_bytes(), salt, iterations).to_vec()
    } else {
        pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password.as_bytes(), salt, iterations).to_vec()
    }
}

#[test]
fn scram_users_are_altered_and_described_at_run_time_and_survive_a_restart() {
    use kafka_protocol::messages::alter_user_scram_credentials_request::{ScramCredentialDeletion, ScramCredentialUpsertion};
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
    use kafka_protocol::messages::{AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest};
    const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    const RESOURCE_NOT_FOUND: i16 = 91;
    const DUPLICATE_RESOURCE: i16 = 92;
    const UNACCEPTABLE_CREDENTIAL: i16 = 93;
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--sasl-user", "admin:admin-secret", "--authorizer-enabled", "true", "--super-users", "User:admin"];
    let b = start_at(dir.path(), &flags);
    let login = |addr: SocketAddr, mechanism: &str, user: &str, password: &str| {
        let mut c = Client::connect(addr);
        let code = if mechanism == "PLAIN" {
            assert_eq!(handshake(&mut c, 1, mechanism).0, 0);
            authenticate(&mut c, 2, format!("\0{user}\0{password}").as_bytes()).0
        } else {
            scram(&mut c, mechanism, user, password)
        };
        (code, c)
    };
    let describe = |c: &mut Client, users: Option<&[&str]>| {
        let r = c.call(
            0,
            &DescribeUserScramCredentialsRequest::default()
                .with_users(users.map(|us| us.iter().map(|u| UserName::default().with_name(sb(u))).collect())),
        );
        let results: Vec<(String, i16, Vec<(i8, i32)>)> = r
            .results
            .iter()
            .map(|x| (x.user.to_string(), x.error_code, x.credential_infos.iter().map(|i| (i.mechanism, i.iterations)).collect()))
            .collect();
        (r.error_code, results)
    };
    let both = vec![(1, 4096), (2, 4096)];
    let (code, mut admin) = login(b.sasl, "PLAIN", "admin", "admin-secret");
    assert_eq!(code, 0);
    assert_eq!(
        describe(&mut admin, None),
        (0, vec![("admin".to_string(), 0, both.clone()), ("alice".to_string(), 0, both.clone()), ("c=d".to_string(), 0, both.clone())])
    );
    // Without ALTER / DESCRIBE on the cluster: refused.
    let (_, mut alice) = login(b.sasl, "PLAIN", "alice", "alice-secret");
    assert_eq!(describe(&mut alice, None).0, CLUSTER_AUTHORIZATION_FAILED);
    let upsert = |user: &str, mechanism: i8, iterations: i32, password: &str| {
        let salt = format!("salt-of-{user}").into_bytes();
        ScramCredentialUpsertion::default()
            .with_name(sb(user))
            .with_mechanism(mechanism)
            .with_iterations(iterations)
            .with_salted_password(salted_password(mechanism == 2, password, &salt, iterations.max(1) as u32).into())
            .with_salt(salt.into())
    };
    let alter = |c: &mut Client, deletions: Vec<ScramCredentialDeletion>, upsertions: Vec<ScramCredentialUpsertion>| {
        let r = c.call(0, &AlterUserScramCredentialsRequest::default().with_deletions(deletions).with_upsertions(upsertions));
        r.results.iter().map(|x| (x.user.to_string(), x.error_code)).collect::<Vec<_>>()
    };
    let deletion = |user: &str, mechanism: i8| ScramCredentialDeletion::default().with_name(sb(user)).with_mechanism(mechanism);
    assert_eq!(alter(&mut alice, vec![], vec![upsert("bob", 2, 8192, "bob-secret")]), vec![("bob".to_string(), CLUSTER_AUTHORIZATION_FAILED)]);
    assert_eq!(login(b.sasl, "SCRAM-SHA-512", "bob", "bob-secret").0, SASL_AUTHENTICATION_FAILED, "not created by alice");

    // Kafka's checks, user by user: valid changes first, then the refused ones.
    let results = alter(
        &mut admin,
        vec![deletion("nobody", 1), deletion("alice", 1)],
        vec![
            upsert("bob", 2, 8192, "bob-secret"),
            upsert("carol", 1, 1000, "x"),
            upsert("dave", 3, 4096, "x"),
            upsert("eve", 2, 20000, "x"),
            upsert("alice", 2, 4096, "x"),
        ],
    );
    assert_eq!(
        results,
        vec![
            ("bob".to_string(), 0),
            ("nobody".to_string(), RESOURCE_NOT_FOUND),
            ("carol".to_string(), UNACCEPTABLE_CREDENTIAL),
            ("dave".to_string(), UNSUPPORTED_SASL_MECHANISM),
            ("eve".to_string(), UNACCEPTABLE_CREDENTIAL),
            ("alice".to_string(), DUPLICATE_RESOURCE),
        ]
    );
    assert_eq!(login(b.sasl, "SCRAM-SHA-512", "bob", "bob-secret").0, 0);
    assert_eq!(login(b.sasl, "PLAIN", "bob", "bob-secret").0, 0, "PLAIN against bob's SHA-512 credential");
    assert_eq!(login(b.sasl, "SCRAM-SHA-512", "bob", "wrong").0, SASL_AUTHENTICATION_FAILED);
    assert_eq!(login(b.sasl, "SCRAM-SHA-256", "bob", "bob-secret").0, SASL_AUTHENTICATION_FAILED, "no SHA-256 credential");
    assert_eq!(login(b.sasl, "SCRAM-SHA-256", "alice", "alice-secret").0, 0, "alice's refused change left her as she was");
    assert_eq!(
        describe(&mut admin, Some(&["bob", "nobody", "alice", "alice"])),
        (
            0,
            vec![
                ("bob".to_string(), 0, vec![(2, 8192)]),
                ("nobody".to_string(), RESOURCE_NOT_FOUND, vec![]),
                ("alice".to_string(), DUPLICATE_RESOURCE, vec![]),
            ]
        )
    );
    drop(admin);
    drop(alice);

    // Stored: bob is there after a restart; then deleted, he cannot log in.
    drop(b);
    let b = start_at(dir.path(), &flags);
    assert_eq!(login(b.sasl, "SCRAM-SHA-512", "bob", "bob-secret").0, 0, "bob after a restart");
    let (_, mut admin) = login(b.sasl, "SCRAM-SHA-256", "admin", "admin-secret");
    assert_eq!(describe(&mut admin, Some(&["bob"])), (0, vec![("bob".to_string(), 0, vec![(2, 8192)])]));
    assert_eq!(alter(&mut admin, vec![deletion("bob", 2)], vec![]), vec![("bob".to_string(), 0)]);
    assert_eq!(login(b.sasl, "SCRAM-SHA-512", "bob", "bob-secret").0, SASL_AUTHENTICATION_FAILED);
    assert_eq!(describe(&mut admin, Some(&["bob"])).1[0].1, RESOURCE_NOT_FOUND);
    drop(admin);
    drop(b);
    let b = start_at(dir.path(), &flags);
    assert_eq!(login(b.sasl, "SCRAM-SHA-512", "bob", "bob-secret").0, SASL_AUTHENTICATION_FAILED, "deletion is stored");
}

#[test]
fn kip368_sessions_expire_unless_the_client_reauthenticates() {
    const LIFETIME_MS: i64 = 1500;
    let dir = tempfile::tempdir().unwrap();
    let b = start_at(dir.path(), &["--connections-max-reauth-ms", &LIFETIME_MS.to_string()]);
    // The step that completes an authentication carries the session lifetime (v1+).
    let mut c = Client::connect(b.sasl);
    assert_eq!(handshake(&mut c, 1, "PLAIN").0, 0);
    let (code, _, _, lifetime) = authenticate(&mut c, 2, b"\0alice\0alice-secret");
    assert_eq!((code, lifetime), (0, LIFETIME_MS));
    assert_serves(&mut c, "reauth-1");
    // Re-authentication on the same connection: same user and mechanism.
    assert_eq!(handshake(&mut c, 1, "PLAIN").0, 0);
    let (code, _, _, lifetime) = authenticate(&mut c, 1, b"\0alice\0alice-secret");
    assert_eq!((code, lifetime), (0, LIFETIME_MS));
    assert_serves(&mut c, "reauth-2");
    // SCRAM re-authenticates the same way.
    let mut s = Client::connect(b.sasl);
    assert_eq!(scram(&mut s, "SCRAM-SHA-512", "alice", "alice-secret"), 0);
    assert_eq!(scram(&mut s, "SCRAM-SHA-512", "alice", "alice-secret"), 0, "SCRAM re-authentication");
    assert_serves(&mut s, "reauth-scram");
    // Another principal is refused, and the connection is done.
    assert_eq!(handshake(&mut c, 1, "PLAIN").0, 0);
    assert_eq!(authenticate(&mut c, 2, b"\0c=d\0p=ss:w0rd").0, SASL_AUTHENTICATION_FAILED);
    c.send(12, &MetadataRequest::default().with_topics(Some(vec![])));
    c.expect_closed("request after a re-authentication as someone else");
    // Without re-authentication the connection is closed once the session expired:
    // requests are served until then.
    let mut c = Client::connect(b.sasl);
    assert_eq!(handshake(&mut c, 1, "PLAIN").0, 0);
    let authenticated = Instant::now();
    assert_eq!(authenticate(&mut c, 2, b"\0alice\0alice-secret").0, 0);
    let deadline = authenticated + Duration::from_secs(20);
    let closed_after = loop {
        assert!(Instant::now() < deadline, "the expired session was never closed");
        let sent = Instant::now();
        let id = c.send(12, &MetadataRequest::default().with_topics(Some(vec![])));
        match c.read_frame() {
            Ok(frame) => {
                let r = protocol_tests::decode_response::<MetadataRequest>(frame, 12, id);
                assert_eq!(r.brokers.len(), 1);
            }
            Err(_) => break sent.duration_since(authenticated),
        }
        std::thread::sleep(Duration::from_millis(100)); // request pacing, not synchronisation
    };
    assert!(closed_after >= Duration::from_millis(LIFETIME_MS as u64 - 50), "closed after {closed_after:?}");
}
