//! The `dynamo` binary as an operator meets it: `dynamo cluster` reaps and reports a child that
//! dies, refuses to call a cluster running when its nodes could not start, and says which node
//! failed; informational output to a closed stdout panics nothing. Every process runs on
//! 127.0.0.1 with free ports, every wait is bounded, and whatever a test starts is killed.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use support::free_ports;

const NAMES: [&str; 5] = ["5554", "5556", "5558", "5560", "5562"];

/// Generous for a debug build starting five nodes on a busy machine; a healthy start takes
/// about a second.
const WAIT_MAX: Duration = Duration::from_secs(60);

/// A temporary directory with a five-node cluster file on `ports` (ws, resp per node).
struct Setup {
    dir: PathBuf,
    config: PathBuf,
}

impl Setup {
    fn new(test: &str, ports: &[u16]) -> Setup {
        let dir = std::env::temp_dir().join(format!("dynamo-cli-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = format!("data_dir = {:?}\nfsync = false\n", dir.join("data"));
        for (index, name) in NAMES.iter().enumerate() {
            text.push_str(&format!(
                "[[node]]\nname = \"{name}\"\nws = \"127.0.0.1:{}\"\nresp = \"127.0.0.1:{}\"\n",
                ports[2 * index],
                ports[2 * index + 1]
            ));
        }
        let config = dir.join("cluster.toml");
        std::fs::write(&config, text).unwrap();
        Setup { dir, config }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A running `dynamo cluster`, its stdout lines arriving on `lines` and its stderr collected in
/// a file. Dropping it kills the supervisor with SIGKILL (its nodes follow, their stdin closes)
/// and every node pid it printed, in case one outlived it.
struct Supervisor {
    child: Child,
    lines: Receiver<String>,
    stderr: PathBuf,
    seen: Vec<String>,
    pids: Vec<u32>,
}

impl Supervisor {
    fn start(setup: &Setup) -> Supervisor {
        let stderr = setup.dir.join("stderr.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_dynamo"))
            .arg("cluster")
            .arg("--config")
            .arg(&setup.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Supervisor { child, lines, stderr, seen: Vec::new(), pids: Vec::new() }
    }

    /// Waits (at most `WAIT_MAX`) for a stdout line containing `text`, and returns it.
    fn expect_line(&mut self, text: &str) -> String {
        let deadline = Instant::now() + WAIT_MAX;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.record(&line);
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no line with {text:?} within {WAIT_MAX:?}; stdout so far: {:#?}", self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "the supervisor closed stdout before a line with {text:?}; stdout: {:#?}\nstderr: {}",
                    self.seen,
                    self.stderr()
                ),
            }
        }
    }

    /// Keeps `line`, and the pid of a start line ("node 5554: resp ... (pid 1234)").
    fn record(&mut self, line: &str) {
        let start = line.contains(": resp ") && line.contains("/client");
        if let Some((_, pid)) = line.strip_suffix(')').and_then(|rest| rest.rsplit_once("(pid ")).filter(|_| start) {
            self.pids.push(pid.parse().unwrap());
        }
        self.seen.push(line.to_string());
    }

    /// Every stdout line until the supervisor closes it (at most `WAIT_MAX`).
    fn all_lines(&mut self) -> Vec<String> {
        let deadline = Instant::now() + WAIT_MAX;
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => self.record(&line),
                Err(RecvTimeoutError::Disconnected) => return self.seen.clone(),
                Err(RecvTimeoutError::Timeout) => panic!("stdout still open after {WAIT_MAX:?}: {:#?}", self.seen),
            }
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn wait_exit(&mut self) -> ExitStatus {
        wait_exit(&mut self.child)
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in &self.pids {
            kill_if_dynamo(*pid);
        }
    }
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).stderr(Stdio::null()).status();
}

/// SIGKILL to `pid` if it is still a dynamo process (a node left behind), not a process that
/// got the number of one already gone.
fn kill_if_dynamo(pid: u32) {
    if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|name| name.trim() == "dynamo") {
        signal(pid, "KILL");
    }
}

/// Waits at most `WAIT_MAX` for `child` to exit.
fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + WAIT_MAX;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the process did not exit within {WAIT_MAX:?}");
}

/// The state letter of process `pid` ('Z' for a zombie), or None once it is gone.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ...": the state follows the last ')'.
    stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next())
}

#[test]
fn supervisor_reaps_and_reports_dead_children_then_exits_when_all_are_gone() {
    let setup = Setup::new("reap", &free_ports(10));
    let mut supervisor = Supervisor::start(&setup);
    supervisor.expect_line("cluster of 5 nodes running");
    assert_eq!(supervisor.pids.len(), 5, "one pid per node: {:#?}", supervisor.seen);
    let pids = supervisor.pids.clone();

    signal(pids[1], "KILL");
    let line = supervisor.expect_line(&format!("node 5556 (pid {})", pids[1]));
    assert!(line.ends_with("was killed by signal 9 (SIGKILL)"), "{line}");
    assert_eq!(process_state(pids[1]), None, "reaped, not a zombie");
    assert!(supervisor.child.try_wait().unwrap().is_none(), "one dead node does not stop the cluster");
    for pid in [pids[0], pids[2], pids[3]] {
        assert!(matches!(process_state(pid), Some(state) if state != 'Z'), "the other nodes run on");
    }

    // A node that fails on its own: exit code, not signal. The last one standing then takes
    // the supervisor with it.
    for pid in [pids[0], pids[2], pids[3]] {
        signal(pid, "KILL");
    }
    signal(pids[4], "TERM");
    let line = supervisor.expect_line("node 5562 (pid");
    assert!(line.contains("was killed by signal 15 (SIGTERM)"), "{line}");
    let status = supervisor.wait_exit();
    assert_eq!(status.code(), Some(1), "every node gone is a failure");
    assert!(supervisor.stderr().contains("every node has exited"), "{}", supervisor.stderr());
    for pid in pids {
        assert_eq!(process_state(pid), None, "pid {pid} reaped");
    }
}

