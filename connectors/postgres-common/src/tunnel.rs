//! SSH tunnels to the database, configured by Airbyte's `tunnel_method`: one authenticated SSH
//! session to the bastion, then one `direct-tcpip` channel per database connection, each a
//! byte stream for tokio-postgres' `Config::connect_raw` (TLS then runs inside the channel,
//! verified against the database's host name as usual).
//!
//! Like Airbyte's connectors, the bastion's host key is not verified (there is no field to pin
//! it); its fingerprint is logged at debug level.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use cdk::schemars::Schema;
use cdk::{Error, JsonSchema, Result, Secret};
use russh::client::{self, Handle, Msg};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelOpenFailure, ChannelStream};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tracing::{debug, info};

/// How long reaching the bastion's SSH port may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the SSH handshake and authentication may take once connected.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Keepalives keep idle sessions open through firewalls during long syncs.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// Whether to initiate an SSH tunnel before connecting to the database, and if so, which kind
/// of authentication to use.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(tag = "tunnel_method")]
#[schemars(title = "SSH Tunnel Method", transform = describe_tags)]
pub enum TunnelMethod {
    /// No ssh tunnel needed to connect to database
    #[default]
    #[serde(rename = "NO_TUNNEL")]
    #[schemars(title = "No Tunnel")]
    NoTunnel,
    /// Connect through a jump server tunnel host using username and ssh key
    #[serde(rename = "SSH_KEY_AUTH")]
    #[schemars(title = "SSH Key Authentication")]
    SshKeyAuth(SshKeyAuth),
    /// Connect through a jump server tunnel host using username and password authentication
    #[serde(rename = "SSH_PASSWORD_AUTH")]
    #[schemars(title = "Password Authentication")]
    SshPasswordAuth(SshPasswordAuth),
}

/// The fields of `SSH_KEY_AUTH`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct SshKeyAuth {
    /// Hostname of the jump server host that allows inbound ssh tunnel.
    #[schemars(title = "SSH Tunnel Jump Server Host", extend("order" = 1))]
    pub tunnel_host: String,
    /// Port on the proxy/jump server that accepts inbound ssh connections.
    #[serde(default = "default_tunnel_port")]
    #[schemars(title = "SSH Connection Port", extend("order" = 2, "examples" = ["22"]))]
    pub tunnel_port: u16,
    /// OS-level username for logging into the jump server host.
    #[schemars(title = "SSH Login Username", extend("order" = 3))]
    pub tunnel_user: String,
    /// OS-level user account ssh key credentials in RSA PEM format ( created with ssh-keygen
    /// -t rsa -m PEM -f myuser_rsa )
    #[schemars(title = "SSH Private Key", extend("order" = 4, "multiline" = true))]
    pub ssh_key: Secret<String>,
}

/// The fields of `SSH_PASSWORD_AUTH`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct SshPasswordAuth {
    /// Hostname of the jump server host that allows inbound ssh tunnel.
    #[schemars(title = "SSH Tunnel Jump Server Host", extend("order" = 1))]
    pub tunnel_host: String,
    /// Port on the proxy/jump server that accepts inbound ssh connections.
    #[serde(default = "default_tunnel_port")]
    #[schemars(title = "SSH Connection Port", extend("order" = 2, "examples" = ["22"]))]
    pub tunnel_port: u16,
    /// OS-level username for logging into the jump server host
    #[schemars(title = "SSH Login Username", extend("order" = 3))]
    pub tunnel_user: String,
    /// OS-level password for logging into the jump server host
    #[schemars(title = "Password", extend("order" = 4))]
    pub tunnel_user_password: Secret<String>,
}

fn default_tunnel_port() -> u16 {
    22
}

