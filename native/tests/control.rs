//! `dynamo cluster --http`: the page gets the admin token, control requests without it are
//! refused, kill / restart / cut / heal work on real processes, foreign browser origins are
//! refused, and no node outlives a supervisor killed with SIGKILL.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::free_ports;

use serde_json::Value;

struct Supervisor {
    child: Child,
    dir: PathBuf,
    http: u16,
    resp: Vec<u16>,
    ws: Vec<u16>,
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // SIGKILL on purpose: the nodes must still go (their stdin pipe closes).
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// One HTTP/1.1 request; returns (status code, body).
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new()) };
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nContent-Length: {}\r\n", body.len());
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    (status, body)
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn nodes_up(port: u16) -> Vec<bool> {
    let (_, body) = http(port, "GET", "/api/cluster", &[], "");
    let cluster: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    cluster["nodes"].as_array().map(|nodes| nodes.iter().map(|n| n["up"] == true).collect()).unwrap_or_default()
}

fn start(test: &str) -> Supervisor {
    let dir = std::env::temp_dir().join(format!("dynamo-control-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("web")).unwrap();
    std::fs::write(dir.join("web/index.html"), "<html><head><title>t</title></head><body>page</body></html>").unwrap();
    let ports = free_ports(11);
    let (ws, resp): (Vec<u16>, Vec<u16>) = (0..5).map(|i| (ports[2 * i], ports[2 * i + 1])).unzip();
    let mut text = format!("data_dir = {:?}\nsecret = \"0123456789abcdef0123\"\n", dir.join("data"));
    for (i, name) in ["5554", "5556", "5558", "5560", "5562"].iter().enumerate() {
        text.push_str(&format!(
            "[[node]]\nname = \"{name}\"\nws = \"127.0.0.1:{}\"\nresp = \"127.0.0.1:{}\"\n",
            ws[i], resp[i]
        ));
    }
    std::fs::write(dir.join("cluster.toml"), text).unwrap();
    let http_port = ports[10];
    let child = Command::new(env!("CARGO_BIN_EXE_dynamo"))
        .arg("cluster")
        .arg("--config")
        .arg(dir.join("cluster.toml"))
        .arg("--http")
        .arg(format!("127.0.0.1:{http_port}"))
        .arg("--web")
        .arg(dir.join("web"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let supervisor = Supervisor { child, dir, http: http_port, resp, ws };
    wait_until("every node up", || nodes_up(http_port) == vec![true; 5]);
    for port in &supervisor.resp {
        wait_until("PONG", || ping(*port));
    }
    supervisor
}

/// The status line of a WebSocket handshake to a node's client API with this Origin.
fn websocket_status(port: u16, origin: &str) -> String {
    websocket_status_for(port, &format!("127.0.0.1:{port}"), origin)
}

/// The same, asking for `host`.
fn websocket_status_for(port: u16, host: &str, origin: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let request = format!(
        "GET /client HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut buffer = [0u8; 256];
    let read = stream.read(&mut buffer).unwrap_or(0);
    String::from_utf8_lossy(&buffer[..read]).lines().next().unwrap_or("").to_string()
}

#[test]
fn control_needs_the_token_and_drives_real_processes() {
    let supervisor = start("token");
    let port = supervisor.http;
    // The page served by the supervisor carries the token.
    let (status, page) = http(port, "GET", "/", &[], "");
    assert_eq!(status, 200);
    let token = page.split("dynamo-admin-token\" content=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap();
    assert_eq!(token.len(), 32);
    // Without the token, or with a wrong one: refused, and nothing happens.
    let kill = r#"{"action": "kill", "node": "5556"}"#;
    let (status, body) = http(port, "POST", "/api/control", &[], kill);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("admin token"));
    let (status, _) = http(port, "POST", "/api/control", &[("X-Dynamo-Token", "nope")], kill);
    assert_eq!(status, 401);
    assert_eq!(nodes_up(port), vec![true; 5]);
    // With it: SIGKILL, and the node's port goes silent.
    let (status, body) = http(port, "POST", "/api/control", &[("X-Dynamo-Token", token)], kill);
    assert_eq!(status, 200, "{body}");
    assert_eq!(nodes_up(port), vec![true, false, true, true, true]);
    assert!(!ping(supervisor.resp[1]));
    let (status, body) = http(port, "POST", "/api/control", &[("X-Dynamo-Token", token)], r#"{"action": "nonsense"}"#);
    assert_eq!(status, 400, "{body}");
    // Restart, link cut and heal.
    let restart = r#"{"action": "restart", "node": "5556"}"#;
    let (status, body) = http(port, "POST", "/api/control", &[("X-Dynamo-Token", token)], restart);
    assert_eq!(status, 200, "{body}");
    wait_until("5556 back", || ping(supervisor.resp[1]));
    let cut = r#"{"action": "cut", "from": "5554", "to": "5556"}"#;
    let (status, body) = http(port, "POST", "/api/control", &[("X-Dynamo-Token", token)], cut);
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(port, "POST", "/api/control", &[("X-Dynamo-Token", token)], r#"{"action": "heal_all"}"#);
    assert_eq!(status, 200, "{body}");
    // Browsers from elsewhere may not use the nodes' WebSocket API; the page's origin may.
    assert!(websocket_status(supervisor.ws[0], "http://evil.example").contains("403"));
    let own = format!("http://127.0.0.1:{port}");
    assert!(websocket_status(supervisor.ws[0], &own).contains("101"));
    // Path traversal is not served.
    let (status, _) = http(port, "GET", "/../cluster.toml", &[], "");
    assert_eq!(status, 404);
}

#[test]
fn no_node_outlives_a_killed_supervisor() {
    let mut supervisor = start("orphans");
    let _ = supervisor.child.kill();
    let _ = supervisor.child.wait();
    for port in supervisor.resp.clone() {
        wait_until("the node to exit with its supervisor", || !ping(port));
    }
}

/// Found as a new user would (2026-12-03): with `Host: evil.example:8080` the supervisor served
/// the page with the admin token in it, and `POST /api/control` with that Host, a matching
/// Origin and the token killed real nodes. A page whose domain rebinds to 127.0.0.1 is
/// same-origin with the supervisor and could do exactly that. Now a Host that is not this
/// server's address (or localhost) gets 421, on the page, the API and the nodes' WebSocket port,
/// and a control request whose Origin is not the page's own gets 403.
#[test]
fn a_rebinding_host_or_a_foreign_origin_is_refused() {
    let supervisor = start("rebinding");
    let port = supervisor.http;
    let evil = format!("evil.example:{port}");
    let (status, page) = http(port, "GET", "/", &[("Host", &evil)], "");
    assert_eq!(status, 421, "{page}");
    assert!(!page.contains("dynamo-admin-token"), "the token does not leave: {page}");
    let (status, _) = http(port, "GET", "/api/cluster", &[("Host", &evil)], "");
    assert_eq!(status, 421);
    // The token, as the real page has it.
    let (status, page) = http(port, "GET", "/", &[], "");
    assert_eq!(status, 200);
    let token = page.split("dynamo-admin-token\" content=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap();
    let kill = r#"{"action": "kill", "node": "5556"}"#;
    let evil_origin = format!("http://{evil}");
    let rebound = [("Host", evil.as_str()), ("Origin", evil_origin.as_str()), ("X-Dynamo-Token", token)];
    let (status, body) = http(port, "POST", "/api/control", &rebound, kill);
    assert_eq!(status, 421, "{body}");
    // The right Host but another page's Origin (a cross-site form post, say).
    let foreign = [("Origin", "http://evil.example"), ("X-Dynamo-Token", token)];
    let (status, body) = http(port, "POST", "/api/control", &foreign, kill);
    assert_eq!(status, 403, "{body}");
    assert_eq!(nodes_up(port), vec![true; 5], "nothing was killed");
    // The page's own origin (what the real page sends), and localhost, work.
    let own = format!("http://127.0.0.1:{port}");
    let (status, body) = http(
        port,
        "POST",
        "/api/control",
        &[("Origin", own.as_str()), ("X-Dynamo-Token", token)],
        r#"{"action": "heal_all"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let localhost = format!("localhost:{port}");
    let (status, _) = http(port, "GET", "/api/cluster", &[("Host", &localhost)], "");
    assert_eq!(status, 200);
    // The nodes' WebSocket port: a rebinding Host is refused before any Origin is looked at.
    let node = supervisor.ws[0];
    assert!(websocket_status_for(node, &format!("evil.example:{node}"), &own).contains("421"));
    assert!(websocket_status_for(node, &format!("localhost:{node}"), &own).contains("101"));
}
