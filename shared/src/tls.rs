//! TLS set-up shared by the agent (serving `https://`) and central (connecting to such agents):
//! rustls on the `ring` crypto provider, so no C library (aws-lc) is built.
//!
//! [`install_crypto_provider`] must run before any `reqwest::Client` is built (reqwest is
//! compiled without a provider of its own); the agent's and central's client constructors call
//! it, and so does each test helper that builds a client directly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate, key or TLS configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: PathBuf },
    #[error("{path}: no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {message}")]
    BadKey { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Makes `ring` the process-wide rustls provider. Idempotent; cheap after the first call.
pub fn install_crypto_provider() {
    // Err means a provider is installed already (ours, from an earlier call): nothing to do.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate of a PEM file (a chain: leaf first). Blocking file I/O.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read { path: path.into(), source })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid { path: path.into(), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.into() });
    }
    Ok(certs)
}

/// The first private key of a PEM file. Blocking file I/O.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read { path: path.into(), source })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::BadKey { path: path.into(), message: e.to_string() })
}

/// A server configuration (HTTP/1.1 by ALPN) from a PEM certificate chain and key. HTTP/1.1 only:
/// the servers (`bench-server`) speak HTTP/1.1, whose header read timeout bounds every
/// connection, and the agent's WebSocket is an HTTP/1.1 upgrade.
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let certs = load_certs(cert_file)?;
    let key = load_private_key(key_file)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| TlsError::Invalid { path: key_file.into(), message: e.to_string() })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A client configuration that trusts exactly the CA certificates in `ca_file` (and not the
/// system's roots): for a peer whose certificate a private CA, or the peer itself, signed.
pub fn client_config_trusting(ca_file: &Path) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs(ca_file)? {
        roots.add(cert).map_err(|e| TlsError::Invalid { path: ca_file.into(), message: e.to_string() })?;
    }
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| TlsError::Invalid { path: ca_file.into(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not pem\n").unwrap();
        let e = load_certs(&dir.join("nope.pem")).unwrap_err().to_string();
        assert!(e.contains("nope.pem") && e.contains("cannot read"), "{e}");
        let e = client_config_trusting(&empty).unwrap_err().to_string();
        assert!(e.contains("empty.pem") && e.contains("no PEM certificate"), "{e}");
        let e = server_config(&empty, &empty).unwrap_err().to_string();
        assert!(e.contains("empty.pem"), "{e}");
    }
}
