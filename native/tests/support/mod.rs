//! A real five-process cluster on 127.0.0.1 for tests: free ports, a temporary data directory,
//! bounded waits, and every process killed when the `Cluster` is dropped.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct NodeInfo {
    pub name: String,
    pub ws: u16,
    pub resp: u16,
}

pub struct Cluster {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub nodes: Vec<NodeInfo>,
    /// The client password (`requirepass`) when `settings` set one.
    pub password: Option<String>,
    children: Vec<Option<Child>>,
}

/// Ports that were free a moment ago, distinct, and below the kernel's ephemeral range: a port
/// from that range (what binding port 0 hands out) can be taken by any outgoing connection (a
/// node dialing a peer, a benchmark client) between the moment it is picked and the moment the
/// node binds it. Each call in a process moves on through the range, so parallel tests never
/// pick the same port; the start depends on the process id, so test binaries run one after
/// another start apart too.
pub fn free_ports(count: usize) -> Vec<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let (low, high) = (10_000u32, ephemeral_low.max(10_000 + 1_000));
    let span = high - low;
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7_919) % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    let mut held = Vec::with_capacity(count);
    for _ in 0..span {
        if held.len() == count {
            break;
        }
        let port = (low + NEXT.fetch_add(1, Ordering::SeqCst) % span) as u16;
        // Bound here, so it is free now; held until all are picked, so they are distinct.
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
        }
    }
    assert_eq!(held.len(), count, "{count} free ports below {high}");
    held.iter().map(|listener| listener.local_addr().expect("local address").port()).collect()
}

impl Cluster {
    /// Starts five nodes and waits until each answers PING.
    pub fn start(test: &str) -> Cluster {
        Cluster::start_with(test, "")
    }

    /// Like `start`, with `settings` (TOML lines) added to the cluster file. The timeouts are
    /// 100 ms per request and 1 s per operation unless `settings` sets them.
    pub fn start_with(test: &str, settings: &str) -> Cluster {
        let cluster = Cluster::launch(test, settings);
        for index in 0..cluster.nodes.len() {
            cluster.wait_ready(index);
        }
        cluster
    }

