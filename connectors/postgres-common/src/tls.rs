//! TLS for tokio-postgres in libpq's modes: `allow`, `prefer` and `require` encrypt without
//! verifying the server (as libpq does without a root certificate), `verify-ca` checks the
//! certificate chain, `verify-full` also the host name. A client certificate and key (plain,
//! or encrypted PKCS#8 with its password) may be presented to servers that ask for one.

use std::sync::Arc;

use cdk::{Error, Result};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
pub use tokio_postgres_rustls::MakeRustlsConnect;

/// How the server's certificate is checked.
pub enum Verify<'a> {
    /// Not at all (encryption only).
    None,
    /// Chain against this CA (PEM), any host name.
    Ca(&'a str),
    /// Chain against this CA (PEM) and the host name.
    Full(&'a str),
}

/// A client certificate chain and its key, both PEM.
pub struct ClientCert<'a> {
    /// The certificate chain, the client's own certificate first.
    pub certificate: &'a str,
    /// The key: unencrypted (PKCS#8, PKCS#1, SEC1) or encrypted PKCS#8.
    pub key: &'a str,
    /// Decrypts an encrypted PKCS#8 key; ignored for an unencrypted one (Airbyte's configs
    /// carry it as the password of the Java keystore their connector builds).
    pub key_password: Option<&'a str>,
}

/// A TLS connector for tokio-postgres. Errors name the `ssl_mode` field at fault.
pub fn connector(verify: Verify<'_>, client: Option<ClientCert<'_>>) -> Result<MakeRustlsConnect> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::system(format!("cannot set up TLS: {e}")))?;
    let builder = match verify {
        Verify::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Relaxed {
                provider,
                chain: None,
            })),
        Verify::Ca(pem) => {
            let chain = Some(webpki(pem, provider.clone())?);
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Relaxed { provider, chain }))
        }
        Verify::Full(pem) => builder.with_webpki_verifier(webpki(pem, provider)?),
    };
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(client) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(client.certificate.as_bytes())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| {
                        Error::config(format!("ssl_mode.client_certificate is not valid PEM: {e}"))
                    })?;
            let key = crate::key::private_key(client.key, client.key_password)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::config(format!("ssl_mode: client certificate rejected: {e}")))?
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

fn webpki(
    pem: &str,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>> {
    let mut roots = RootCertStore::empty();
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert
            .map_err(|e| Error::config(format!("ssl_mode.ca_certificate is not valid PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| Error::config(format!("ssl_mode.ca_certificate is not usable: {e}")))?;
        count += 1;
    }
    if count == 0 {
        return Err(Error::config(
            "ssl_mode.ca_certificate holds no PEM certificate",
        ));
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| Error::config(format!("ssl_mode.ca_certificate is not usable: {e}")))
}

/// Checks less than rustls by default: with no chain verifier it accepts any certificate
/// (libpq's `require`); with one it verifies the chain but not the host name (libpq's
/// `verify-ca`). Handshake signatures are always checked with the provider's algorithms.
#[derive(Debug)]
struct Relaxed {
    provider: Arc<rustls::crypto::CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(r: Result<MakeRustlsConnect>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_certificates_name_their_field() {
        assert!(connector(Verify::None, None).is_ok());
        assert!(
            message(connector(Verify::Ca("not pem"), None)).contains("ssl_mode.ca_certificate")
        );
        assert!(message(connector(Verify::Full(""), None)).contains("no PEM certificate"));
        let client = ClientCert {
            certificate: "",
            key: "not a key",
            key_password: None,
        };
        assert!(message(connector(Verify::None, Some(client))).contains("ssl_mode.client_key"));
    }
}