#[test]
fn node_logs_say_which_node_and_carry_no_colour_codes() {
    let setup = Setup::new("logs", &free_ports(10));
    let mut supervisor = Supervisor::start(&setup);
    supervisor.expect_line("cluster of 5 nodes running");
    let deadline = Instant::now() + WAIT_MAX;
    let mut log = supervisor.stderr();
    // Every node logs "ready" at info level right after printing its ready line.
    while !NAMES
        .iter()
        .all(|name| log.lines().any(|line| line.starts_with(&format!("[{name}] ")) && line.contains("ready")))
    {
        assert!(Instant::now() < deadline, "every node's \"ready\" log line, prefixed with its name:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
        log = supervisor.stderr();
    }
    assert!(!log.contains('\x1b'), "stderr is a file, not a terminal: no colour codes:\n{log}");
}

#[test]
fn supervisor_on_a_busy_port_names_the_node_and_exits_non_zero() {
    let ports = free_ports(10);
    // Node 5558's RESP port is taken (held for the whole test).
    let busy = TcpListener::bind(("127.0.0.1", ports[5])).unwrap();
    let setup = Setup::new("busy", &ports);
    let mut supervisor = Supervisor::start(&setup);
    let status = supervisor.wait_exit();
    drop(busy);
    assert_eq!(status.code(), Some(1));
    let stdout = supervisor.all_lines();
    assert!(!stdout.iter().any(|line| line.contains("running")), "{stdout:#?}");
    assert!(stdout.iter().any(|line| line.starts_with("node 5558 (pid ") && line.ends_with("exited with code 1")));
    let stderr = supervisor.stderr();
    let failure = format!("dynamo: node 5558: cannot listen on 127.0.0.1:{} (resp): ", ports[5]);
    assert!(stderr.contains(&failure), "{stderr}");
    assert!(stderr.contains("dynamo: the cluster did not start: node 5558 exited"), "{stderr}");
    // The healthy nodes were stopped, not left behind.
    assert_eq!(supervisor.pids.len(), 5, "{stdout:#?}");
    for pid in supervisor.pids.clone() {
        assert_eq!(process_state(pid), None, "pid {pid} stopped and reaped");
    }
}

/// A pipe whose reading end is already closed: any write to it fails with EPIPE.
fn closed_stdout() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Stdio::from(writer)
}

fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}

#[test]
fn config_with_stdout_closed_does_not_panic() {
    let output = Command::new(env!("CARGO_BIN_EXE_dynamo")).arg("config").stdout(closed_stdout()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn cluster_with_stdout_closed_runs_and_ctrl_c_stops_it_with_0() {
    let ports = free_ports(10);
    let setup = Setup::new("closed", &ports);
    let stderr = setup.dir.join("stderr.log");
    let mut supervisor = Command::new(env!("CARGO_BIN_EXE_dynamo"))
        .arg("cluster")
        .arg("--config")
        .arg(&setup.config)
        .stdin(Stdio::null())
        .stdout(closed_stdout())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    // The nodes are children of the supervisor's main thread.
    let children = format!("/proc/{0}/task/{0}/children", supervisor.id());
    let node_pids = || -> Vec<u32> {
        let text = std::fs::read_to_string(&children).unwrap_or_default();
        text.split_whitespace().map(|pid| pid.parse().unwrap()).collect()
    };
    let deadline = Instant::now() + WAIT_MAX;
    let pids = loop {
        let pids = node_pids();
        let up = (0..5).all(|index| answers_ping(ports[2 * index + 1]));
        if pids.len() == 5 && up {
            break pids;
        }
        if Instant::now() > deadline || supervisor.try_wait().unwrap().is_some() {
            let _ = supervisor.kill();
            let _ = supervisor.wait();
            pids.iter().for_each(|pid| kill_if_dynamo(*pid));
            panic!("five nodes answering PING ({pids:?}); stderr: {}", std::fs::read_to_string(&stderr).unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    signal(supervisor.id(), "INT");
    let status = wait_exit(&mut supervisor);
    let log = std::fs::read_to_string(&stderr).unwrap();
    let left: Vec<u32> = pids.iter().copied().filter(|pid| process_state(*pid).is_some()).collect();
    left.iter().for_each(|pid| kill_if_dynamo(*pid));
    assert_eq!(status.code(), Some(0), "Ctrl-C is a clean stop; stderr: {log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(left.is_empty(), "nodes {left:?} outlived their supervisor or were not reaped");
}

#[test]
fn a_node_with_stdout_closed_prints_its_ready_line_into_nothing_and_serves() {
    let ports = free_ports(10);
    let setup = Setup::new("node-closed", &ports);
    let stderr = setup.dir.join("stderr.log");
    let mut node = Command::new(env!("CARGO_BIN_EXE_dynamo"))
        .args(["node", "--config"])
        .arg(&setup.config)
        .args(["--name", NAMES[0]])
        .stdin(Stdio::null())
        .stdout(closed_stdout())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT_MAX;
    while !answers_ping(ports[1]) {
        if Instant::now() > deadline || node.try_wait().unwrap().is_some() {
            let _ = node.kill();
            let _ = node.wait();
            panic!("the node answers PING; stderr: {}", std::fs::read_to_string(&stderr).unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Past its ready line: still running, nothing panicked.
    std::thread::sleep(Duration::from_millis(200));
    assert!(node.try_wait().unwrap().is_none(), "still running");
    let _ = node.kill();
    let _ = node.wait();
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(!log.contains("panicked"), "{log}");
}
