//! The API over TCP, which berth serves only with TLS and only to clients holding a
//! certificate signed by the given CA (Docker's `--tlsverify`): anyone who reaches the API
//! can run anything as root, so an open or unauthenticated TCP port is never offered.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client has to complete its TLS handshake.
const HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(10);

/// `berth daemon --tcp tcp://ADDR` with its CA (for clients), certificate and key.
#[derive(Debug, Clone)]
pub struct TcpOptions {
    pub addr: SocketAddr,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A TCP listener whose connections are TLS sessions with a verified client.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl TlsListener {
    pub async fn bind(o: &TcpOptions) -> Result<TlsListener, String> {
        let config = server_config(o)?;
        let tcp = TcpListener::bind(o.addr)
            .await
            .map_err(|e| format!("listen on tcp://{}: {e}", o.addr))?;
        Ok(TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }
}

impl TlsListener {
    /// The bound address (for the log).
    pub fn local_addr_checked(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

fn server_config(o: &TcpOptions) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(&o.ca)? {
        roots
            .add(cert)
            .map_err(|e| format!("--tlscacert {}: {e}", o.ca.display()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("--tlscacert {}: {e}", o.ca.display()))?;
    let key = PrivateKeyDer::from_pem_file(&o.key)
        .map_err(|e| format!("--tlskey {}: {e}: give a PEM private key", o.key.display()))?;
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certificates(&o.cert)?, key)
        .map_err(|e| format!("--tlscert {}: {e}", o.cert.display()))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}: give PEM certificates", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = match self.tcp.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("accept a TCP connection: {e}");
                    continue;
                }
            };
            // A client without a valid certificate fails here, before any request; one that
            // stalls is dropped rather than holding up the others.
            let handshake = self.acceptor.accept(stream);
            match tokio::time::timeout(HANDSHAKE, handshake).await {
                Ok(Ok(tls)) => return (tls, peer),
                Ok(Err(e)) => tracing::warn!("TLS handshake with {peer} failed: {e}"),
                Err(_) => tracing::warn!("TLS handshake with {peer} timed out"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}
