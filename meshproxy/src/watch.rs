//! Reloads the config file when it changes. Polls, since editors replace files in ways that
//! inotify sees differently; a half-second poll of one small file costs nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::parse_config;
use crate::store::ConfigStore;

pub const POLL: Duration = Duration::from_millis(500);

/// Runs forever: on each change, parse and swap; a bad file is logged and the config in use stays.
pub async fn watch_file(path: PathBuf, store: Arc<ConfigStore>, mut last: String) {
    let source = path.display().to_string();
    loop {
        tokio::time::sleep(POLL).await;
        let Ok(text) = tokio::fs::read_to_string(&path).await else { continue };
        if text == last {
            continue;
        }
        match parse_config(&source, &text).and_then(|config| store.replace(config)) {
            Ok(generation) => tracing::info!(generation, file = %source, "config reloaded"),
            Err(error) => tracing::error!(%error, "config file refused; the previous config keeps serving"),
        }
        last = text;
    }
}
