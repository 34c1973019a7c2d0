//! TLS for the listener: a certificate and key from PEM files, with ALPN offering h2 and
//! http/1.1 so TLS clients get HTTP/2 when they ask for it.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading the certificate chain from {path}: {message}")]
    Certificate { path: String, message: String },
    #[error("reading the private key from {path}: {message}")]
    Key { path: String, message: String },
    #[error("the certificate in {cert} and the key in {key} do not make a usable TLS config: {message}")]
    Config { cert: String, key: String, message: String },
}

/// A TLS acceptor for the certificate chain in `cert` and the private key in `key` (PEM).
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let (cert_name, key_name) = (cert.display().to_string(), key.display().to_string());
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certificate { path: cert_name.clone(), message: e.to_string() })?;
    if chain.is_empty() {
        return Err(TlsError::Certificate { path: cert_name, message: "no CERTIFICATE block found".into() });
    }
    let private_key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError::Key { path: key_name.clone(), message: e.to_string() })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, private_key))
        .map_err(|e| TlsError::Config { cert: cert_name, key: key_name, message: e.to_string() })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
