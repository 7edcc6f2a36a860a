//! `JwtAuthenticator`: a JSON Web Token signed for every request (HMAC, RSA, RSA-PSS, ECDSA
//! P-256/P-384/P-521/secp256k1 or Ed25519), from a PEM key (PKCS#8, encrypted PKCS#8 with
//! `passphrase`, SEC1 for ECDSA), with Airbyte's claims — `iat`, `nbf` now, `exp` now plus
//! `token_duration` — and headers (`typ: JWT` unless set), injected as the `Authorization`
//! header unless `request_option` says otherwise. A token is reused for half its lifetime (at
//! most five minutes).

use async_trait::async_trait;
use base64::Engine as _;
use cdk::{Error, Result};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Map, Value, json};

use super::Authenticator;
use crate::interpolation::{Structure, Template, Vars};
use crate::manifest::{Build, Component};
use crate::request_option::{RequestOption, RequestParts};

/// How a token is signed: by jsonwebtoken, or by the RustCrypto curve it lacks.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Signer {
    Jwt(Algorithm),
    /// ES256K: ECDSA on secp256k1 with SHA-256.
    Es256k,
    /// ES512: ECDSA on P-521 with SHA-512.
    Es512,
}

/// The ECDSA signing key of curve crate `$curve` from PKCS#8 or SEC1 (`EC PRIVATE KEY`) PEM.
macro_rules! ec_signing_key {
    ($curve:ident, $pem:expr) => {{
        use $curve::pkcs8::DecodePrivateKey as _;
        let pem = $pem.trim();
        if pem.contains("BEGIN EC PRIVATE KEY") {
            $curve::SecretKey::from_sec1_pem(pem)
                .map(|k| $curve::ecdsa::SigningKey::from(&k))
                .map_err(|e| e.to_string())
        } else {
            $curve::ecdsa::SigningKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())
        }
    }};
}

#[derive(Debug)]
pub struct Jwt {
    secret_key: Template,
    passphrase: Option<Template>,
    algorithm: Signer,
    algorithm_name: String,
    base64_encode_secret_key: bool,
    token_duration: Option<i64>,
    header_prefix: Option<Template>,
    kid: Option<Template>,
    typ: Option<Template>,
    cty: Option<Template>,
    iss: Option<Template>,
    sub: Option<Template>,
    aud: Option<Template>,
    additional_headers: Option<Structure>,
    additional_payload: Option<Structure>,
    option: RequestOption,
    /// The last token and when it was signed: reused for half its lifetime (at most five
    /// minutes) rather than signing, and registering as a secret, one per request.
    cached: std::sync::Mutex<Option<(i64, String)>>,
}

const RESERVED_HEADERS: [&str; 4] = ["kid", "alg", "typ", "cty"];
const RESERVED_CLAIMS: [&str; 6] = ["iss", "sub", "aud", "iat", "exp", "nbf"];

fn algorithm(name: &str) -> Option<Signer> {
    Some(Signer::Jwt(match name {
        "ES256K" => return Some(Signer::Es256k),
        "ES512" => return Some(Signer::Es512),
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    }))
}

/// The optional template fields of a `JwtHeaders`/`JwtPayload` object.
fn sub_templates<const N: usize>(
    c: &mut Component<'_>,
    b: &Build,
    key: &str,
    fields: [&str; N],
) -> Result<[Option<Template>; N]> {
    let mut out: [Option<Template>; N] = std::array::from_fn(|_| None);
    let Some(node) = c.child(key) else {
        return Ok(out);
    };
    let mut sub = node.component(Some(key))?;
    for (slot, field) in out.iter_mut().zip(fields) {
        *slot = sub.opt_template(b, field)?;
    }
    sub.finish()?;
    Ok(out)
}