    /// Like `start_with`, without waiting for the nodes: for clusters whose RESP port does not
    /// answer a plain PING (TLS), which the caller waits for its own way.
    pub fn launch(test: &str, settings: &str) -> Cluster {
        let dir = std::env::temp_dir().join(format!("dynamo-test-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test directory");
        let ports = free_ports(10);
        let names = ["5554", "5556", "5558", "5560", "5562"];
        let nodes: Vec<NodeInfo> = names
            .iter()
            .enumerate()
            .map(|(i, name)| NodeInfo { name: name.to_string(), ws: ports[2 * i], resp: ports[2 * i + 1] })
            .collect();
        let mut text = format!("data_dir = {:?}\n{settings}", dir.join("data"));
        if !settings.contains("timeout_ms") {
            text.push_str("request_timeout_ms = 100\noperation_timeout_ms = 1000\n");
        }
        for node in &nodes {
            text.push_str(&format!(
                "[[node]]\nname = \"{}\"\nws = \"127.0.0.1:{}\"\nresp = \"127.0.0.1:{}\"\n",
                node.name, node.ws, node.resp
            ));
        }
        let config = dir.join("cluster.toml");
        std::fs::write(&config, text).expect("write the cluster file");
        let password = settings
            .lines()
            .find_map(|line| line.trim().strip_prefix("requirepass = "))
            .map(|quoted| quoted.trim_matches('"').to_string());
        let mut cluster = Cluster { dir, config, nodes, password, children: Vec::new() };
        for index in 0..cluster.nodes.len() {
            let child = cluster.spawn(index);
            cluster.children.push(Some(child));
        }
        cluster
    }

    fn spawn(&self, index: usize) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}.log", self.nodes[index].name)))
            .expect("open the node log");
        Command::new(env!("CARGO_BIN_EXE_dynamo"))
            .args(["node", "--config"])
            .arg(&self.config)
            .args(["--name", &self.nodes[index].name])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start a dynamo node")
    }

    /// Waits (at most 20 s) until node `index` answers PING on its RESP port (after AUTH when the
    /// cluster has a password) and votes (INFO says `admission:admitted`: a node that started
    /// with nothing stored first hears from its peers).
    pub fn wait_ready(&self, index: usize) {
        self.wait_for(index, true)
    }

    /// Waits (at most 20 s) until node `index` answers PING, admitted or not (a node that cannot
    /// reach its peers answers PING but never votes).
    pub fn wait_answering(&self, index: usize) {
        self.wait_for(index, false)
    }

    fn wait_for(&self, index: usize, voting: bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let (request, expected) = match &self.password {
            Some(password) => (format!("AUTH {password}\r\nPING\r\n"), "+OK\r\n+PONG\r\n"),
            None => ("PING\r\n".to_string(), "+PONG\r\n"),
        };
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.nodes[index].resp)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut answer = vec![0u8; expected.len()];
                if stream.write_all(request.as_bytes()).is_ok()
                    && stream.read_exact(&mut answer).is_ok()
                    && answer == expected.as_bytes()
                    && (!voting || admitted(&mut stream))
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let what = if voting { "become ready and admitted" } else { "answer PING" };
        panic!("node {} did not {what} within 20 s; see {}", self.nodes[index].name, self.dir.display());
    }

    /// SIGKILL: the process gets no chance to flush anything.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.children[index].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self, index: usize) {
        self.relaunch(index);
        self.wait_ready(index);
    }

    /// Like `restart`, without waiting for the node (see `launch`).
    pub fn relaunch(&mut self, index: usize) {
        assert!(self.children[index].is_none(), "restart a killed node only");
        let child = self.spawn(index);
        self.children[index] = Some(child);
    }

    /// Waits (at most `within`) for node `index`'s process to exit by itself; its exit code.
    pub fn wait_exit(&mut self, index: usize, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let child = self.children[index].as_mut().expect("the node runs");
            if let Some(status) = child.try_wait().expect("wait for the node") {
                self.children[index] = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Node `index`'s data directory (`data_dir/<name>`).
    pub fn data_dir(&self, index: usize) -> PathBuf {
        self.dir.join("data").join(&self.nodes[index].name)
    }

    /// The text of node `index`'s log so far.
    pub fn log(&self, index: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.log", self.nodes[index].name))).unwrap_or_default()
    }

    pub fn is_up(&self, index: usize) -> bool {
        self.children[index].is_some()
    }

    pub fn url(&self, index: usize, resp3: bool) -> String {
        let protocol = if resp3 { "?protocol=resp3" } else { "" };
        let password = self.password.as_ref().map_or(String::new(), |password| format!(":{password}@"));
        format!("redis://{password}127.0.0.1:{}/{protocol}", self.nodes[index].resp)
    }

    /// A Redis client connection to node `index`, with bounded waits.
    pub fn redis(&self, index: usize, resp3: bool) -> redis::Connection {
        let client = redis::Client::open(self.url(index, resp3)).expect("valid url");
        let connection = client.get_connection_with_timeout(Duration::from_secs(5)).expect("connect");
        connection.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        connection.set_write_timeout(Some(Duration::from_secs(10))).expect("timeout");
        connection
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for index in 0..self.children.len() {
            self.kill(index);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Whether the node behind `stream` says `admission:admitted` in `INFO server`.
fn admitted(stream: &mut TcpStream) -> bool {
    if stream.write_all(b"INFO server\r\n").is_err() {
        return false;
    }
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    // A bulk string: its header line, then the text; the server section is small.
    while let Ok(count) = stream.read(&mut buffer) {
        if count == 0 {
            break;
        }
        seen.extend_from_slice(&buffer[..count]);
        let text = String::from_utf8_lossy(&seen);
        // Done once the admission line has arrived whole.
        if text.find("admission:").is_some_and(|at| text[at..].contains("\r\n")) {
            break;
        }
    }
    String::from_utf8_lossy(&seen).contains("admission:admitted")
}