/// Airbyte shows each variant's description on its `tunnel_method` constant, first in order.
fn describe_tags(schema: &mut Schema) {
    let Some(Value::Array(variants)) = schema.get_mut("oneOf") else {
        return;
    };
    for variant in variants {
        let description = variant.get("description").cloned();
        if let Some(tag) = variant
            .pointer_mut("/properties/tunnel_method")
            .and_then(Value::as_object_mut)
        {
            if let Some(description) = description {
                tag.insert("description".into(), description);
            }
            tag.insert("order".into(), 0.into());
        }
    }
}

impl TunnelMethod {
    /// Whether a tunnel is configured.
    pub fn is_tunnel(&self) -> bool {
        !matches!(self, TunnelMethod::NoTunnel)
    }

    /// The tunnel this method describes, not yet connected (`None` for `NO_TUNNEL`). Checks
    /// the fields without touching the network: an unreadable `ssh_key` is a config error.
    pub fn tunnel(&self) -> Result<Option<SshTunnel>> {
        let settings = match self {
            TunnelMethod::NoTunnel => return Ok(None),
            TunnelMethod::SshKeyAuth(c) => Settings {
                bastion: Bastion::new(&c.tunnel_user, &c.tunnel_host, c.tunnel_port),
                credential: Credential::Key(Arc::new(parse_key(c.ssh_key.expose())?)),
            },
            TunnelMethod::SshPasswordAuth(c) => Settings {
                bastion: Bastion::new(&c.tunnel_user, &c.tunnel_host, c.tunnel_port),
                credential: Credential::Password(c.tunnel_user_password.clone()),
            },
        };
        Ok(Some(SshTunnel {
            inner: Arc::new(Inner {
                settings,
                session: Mutex::new(None),
            }),
        }))
    }

    /// The tunnel, connected to the bastion and logged in (`None` for `NO_TUNNEL`). Config
    /// errors for an unreadable `ssh_key`, an unreachable bastion and refused credentials.
    pub async fn open(&self) -> Result<Option<SshTunnel>> {
        let Some(tunnel) = self.tunnel()? else {
            return Ok(None);
        };
        tunnel.connect().await?;
        Ok(Some(tunnel))
    }
}

/// Reads an unencrypted private key (PEM: PKCS#1 RSA as Airbyte documents, PKCS#8, or
/// OpenSSH), forgiving indentation, CRLF and `\n` escapes left by copy and paste.
fn parse_key(text: &str) -> Result<PrivateKey> {
    let unescaped;
    let text = if !text.trim().contains('\n') && text.contains("\\n") {
        unescaped = text.replace("\\n", "\n");
        &unescaped
    } else {
        text
    };
    let normalised: String = text.lines().map(|l| format!("{}\n", l.trim())).collect();
    russh::keys::decode_secret_key(&normalised, None).map_err(|e| match e {
        russh::keys::Error::KeyIsEncrypted => Error::config(
            "tunnel_method.ssh_key is encrypted: give the key without a passphrase \
             (ssh-keygen -p -N '' -m PEM -f KEYFILE removes it)",
        ),
        e => Error::config(format!(
            "tunnel_method.ssh_key is not a readable private key (expected PEM, as made by \
             ssh-keygen -t rsa -m PEM): {e}"
        )),
    })
}

/// Where to log in: shown as `user@host:port` in every message.
#[derive(Debug, Clone)]
struct Bastion {
    host: String,
    port: u16,
    user: String,
    label: Arc<str>,
}

impl Bastion {
    fn new(user: &str, host: &str, port: u16) -> Self {
        Self {
            host: host.to_string(),
            port,
            user: user.to_string(),
            label: format!("{user}@{host}:{port}").into(),
        }
    }
}

enum Credential {
    Key(Arc<PrivateKey>),
    Password(Secret<String>),
}

struct Settings {
    bastion: Bastion,
    credential: Credential,
}