impl Jwt {
    pub fn decode(c: &mut Component<'_>, b: &Build) -> Result<Self> {
        let secret_key = c.template(b, "secret_key")?;
        let algorithm_name = c.str("algorithm")?;
        let algorithm = algorithm(&algorithm_name).ok_or_else(|| {
            c.error(format!(
                "the algorithm '{algorithm_name}' is not supported (HS256/384/512, RS256/384/512, PS256/384/512, ES256, ES256K, ES384, ES512, EdDSA)"
            ))
        })?;
        let passphrase = c.opt_template(b, "passphrase")?;
        let base64_encode_secret_key = match c.get("base64_encode_secret_key") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(v)) => v,
            Some(Value::String(s)) => c
                .template_of(b, "base64_encode_secret_key", &s)?
                .eval_bool(&Vars::new())?,
            Some(other) => {
                return Err(c.error(format!(
                    "'base64_encode_secret_key' must be true or false, got {other}"
                )));
            }
        };
        let token_duration = match c.get("token_duration") {
            None => Some(1200),
            Some(Value::Null) => None,
            Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
            Some(other) => {
                return Err(c.error(format!("'token_duration' must be an integer, got {other}")));
            }
        };
        let header_prefix = c.opt_template(b, "header_prefix")?;
        let [kid, typ, cty] = sub_templates(c, b, "jwt_headers", ["kid", "typ", "cty"])?;
        let typ = match typ {
            Some(t) => Some(t),
            None => Some(c.template_of(b, "jwt_headers", "JWT")?),
        };
        let [iss, sub, aud] = sub_templates(c, b, "jwt_payload", ["iss", "sub", "aud"])?;
        let additional_headers = c.opt_structure(b, "additional_jwt_headers")?;
        let additional_payload = c.opt_structure(b, "additional_jwt_payload")?;
        let option = match c.child("request_option") {
            Some(n) => RequestOption::decode(n, b)?,
            None => super::header_option(b, "Authorization")?,
        };
        Ok(Self {
            secret_key,
            passphrase,
            algorithm,
            algorithm_name,
            base64_encode_secret_key,
            token_duration,
            header_prefix,
            kid,
            typ,
            cty,
            iss,
            sub,
            aud,
            additional_headers,
            additional_payload,
            option,
            cached: std::sync::Mutex::new(None),
        })
    }

    fn object(s: &Option<Structure>, vars: &Vars, what: &str) -> Result<Map<String, Value>> {
        match s {
            None => Ok(Map::new()),
            Some(s) => match s.eval(vars)? {
                Value::Object(m) => Ok(m),
                Value::Null => Ok(Map::new()),
                other => Err(Error::config(format!(
                    "JwtAuthenticator: '{what}' must be a mapping, got {other}"
                ))),
            },
        }
    }

    fn headers(&self, vars: &Vars) -> Result<Map<String, Value>> {
        let mut h = Self::object(&self.additional_headers, vars, "additional_jwt_headers")?;
        if let Some(k) = RESERVED_HEADERS.iter().find(|k| h.contains_key(**k)) {
            return Err(Error::config(format!(
                "JwtAuthenticator: '{k}' is a reserved header ('kid', 'alg', 'typ', 'cty') and cannot be set in 'additional_jwt_headers'"
            )));
        }
        for (name, t) in [("kid", &self.kid), ("typ", &self.typ), ("cty", &self.cty)] {
            if let Some(t) = t {
                h.insert(name.into(), t.eval(vars)?);
            }
        }
        h.insert("alg".into(), Value::String(self.algorithm_name.clone()));
        if h.get("typ").is_some_and(|t| t.is_null() || t == "") {
            h.remove("typ");
        }
        Ok(h)
    }

    fn payload(&self, vars: &Vars, now: i64) -> Result<Map<String, Value>> {
        let mut p = Self::object(&self.additional_payload, vars, "additional_jwt_payload")?;
        if let Some(k) = RESERVED_CLAIMS.iter().find(|k| p.contains_key(**k)) {
            return Err(Error::config(format!(
                "JwtAuthenticator: '{k}' is a reserved claim ('iss', 'sub', 'aud', 'iat', 'exp', 'nbf') and cannot be set in 'additional_jwt_payload'"
            )));
        }
        for (name, t) in [("iss", &self.iss), ("sub", &self.sub), ("aud", &self.aud)] {
            if let Some(t) = t {
                p.insert(name.into(), t.eval(vars)?);
            }
        }
        p.insert("iat".into(), json!(now));
        p.insert("exp".into(), json!(now + self.token_duration.unwrap_or(0)));
        p.insert("nbf".into(), json!(now));
        Ok(p)
    }

    /// The secret key as configured: decrypted when a `passphrase` evaluates to a value (then
    /// a PKCS#8 PEM), else base64-encoded when `base64_encode_secret_key` says so.
    fn secret(&self, vars: &Vars) -> Result<String> {
        let secret = self.secret_key.eval_str(vars)?.unwrap_or_default();
        if let Some(p) = &self.passphrase
            && let Some(pass) = p.eval_str(vars)?.filter(|p| !p.is_empty())
        {
            return decrypt_pem(&secret, &pass);
        }
        Ok(if self.base64_encode_secret_key {
            base64::engine::general_purpose::STANDARD.encode(secret.as_bytes())
        } else {
            secret
        })
    }

    fn key_error(&self, e: impl std::fmt::Display) -> Error {
        Error::config(format!(
            "JwtAuthenticator: the secret key cannot be used for {}: {e}",
            self.algorithm_name
        ))
    }

    fn key(&self, secret: &str, algorithm: Algorithm) -> Result<EncodingKey> {
        let key = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                EncodingKey::from_secret(secret.as_bytes())
            }
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(secret.as_bytes()),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(secret.as_bytes()),
            _ => EncodingKey::from_rsa_pem(secret.as_bytes()),
        };
        key.map_err(|e| self.key_error(e))
    }

    /// The JWS signature of `message`, base64url-encoded.
    fn sign(&self, message: &[u8], vars: &Vars) -> Result<String> {
        let secret = self.secret(vars)?;
        let raw = match self.algorithm {
            Signer::Jwt(a) => {
                return jsonwebtoken::crypto::sign(message, &self.key(&secret, a)?, a).map_err(
                    |e| Error::config(format!("JwtAuthenticator: failed to sign the token: {e}")),
                );
            }
            Signer::Es256k => {
                use k256::ecdsa::signature::Signer as _;
                let key = ec_signing_key!(k256, secret).map_err(|e| self.key_error(e))?;
                let sig: k256::ecdsa::Signature = key.sign(message);
                sig.to_vec()
            }
            Signer::Es512 => {
                use p521::ecdsa::signature::Signer as _;
                let key = ec_signing_key!(p521, secret).map_err(|e| self.key_error(e))?;
                let sig: p521::ecdsa::Signature = key.sign(message);
                sig.to_vec()
            }
        };
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
    }

    /// A token signed now.
    pub fn token(&self, now: i64) -> Result<String> {
        let vars = Vars::new();
        let b64 = |v: &Map<String, Value>| -> Result<String> {
            let text = serde_json::to_vec(v)?;
            Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text))
        };
        let message = format!(
            "{}.{}",
            b64(&self.headers(&vars)?)?,
            b64(&self.payload(&vars, now)?)?
        );
        let signature = self.sign(message.as_bytes(), &vars)?;
        let token = format!("{message}.{signature}");
        cdk::secrets::register(&token);
        match &self.header_prefix {
            Some(p) => match p.eval_str(&vars)? {
                Some(prefix) if !prefix.is_empty() => Ok(format!("{prefix} {token}")),
                _ => Ok(token),
            },
            None => Ok(token),
        }
    }
}

