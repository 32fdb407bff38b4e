//! HTTPS with rustls: the certificate and key from `[server.tls]`, swappable while serving.
//!
//! Invariants: a reload replaces the certificate for new handshakes only; connections already
//! established keep theirs and are never dropped. A reload that fails (unreadable file, key
//! not matching the certificate) changes nothing and reports why. ALPN offers `h2` and
//! `http/1.1`; the ring provider is used because it is the one the workspace already builds.

use std::{
    fmt,
    path::Path,
    sync::{Arc, PoisonError, RwLock},
};

use rustls::{
    ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// Why the certificate or key could not be used. Names files, never key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate chain {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("cannot read the private key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error(
        "the private key {key} does not belong to the certificate {cert}, or is of an unsupported type: {reason}"
    )]
    Mismatch {
        cert: String,
        key: String,
        reason: String,
    },
    #[error("building the TLS configuration: {0}")]
    Config(String),
}

/// The certificate in force, handed to every new handshake.
pub struct LiveCert {
    current: RwLock<Arc<CertifiedKey>>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for LiveCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LiveCert([certificate and key])")
    }
}

impl ResolvesServerCert for LiveCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

impl LiveCert {
    /// Reads `config`'s files again and, if they are usable, serves them from the next
    /// handshake on.
    pub fn reload(&self, config: &TlsConfig) -> Result<(), TlsError> {
        let key = load(config, &self.provider)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
        Ok(())
    }
}

/// An acceptor for `config`'s certificate, and the handle that reloads it.
pub fn acceptor(config: &TlsConfig) -> Result<(TlsAcceptor, Arc<LiveCert>), TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let live = Arc::new(LiveCert {
        current: RwLock::new(Arc::new(load(config, &provider)?)),
        provider: provider.clone(),
    });
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(live.clone());
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(server)), live))
}

fn load(config: &TlsConfig, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let show = |p: &Path| p.display().to_string();
    let chain = CertificateDer::pem_file_iter(&config.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert {
            path: show(&config.cert),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Cert {
            path: show(&config.cert),
            reason: "no `BEGIN CERTIFICATE` block".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&config.key).map_err(|e| TlsError::Key {
        path: show(&config.key),
        // The PEM error describes the structure, never the content.
        reason: e.to_string(),
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::Mismatch {
        cert: show(&config.cert),
        key: show(&config.key),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let config = TlsConfig {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        let err = acceptor(&config).err().unwrap().to_string();
        assert!(err.contains("cert.pem"), "{err}");
        std::fs::write(&config.cert, "not a certificate").unwrap();
        let err = acceptor(&config).err().unwrap().to_string();
        assert!(err.contains("BEGIN CERTIFICATE"), "{err}");
    }
}
