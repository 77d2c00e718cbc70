//! The cluster file (TOML): nodes, their addresses, and the core's configuration.
//!
//! Parsing and validation only; it starts nothing. Every problem becomes one `FileError` whose
//! `Display` is a single line naming the problem, which `main` prints before exiting with 2.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use dynamo_core::config::{Config, ConfigError, Consistency};

use crate::tls::TlsFiles;
use serde::Deserialize;
use toml::Spanned;

/// One `[[node]]` entry, its addresses resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEntry {
    pub name: String,
    /// Peer links and the WebSocket client API.
    pub ws: SocketAddr,
    /// Redis protocol (RESP2 and RESP3) clients.
    pub resp: SocketAddr,
}

/// One `[[node]]` entry as written: the addresses stay text, with their place in the file, so
/// that a bad one is reported with its node, its field and its line.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: String,
    ws: Spanned<String>,
    resp: Spanned<String>,
}

/// The file as written. Keys other than `data_dir` and `[[node]]` are optional tuning.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default = "default_data_dir")]
    data_dir: PathBuf,
    node: Vec<RawNode>,
    replicas: Option<u32>,
    read_quorum: Option<u32>,
    write_quorum: Option<u32>,
    tokens_per_node: Option<u32>,
    /// "linearizable" (default) or "eventual".
    consistency: Option<String>,
    request_timeout_ms: Option<u64>,
    operation_timeout_ms: Option<u64>,
    hint_handoff_interval_ms: Option<u64>,
    anti_entropy_interval_ms: Option<u64>,
    /// How often a node tells one random member its layout epoch.
    gossip_interval_ms: Option<u64>,
    /// Make every acknowledged write durable with fsync before acknowledging (default true).
    fsync: Option<bool>,
    /// Bytes of client requests (keys and values) a node works on at once.
    admitted_bytes_max: Option<u64>,
    /// Shared by the nodes: peer links and control requests must present it.
    secret: Option<String>,
    /// The client password (Redis's `requirepass`): RESP clients `AUTH` with it, WebSocket
    /// clients send `{"op": "auth"}` with it.
    requirepass: Option<String>,
    /// A file whose contents (without a trailing newline) are the client password, so that it
    /// need not sit in the cluster file; relative to the cluster file's directory.
    password_file: Option<PathBuf>,
    /// TLS for the ports that cross machines (`crate::tls`).
    tls: Option<RawTls>,
    /// Browser origins allowed on the WebSocket API (besides http://127.0.0.1:8080 and
    /// http://localhost:8080).
    allowed_origins: Option<Vec<String>>,
}

/// `[tls]`: the cluster CA, each node's certificate and key (`{name}` is the node's name), and
/// whether the RESP port speaks TLS too. Paths are relative to the cluster file's directory.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca: PathBuf,
    cert: String,
    key: String,
    #[serde(default)]
    resp: bool,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

/// A validated cluster file.
#[derive(Clone, Debug)]
pub struct ClusterFile {
    pub data_dir: PathBuf,
    pub nodes: Vec<NodeEntry>,
    pub config: Config,
    pub fsync: bool,
    /// Bytes of client requests (their keys and values) a node works on at once; more wait,
    /// unanswered, in their connections, before their operation timeout starts. Writes of
    /// large values from many clients otherwise outrun the disks and time out by the dozen.
    /// A request larger than the whole allowance waits until nothing else is in.
    pub admitted_bytes_max: u64,
    /// The cluster secret; `None` means peers are not authenticated.
    pub secret: Option<String>,
    /// The client password; `None` means clients need none (allowed on loopback only).
    pub password: Option<String>,
    /// TLS files, when the cluster's ports speak TLS.
    pub tls: Option<TlsFiles>,
    pub allowed_origins: Vec<String>,
}

