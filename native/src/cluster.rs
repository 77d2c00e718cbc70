//! `dynamo cluster`: starts every node of a cluster file as a child process, prints their
//! addresses, says the cluster is running only once every node reported ready, restarts nothing
//! on its own, and stops them all on Ctrl-C. A node that dies is reaped and reported (name, pid,
//! exit code or signal); when every node has died on its own, the supervisor exits with 1.
//!
//! The nodes' standard output goes through the supervisor, which copies it line by line: that
//! is how it learns that a node is ready (the node's `node NAME ready:` line, printed once its
//! ports are bound), and a node never writes to a pipe nobody reads.
//!
//! With `--http ADDR` it also serves the visualizer (`--web DIR`, the built `web/dist`) and a
//! small control API on that address: `GET /api/cluster` (nodes, addresses, liveness, config)
//! and `POST /api/control` (kill, restart, cut or heal links). Control needs the admin token,
//! generated at start and given only to the page this process serves (a `<meta>` tag in
//! index.html); requests without it are refused with 401. Everything binds to 127.0.0.1 unless
//! told otherwise.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dynamo_core::api::{Answer, ClusterInfo, Control, ControlAnswer, NodeInfo, Op, Request};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use crate::cluster_file::{ClusterFile, DEFAULT};

/// Largest HTTP request head or body accepted by the control server.
const HTTP_BYTES_MAX: usize = 64 << 10;

/// How long the nodes may take, all together, to report ready at start. A node loads its whole
/// store before it binds its ports, so a large data directory needs a generous bound.
const READY_WAIT_MAX: Duration = Duration::from_secs(60);

/// How often the supervisor looks for children that died.
const REAP_INTERVAL: Duration = Duration::from_millis(100);

pub struct Options {
    pub config: Option<PathBuf>,
    pub http: Option<SocketAddr>,
    pub web: PathBuf,
}

