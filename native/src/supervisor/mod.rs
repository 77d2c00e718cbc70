//! `dynamo cluster`: starts every node of a cluster file as a child process, prints their
//! addresses, says the cluster is running only once every node reported ready, restarts nothing
//! on its own, and stops them all on Ctrl-C. A node that dies is reaped and reported (name, pid,
//! exit code or signal); when every node has died on its own, the supervisor exits with 1.
//!
//! The nodes' standard output goes through the supervisor, which copies it line by line: that
//! is how it learns that a node is ready (the node's `node NAME ready:` line, printed once its
//! ports are bound), and a node never writes to a pipe nobody reads.
//!
//! With `--http ADDR` it also serves the visualizer and a small control API on that address
//! (`http.rs`).

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dynamo_core::api::{ClusterInfo, NodeInfo};
use tokio::net::TcpListener;

use crate::cluster_file::{ClusterFile, DEFAULT};

mod http;

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
        ClusterInfo { nodes, config: self.file.config.clone(), tls: self.file.tls.is_some() }
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
            tokio::spawn(http::serve(listener, supervisor.clone()));
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