/// An `ENCRYPTED PRIVATE KEY` PEM decrypted with `passphrase`, as a `PRIVATE KEY` PEM.
fn decrypt_pem(pem: &str, passphrase: &str) -> Result<String> {
    let bad = |e: &dyn std::fmt::Display| {
        Error::config(format!(
            "JwtAuthenticator: the passphrase-protected secret key cannot be decrypted: {e}"
        ))
    };
    if pem.contains("Proc-Type: 4,ENCRYPTED") {
        return legacy_pem(pem, passphrase).map_err(|e| bad(&e));
    }
    let (label, doc) = pkcs8::SecretDocument::from_pem(pem.trim()).map_err(|e| bad(&e))?;
    if label != "ENCRYPTED PRIVATE KEY" {
        return Err(bad(&format!(
            "a passphrase was given but the key is not an encrypted PKCS#8 key (its PEM label is '{label}', expected 'ENCRYPTED PRIVATE KEY')"
        )));
    }
    let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(doc.as_bytes()).map_err(|e| bad(&e))?;
    let plain = info.decrypt(passphrase.as_bytes()).map_err(|e| bad(&e))?;
    let out = plain
        .to_pem("PRIVATE KEY", pkcs8::LineEnding::LF)
        .map_err(|e| bad(&e))?;
    cdk::secrets::register(&out);
    Ok(out.to_string())
}

