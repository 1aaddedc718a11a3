//! `fluxo healthcheck`: the container health probe. GETs `/health` from the broker
//! configured by the same file, environment and flags the broker reads, and exits
//! 0 when it answers 200, 1 otherwise (Docker's healthy and unhealthy).
//!
//! A subcommand of the broker binary rather than `curl` in the image: the slim
//! runtime image stays without an HTTP client and its dependencies, and the probe
//! finds the endpoint from `FLUXO_METRICS_LISTENER` (or `FLUXO_CONFIG`) itself, so
//! it follows a moved port without editing the HEALTHCHECK line.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::config::Config;

/// How long the probe waits to connect, and then for the answer.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Probes the broker `config` describes. `Ok` names what answered; `Err` says why
/// the broker is not healthy. With the HTTP endpoint disabled (`metrics_listener`
/// empty), a TCP connection to the Kafka listener is the probe.
pub fn probe(config: &Config) -> Result<String, String> {
    if config.metrics_listener.is_empty() {
        let addr = local_address(&config.listener)?;
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("Kafka listener {addr}: {e}"))?;
        return Ok(format!("Kafka listener {addr} accepts connections (metrics endpoint disabled)"));
    }
    let addr = local_address(&config.metrics_listener)?;
    let url = format!("http://{addr}/health");
    let status = get_status(addr, "/health").map_err(|e| format!("GET {url}: {e}"))?;
    if status == 200 {
        Ok(format!("GET {url}: 200"))
    } else {
        Err(format!("GET {url}: {status}"))
    }
}

/// A bind address made connectable from the same host: a wildcard becomes loopback.
fn local_address(bind: &str) -> Result<SocketAddr, String> {
    let mut addr = bind
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("cannot parse address {bind:?}"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    Ok(addr)
}

/// The status code of `GET path` on `addr` (HTTP/1.1, connection closed after).
fn get_status(addr: SocketAddr, path: &str) -> Result<u16, String> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: fluxo-healthcheck\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    // Only the status line matters: "HTTP/1.1 200 OK\r\n".
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 || head.len() > 4096 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("");
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next().and_then(|c| c.parse::<u16>().ok())) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => Ok(code),
        _ => Err(format!("not an HTTP answer: {line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot HTTP server answering `status`; returns its address.
    fn serve_once(status: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 3\r\n\r\nok\n").as_bytes());
        });
        // A wildcard bind address is probed on loopback.
        format!("0.0.0.0:{}", addr.port())
    }

    #[test]
    fn healthy_only_on_200() {
        let ok = Config { metrics_listener: serve_once("200 OK"), ..Config::default() };
        assert!(probe(&ok).unwrap().ends_with(": 200"));
        let down = Config { metrics_listener: serve_once("503 Service Unavailable"), ..Config::default() };
        assert!(probe(&down).unwrap_err().ends_with(": 503"));
    }

    #[test]
    fn nothing_listening_is_unhealthy() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let none = Config { metrics_listener: format!("127.0.0.1:{port}"), ..Config::default() };
        assert!(probe(&none).is_err());
        let tcp = Config { metrics_listener: String::new(), listener: format!("127.0.0.1:{port}"), ..Config::default() };
        assert!(probe(&tcp).unwrap_err().contains("Kafka listener"));
    }
}