/// Random hex from the OS, for the admin token and a fresh cluster secret.
fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buffer = vec![0u8; bytes];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut buffer)?;
    Ok(buffer.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// One node's process, as far as the supervisor knows.
enum Slot {
    /// Not started yet, or stopped by the supervisor (control API kill, shutdown).
    Stopped,
    Running(Child),
    /// Ended on its own; already reaped and reported.
    Exited,
}

struct Supervisor {
    file: ClusterFile,
    path: PathBuf,
    exe: PathBuf,
    extra_origin: Option<String>,
    children: Mutex<Vec<Slot>>,
    /// Where the stdout readers send the index of a node that printed its ready line. Only
    /// startup listens; later ready lines (restarts) are just copied to stdout.
    ready: Sender<usize>,
    token: String,
    web: PathBuf,
}

impl Supervisor {
    fn spawn(&self, index: usize) -> std::io::Result<Child> {
        let name = self.file.nodes[index].name.clone();
        let mut command = Command::new(&self.exe);
        command.arg("node").arg("--config").arg(&self.path).arg("--name").arg(&name);
        // The child exits when this pipe closes, that is when this process is gone.
        command.arg("--supervised").stdin(Stdio::piped()).stdout(Stdio::piped());
        if let Some(origin) = &self.extra_origin {
            command.arg("--allow-origin").arg(origin);
        }
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let ready = self.ready.clone();
        let reader = std::thread::Builder::new()
            .name(format!("stdout of {name}"))
            .spawn(move || copy_stdout(stdout, &name, index, ready));
        if let Err(error) = reader {
            // Without its reader nobody would learn that the node is ready: do not leave it running.
            let _ = child.kill();
            let _ = child.wait();
            return Err(error);
        }
        Ok(child)
    }

    fn stop_all(&self) {
        let mut children = self.children.lock().expect("children lock");
        for slot in children.iter_mut() {
            if let Slot::Running(child) = slot {
                let _ = child.kill();
                let _ = child.wait();
                *slot = Slot::Stopped;
            }
        }
    }

    /// Reaps every child that has ended on its own (a zombie otherwise) and says which, with
    /// its pid and how it ended. Returns whether every node has now ended on its own; nodes
    /// stopped through the control API do not count, since whoever stopped them can restart them.
    fn reap(&self) -> bool {
        let mut children = self.children.lock().expect("children lock");
        for (node, slot) in self.file.nodes.iter().zip(children.iter_mut()) {
            let Slot::Running(child) = slot else { continue };
            if let Ok(Some(status)) = child.try_wait() {
                crate::say(format_args!("node {} (pid {}) {}", node.name, child.id(), ending(status)));
                *slot = Slot::Exited;
            }
        }
        children.iter().all(|slot| matches!(slot, Slot::Exited))
    }

    /// Waits (at most `READY_WAIT_MAX`) until every node printed its ready line, or ended.
    /// The error names the nodes that ended or never became ready.
    fn wait_ready(&self, ready: &Receiver<usize>) -> Result<(), String> {
        let deadline = Instant::now() + READY_WAIT_MAX;
        let mut up = vec![false; self.file.nodes.len()];
        loop {
            match ready.recv_timeout(REAP_INTERVAL) {
                Ok(index) => up[index] = true,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => unreachable!("the supervisor holds a sender"),
            }
            while let Ok(index) = ready.try_recv() {
                up[index] = true;
            }
            self.reap();
            let children = self.children.lock().expect("children lock");
            let names = |wanted: &dyn Fn(usize, &Slot) -> bool| -> Vec<&str> {
                let nodes = self.file.nodes.iter().zip(children.iter()).enumerate();
                nodes
                    .filter(|(index, (_, slot))| wanted(*index, slot))
                    .map(|(_, (node, _))| node.name.as_str())
                    .collect()
            };
            let exited = names(&|_, slot| matches!(slot, Slot::Exited));
            let waiting = names(&|index, slot| !up[index] && matches!(slot, Slot::Running(_)));
            if !waiting.is_empty() && Instant::now() < deadline {
                continue;
            }
            if !exited.is_empty() {
                return Err(format!("the cluster did not start: {} exited", nodes_phrase(&exited)));
            }
            if !waiting.is_empty() {
                return Err(format!(
                    "the cluster did not start: {} did not report ready within {} s",
                    nodes_phrase(&waiting),
                    READY_WAIT_MAX.as_secs()
                ));
            }
            return Ok(());
        }
    }

    fn index_of(&self, name: &str) -> Result<usize, String> {
        self.file.nodes.iter().position(|node| node.name == name).ok_or_else(|| format!("no node named {name:?}"))
    }

    fn cluster_info(&self) -> ClusterInfo {
        self.reap();
        let children = self.children.lock().expect("children lock");
        let nodes = self
            .file
            .nodes
            .iter()
            .zip(children.iter())
            .map(|(node, slot)| NodeInfo {
                name: node.name.clone(),
                ws: node.ws.to_string(),
                resp: node.resp.to_string(),
                up: matches!(slot, Slot::Running(_)),
            })
            .collect();
        ClusterInfo { nodes, config: self.file.config.clone() }
    }
}

/// "node 5554" or "nodes 5554, 5556".
fn nodes_phrase(names: &[&str]) -> String {
    let plural = if names.len() == 1 { "" } else { "s" };
    format!("node{plural} {}", names.join(", "))
}

/// How a child ended, for a person: "exited with code 1", "was killed by signal 9 (SIGKILL)".
fn ending(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exited with code {code}"),
        // std's Display names the signal ("signal: 9 (SIGKILL)").
        None => format!("was killed by {}", status.to_string().replacen("signal: ", "signal ", 1)),
    }
}

/// Copies a node's standard output to ours, line by line, and tells `ready` when the node
/// prints its ready line (server.rs prints `node NAME ready: ...` once its ports are bound).
/// Ends when the node closes its stdout, that is when it exits.
fn copy_stdout(stdout: ChildStdout, name: &str, index: usize, ready: Sender<usize>) {
    let ready_line = format!("node {name} ready:");
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        crate::say(format_args!("{line}"));
        if line.starts_with(&ready_line) {
            // After startup nobody listens any more; a restarted node's line is only copied.
            let _ = ready.send(index);
        }
    }
}

