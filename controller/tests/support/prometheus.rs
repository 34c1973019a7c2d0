//! A real Prometheus server (Debian's `prometheus` package) on loopback, scraping given targets
//! every second, optionally behind TLS and basic auth. Killed when dropped.

use std::path::PathBuf;

use super::TempDir;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The password behind [`BASIC_AUTH_HASH`], for user `serin`.
pub const BASIC_AUTH_PASSWORD: &str = "scrape-secret";
/// bcrypt of [`BASIC_AUTH_PASSWORD`] (cost 4: this only guards a test server).
const BASIC_AUTH_HASH: &str = "$2b$04$Nv0lxk4z7I51YEh44IzjluWbemZmt/l4uuGI8q0ekiTiG9Qda65La";

pub struct PrometheusServer {
    child: Child,
    pub address: String,
    _dir: TempDir,
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the server should look like from outside.
#[derive(Default)]
pub struct Options {
    /// Serve HTTPS with this certificate and key (PEM) and require basic auth.
    pub tls_and_auth: Option<(String, String)>,
}

/// Installs Prometheus from Debian's packages when it is missing (tests run as root in CI); once
/// per test process, as two apt-get runs at a time would fight over dpkg's lock.
fn binary() -> PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY.get_or_init(find_or_install).clone()
}

fn find_or_install() -> PathBuf {
    let found = |name: &str| {
        std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()))
    };
    if let Some(path) = found("prometheus") {
        return path;
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "prometheus"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        let _ = Command::new("apt-get").arg("update").status();
        assert!(install(), "Prometheus is not installed and `apt-get install prometheus` failed");
    }
    found("prometheus").expect("prometheus is on PATH after installing it")
}

pub fn start(targets: &[std::net::SocketAddr], options: Options) -> PrometheusServer {
    let binary = binary();
    let dir = TempDir::new("prometheus");
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    let config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: meshproxy\n    static_configs: [{{targets: [{}]}}]\n",
        targets.join(", ")
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let mut web_config = None;
    let scheme = match &options.tls_and_auth {
        Some((cert, key)) => {
            std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
            std::fs::write(dir.path().join("key.pem"), key).unwrap();
            let path = dir.path().join("web.yml");
            std::fs::write(
                &path,
                format!(
                    "tls_server_config: {{cert_file: {}, key_file: {}}}\nbasic_auth_users: {{serin: \"{BASIC_AUTH_HASH}\"}}\n",
                    dir.path().join("cert.pem").display(),
                    dir.path().join("key.pem").display()
                ),
            )
            .unwrap();
            web_config = Some(path);
            "https"
        }
        None => "http",
    };
    // Prometheus cannot report an ephemeral port, so take a free one; retry if another process
    // grabbed it in between.
    for _ in 0..5 {
        let port = super::free_port();
        let mut command = Command::new(&binary);
        command
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(web) = &web_config {
            command.arg(format!("--web.config.file={}", web.display()));
        }
        let mut child = command.spawn().expect("starting prometheus");
        let address = format!("{scheme}://127.0.0.1:{port}");
        if wait_listening(port, &mut child) {
            return PrometheusServer { child, address, _dir: dir };
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("prometheus did not start listening");
}

fn wait_listening(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
