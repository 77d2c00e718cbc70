//! The supervisor's HTTP server (`dynamo cluster --http ADDR`): the visualizer (`--web DIR`, the
//! built `web/dist`) and a small control API: `GET /api/cluster` (nodes, addresses, liveness,
//! config) and `POST /api/control` (kill, restart, cut or heal links). Control needs the admin
//! token, generated at start and given only to the page this process serves (a `<meta>` tag in
//! index.html); requests without it are refused with 401.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use dynamo_core::api::{Answer, Control, ControlAnswer, Op, Request};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use super::{Slot, Supervisor};

/// Largest HTTP request head or body accepted by the control server.
const HTTP_BYTES_MAX: usize = 64 << 10;

pub(super) async fn serve(listener: TcpListener, supervisor: Arc<Supervisor>) {
    let Ok(served) = listener.local_addr() else { return };
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let supervisor = supervisor.clone();
        tokio::spawn(async move {
            let _ = http_connection(stream, served, supervisor).await;
        });
    }
}

struct HttpRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

async fn read_request(stream: &mut TcpStream) -> Result<HttpRequest, String> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end;
        }
        if buffer.len() > HTTP_BYTES_MAX {
            return Err("request head too large".into());
        }
        let read = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("connection closed".into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split_whitespace();
    let method = request_line.next().unwrap_or("").to_string();
    let path = request_line.next().unwrap_or("/").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
        .collect();
    let mut request = HttpRequest { method, path, headers, body: buffer[head_end + 4..].to_vec() };
    let length: usize = request.header("content-length").and_then(|value| value.parse().ok()).unwrap_or(0);
    if length > HTTP_BYTES_MAX {
        return Err("request body too large".into());
    }
    while request.body.len() < length {
        let read = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("connection closed".into());
        }
        request.body.extend_from_slice(&chunk[..read]);
    }
    request.body.truncate(length);
    Ok(request)
}

async fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
}

async fn respond_json(stream: &mut TcpStream, status: &str, value: Value) {
    respond(stream, status, "application/json", value.to_string().as_bytes()).await;
}

async fn http_connection(mut stream: TcpStream, served: SocketAddr, supervisor: Arc<Supervisor>) -> Result<(), String> {
    let request = match read_request(&mut stream).await {
        Ok(request) => request,
        Err(error) => {
            respond_json(&mut stream, "400 Bad Request", json!({ "error": error })).await;
            return Ok(());
        }
    };
    // DNS rebinding: a page of another domain that resolves to this address must get nothing,
    // neither the page (it carries the admin token) nor the API.
    let Some(host) = request.header("host").filter(|host| crate::host::allowed(Some(host), served)) else {
        let error = format!(
            "this server answers only requests for {served}, localhost:{port}, 127.0.0.1:{port} or [::1]:{port}",
            port = served.port()
        );
        respond_json(&mut stream, "421 Misdirected Request", json!({ "error": error })).await;
        return Ok(());
    };
    let host = host.to_string();
    let path = request.path.split('?').next().unwrap_or("/").to_string();
    match (request.method.as_str(), path.as_str()) {
        ("GET", "/api/cluster") => {
            let info = serde_json::to_value(supervisor.cluster_info()).expect("cluster info encodes");
            respond_json(&mut stream, "200 OK", info).await
        }
        ("POST", "/api/control") => {
            // A browser says where the request comes from: only the page this server served
            // may drive the cluster.
            if let Some(origin) = request.header("origin").filter(|origin| !crate::host::same_origin(origin, &host)) {
                let error = format!("origin {origin} may not use the control API");
                respond_json(&mut stream, "403 Forbidden", json!({ "error": error })).await;
                return Ok(());
            }
            let (status, answer) = control(&supervisor, &request).await;
            let answer = serde_json::to_value(answer).expect("a control answer encodes");
            respond_json(&mut stream, status, answer).await;
        }
        ("GET" | "HEAD", _) => static_file(&mut stream, &supervisor, &path).await,
        _ => respond_json(&mut stream, "405 Method Not Allowed", json!({ "error": "method not allowed" })).await,
    }
    Ok(())
}

