//! A real HTTP forward proxy (Debian's `tinyproxy`) on loopback, optionally asking for basic auth,
//! logging every request to a file in its own folder. Killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

pub struct Tinyproxy {
    child: Child,
    pub port: u16,
    credentials: Option<(String, String)>,
    dir: TempDir,
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tinyproxy {
    /// The proxy's URL, with its credentials when it asks for some.
    pub fn url(&self) -> String {
        match &self.credentials {
            Some((user, password)) => self.url_with(user, password),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// The proxy's URL with these credentials, right or wrong.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@127.0.0.1:{}", self.port)
    }

    /// What tinyproxy logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tinyproxy.log")).unwrap_or_default()
    }
}

/// Starts tinyproxy on a free loopback port; with `credentials`, it takes only requests that
/// carry them as basic auth.
pub fn start(credentials: Option<(&str, &str)>) -> Tinyproxy {
    let binary = super::debian::binary("tinyproxy", "tinyproxy");
    let dir = TempDir::new("tinyproxy");
    let config_path = dir.path().join("tinyproxy.conf");
    // tinyproxy cannot report an ephemeral port, so take a free one; retry if another process
    // grabbed it in between.
    for _ in 0..5 {
        let port = super::free_port();
        let mut config = format!(
            "Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 30\nMaxClients 16\nLogLevel Connect\nLogFile \"{}\"\n",
            dir.path().join("tinyproxy.log").display()
        );
        if let Some((user, password)) = credentials {
            config.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        std::fs::write(&config_path, config).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.txt")).unwrap();
        let mut child = Command::new(&binary)
            .arg("-d")
            .arg("-c")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("starting tinyproxy");
        if wait_listening(port, &mut child) {
            let credentials = credentials.map(|(u, p)| (u.to_string(), p.to_string()));
            return Tinyproxy { child, port, credentials, dir };
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let stderr = std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap_or_default();
    let log = std::fs::read_to_string(dir.path().join("tinyproxy.log")).unwrap_or_default();
    panic!("tinyproxy did not start listening\nstderr:\n{stderr}\nlog:\n{log}");
}

/// Waits until tinyproxy itself answers on `port`. Something else may hold the port (taken after
/// it was found free, by a listener of a test running alongside), and then tinyproxy exits: a
/// connection alone does not tell them apart, its answer does.
fn wait_listening(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        if answers_as_tinyproxy(port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Whether what listens on `port` answers a proxy request as tinyproxy does (its error pages and
/// its Server header name it).
fn answers_as_tinyproxy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET http://127.0.0.1:1/ HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).to_ascii_lowercase().contains("tinyproxy")
}