impl Settings {
    /// A new authenticated session.
    async fn connect(&self) -> Result<Handle<HostKeyLogger>> {
        let label = &self.bastion.label;
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((self.bastion.host.as_str(), self.bastion.port)),
        )
        .await
        .map_err(|_| {
            Error::config(format!(
                "cannot reach the ssh bastion {label}: no answer within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| Error::config(format!("cannot reach the ssh bastion {label}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let config = Arc::new(client::Config {
            keepalive_interval: Some(KEEPALIVE_INTERVAL),
            ..Default::default()
        });
        let handler = HostKeyLogger {
            label: label.clone(),
        };
        let login = async {
            let mut session = client::connect_stream(config, tcp, handler)
                .await
                .map_err(|e| Error::config(format!("ssh handshake with {label} failed: {e}")))?;
            self.authenticate(&mut session).await?;
            Ok::<_, Error>(session)
        };
        let session = tokio::time::timeout(HANDSHAKE_TIMEOUT, login)
            .await
            .map_err(|_| {
                Error::config(format!(
                    "the ssh bastion {label} did not complete the ssh handshake and login \
                     within {} s",
                    HANDSHAKE_TIMEOUT.as_secs()
                ))
            })??;
        info!(bastion = %label, "ssh tunnel open");
        Ok(session)
    }

    async fn authenticate(&self, session: &mut Handle<HostKeyLogger>) -> Result<()> {
        let label = &self.bastion.label;
        let user = self.bastion.user.as_str();
        let (result, what) = match &self.credential {
            Credential::Key(key) => {
                let hash = session
                    .best_supported_rsa_hash()
                    .await
                    .map_err(|e| Error::config(format!("ssh handshake with {label} failed: {e}")))?
                    .flatten();
                let key = PrivateKeyWithHashAlg::new(key.clone(), hash);
                (session.authenticate_publickey(user, key).await, "ssh_key")
            }
            Credential::Password(password) => (
                session
                    .authenticate_password(user, password.expose().as_str())
                    .await,
                "password",
            ),
        };
        let result = result
            .map_err(|e| Error::config(format!("ssh authentication failed for {label}: {e}")))?;
        if result.success() {
            return Ok(());
        }
        Err(Error::config(format!(
            "ssh authentication failed for {label}: the bastion refused the {what}"
        )))
    }
}

/// Accepts the bastion's host key, as Airbyte does, logging its fingerprint.
struct HostKeyLogger {
    label: Arc<str>,
}

impl client::Handler for HostKeyLogger {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> std::result::Result<bool, Self::Error> {
        let fingerprint = key.public_key().fingerprint(HashAlg::Sha256);
        debug!(bastion = %self.label, %fingerprint, "ssh bastion host key accepted without verification");
        Ok(true)
    }
}

/// An SSH session to a bastion, shared (cheaply cloned) by every database connection
/// through it: opened on first use (or [`SshTunnel::connect`]), reopened on the next stream
/// when the bastion has closed it.
#[derive(Clone)]
pub struct SshTunnel {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    session: Mutex<Option<Arc<Handle<HostKeyLogger>>>>,
}

impl std::fmt::Debug for SshTunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTunnel")
            .field("bastion", &self.bastion())
            .finish()
    }
}

impl SshTunnel {
    /// `user@host:port` of the bastion.
    pub fn bastion(&self) -> &str {
        &self.inner.settings.bastion.label
    }

    /// A byte stream to `host:port` as the bastion resolves and reaches it (for a database
    /// next to the bastion, often `localhost` or a private name). A target the bastion cannot
    /// reach or may not forward to is a config error naming it.
    pub async fn open_stream(&self, host: &str, port: u16) -> Result<TunnelStream> {
        let label = self.bastion();
        // A session found dead while opening the channel is reopened once.
        let mut attempts = 2;
        loop {
            attempts -= 1;
            let session = self.session().await?;
            match session
                .channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0)
                .await
            {
                Ok(channel) => {
                    return Ok(TunnelStream {
                        inner: channel.into_stream(),
                        _session: session,
                    });
                }
                Err(russh::Error::ChannelOpenFailure(reason)) => {
                    return Err(Error::config(format!(
                        "the ssh bastion {label} could not connect to the database at \
                         {host}:{port}: {}",
                        describe_failure(&reason)
                    )));
                }
                Err(_) if attempts > 0 && session.is_closed() => continue,
                Err(e) => {
                    return Err(Error::transient(format!(
                        "ssh tunnel {label}: cannot open a channel to {host}:{port}: {e}"
                    )));
                }
            }
        }
    }