#[derive(Debug)]
pub enum FileError {
    Unreadable {
        path: PathBuf,
        reason: String,
    },
    /// `at` is the line and column (from 1) where the TOML parser stopped, when it knows.
    Syntax {
        path: PathBuf,
        at: Option<(usize, usize)>,
        reason: String,
    },
    /// A node's `ws` or `resp` that is no usable address, at line and column `at`.
    Address {
        path: PathBuf,
        at: (usize, usize),
        node: String,
        field: &'static str,
        reason: String,
    },
    Invalid {
        reason: String,
    },
    UnknownNode {
        name: String,
        known: Vec<String>,
    },
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Unreadable { path, reason } => write!(f, "cannot read {}: {reason}", path.display()),
            FileError::Syntax { path, at, reason } => {
                let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
                match at {
                    Some((line, column)) => {
                        write!(f, "{}:{line}:{column}: not a valid cluster file: {reason}", path.display())
                    }
                    None => write!(f, "{} is not a valid cluster file: {reason}", path.display()),
                }
            }
            FileError::Address { path, at: (line, column), node, field, reason } => {
                write!(f, "{}:{line}:{column}: {field} of node {node}: {reason}", path.display())
            }
            FileError::Invalid { reason } => write!(f, "invalid cluster file: {reason}"),
            FileError::UnknownNode { name, known } => {
                write!(f, "node {name:?} is not in the cluster file (its nodes: {})", known.join(", "))
            }
        }
    }
}

impl std::error::Error for FileError {}

/// Line and column (both from 1, the column in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    // The parser's offsets fall on character boundaries; anything else counts the whole text.
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
}

/// Parses a node address: an IP address with its port, or a host name with its port, resolved
/// now. A host name becomes its first IPv4 address if it has one, else its first address:
/// "localhost" is then 127.0.0.1 wherever the resolver lists ::1 first, like the default
/// origins and every example. Port 0 is refused: peers dial the port written here.
fn resolve(text: &str) -> Result<SocketAddr, String> {
    let address = match text.parse::<SocketAddr>() {
        Ok(address) => address,
        Err(_) => {
            let addresses: Vec<SocketAddr> = text
                .to_socket_addrs()
                .map_err(|error| format!("{text:?} is neither IP:port nor a host:port that resolves: {error}"))?
                .collect();
            let first = addresses.iter().find(|address| address.is_ipv4()).or(addresses.first());
            *first.ok_or_else(|| format!("{text:?}: the host name resolves to no address"))?
        }
    };
    if address.port() == 0 {
        return Err(format!("{text:?} has port 0; give a fixed port, since peers dial the one written here"));
    }
    Ok(address)
}

/// A wildcard address (0.0.0.0, [::]) takes its port on every address of its family, so the
/// same port on a specific address of that family cannot be bound as well.
fn collide(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.is_ipv4() == b.is_ipv4() && a.ip().is_unspecified() != b.ip().is_unspecified()
}

/// 8 MiB: eight writes of the largest value at once. Thirty clients writing 1 MB values on the
/// two-core test machine got 0 or 1 errors in 1,200 writes with 8 MiB, 5 and 16 with 16 MiB,
/// and 155 to 316 with no bound (docs/benchmarks.md).
pub const ADMITTED_BYTES_MAX_DEFAULT: u64 = 8 << 20;

/// The built-in default: the seed's five nodes with its redirection ports, on 127.0.0.1.
pub const DEFAULT: &str = r#"# dynamo cluster file. Each node keeps its files in data_dir/<name>.
data_dir = "data"

# Replication: N home replicas per key, R replies per read, W acknowledgements per write.
replicas = 3
read_quorum = 2
write_quorum = 2
# Virtual nodes: ring tokens per node (1 = the seed's static five-partition ring).
tokens_per_node = 1
consistency = "linearizable"
# Peers and control requests must present this secret (dynamo cluster writes a random one).
# secret = "..."
request_timeout_ms = 100
operation_timeout_ms = 1000
fsync = true
# Bytes of client requests (keys and values) a node works on at once; more wait in their
# connections. Keeps many clients writing large values from outrunning the disks.
admitted_bytes_max = 8388608

[[node]]
name = "5554"
ws = "127.0.0.1:11108"
resp = "127.0.0.1:6554"

[[node]]
name = "5556"
ws = "127.0.0.1:11112"
resp = "127.0.0.1:6556"

[[node]]
name = "5558"
ws = "127.0.0.1:11116"
resp = "127.0.0.1:6558"

[[node]]
name = "5560"
ws = "127.0.0.1:11120"
resp = "127.0.0.1:6560"

