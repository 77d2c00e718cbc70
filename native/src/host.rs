//! Which `Host` a request to one of our HTTP ports (the supervisor's page and control API, a
//! node's WebSocket port) may name. A web page whose domain an attacker rebinds to 127.0.0.1
//! (DNS rebinding) is same-origin with a loopback server, but its requests still carry the
//! attacker's domain in `Host`: so a server answers only the addresses it serves, by IP
//! literal, and `localhost`, with its own port.

use std::net::{IpAddr, SocketAddr};

/// Whether `host` (a `Host` header's value) names `served`: `localhost`, a loopback address,
/// or the address it listens on (any IP literal when it listens on a wildcard address), with
/// `served`'s port. Names other than `localhost` never do: that is what a rebinding page sends.
pub fn allowed(host: Option<&str>, served: SocketAddr) -> bool {
    let Some(host) = host.map(str::trim) else { return false };
    let (name, port) = match host.rsplit_once(':') {
        // `[::1]:8080`, `127.0.0.1:8080`, `localhost:8080`; an IPv6 literal without a port
        // (`[::1]`) has its colons inside the brackets.
        Some((name, port)) if !port.contains(']') => (name, port.parse::<u16>().ok()),
        _ => (host, Some(80)),
    };
    if port != Some(served.port()) {
        return false;
    }
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let literal = name.strip_prefix('[').and_then(|inner| inner.strip_suffix(']')).unwrap_or(name);
    match literal.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback() || ip == served.ip() || served.ip().is_unspecified(),
        Err(_) => false,
    }
}

/// Whether a browser's `Origin` is the page's own: the origin of the `Host` it asked (which
/// `allowed` accepted). Servers here speak plain HTTP.
pub fn same_origin(origin: &str, host: &str) -> bool {
    origin.trim() == format!("http://{}", host.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_served_address_and_loopback_names_with_the_right_port_pass() {
        let served: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        for good in ["127.0.0.1:8080", "localhost:8080", "LOCALHOST:8080", "[::1]:8080", " 127.0.0.1:8080 "] {
            assert!(allowed(Some(good), served), "{good}");
        }
        for bad in [
            "evil.example:8080",
            "127.0.0.1.nip.io:8080",
            "127.0.0.1:8081",
            "localhost",
            "127.0.0.1",
            "10.0.0.5:8080",
            "[::1]",
            "",
            "localhost:80:8080",
        ] {
            assert!(!allowed(Some(bad), served), "{bad}");
        }
        assert!(!allowed(None, served), "no Host at all");
        // A node on another address: that address, and loopback.
        let node: SocketAddr = "10.1.2.3:11108".parse().unwrap();
        assert!(allowed(Some("10.1.2.3:11108"), node) && allowed(Some("localhost:11108"), node));
        assert!(!allowed(Some("10.1.2.4:11108"), node));
        // Listening on every address: any IP literal, never a name.
        let wildcard: SocketAddr = "0.0.0.0:80".parse().unwrap();
        assert!(allowed(Some("192.168.1.9"), wildcard) && allowed(Some("192.168.1.9:80"), wildcard));
        assert!(!allowed(Some("evil.example"), wildcard));
    }

    #[test]
    fn the_origin_must_be_the_pages_own() {
        assert!(same_origin("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(!same_origin("http://evil.example:8080", "127.0.0.1:8080"));
        assert!(!same_origin("null", "127.0.0.1:8080"));
    }
}
