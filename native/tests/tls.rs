//! TLS for the ports that cross machines: five real processes whose peer links are mutual TLS
//! (`wss://`, each node's certificate from the cluster CA, checked for its address) and whose
//! RESP port speaks TLS as `redis-cli --tls` does; and a node with a certificate from another CA,
//! which its peers refuse. Certificates are made here, at test time, with rcgen.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use support::Cluster;

const NAMES: [&str; 5] = ["5554", "5556", "5558", "5560", "5562"];

struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn authority(name: &str) -> Authority {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let pem = params.self_signed(&key).unwrap().pem();
    Authority { issuer: Issuer::new(params, key), pem }
}

/// A node certificate for 127.0.0.1 (every test node listens there), as server and client.
fn node_certificate(authority: &Authority, name: &str, dir: &Path) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![format!("node-{name}"), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, format!("node-{name}"));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let certificate = params.signed_by(&key, &authority.issuer).unwrap();
    std::fs::write(dir.join(format!("{name}.crt")), certificate.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

/// Certificates for the five nodes from the cluster CA, except those in `rogue`, whose come from
/// another CA (with another name).
fn certificates(test: &str, rogue: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dynamo-certs-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cluster = authority("dynamo cluster CA");
    let other = authority("some other CA");
    std::fs::write(dir.join("ca.crt"), &cluster.pem).unwrap();
    for name in NAMES {
        node_certificate(if rogue.contains(&name) { &other } else { &cluster }, name, &dir);
    }
    dir
}

fn settings(certs: &Path, resp: bool) -> String {
    format!(
        "tls = {{ ca = {:?}, cert = {:?}, key = {:?}, resp = {resp} }}\n",
        certs.join("ca.crt"),
        certs.join("{name}.crt"),
        certs.join("{name}.key")
    )
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A RESP connection over TLS to `port`, verifying the server against `ca` for 127.0.0.1.
fn connect(ca: &Path, port: u16) -> std::io::Result<Tls> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(rustls::StreamOwned::new(connection, tcp))
}

/// Sends one inline command and reads its one-line (or bulk) reply.
fn command(stream: &mut Tls, line: &str) -> std::io::Result<String> {
    stream.write_all(format!("{line}\r\n").as_bytes())?;
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        stream.read_exact(&mut byte)?;
        answer.push(byte[0]);
        if answer.ends_with(b"\r\n") {
            let text = String::from_utf8_lossy(&answer).into_owned();
            // A bulk string: its length line, then its bytes and CRLF.
            if let Some(length) = text.strip_prefix('$').and_then(|n| n.trim().parse::<usize>().ok()) {
                let mut body = vec![0u8; length + 2];
                stream.read_exact(&mut body)?;
                return Ok(String::from_utf8_lossy(&body[..length]).into_owned());
            }
            return Ok(text.trim_end().to_string());
        }
    }
}

fn wait_ready_over_tls(cluster: &Cluster, ca: &Path, index: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut stream) = connect(ca, cluster.nodes[index].resp) {
            if command(&mut stream, "PING").is_ok_and(|answer| answer == "+PONG") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("node {index} did not answer PING over TLS; see {}", cluster.dir.display());
}

