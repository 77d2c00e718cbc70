//! TLS for the ports that cross machines (rustls, the ring provider; certificates and keys from
//! PEM files named in the cluster file's `[tls]` section). Off unless configured: on loopback
//! it buys nothing.
//!
//! - The WebSocket port speaks TLS to everyone. Its peers (`/peer`) must present a certificate
//!   signed by the cluster CA and valid for the address the cluster file gives the node they
//!   claim to be; clients (`/client`) need none (they authenticate with the password).
//! - A node dialing a peer verifies the peer's certificate against the cluster CA, for the
//!   peer's address, and presents its own.
//! - With `resp = true` the RESP port speaks TLS too, as `redis-cli --tls --cacert ca.crt` does
//!   (no client certificate).
//!
//! Certificates therefore carry an IP address SAN for each address a node listens on (see
//! docs/operations.md for the openssl commands).

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// How long an accepted connection may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The `[tls]` section of a cluster file, paths resolved against the file's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA: peers verify each other against it.
    pub ca: PathBuf,
    /// Each node's certificate chain and key, `{name}` standing for the node's name.
    pub cert: String,
    pub key: String,
    /// TLS on the RESP port as well.
    pub resp: bool,
}

impl TlsFiles {
    fn of(template: &str, name: &str) -> PathBuf {
        PathBuf::from(template.replace("{name}", name))
    }

    pub fn cert_of(&self, name: &str) -> PathBuf {
        TlsFiles::of(&self.cert, name)
    }

    pub fn key_of(&self, name: &str) -> PathBuf {
        TlsFiles::of(&self.key, name)
    }
}

/// Why the TLS files could not be used.
#[derive(Debug)]
pub struct TlsError {
    pub file: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS: cannot use {}: {}", self.file.display(), self.reason)
    }
}

impl std::error::Error for TlsError {}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn failed(file: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError { file: file.to_path_buf(), reason: reason.to_string() }
}

fn roots(ca: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca).map_err(|error| failed(ca, error))? {
        roots.add(certificate.map_err(|error| failed(ca, error))?).map_err(|error| failed(ca, error))?;
    }
    if roots.is_empty() {
        return Err(failed(ca, "no CERTIFICATE in the file"));
    }
    Ok(Arc::new(roots))
}

fn chain(file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
        .map_err(|error| failed(file, error))?
        .collect::<Result<_, _>>()
        .map_err(|error| failed(file, error))?;
    if chain.is_empty() {
        return Err(failed(file, "no CERTIFICATE in the file"));
    }
    Ok(chain)
}

/// A node's TLS: what its ports accept with and what it dials peers with.
pub struct Tls {
    /// The WebSocket port: a client certificate is checked when given (peers must), not required.
    ws: TlsAcceptor,
    /// The RESP port, when it speaks TLS: no client certificate.
    resp: Option<TlsAcceptor>,
    /// Dialing peers: verify them against the CA, present this node's certificate.
    dial: TlsConnector,
}

impl Tls {
    /// Loads node `name`'s certificate and key and the cluster CA.
    pub fn load(files: &TlsFiles, name: &str) -> Result<Tls, TlsError> {
        let roots = roots(&files.ca)?;
        let (cert, key) = (files.cert_of(name), files.key_of(name));
        let chain = chain(&cert)?;
        let private = || PrivateKeyDer::from_pem_file(&key).map_err(|error| failed(&key, error));
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .allow_unauthenticated()
            .build()
            .map_err(|error| failed(&files.ca, error))?;
        let ws = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| failed(&cert, error))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), private()?)
            .map_err(|error| failed(&cert, error))?;
        let resp = if files.resp {
            let config = ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|error| failed(&cert, error))?
                .with_no_client_auth()
                .with_single_cert(chain.clone(), private()?)
                .map_err(|error| failed(&cert, error))?;
            Some(TlsAcceptor::from(Arc::new(config)))
        } else {
            None
        };
        let dial = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| failed(&cert, error))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, private()?)
            .map_err(|error| failed(&cert, error))?;
        Ok(Tls { ws: TlsAcceptor::from(Arc::new(ws)), resp, dial: TlsConnector::from(Arc::new(dial)) })
    }

    /// TLS on an accepted connection of the WebSocket port.
    pub async fn accept_ws(&self, tcp: TcpStream) -> io::Result<Stream> {
        accept(&self.ws, tcp).await
    }

    /// TLS on an accepted connection of the RESP port, when it speaks TLS (`None` otherwise).
    pub fn resp(&self) -> Option<&TlsAcceptor> {
        self.resp.as_ref()
    }

    /// TLS to a peer at `ip`: its certificate must be signed by the CA and valid for `ip`.
    pub async fn dial(&self, tcp: TcpStream, ip: IpAddr) -> io::Result<Stream> {
        let stream = self.dial.connect(ServerName::IpAddress(ip.into()), tcp).await?;
        Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::from(stream))))
    }
}

/// TLS that only verifies the server against the cluster CA (the supervisor's link-control
/// requests to `/client`, which need no client certificate).
pub fn client(ca: &Path) -> Result<TlsConnector, TlsError> {
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(ca)?, provider())
        .build()
        .map_err(|error| failed(ca, error))?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| failed(ca, error))?
        .with_webpki_verifier(verifier)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// TLS to a server at `ip` with `connector`.
pub async fn dial_with(connector: &TlsConnector, tcp: TcpStream, ip: IpAddr) -> io::Result<Stream> {
    let stream = connector.connect(ServerName::IpAddress(ip.into()), tcp).await?;
    Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::from(stream))))
}

/// The server side of a TLS handshake, bounded in time so a silent client holds nothing.
pub async fn accept(acceptor: &TlsAcceptor, tcp: TcpStream) -> io::Result<Stream> {
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no TLS handshake in time"))??;
    Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::from(stream))))
}

/// A connection of ours, plain or TLS, as the WebSocket and RESP code see it.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl Stream {
    /// Whether the other end presented a certificate (checked against the CA in the handshake)
    /// valid for `ip`: how a node knows that a peer is the node it claims to be.
    pub fn certified_for(&self, ip: IpAddr) -> bool {
        let Stream::Tls(stream) = self else { return false };
        let (_, connection) = stream.get_ref();
        let Some(leaf) = connection.peer_certificates().and_then(|chain| chain.first()) else { return false };
        let Ok(certificate) = webpki::EndEntityCert::try_from(leaf) else { return false };
        certificate.verify_is_valid_for_subject_name(&ServerName::IpAddress(ip.into())).is_ok()
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_read(context, buffer),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(context, buffer),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, context: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write(context, bytes),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(context, bytes),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(context),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(context),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_shutdown(context),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(context),
        }
    }
}