async fn control(supervisor: &Supervisor, request: &HttpRequest) -> (&'static str, ControlAnswer) {
    if request.header("x-dynamo-token") != Some(supervisor.token.as_str()) {
        let error = "missing or wrong admin token (X-Dynamo-Token)".to_string();
        return ("401 Unauthorized", ControlAnswer::Error { error });
    }
    let action: Control = match serde_json::from_slice(&request.body) {
        Ok(action) => action,
        Err(error) => {
            return ("400 Bad Request", ControlAnswer::Error { error: format!("bad control request: {error}") })
        }
    };
    let result = match action {
        Control::Kill { node } => supervisor.index_of(&node).map(|index| {
            let mut children = supervisor.children.lock().expect("children lock");
            if let Slot::Running(child) = &mut children[index] {
                // SIGKILL: the node gets no chance to flush anything.
                let _ = child.kill();
                let _ = child.wait();
                children[index] = Slot::Stopped;
            }
            crate::say(format_args!("killed node {node}"));
        }),
        Control::Restart { node } => match supervisor.index_of(&node) {
            Ok(index) => {
                // A node that just died is reported before it is replaced.
                supervisor.reap();
                let mut children = supervisor.children.lock().expect("children lock");
                if matches!(children[index], Slot::Running(_)) {
                    Err(format!("node {node} is running"))
                } else {
                    match supervisor.spawn(index) {
                        Ok(child) => {
                            crate::say(format_args!("restarted node {node} (pid {})", child.id()));
                            children[index] = Slot::Running(child);
                            Ok(())
                        }
                        Err(error) => Err(format!("cannot start node {node}: {error}")),
                    }
                }
            }
            Err(error) => Err(error),
        },
        Control::Cut { from, to } => link(supervisor, &from, |secret| Op::Cut { peer: to, secret }).await,
        Control::Heal { from, to } => link(supervisor, &from, |secret| Op::Heal { peer: to, secret }).await,
        Control::HealAll => {
            let mut outcome = Ok(());
            for node in &supervisor.file.nodes {
                if let Err(error) = link(supervisor, &node.name, |secret| Op::HealAll { secret }).await {
                    outcome = Err(error);
                }
            }
            outcome
        }
    };
    match result {
        Ok(()) => ("200 OK", ControlAnswer::Ok { ok: true }),
        Err(error) => ("400 Bad Request", ControlAnswer::Error { error }),
    }
}

/// Sends a link-control request (`op` made with the cluster secret) to node `name`.
async fn link(supervisor: &Supervisor, name: &str, op: impl FnOnce(String) -> Op) -> Result<(), String> {
    let index = supervisor.index_of(name)?;
    let Some(secret) = &supervisor.file.secret else {
        return Err("the cluster file has no secret, so nodes refuse link control".into());
    };
    let mut requests = Vec::new();
    if let Some(password) = &supervisor.file.password {
        requests.push(Request { id: Value::Null, op: Op::Auth { user: None, password: password.clone() } });
    }
    requests.push(Request { id: Value::Null, op: op(secret.clone()) });
    let address = supervisor.file.nodes[index].ws;
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect(address).await.map_err(|e| format!("node {name}: {e}"))?;
        let (stream, scheme) = match &supervisor.file.tls {
            // The node's certificate must be the cluster CA's, for its address.
            Some(files) => {
                let connector = crate::tls::client(&files.ca).map_err(|e| e.to_string())?;
                let stream = crate::tls::dial_with(&connector, tcp, address.ip()).await;
                (stream.map_err(|e| format!("node {name}: TLS: {e}"))?, "wss")
            }
            None => (crate::tls::Stream::Plain(tcp), "ws"),
        };
        let url = format!("{scheme}://{address}/client");
        let (mut socket, _) =
            tokio_tungstenite::client_async(url, stream).await.map_err(|e| format!("node {name}: {e}"))?;
        for request in &requests {
            let text = serde_json::to_string(request).expect("a request always encodes");
            socket.send(Message::Text(text)).await.map_err(|e| e.to_string())?;
        }
        // The answer to the last request says how it went (a refused password refuses it too).
        let mut skip = requests.len() - 1;
        while let Some(message) = socket.next().await {
            if let Ok(Message::Text(text)) = message {
                let answer = serde_json::from_str::<Answer>(&text).map_err(|e| e.to_string())?;
                if skip > 0 && matches!(answer, Answer::Ok { .. }) {
                    skip -= 1;
                    continue;
                }
                return match answer {
                    Answer::Error { error, .. } => Err(format!("node {name}: {error}")),
                    _ => Ok(()),
                };
            }
        }
        Err(format!("node {name} closed the connection"))
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), attempt)
        .await
        .unwrap_or_else(|_| Err(format!("node {name} did not answer")))
}

/// `text` as an HTML attribute value's contents.
fn html_attribute(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|extension| extension.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

async fn static_file(stream: &mut TcpStream, supervisor: &Supervisor, path: &str) {
    let relative = PathBuf::from(path.trim_start_matches('/'));
    // Only plain names below the web directory: no "..", no absolute paths.
    if relative.components().any(|component| !matches!(component, Component::Normal(_))) {
        return respond_json(stream, "404 Not Found", json!({ "error": "not found" })).await;
    }
    let mut file = supervisor.web.join(&relative);
    if path == "/" || file.is_dir() {
        file = supervisor.web.join("index.html");
    }
    let Ok(mut body) = tokio::fs::read(&file).await else {
        return respond_json(stream, "404 Not Found", json!({ "error": "not found" })).await;
    };
    if file.file_name().is_some_and(|name| name == "index.html") {
        // The admin token, and the client password the nodes ask for, go to this page only
        // (served only for this server's own address: see `host::allowed`).
        let password = supervisor.file.password.as_deref().map_or(String::new(), |password| {
            format!("<meta name=\"dynamo-password\" content=\"{}\">", html_attribute(password))
        });
        let html = String::from_utf8_lossy(&body).replacen(
            "<head>",
            &format!("<head><meta name=\"dynamo-admin-token\" content=\"{}\">{password}", supervisor.token),
            1,
        );
        body = html.into_bytes();
    }
    respond(stream, "200 OK", content_type(&file), &body).await;
}
