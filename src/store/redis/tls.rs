//! Redis over TLS: which URLs a build accepts, and the certificates an operator gives. A
//! certificate that does not verify is refused (rustls, through the redis crate); no URL and no
//! setting turns verification off, and a `rediss://` URL never falls back to plaintext.

use redis::cluster::ClusterClientBuilder;
use redis::{Client, ConnectionAddr, ConnectionInfo};

use super::error::ErrorKind;

/// A build without rustls has no TLS for Redis, so nothing to configure.
#[cfg(not(feature = "rustls"))]
#[derive(Clone, Default)]
pub(super) struct TlsSettings {}

#[cfg(not(feature = "rustls"))]
impl TlsSettings {
    /// A client for `info`, which [`wants_tls`] found plaintext.
    pub(super) fn client(&self, info: ConnectionInfo, _tls: bool) -> Result<Client, ErrorKind> {
        Client::open(info).map_err(|_| ErrorKind::InvalidUrl)
    }

    pub(super) fn cluster(
        &self,
        builder: ClusterClientBuilder,
        _first: &ConnectionInfo,
        _tls: bool,
    ) -> Result<ClusterClientBuilder, ErrorKind> {
        Ok(builder)
    }
}

/// The certificates given to the builder: the CA that signs Redis's certificate (instead of the
/// platform's roots) and this client's certificate and key for mutual TLS, all PEM.
#[cfg(feature = "rustls")]
#[derive(Clone, Default)]
pub(super) struct TlsSettings {
    pub(super) root: Option<Vec<u8>>,
    pub(super) client: Option<(Vec<u8>, Vec<u8>)>,
}

#[cfg(feature = "rustls")]
impl TlsSettings {
    fn is_empty(&self) -> bool {
        self.root.is_none() && self.client.is_none()
    }

    /// A client for `info` (`tls`: a `rediss://` URL) with the certificates given, if any.
    pub(super) fn client(&self, info: ConnectionInfo, tls: bool) -> Result<Client, ErrorKind> {
        match (self.certificates()?, tls) {
            (None, _) => Client::open(info).map_err(|_| ErrorKind::InvalidUrl),
            // The parse error is left out: it may quote a line of the private key.
            (Some(certificates), true) => Client::build_with_tls(info, certificates)
                .map_err(|_| ErrorKind::UnusableCertificate),
            (Some(_), false) => Err(ErrorKind::CertificateWithoutTls),
        }
    }

    /// `builder` with the certificates given, if any (`tls`: the nodes, `first` among them, are
    /// `rediss://`).
    pub(super) fn cluster(
        &self,
        builder: ClusterClientBuilder,
        first: &ConnectionInfo,
        tls: bool,
    ) -> Result<ClusterClientBuilder, ErrorKind> {
        match (self.certificates()?, tls) {
            (None, _) => Ok(builder),
            (Some(certificates), true) => {
                // Parsed here, as for one server, so that a PEM that does not parse is named.
                self.client(first.clone(), true)?;
                Ok(builder.certs(certificates))
            }
            (Some(_), false) => Err(ErrorKind::CertificateWithoutTls),
        }
    }

    /// The certificates in the redis crate's form; `None` for the platform's roots and no client
    /// certificate. PEM without a certificate in it is refused here, as rustls would otherwise
    /// trust nothing and every handshake would fail later, far from the mistake.
    fn certificates(&self) -> Result<Option<redis::TlsCertificates>, ErrorKind> {
        const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
        let has_certificate = |pem: &[u8]| pem.windows(BEGIN.len()).any(|w| w == BEGIN);
        if self.is_empty() {
            return Ok(None);
        }
        if let Some(root) = &self.root
            && !has_certificate(root)
        {
            return Err(ErrorKind::InvalidCertificate("tls_root_certificate"));
        }
        if let Some((certificate, _)) = &self.client
            && !has_certificate(certificate)
        {
            return Err(ErrorKind::InvalidCertificate("tls_client_certificate"));
        }
        Ok(Some(redis::TlsCertificates {
            client_tls: self.client.as_ref().map(|(client_cert, client_key)| {
                redis::ClientTlsConfig {
                    client_cert: client_cert.clone(),
                    client_key: client_key.clone(),
                }
            }),
            root_cert: self.root.clone(),
        }))
    }
}

/// Whether `info` asks for TLS; refuses what this build cannot do safely: `#insecure` (the redis
/// crate's switch for no verification), and `rediss://` in a build without rustls.
pub(super) fn wants_tls(info: &ConnectionInfo) -> Result<bool, ErrorKind> {
    match info.addr() {
        ConnectionAddr::TcpTls { insecure: true, .. } => Err(ErrorKind::InsecureTls),
        ConnectionAddr::TcpTls { .. } if cfg!(feature = "rustls") => Ok(true),
        ConnectionAddr::TcpTls { .. } => Err(ErrorKind::TlsUnsupported),
        _ => Ok(false),
    }
}
