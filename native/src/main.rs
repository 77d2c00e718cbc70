//! The `dynamo` binary: run one node, a whole local cluster, or print the default cluster file.

mod cluster_file;
mod host;
mod node;
mod password;
mod resp;
mod serve;
mod storage;
mod supervisor;
mod tls;
mod ws_api;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cluster_file::ClusterFile;

/// A Dynamo-style replicated key-value store.
#[derive(Parser)]
#[command(name = "dynamo", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node of a cluster file.
    Node {
        /// The cluster file (TOML; `dynamo config` prints an example).
        #[arg(long)]
        config: PathBuf,
        /// Which node of the file to run.
        #[arg(long)]
        name: String,
        /// Another browser origin allowed on the WebSocket API (repeatable).
        #[arg(long = "allow-origin")]
        allow_origin: Vec<String>,
        /// Exit when standard input closes: set by `dynamo cluster`, so that no node outlives
        /// its supervisor, even one killed with SIGKILL.
        #[arg(long, hide = true)]
        supervised: bool,
    },
    /// Start every node of a cluster file as a child process; Ctrl-C stops them all.
    Cluster {
        /// The cluster file; without it, the built-in five-node default (written, with a fresh
        /// secret, to data/cluster.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Serve the visualizer and the control API on this address (e.g. 127.0.0.1:8080).
        #[arg(long)]
        http: Option<std::net::SocketAddr>,
        /// The built visualizer to serve (scripts/web.sh build makes it).
        #[arg(long, default_value = "web/dist")]
        web: PathBuf,
    },
    /// Print the built-in default cluster file.
    Config,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The nodes of one `dynamo cluster` share its stderr: each node's log lines carry its name.
    let prefix = match &cli.command {
        Command::Node { name, .. } => format!("[{name}] "),
        _ => String::new(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // Colour codes are for a person at a terminal; in a file or a pipe they are noise.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(Prefixed { prefix })
        .init();
    match cli.command {
        Command::Config => {
            // `dynamo config | head` is fine: what was not read was not wanted.
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), cluster_file::DEFAULT.as_bytes());
            ExitCode::SUCCESS
        }
        Command::Node { config, name, allow_origin, supervised } => {
            if supervised {
                std::thread::spawn(|| {
                    let mut sink = Vec::new();
                    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
                    std::process::exit(0);
                });
            }
            let mut file = match ClusterFile::load(&config) {
                Ok(file) => file,
                Err(error) => return usage_error(&error),
            };
            file.allowed_origins.extend(allow_origin);
            let index = match file.index_of(&name) {
                Ok(index) => index,
                Err(error) => return usage_error(&error),
            };
            // One thread runs the node, its links and its connections: with five processes
            // sharing a few cores, worker threads would mostly wake each other (futex calls and
            // context switches measured at a quarter of the node's time under redis-benchmark).
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            // The node loop runs as a task, not as `block_on`'s own future: waking that future
            // writes to the runtime's eventfd every time, waking a task on the same thread does not.
            let node = runtime.spawn(async move { serve::run(file, index).await.map_err(|e| e.to_string()) });
            match runtime.block_on(node).unwrap_or_else(|panic| Err(panic.to_string())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    // Under `dynamo cluster` every node writes to the same stderr: say which.
                    eprintln!("dynamo: node {name}: {error}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Cluster { config, http, web } => supervisor::run(supervisor::Options { config, http, web }),
    }
}

/// Log output: stderr, each line starting with `prefix`.
struct Prefixed {
    prefix: String,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Prefixed {
    type Writer = PrefixedLine<'a>;

    fn make_writer(&'a self) -> PrefixedLine<'a> {
        PrefixedLine { prefix: &self.prefix }
    }
}

struct PrefixedLine<'a> {
    prefix: &'a str,
}

impl std::io::Write for PrefixedLine<'_> {
    /// The formatter hands over one whole event per write; prefix and event go out in one
    /// write, so lines of processes sharing the stderr do not cut into each other.
    fn write(&mut self, event: &[u8]) -> std::io::Result<usize> {
        let mut line = Vec::with_capacity(self.prefix.len() + event.len());
        line.extend_from_slice(self.prefix.as_bytes());
        line.extend_from_slice(event);
        std::io::stderr().lock().write_all(&line)?;
        Ok(event.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Prints one informational line on stdout. A closed stdout (`dynamo ... | head`) must not
/// panic or stop anything: the line is for a person who has stopped listening, so it is dropped.
fn say(line: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// A problem with what the user gave us: one line, exit code 2.
fn usage_error(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("dynamo: {error}");
    ExitCode::from(2)
}