pub fn run(options: Options) -> ExitCode {
    let (path, file) = match options.config {
        Some(path) => match ClusterFile::load(&path) {
            Ok(file) => (path, file),
            Err(error) => return crate::usage_error(&error),
        },
        None => match write_default() {
            Ok(loaded) => loaded,
            Err(error) => return crate::usage_error(&error),
        },
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => return crate::usage_error(&format!("cannot find the dynamo binary: {error}")),
    };
    let token = match random_hex(16) {
        Ok(token) => token,
        Err(error) => return crate::usage_error(&format!("cannot read /dev/urandom: {error}")),
    };
    let (ready, readiness) = std::sync::mpsc::channel();
    let supervisor = Arc::new(Supervisor {
        extra_origin: options.http.map(|address| format!("http://{address}")),
        children: Mutex::new((0..file.nodes.len()).map(|_| Slot::Stopped).collect()),
        ready,
        file,
        path,
        exe,
        token,
        web: options.web,
    });
    for (index, node) in supervisor.file.nodes.iter().enumerate() {
        match supervisor.spawn(index) {
            Ok(child) => {
                crate::say(format_args!(
                    "node {}: resp {}  ws://{}/client  (pid {})",
                    node.name,
                    node.resp,
                    node.ws,
                    child.id()
                ));
                supervisor.children.lock().expect("children lock")[index] = Slot::Running(child);
            }
            Err(error) => {
                eprintln!("dynamo: cannot start node {}: {error}", node.name);
                supervisor.stop_all();
                return ExitCode::from(1);
            }
        }
    }
    if let Err(error) = supervisor.wait_ready(&readiness) {
        eprintln!("dynamo: {error}; stopping the rest");
        supervisor.stop_all();
        return ExitCode::from(1);
    }
    drop(readiness);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    let code = runtime.block_on(async {
        if let Some(address) = options.http {
            let listener = match TcpListener::bind(address).await {
                Ok(listener) => listener,
                Err(error) => {
                    eprintln!("dynamo: cannot listen on {address} (http): {error}");
                    return ExitCode::from(1);
                }
            };
            if !supervisor.web.join("index.html").exists() {
                eprintln!(
                    "dynamo: warning: {} has no index.html; build the page with scripts/web.sh build",
                    supervisor.web.display()
                );
            }
            crate::say(format_args!("visualizer and control API on http://{address}/"));
            tokio::spawn(serve_http(listener, supervisor.clone()));
        }
        crate::say(format_args!("cluster of {} nodes running; Ctrl-C stops it", supervisor.file.nodes.len()));
        let all_exited = async {
            let mut interval = tokio::time::interval(REAP_INTERVAL);
            loop {
                interval.tick().await;
                if supervisor.reap() {
                    return;
                }
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
            () = all_exited => {
                eprintln!("dynamo: every node has exited");
                ExitCode::from(1)
            }
        }
    });
    crate::say(format_args!("stopping"));
    supervisor.stop_all();
    code
}

/// Writes the default cluster file (with a fresh secret) to data/cluster.toml and loads it.
fn write_default() -> Result<(PathBuf, ClusterFile), String> {
    let secret = random_hex(16).map_err(|error| format!("cannot read /dev/urandom: {error}"))?;
    let text = DEFAULT.replace("# secret = \"...\"", &format!("secret = \"{secret}\""));
    let file = ClusterFile::parse(&text, Path::new("<default>")).expect("the default is valid");
    std::fs::create_dir_all(&file.data_dir).map_err(|e| format!("cannot create {}: {e}", file.data_dir.display()))?;
    let path = file.data_dir.join("cluster.toml");
    std::fs::write(&path, text).map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    Ok((path, file))
}

async fn serve_http(listener: TcpListener, supervisor: Arc<Supervisor>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let supervisor = supervisor.clone();
        tokio::spawn(async move {
            let _ = http_connection(stream, supervisor).await;
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

async fn http_connection(mut stream: TcpStream, supervisor: Arc<Supervisor>) -> Result<(), String> {
    let request = match read_request(&mut stream).await {
        Ok(request) => request,
        Err(error) => {
            respond_json(&mut stream, "400 Bad Request", json!({ "error": error })).await;
            return Ok(());
        }
    };
    let path = request.path.split('?').next().unwrap_or("/").to_string();
    match (request.method.as_str(), path.as_str()) {
        ("GET", "/api/cluster") => {
            let info = serde_json::to_value(supervisor.cluster_info()).expect("cluster info encodes");
            respond_json(&mut stream, "200 OK", info).await
        }
        ("POST", "/api/control") => {
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
    let request = Request { id: Value::Null, op: op(secret.clone()) };
    let url = format!("ws://{}/client", supervisor.file.nodes[index].ws);
    let attempt = async {
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.map_err(|e| format!("node {name}: {e}"))?;
        let text = serde_json::to_string(&request).expect("a request always encodes");
        socket.send(Message::Text(text)).await.map_err(|e| e.to_string())?;
        while let Some(message) = socket.next().await {
            if let Ok(Message::Text(text)) = message {
                return match serde_json::from_str::<Answer>(&text).map_err(|e| e.to_string())? {
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
        // The admin token goes to this page only.
        let html = String::from_utf8_lossy(&body).replacen(
            "<head>",
            &format!("<head><meta name=\"dynamo-admin-token\" content=\"{}\">", supervisor.token),
            1,
        );
        body = html.into_bytes();
    }
    respond(stream, "200 OK", content_type(&file), &body).await;
}
