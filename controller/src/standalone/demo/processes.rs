//! The demo's child processes: finding (or building) the meshproxy and sample-app binaries, and
//! starting every process so that all of them end when the demo does, whichever way it ends.

use super::error::DemoError;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

/// Binaries the demo runs beside `serin-controller`.
pub struct Binaries {
    pub controller: PathBuf,
    pub meshproxy: PathBuf,
    pub testapp: PathBuf,
}

impl Binaries {
    /// Looks beside the running executable; when run through `cargo run`, builds what is missing
    /// with the same profile.
    pub fn locate() -> Result<Binaries, DemoError> {
        let controller = std::env::current_exe().map_err(DemoError::io("cannot find the running executable"))?;
        let folder = controller.parent().unwrap_or(Path::new(".")).to_path_buf();
        let wanted = |name: &str| folder.join(name);
        let missing: Vec<&str> = ["meshproxy", "serin-testapp"].into_iter().filter(|b| !wanted(b).is_file()).collect();
        if !missing.is_empty() {
            let Some(cargo) = std::env::var_os("CARGO") else {
                return Err(DemoError::MissingBinaries { missing: missing.join(" and "), beside: folder });
            };
            let release = folder.file_name().is_some_and(|n| n == "release");
            eprintln!("building {} (first run only)...", missing.join(" and "));
            let mut build = std::process::Command::new(cargo);
            build.args([
                "build",
                "-p",
                "serin-meshproxy",
                "-p",
                "serin-testapp",
                "--bin",
                "meshproxy",
                "--bin",
                "serin-testapp",
            ]);
            if release {
                build.arg("--release");
            }
            let status = build.status().map_err(DemoError::io("cannot run cargo"))?;
            if !status.success() {
                return Err(DemoError::BuildFailed(missing.join(" and ")));
            }
        }
        Ok(Binaries { meshproxy: wanted("meshproxy"), testapp: wanted("serin-testapp"), controller })
    }
}

/// Every process the demo started; all are killed when this is dropped.
#[derive(Default)]
pub struct Children {
    children: Vec<(String, Child)>,
}

impl Children {
    pub fn spawn(&mut self, name: &str, command: &mut Command, log: &Path) -> Result<(), DemoError> {
        let log_file = std::fs::File::create(log).map_err(DemoError::io(log.display().to_string()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(DemoError::io(log.display().to_string()))?)
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .map_err(DemoError::io(format!("cannot start {name}")))?;
        self.children.push((name.to_string(), child));
        Ok(())
    }

    /// A process that has exited, with its status.
    pub fn exited(&mut self) -> Option<String> {
        self.children
            .iter_mut()
            .find_map(|(name, child)| child.try_wait().ok().flatten().map(|status| format!("{name} exited: {status}")))
    }

    pub async fn stop_all(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill().await;
        }
        self.children.clear();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.start_kill();
        }
    }
}

/// Waits until something listens on `address`.
pub async fn wait_listening(address: SocketAddr, what: &str) -> Result<(), DemoError> {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(DemoError::NotListening { what: what.to_string(), address })
}

/// A loopback port free right now.
pub fn free_port() -> Result<u16, DemoError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(DemoError::io("no free port"))?;
    Ok(listener.local_addr().map_err(DemoError::io("no free port"))?.port())
}
