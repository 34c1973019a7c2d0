//! Programs the tests run for real, installed from Debian's packages when missing (tests run as
//! root in CI).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// `binary` from PATH, installing `package` first if it is not there. One apt-get at a time per
/// test process, as two would fight over dpkg's lock.
pub fn binary(binary: &str, package: &str) -> PathBuf {
    static APT: Mutex<()> = Mutex::new(());
    let _apt = APT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(path) = on_path(binary) {
        return path;
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        let _ = Command::new("apt-get").arg("update").status();
        assert!(install(), "{binary} is not installed and `apt-get install {package}` failed");
    }
    on_path(binary).unwrap_or_else(|| panic!("{binary} is on PATH after installing {package}"))
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()))
}
