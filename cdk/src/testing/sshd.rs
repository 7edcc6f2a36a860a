//! A throwaway OpenSSH server for tests of SSH tunnels: Debian's `/usr/sbin/sshd` started on a
//! free loopback port with its own host key, config and authorised RSA key in a temp dir (no
//! system config is read or changed), stopped and deleted on drop.
//!
//! Key auth uses an RSA key in PEM form, as Airbyte's `ssh_key` holds. Password auth needs a
//! system account with a known password: when running as root (CI), the user [`USER`] is
//! created once with [`PASSWORD`]; otherwise the server accepts only the current user, by key.
//! Anything missing (sshd, ssh-keygen, a start failure) panics with the reason: a tunnel test
//! never passes without a server.

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The system user tunnels log in as when the tests run as root.
pub const USER: &str = "cdk-tunnel";
/// The password of [`USER`].
pub const PASSWORD: &str = "cdk-tunnel-test-password";

/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running sshd that allows TCP forwarding (`direct-tcpip`), for one test.
#[derive(Debug)]
pub struct TestSshd {
    /// Always `127.0.0.1`.
    pub host: String,
    pub port: u16,
    /// The account that may log in (key, and password when [`TestSshd::password`] is set).
    pub user: String,
    /// The login password of `user`; `None` when not running as root (no account to set one).
    pub password: Option<String>,
    /// The authorised client key: RSA, PEM (`BEGIN RSA PRIVATE KEY`), as Airbyte's `ssh_key`.
    pub private_key: String,
    child: Child,
    dir: TempDir,
}

impl TestSshd {
    /// Starts a server. Panics with the reason when sshd is missing or does not start.
    pub fn start() -> Self {
        let sshd = find_sshd();
        let (user, password) = login_account();
        let dir = tempfile::Builder::new()
            .prefix("cdk-test-sshd-")
            .tempdir()
            .expect("cannot create a temp dir for the test sshd");
        // sshd reads the authorised keys as the user logging in.
        set_mode(dir.path(), 0o755);
        generate_key(&dir.path().join("host_key"), "ed25519");
        let (private_key, public_key) = rsa_key_pair();
        let authorized = dir.path().join("authorized_keys");
        std::fs::write(&authorized, public_key).expect("cannot write authorized_keys");
        set_mode(&authorized, 0o644);
        let port = free_port();
        let config = dir.path().join("sshd_config");
        std::fs::write(&config, sshd_config(dir.path(), port, &user))
            .expect("cannot write sshd_config");
        ensure_privsep_dir();
        let log = dir.path().join("sshd.log");
        let log_file = std::fs::File::create(&log).expect("cannot create the sshd log");
        let child = Command::new(&sshd)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", sshd.display()));
        let mut server = Self {
            host: Ipv4Addr::LOCALHOST.to_string(),
            port,
            user,
            password,
            private_key,
            child,
            dir,
        };
        server.wait_until_listening();
        server
    }

    /// The login password, panicking with the reason when there is none.
    pub fn password(&self) -> &str {
        self.password.as_deref().unwrap_or_else(|| {
            panic!(
                "the test sshd has no password login: creating the user '{USER}' with a known \
                 password needs root"
            )
        })
    }

    /// What the server logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Airbyte's `tunnel_method` object for key auth through this server.
    pub fn key_auth_config(&self) -> serde_json::Value {
        serde_json::json!({
            "tunnel_method": "SSH_KEY_AUTH",
            "tunnel_host": self.host,
            "tunnel_port": self.port,
            "tunnel_user": self.user,
            "ssh_key": self.private_key,
        })
    }

    /// Airbyte's `tunnel_method` object for password auth through this server.
    pub fn password_auth_config(&self) -> serde_json::Value {
        serde_json::json!({
            "tunnel_method": "SSH_PASSWORD_AUTH",
            "tunnel_host": self.host,
            "tunnel_port": self.port,
            "tunnel_user": self.user,
            "tunnel_user_password": self.password(),
        })
    }