/// An OpenSSL "traditional" encrypted PEM (`Proc-Type: 4,ENCRYPTED`, `DEK-Info:
/// <cipher>,<iv>`): the key from the passphrase by `EVP_BytesToKey` (MD5, one round, the IV's
/// first 8 bytes as salt), the body decrypted in CBC mode, the same PEM label without headers.
fn legacy_pem(pem: &str, passphrase: &str) -> std::result::Result<String, String> {
    use base64::Engine as _;
    use cbc::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
    use md5::Digest as _;
    let label = pem
        .lines()
        .find_map(|l| l.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .ok_or("no PEM label")?
        .to_string();
    let dek = pem
        .lines()
        .find_map(|l| l.strip_prefix("DEK-Info:"))
        .ok_or("no DEK-Info header")?;
    let (cipher, iv_hex) = dek
        .trim()
        .split_once(',')
        .ok_or("a malformed DEK-Info header")?;
    let iv: Vec<u8> = (0..iv_hex.len() / 2)
        .map(|i| u8::from_str_radix(&iv_hex[2 * i..2 * i + 2], 16))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("a malformed DEK-Info IV: {e}"))?;
    let key_len = match cipher {
        "AES-128-CBC" => 16,
        "AES-192-CBC" => 24,
        "AES-256-CBC" => 32,
        "DES-EDE3-CBC" => 24,
        other => {
            return Err(format!(
                "the PEM cipher '{other}' is not supported (AES-128/192/256-CBC, DES-EDE3-CBC)"
            ));
        }
    };
    let salt = iv.get(..8).ok_or("a DEK-Info IV shorter than 8 bytes")?;
    let mut key = Vec::new();
    let mut prev: Vec<u8> = Vec::new();
    while key.len() < key_len {
        let mut h = md5::Md5::new();
        h.update(&prev);
        h.update(passphrase.as_bytes());
        h.update(salt);
        prev = h.finalize().to_vec();
        key.extend_from_slice(&prev);
    }
    key.truncate(key_len);
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.contains(':') && !l.trim().is_empty())
        .collect();
    let mut data = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|e| format!("the PEM body is not base64: {e}"))?;
    let wrong = |_| "the passphrase is wrong or the key is damaged".to_string();
    let plain = match cipher {
        "AES-128-CBC" => cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, &iv)
            .map_err(|e| e.to_string())?
            .decrypt_padded::<Pkcs7>(&mut data)
            .map_err(wrong)?
            .to_vec(),
        "AES-192-CBC" => cbc::Decryptor::<aes::Aes192>::new_from_slices(&key, &iv)
            .map_err(|e| e.to_string())?
            .decrypt_padded::<Pkcs7>(&mut data)
            .map_err(wrong)?
            .to_vec(),
        "AES-256-CBC" => cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, &iv)
            .map_err(|e| e.to_string())?
            .decrypt_padded::<Pkcs7>(&mut data)
            .map_err(wrong)?
            .to_vec(),
        _ => cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
            .map_err(|e| e.to_string())?
            .decrypt_padded::<Pkcs7>(&mut data)
            .map_err(wrong)?
            .to_vec(),
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(&plain);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in encoded.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).map_err(|e| e.to_string())?);
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    cdk::secrets::register(&out);
    Ok(out)
}

#[async_trait]
impl Authenticator for Jwt {
    async fn apply(&self, parts: &mut RequestParts) -> Result<()> {
        let now = chrono::Utc::now().timestamp();
        let reuse_for = (self.token_duration.unwrap_or(0) / 2).min(300);
        let cached = {
            let guard = self.cached.lock().unwrap_or_else(|p| p.into_inner());
            guard
                .as_ref()
                .filter(|(at, _)| now - at < reuse_for)
                .map(|(_, t)| t.clone())
        };
        let token = match cached {
            Some(t) => t,
            None => {
                let t = self.token(now)?;
                *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, t.clone()));
                t
            }
        };
        self.option
            .inject(&Value::String(token), &Vars::new(), parts)
    }
}