[[node]]
name = "5562"
ws = "127.0.0.1:11124"
resp = "127.0.0.1:6562"
"#;

impl ClusterFile {
    pub fn load(path: &Path) -> Result<ClusterFile, FileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| FileError::Unreadable { path: path.to_path_buf(), reason: error.to_string() })?;
        ClusterFile::parse(&text, path)
    }

    /// Parses `text`; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<ClusterFile, FileError> {
        let raw: Raw = toml::from_str(text).map_err(|error| FileError::Syntax {
            path: path.to_path_buf(),
            at: error.span().map(|span| line_column(text, span.start)),
            reason: error.message().to_string(),
        })?;
        let mut nodes = Vec::with_capacity(raw.node.len());
        let mut seen: BTreeMap<SocketAddr, String> = BTreeMap::new();
        for node in &raw.node {
            let mut address_of = |field: &'static str, written: &Spanned<String>| {
                let address = resolve(written.get_ref()).map_err(|reason| FileError::Address {
                    path: path.to_path_buf(),
                    at: line_column(text, written.span().start),
                    node: node.name.clone(),
                    field,
                    reason,
                })?;
                let user = format!("{field} of node {}", node.name);
                if let Some((other, previous)) = seen.iter().find(|(other, _)| collide(address, **other)) {
                    return Err(FileError::Invalid {
                        reason: format!(
                            "{user} ({address}) and {previous} ({other}) use the same port, and a wildcard \
                             address takes it on every address of its family"
                        ),
                    });
                }
                if let Some(previous) = seen.insert(address, user.clone()) {
                    return Err(FileError::Invalid {
                        reason: format!("address {address} is used twice ({previous} and {user})"),
                    });
                }
                Ok(address)
            };
            let ws = address_of("ws", &node.ws)?;
            let resp = address_of("resp", &node.resp)?;
            nodes.push(NodeEntry { name: node.name.clone(), ws, resp });
        }
        let defaults = Config::default();
        let consistency = match raw.consistency.as_deref() {
            None | Some("linearizable") => Consistency::Linearizable,
            Some("eventual") => Consistency::Eventual,
            Some(other) => {
                return Err(FileError::Invalid {
                    reason: format!("consistency = {other:?}; use \"linearizable\" or \"eventual\""),
                })
            }
        };
        let config = Config {
            nodes: nodes.iter().map(|node: &NodeEntry| node.name.clone()).collect(),
            replicas: raw.replicas.unwrap_or(defaults.replicas),
            read_quorum: raw.read_quorum.unwrap_or(defaults.read_quorum),
            write_quorum: raw.write_quorum.unwrap_or(defaults.write_quorum),
            tokens_per_node: raw.tokens_per_node.unwrap_or(defaults.tokens_per_node),
            consistency,
            request_timeout_ms: raw.request_timeout_ms.unwrap_or(defaults.request_timeout_ms),
            operation_timeout_ms: raw.operation_timeout_ms.unwrap_or(defaults.operation_timeout_ms),
            hint_handoff_interval_ms: raw.hint_handoff_interval_ms.unwrap_or(defaults.hint_handoff_interval_ms),
            anti_entropy_interval_ms: raw.anti_entropy_interval_ms.unwrap_or(defaults.anti_entropy_interval_ms),
            gossip_interval_ms: raw.gossip_interval_ms.unwrap_or(defaults.gossip_interval_ms),
            // What the storage engine can hold; a longer key is refused with a clear error.
            key_bytes_max: defaults.key_bytes_max.min(crate::storage::KEY_BYTES_MAX),
            ..defaults
        };
        config.validate().map_err(|error| FileError::Invalid {
            reason: match error {
                // The core's advice spells the setting its own way (the enum variant); in this
                // file the value is lowercase, and the advice must work when pasted.
                ConfigError::QuorumsDoNotIntersect { read, write, replicas } => format!(
                    "R + W must exceed N for linearizable consistency, but R = {read}, W = {write}, N = {replicas}; \
                     set consistency = \"eventual\" to run it anyway"
                ),
                other => other.to_string(),
            },
        })?;
        if config.request_timeout_ms > config.operation_timeout_ms {
            return Err(FileError::Invalid {
                reason: format!(
                    "request_timeout_ms = {} is greater than operation_timeout_ms = {}; an operation must \
                     allow at least one request timeout",
                    config.request_timeout_ms, config.operation_timeout_ms
                ),
            });
        }
        if raw.admitted_bytes_max == Some(0) {
            return Err(FileError::Invalid { reason: "admitted_bytes_max must be greater than zero".into() });
        }
        if raw.secret.as_deref().is_some_and(|secret| secret.len() < 16) {
            return Err(FileError::Invalid { reason: "secret must be at least 16 characters".into() });
        }
        let password = match (raw.requirepass, raw.password_file) {
            (Some(_), Some(_)) => {
                return Err(FileError::Invalid {
                    reason: "requirepass and password_file are both set; keep one of them".into(),
                })
            }
            (Some(password), None) => Some(password),
            (None, Some(file)) => {
                let file = path.parent().map_or(file.clone(), |directory| directory.join(&file));
                let text = std::fs::read_to_string(&file).map_err(|error| FileError::Invalid {
                    reason: format!("password_file {}: {error}", file.display()),
                })?;
                Some(
                    text.strip_suffix('\n')
                        .map(|text| text.strip_suffix('\r').unwrap_or(text))
                        .unwrap_or(&text)
                        .to_string(),
                )
            }
            (None, None) => None,
        };
        if password.as_deref() == Some("") {
            return Err(FileError::Invalid {
                reason: "the client password (requirepass or password_file) is empty".into(),
            });
        }
        // Protected mode (as Redis's): a node reachable from other machines must not serve
        // anyone who reaches it. Peers must present the secret, clients the password.
        for node in &nodes {
            for (field, address) in [("resp", node.resp), ("ws", node.ws)] {
                if address.ip().is_loopback() {
                    continue;
                }
                let missing = match (&password, &raw.secret) {
                    (None, None) => "requirepass (or password_file) and secret",
                    (None, Some(_)) => "requirepass (or password_file)",
                    (Some(_), None) => "secret",
                    (Some(_), Some(_)) => continue,
                };
                return Err(FileError::Invalid {
                    reason: format!(
                        "protected mode: node {} listens on {address} ({field}), which is not a loopback \
                         address, and the cluster file sets no {missing}, so anyone who reaches it could \
                         read and write every key; set {missing} in the cluster file (docs/operations.md), \
                         or listen on 127.0.0.1",
                        node.name
                    ),
                });
            }
        }
        let directory = path.parent().unwrap_or(Path::new(""));
        let tls = match raw.tls {
            None => None,
            Some(RawTls { ca, cert, key, resp }) => {
                let beside = |file: &str| directory.join(file).to_string_lossy().into_owned();
                let ca = directory.join(ca);
                if !ca.is_file() {
                    return Err(FileError::Invalid {
                        reason: format!(
                            "[tls] ca = {:?}: no such file (the cluster CA's certificate)",
                            ca.display().to_string()
                        ),
                    });
                }
                Some(TlsFiles { ca, cert: beside(&cert), key: beside(&key), resp })
            }
        };
        let mut allowed_origins = vec!["http://127.0.0.1:8080".to_string(), "http://localhost:8080".to_string()];
        allowed_origins.extend(raw.allowed_origins.unwrap_or_default());
        Ok(ClusterFile {
            data_dir: raw.data_dir,
            nodes,
            config,
            fsync: raw.fsync.unwrap_or(true),
            admitted_bytes_max: raw.admitted_bytes_max.unwrap_or(ADMITTED_BYTES_MAX_DEFAULT),
            secret: raw.secret,
            password,
            tls,
            allowed_origins,
        })
    }

    /// The index of node `name`.
    pub fn index_of(&self, name: &str) -> Result<usize, FileError> {
        self.nodes.iter().position(|node| node.name == name).ok_or_else(|| FileError::UnknownNode {
            name: name.to_string(),
            known: self.nodes.iter().map(|node| node.name.clone()).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClusterFile, String> {
        ClusterFile::parse(text, Path::new("test.toml")).map_err(|error| error.to_string())
    }

    #[test]
    fn the_default_file_is_the_seed_cluster() {
        let file = parse(DEFAULT).unwrap();
        assert_eq!(file.config.nodes, ["5554", "5556", "5558", "5560", "5562"]);
        assert_eq!(file.nodes[0].ws.to_string(), "127.0.0.1:11108");
        assert_eq!(file.nodes[4].resp.to_string(), "127.0.0.1:6562");
        assert_eq!(file.data_dir, PathBuf::from("data"));
        assert!(file.fsync);
        assert_eq!(file.config.key_bytes_max, crate::storage::KEY_BYTES_MAX, "every key the core takes fits fjall");
    }

    #[test]
    fn minimal_file_uses_defaults() {
        let file = parse("[[node]]\nname = \"a\"\nws = \"127.0.0.1:1\"\nresp = \"127.0.0.1:2\"\n");
        let error = file.unwrap_err();
        assert!(error.contains("replicas (N) = 3 must be between 1 and the node count 1"), "{error}");
    }

    #[test]
    fn bad_files_get_one_clear_line() {
        let cases = [
            (DEFAULT.replace("6556", "6554"), "address 127.0.0.1:6554 is used twice"),
            (DEFAULT.replace("write_quorum = 2", "write_quorum = 1"), "R + W must exceed N"),
            // The advice, pasted into the file, is accepted.
            (DEFAULT.replace("write_quorum = 2", "write_quorum = 1"), "set consistency = \"eventual\" to run it"),
            (DEFAULT.replace("data_dir = \"data\"", "data_dir = "), "not a valid cluster file"),
            (DEFAULT.replace("fsync = true", "fsync = true\ncolour = 1"), "unknown field `colour`"),
            (
                DEFAULT.replace("admitted_bytes_max = 8388608", "admitted_bytes_max = 0"),
                "admitted_bytes_max must be greater than zero",
            ),
            (DEFAULT.replace("\"linearizable\"", "\"strong\""), "consistency = \"strong\""),
            // Where a syntax error is, as line:column.
            (DEFAULT.replace("data_dir = \"data\"", "data_dir = "), "test.toml:2:12: not a valid cluster file"),
            (DEFAULT.replace("tokens_per_node = 1", "tokens_per_node = \"one\""), "test.toml:9:19: "),
            // Addresses: which node, which field, which line; what is wrong.
            (
                DEFAULT.replace("127.0.0.1:11112", "127.0.0.1"),
                "test.toml:27:6: ws of node 5556: \"127.0.0.1\" is neither IP:port nor a host:port that resolves",
            ),
            (
                DEFAULT.replace("127.0.0.1:6558", "127.0.0.1:99999"),
                "test.toml:33:8: resp of node 5558: \"127.0.0.1:99999\"",
            ),
            (DEFAULT.replace("127.0.0.1:6560", "127.0.0.1:0"), "resp of node 5560: \"127.0.0.1:0\" has port 0"),
            (DEFAULT.replace("127.0.0.1:6560", "[::]:0"), "resp of node 5560: \"[::]:0\" has port 0"),
            (
                DEFAULT.replace("127.0.0.1:6556", "0.0.0.0:6554"),
                "resp of node 5556 (0.0.0.0:6554) and resp of node 5554 (127.0.0.1:6554) use the same port",
            ),
            (
                DEFAULT.replace("127.0.0.1:11108", "0.0.0.0:11112").replace("127.0.0.1:6554", "[::]:6554"),
                "ws of node 5556 (127.0.0.1:11112) and ws of node 5554 (0.0.0.0:11112) use the same port",
            ),
            (
                DEFAULT.replace("request_timeout_ms = 100", "request_timeout_ms = 1001"),
                "request_timeout_ms = 1001 is greater than operation_timeout_ms = 1000",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(&text).unwrap_err();
            assert!(error.contains(expected), "{error:?} should contain {expected:?}");
            assert!(!error.contains('\n'), "one line: {error:?}");
        }
        let eventual = DEFAULT.replace("write_quorum = 2", "write_quorum = 1");
        assert!(parse(&eventual.replace("\"linearizable\"", "\"eventual\"")).is_ok(), "the advice works");
        let file = parse(DEFAULT).unwrap();
        assert!(file.index_of("9999").unwrap_err().to_string().contains("\"9999\" is not in the cluster file"));
        assert_eq!(file.index_of("5558").unwrap(), 2);
    }

    /// The default file with a client password and a cluster secret, as a cluster across
    /// machines needs (protected mode).
    fn protected() -> String {
        DEFAULT.replace("# secret = \"...\"", "secret = \"0123456789abcdef\"\nrequirepass = \"s3cret\"")
    }

    #[test]
    fn addresses_may_be_host_names_or_wildcards() {
        // Host names resolve when the file loads, to an IPv4 address where there is one.
        let file = parse(&DEFAULT.replace("127.0.0.1:11108", "localhost:11108")).unwrap();
        assert_eq!(file.nodes[0].ws.to_string(), "127.0.0.1:11108");
        // A wildcard and a specific address of the other family do not collide, nor do two
        // specific addresses on one port.
        let text = protected().replace("127.0.0.1:11108", "[::]:6556").replace("127.0.0.1:11112", "127.0.0.2:6556");
        let file = parse(&text).unwrap();
        assert_eq!(file.nodes[0].ws.to_string(), "[::]:6556");
    }

    /// Protected mode, as Redis's: a node that listens beyond loopback without a client password
    /// (or without the peers' secret) is refused, in one line that says why and what to set.
    #[test]
    fn a_node_beyond_loopback_needs_a_password_and_a_secret() {
        let exposed = DEFAULT.replace("127.0.0.1:6558", "0.0.0.0:6558");
        let error = parse(&exposed).unwrap_err();
        assert_eq!(
            error,
            "invalid cluster file: protected mode: node 5558 listens on 0.0.0.0:6558 (resp), which is not a \
             loopback address, and the cluster file sets no requirepass (or password_file) and secret, so anyone \
             who reaches it could read and write every key; set requirepass (or password_file) and secret in the \
             cluster file (docs/operations.md), or listen on 127.0.0.1"
        );
        let with_secret = exposed.replace("# secret = \"...\"", "secret = \"0123456789abcdef\"");
        assert!(parse(&with_secret).unwrap_err().contains("sets no requirepass (or password_file), so"));
        let with_password = exposed.replace("# secret = \"...\"", "requirepass = \"pw\"");
        assert!(parse(&with_password).unwrap_err().contains("sets no secret, so"));
        let file = parse(&protected().replace("127.0.0.1:6558", "0.0.0.0:6558")).unwrap();
        assert_eq!(file.password.as_deref(), Some("s3cret"));
        // Every loopback address is fine without them (nodes in a test namespace use 127.0.0.2...).
        assert!(parse(&DEFAULT.replace("127.0.0.1:6558", "127.0.0.9:6558")).is_ok());
    }

    #[test]
    fn the_password_may_come_from_a_file_beside_the_cluster_file() {
        let dir = std::env::temp_dir().join(format!("dynamo-password-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("password"), "from a file\n").unwrap();
        let text = DEFAULT.replace("# secret = \"...\"", "password_file = \"password\"");
        let file = ClusterFile::parse(&text, &dir.join("cluster.toml")).unwrap();
        assert_eq!(file.password.as_deref(), Some("from a file"), "the trailing newline is not the password's");
        let missing = ClusterFile::parse(&text, &dir.join("elsewhere/cluster.toml")).unwrap_err().to_string();
        assert!(missing.contains("password_file") && missing.contains("elsewhere/password"), "{missing}");
        let both = text.replace("password_file", "requirepass = \"x\"\npassword_file");
        assert!(ClusterFile::parse(&both, &dir.join("cluster.toml")).unwrap_err().to_string().contains("both set"));
        let empty = DEFAULT.replace("# secret = \"...\"", "requirepass = \"\"");
        assert!(parse(&empty).unwrap_err().contains("is empty"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn line_column_counts_from_one_in_characters() {
        assert_eq!(line_column("ab\ncé\nd", 0), (1, 1));
        assert_eq!(line_column("ab\ncé\nd", 3), (2, 1));
        assert_eq!(line_column("ab\ncé\nd", 7), (3, 1));
        assert_eq!(line_column("ab\ncé\nd", 6), (2, 3));
    }
}
