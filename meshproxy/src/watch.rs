//! Reloads the config file when it changes. Polls, since editors replace files in ways that
//! inotify sees differently. Each poll reads only the file's status: the file itself (11 MB with
//! ten thousand Services) is read when its inode, size or change time moved, which no edit, copy
//! or ConfigMap swap can avoid (the change time cannot be set by hand).

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::parse_config;
use crate::store::ConfigStore;

pub const POLL: Duration = Duration::from_millis(500);

/// What tells that a file may have changed, without reading it.
#[derive(PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    changed: (i64, i64),
}

async fn stamp(path: &PathBuf) -> Option<Stamp> {
    let meta = tokio::fs::metadata(path).await.ok()?;
    Some(Stamp { inode: meta.ino(), len: meta.len(), changed: (meta.ctime(), meta.ctime_nsec()) })
}

/// Runs forever: on each change, parse and swap; a bad file is logged and the config in use stays.
pub async fn watch_file(path: PathBuf, store: Arc<ConfigStore>, mut last: String) {
    let source = path.display().to_string();
    let mut last_stamp = None;
    loop {
        tokio::time::sleep(POLL).await;
        let now = stamp(&path).await;
        if now.is_some() && now == last_stamp {
            continue;
        }
        last_stamp = now;
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