    /// Connects to the bastion and logs in, unless a live session exists. Config errors for
    /// an unreachable bastion and refused credentials.
    pub async fn connect(&self) -> Result<()> {
        self.session().await.map(|_| ())
    }

    /// The live session: opened when there is none yet or the bastion closed the last one.
    async fn session(&self) -> Result<Arc<Handle<HostKeyLogger>>> {
        let mut session = self.inner.session.lock().await;
        if let Some(live) = session.as_ref().filter(|s| !s.is_closed()) {
            return Ok(live.clone());
        }
        if session.is_some() {
            debug!(bastion = %self.bastion(), "ssh session closed; reconnecting");
        }
        let fresh = Arc::new(self.inner.settings.connect().await?);
        *session = Some(fresh.clone());
        Ok(fresh)
    }
}

fn describe_failure(reason: &ChannelOpenFailure) -> String {
    match reason {
        ChannelOpenFailure::AdministrativelyProhibited => {
            "forwarding is not allowed for this user (administratively prohibited)".into()
        }
        ChannelOpenFailure::ConnectFailed => "connection failed".into(),
        ChannelOpenFailure::UnknownChannelType => "the bastion does not forward tcp".into(),
        ChannelOpenFailure::ResourceShortage => "resource shortage on the bastion".into(),
        ChannelOpenFailure::Other { code, reason } => format!("{reason} (code {code})"),
    }
}

/// A database connection's bytes through the tunnel (`AsyncRead + AsyncWrite + Unpin +
/// Send`). It keeps the SSH session alive while it exists.
pub struct TunnelStream {
    inner: ChannelStream<Msg>,
    _session: Arc<Handle<HostKeyLogger>>,
}

impl std::fmt::Debug for TunnelStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TunnelStream")
    }
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: Value) -> std::result::Result<TunnelMethod, serde_json::Error> {
        serde_json::from_value(value)
    }

    #[test]
    fn variants_parse_with_airbyte_names_and_default_port() {
        assert!(matches!(
            parse(serde_json::json!({"tunnel_method": "NO_TUNNEL"})).unwrap(),
            TunnelMethod::NoTunnel
        ));
        let key = parse(serde_json::json!({"tunnel_method": "SSH_KEY_AUTH",
            "tunnel_host": "b", "tunnel_user": "u", "ssh_key": "k"}))
        .unwrap();
        let TunnelMethod::SshKeyAuth(key) = key else {
            panic!("not key auth: {key:?}")
        };
        assert_eq!(key.tunnel_port, 22);
        assert!(
            !format!("{key:?}").contains("\"k\""),
            "ssh_key leaks in Debug"
        );
        let password = parse(serde_json::json!({"tunnel_method": "SSH_PASSWORD_AUTH",
            "tunnel_host": "b", "tunnel_port": 2222, "tunnel_user": "u",
            "tunnel_user_password": "secret-pw"}))
        .unwrap();
        assert!(password.is_tunnel());
        assert!(!format!("{password:?}").contains("secret-pw"));
        assert!(parse(serde_json::json!({"tunnel_method": "SSH_KEY_AUTH"})).is_err());
        assert!(parse(serde_json::json!({"tunnel_method": "VPN"})).is_err());
    }

    #[test]
    fn garbage_key_is_a_config_error_naming_the_field() {
        let e = parse_key("not a key").unwrap_err();
        assert_eq!(e.failure_type, cdk::protocol::FailureType::ConfigError);
        assert!(e.message.starts_with("tunnel_method.ssh_key "), "{e}");
    }
}