/// The basic phase of `cluster.rs` over TLS: every node takes writes and reads of keys that
/// other nodes coordinate (so the peer links carry them), and a node killed while writes went
/// on recovers them over its TLS links. Plain clients are not served on a TLS port, and
/// `redis-cli --tls --cacert` is.
#[test]
fn a_tls_cluster_serves_and_recovers_over_mutual_tls_links() {
    let certs = certificates("basic", &[]);
    let ca = certs.join("ca.crt");
    let mut cluster = Cluster::launch("tls-basic", &settings(&certs, true));
    for index in 0..5 {
        wait_ready_over_tls(&cluster, &ca, index);
    }
    let mut clients: Vec<Tls> = (0..5).map(|index| connect(&ca, cluster.nodes[index].resp).unwrap()).collect();
    for i in 0..40 {
        assert_eq!(command(&mut clients[i % 5], &format!("SET k{i} v{i}")).unwrap(), "+OK");
        assert_eq!(command(&mut clients[(i + 2) % 5], &format!("GET k{i}")).unwrap(), format!("v{i}"));
    }
    // A node killed while writes go on recovers them through its TLS links.
    cluster.kill(2);
    for i in 0..30 {
        assert_eq!(command(&mut clients[[0, 1, 3, 4][i % 4]], &format!("SET missed{i} m{i}")).unwrap(), "+OK");
    }
    cluster.relaunch(2);
    wait_ready_over_tls(&cluster, &ca, 2);
    let mut restarted = connect(&ca, cluster.nodes[2].resp).unwrap();
    for i in 0..30 {
        assert_eq!(command(&mut restarted, &format!("GET missed{i}")).unwrap(), format!("m{i}"));
    }
    let local = std::process::Command::new("redis-cli")
        .args(["--tls", "--cacert"])
        .arg(&ca)
        .args(["-h", "127.0.0.1", "-p", &cluster.nodes[2].resp.to_string(), "DYN.LOCAL"])
        .output()
        .expect("redis-cli (Debian's redis-tools; ./dev test installs it)");
    let local = String::from_utf8_lossy(&local.stdout);
    assert!(local.contains("missed"), "redis-cli --tls reads the restarted node's @ query: {local}");
    let log = cluster.log(2);
    assert!(log.contains("recovery finished"), "{log}");
    // A plain client on the TLS port gets no service.
    let mut plain = TcpStream::connect(("127.0.0.1", cluster.nodes[0].resp)).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    plain.write_all(b"SET plain 1\r\n").unwrap();
    let mut answer = [0u8; 64];
    let read = plain.read(&mut answer).unwrap_or(0);
    assert!(!String::from_utf8_lossy(&answer[..read]).contains("+OK"));
    assert_eq!(command(&mut clients[0], "EXISTS plain").unwrap(), ":0");
    let _ = std::fs::remove_dir_all(&certs);
}

/// A node whose certificate comes from another CA cannot join: its peers refuse its links (and
/// it theirs), so it cannot coordinate, while the others serve every key.
#[test]
fn a_peer_with_a_certificate_from_another_ca_is_refused() {
    let certs = certificates("rogue", &["5554"]);
    let cluster = Cluster::launch("tls-rogue", &settings(&certs, false));
    // 5554 reaches no peer, so it is never admitted (it cannot learn whether they remember it).
    cluster.wait_answering(0);
    for index in 1..5 {
        cluster.wait_ready(index);
    }
    // 5554 dials every other node (the lower index dials): each refuses its certificate.
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = |index: usize| {
        let log = cluster.log(index);
        log.contains("TLS handshake failed") && log.contains("invalid peer certificate")
    };
    while !(1..5).all(refused) {
        assert!(Instant::now() < deadline, "the peers did not refuse 5554:\n{}", cluster.log(1));
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = cluster.log(0);
    assert!(log.contains("peer link refused"), "5554 says its links are refused:\n{log}");
    assert!(!log.contains("peer link up"), "no link came up:\n{log}");
    // The other four serve every key, whatever its homes.
    let mut c = cluster.redis(1, false);
    for i in 0..20 {
        let _: () = redis::Commands::set(&mut c, format!("k{i}"), "v").unwrap();
    }
    // 5554 reaches nobody: a key it does not coordinate gets no answer through it.
    let mut isolated = cluster.redis(0, false);
    let owners: Vec<String> = redis::cmd("DYN.OWNERS").arg("k0").query(&mut isolated).unwrap();
    let key = (0..100)
        .map(|i| format!("k{i}"))
        .find(|key| {
            let owners: Vec<String> = redis::cmd("DYN.OWNERS").arg(key).query(&mut isolated).unwrap();
            !owners[..3].contains(&"5554".to_string())
        })
        .unwrap_or_else(|| panic!("a key 5554 does not home ({owners:?})"));
    let error = redis::Commands::get::<_, Option<String>>(&mut isolated, &key).unwrap_err();
    assert!(error.to_string().contains("unavailable"), "{error}");
    let _ = std::fs::remove_dir_all(&certs);
}