    /// Ends every open session, as a bastion restart would, and keeps listening. Each
    /// connection's sshd processes start their own session, so they are found by parentage.
    pub fn kill_sessions(&self) {
        for pid in descendants(self.child.id()) {
            // SAFETY: kill with a pid we just found and a valid signal.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }

    fn wait_until_listening(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the test sshd exited at start ({status}):\n{}", self.log());
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
                return;
            }
            if started.elapsed() > START_TIMEOUT {
                panic!(
                    "the test sshd did not listen on 127.0.0.1:{} within {START_TIMEOUT:?}:\n{}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestSshd {
    fn drop(&mut self) {
        self.kill_sessions();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh RSA key pair: (private key as PEM, public key in authorized_keys form). Also the
/// way to get a key the server does not know.
pub fn rsa_key_pair() -> (String, String) {
    let dir = tempfile::tempdir().expect("cannot create a temp dir for ssh-keygen");
    let path = dir.path().join("id_rsa");
    generate_key(&path, "rsa");
    let private = std::fs::read_to_string(&path).expect("cannot read the generated key");
    let public = std::fs::read_to_string(path.with_extension("pub"))
        .expect("cannot read the generated public key");
    (private, public)
}

/// Every process below `root`, from `/proc` (children first found, then theirs).
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // The command name may hold spaces and parentheses: fields follow the last ')'.
            let after = &stat[stat.rfind(')')? + 1..];
            let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    found.remove(0);
    found
}

fn sshd_config(dir: &Path, port: u16, user: &str) -> String {
    let dir = dir.display();
    format!(
        "Port {port}\n\
         ListenAddress 127.0.0.1\n\
         HostKey {dir}/host_key\n\
         PidFile {dir}/sshd.pid\n\
         AuthorizedKeysFile {dir}/authorized_keys\n\
         StrictModes no\n\
         UsePAM no\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication yes\n\
         KbdInteractiveAuthentication no\n\
         PermitEmptyPasswords no\n\
         AllowUsers {user}\n\
         AllowTcpForwarding yes\n\
         PermitOpen any\n\
         X11Forwarding no\n\
         PrintMotd no\n\
         MaxStartups 100\n\
         LogLevel DEBUG1\n"
    )
}

/// `ssh-keygen` of the given type without a passphrase; RSA keys in PEM (PKCS#1) form.
fn generate_key(path: &Path, kind: &str) {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", "", "-C", "cdk-test", "-f"])
        .arg(path);
    if kind == "rsa" {
        cmd.args(["-b", "2048", "-m", "PEM"]);
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!(
            "cannot run ssh-keygen ({e}): install OpenSSH (Debian: apt-get install openssh-server)"
        )
    });
    assert!(
        out.status.success(),
        "ssh-keygen -t {kind} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `/usr/sbin/sshd`, or `sshd` on `PATH` (sshd needs an absolute path to re-execute itself).
fn find_sshd() -> PathBuf {
    let standard = PathBuf::from("/usr/sbin/sshd");
    if standard.is_file() {
        return standard;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("sshd"))
        .find(|p| p.is_file() && p.is_absolute())
        .unwrap_or_else(|| {
            panic!(
                "the OpenSSH server (sshd) is not installed: looked for /usr/sbin/sshd and sshd \
                 on PATH. Install it (Debian: apt-get install openssh-server); the SSH tunnel \
                 tests need it."
            )
        })
}

/// (user, password): the test account when root, else the current user without a password.
fn login_account() -> (String, Option<String>) {
    if is_root() {
        static CREATED: OnceLock<()> = OnceLock::new();
        CREATED.get_or_init(create_test_user);
        return (USER.to_string(), Some(PASSWORD.to_string()));
    }
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            panic!("cannot tell the current user (USER and LOGNAME are unset) to let into sshd")
        });
    (user, None)
}

/// Creates [`USER`] (a system account with a shell, no home) unless it exists, and sets its
/// password. Safe to run from several test processes at once.
fn create_test_user() {
    let exists = Command::new("id")
        .arg(USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !exists {
        let out = Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/bin/sh", USER])
            .output()
            .unwrap_or_else(|e| panic!("cannot run useradd to create the user '{USER}': {e}"));
        // 9: the user was created meanwhile by another test process.
        if !out.status.success() && out.status.code() != Some(9) {
            panic!(
                "useradd {USER} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // chpasswd takes a lock on /etc/shadow: another test process may hold it for a moment.
    let mut last_error = String::new();
    for _ in 0..20 {
        let mut child = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run chpasswd to set the password of '{USER}': {e}"));
        if let Some(mut stdin) = child.stdin.take() {
            let _ = writeln!(stdin, "{USER}:{PASSWORD}");
        }
        let out = child.wait_with_output().expect("chpasswd did not finish");
        if out.status.success() {
            return;
        }
        last_error = String::from_utf8_lossy(&out.stderr).into_owned();
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("chpasswd could not set the password of '{USER}': {last_error}");
}

/// sshd running as root insists on its privilege separation directory, which Debian creates
/// only when the ssh service starts.
fn ensure_privsep_dir() {
    let dir = Path::new("/run/sshd");
    if is_root() && !dir.is_dir() {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("cannot create sshd's directory /run/sshd: {e}"));
        set_mode(dir, 0o755);
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot find a free port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_listens_and_stops() {
        let sshd = TestSshd::start();
        let port = sshd.port;
        assert!(sshd.private_key.contains("BEGIN RSA PRIVATE KEY"));
        let banner = {
            use std::io::Read;
            let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
            let mut buf = [0u8; 8];
            stream.read_exact(&mut buf).unwrap();
            buf
        };
        assert_eq!(&banner, b"SSH-2.0-", "log:\n{}", sshd.log());
        drop(sshd);
        assert!(
            TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
            "sshd still listens after drop"
        );
    }
}
