//! The client key of `ssl_mode`: an unencrypted PEM key as it is, an encrypted PKCS#8 key
//! decrypted with `client_key_password`, and a precise error for what cannot be read.

use cdk::{Error, Result};
use pkcs8::EncryptedPrivateKeyInfo;
use pkcs8::der::Document;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

/// The key for rustls. `password` decrypts an encrypted PKCS#8 key and is ignored otherwise
/// (a config copied from Airbyte carries it as a keystore password even for a plain key).
pub fn private_key(pem: &str, password: Option<&str>) -> Result<PrivateKeyDer<'static>> {
    if pem.contains(ENCRYPTED_BEGIN) {
        return decrypt(pem, password.unwrap_or(""));
    }
    if pem.contains("Proc-Type: 4,ENCRYPTED") {
        let cipher = pem
            .lines()
            .find_map(|l| l.trim().strip_prefix("DEK-Info:"))
            .and_then(|info| info.split(',').next())
            .map(|c| format!(" ({})", c.trim()))
            .unwrap_or_default();
        return Err(Error::config(format!(
            "ssl_mode.client_key is a legacy OpenSSL-encrypted PEM key (\"Proc-Type: 4,ENCRYPTED\"\
             {cipher}), which cannot be decrypted here; convert it to encrypted PKCS#8 with \
             `openssl pkcs8 -topk8 -v2 aes-256-cbc -in key.pem -out key.p8` (or to an \
             unencrypted key with `-nocrypt`)"
        )));
    }
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
        Error::config(format!(
            "ssl_mode.client_key is not a PEM private key (PKCS#8, PKCS#1, SEC1 or encrypted \
             PKCS#8): {e}"
        ))
    })
}

fn decrypt(pem: &str, password: &str) -> Result<PrivateKeyDer<'static>> {
    if password.is_empty() {
        return Err(Error::config(
            "ssl_mode.client_key is encrypted (\"BEGIN ENCRYPTED PRIVATE KEY\"): set \
             ssl_mode.client_key_password to its password",
        ));
    }
    let block = encrypted_block(pem).ok_or_else(|| {
        Error::config(format!(
            "ssl_mode.client_key has \"{ENCRYPTED_BEGIN}\" but no matching end line"
        ))
    })?;
    let not_pkcs8 = |e: &dyn std::fmt::Display| {
        Error::config(format!(
            "ssl_mode.client_key is not a valid encrypted PKCS#8 key: {e}"
        ))
    };
    let (_, document) = Document::from_pem(block).map_err(|e| not_pkcs8(&e))?;
    let info = EncryptedPrivateKeyInfo::try_from(document.as_bytes()).map_err(|e| not_pkcs8(&e))?;
    let plain = info.decrypt(password).map_err(|e| {
        Error::config(format!(
            "ssl_mode.client_key cannot be decrypted with ssl_mode.client_key_password \
             (a wrong password, or an unsupported encryption scheme): {e}"
        ))
    })?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        plain.as_bytes().to_vec(),
    )))
}

/// The encrypted key's PEM block alone (a pasted key may come with other text around it).
fn encrypted_block(pem: &str) -> Option<&str> {
    let start = pem.find(ENCRYPTED_BEGIN)?;
    let end = pem[start..].find(ENCRYPTED_END)? + start + ENCRYPTED_END.len();
    Some(&pem[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(r: Result<PrivateKeyDer<'static>>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn unreadable_keys_say_why() {
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                      DEK-Info: AES-256-CBC,0011\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        let m = message(private_key(legacy, Some("pw")));
        assert!(m.contains("legacy OpenSSL-encrypted PEM key"), "{m}");
        assert!(m.contains("(AES-256-CBC)"), "{m}");
        let encrypted = format!("{ENCRYPTED_BEGIN}\nAAAA\n{ENCRYPTED_END}\n");
        assert!(
            message(private_key(&encrypted, None)).contains("set ssl_mode.client_key_password")
        );
        assert!(message(private_key(&encrypted, Some("pw"))).contains("not a valid encrypted"));
        assert!(message(private_key(ENCRYPTED_BEGIN, Some("pw"))).contains("no matching end"));
        assert!(message(private_key("not a key", Some("pw"))).contains("not a PEM private key"));
    }
}
