//! Standalone mode: the engine on one machine, no cluster. Canaries come from a folder of manifests,
//! services are endpoint groups, weights go to meshproxy through its admin API, metrics come from
//! meshproxy (or Prometheus), and status lives in a state file.
//!
//! Each loop: reload the manifests if a file changed (a bad change is reported and the last good
//! set keeps running), tick every Canary that is due, and make meshproxy run the config the state
//! implies. A tick writes the decided status before carrying out its actions, as the engine asks.

pub mod demo;
pub mod error;
pub mod groups;
pub mod manifests;
pub mod router;
pub mod state;
pub mod tick;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use serin_meshproxy_api::ProxyConfig;

use crate::analysis::MetricSources;
use crate::hooks::alerts::AlertSender;
use crate::hooks::webhook::WebhookCaller;
use error::{MeshproxyError, StartError};
use manifests::{ManifestSource, Manifests};
use router::MeshproxyAdmin;
use state::StandaloneState;

/// How often the loop wakes to look for due ticks and changed files.
const LOOP_PERIOD: Duration = Duration::from_millis(250);

pub struct Standalone {
    pub source: ManifestSource,
    pub state_path: PathBuf,
    pub meshproxy: MeshproxyAdmin,
    pub metrics: MetricSources,
    pub webhooks: WebhookCaller,
    pub alerts: AlertSender,
    /// Shared with the API's `/status`.
    pub state: Arc<Mutex<StandaloneState>>,
    manifests: Manifests,
    fingerprint: Vec<(PathBuf, Option<std::time::SystemTime>)>,
    /// The config last pushed and the generation meshproxy gave it.
    pushed: Option<(ProxyConfig, u64)>,
    /// When each endpoint group was first seen not ready, by `namespace/name`.
    not_ready_since: BTreeMap<String, Timestamp>,
}

impl Standalone {
    /// Loads the manifests and the state file; any problem is returned, every one of them.
    pub fn new(
        source: ManifestSource,
        state_path: PathBuf,
        meshproxy: MeshproxyAdmin,
        metrics: MetricSources,
    ) -> Result<Standalone, StartError> {
        let fingerprint = source.fingerprint();
        let manifests = source.load().map_err(StartError::Manifests)?;
        let state = StandaloneState::load(&state_path)?;
        let client = metrics.client.clone();
        Ok(Standalone {
            source,
            state_path,
            meshproxy,
            metrics,
            webhooks: WebhookCaller::new(client.clone()),
            alerts: AlertSender::new(client),
            state: Arc::new(Mutex::new(state)),
            manifests,
            fingerprint,
            pushed: None,
            not_ready_since: BTreeMap::new(),
        })
    }

    pub fn manifests(&self) -> &Manifests {
        &self.manifests
    }

    /// Runs until the process ends.
    pub async fn run(mut self) {
        for canary in self.manifests.canaries.clone() {
            let subject =
                crate::analysis::Subject { name: &canary.name, namespace: &canary.namespace, spec: &canary.spec };
            for problem in self.metrics.check_online(subject, &self.manifests.catalog).await {
                tracing::warn!(canary = %canary.key(), %problem, "metrics provider not available");
            }
        }
        loop {
            self.step().await;
            tokio::time::sleep(LOOP_PERIOD).await;
        }
    }

    /// One pass: reload, tick what is due, sync meshproxy.
    pub async fn step(&mut self) {
        self.reload_if_changed();
        let now = Timestamp::now();
        for canary in self.manifests.canaries.clone() {
            let due = {
                let state = self.state.lock().expect("state lock");
                state.canaries.get(&canary.key()).and_then(|r| r.next_tick_at).is_none_or(|at| at <= now)
            };
            if due {
                self.tick(&canary).await;
            }
        }
        self.forget_removed();
        if let Err(problem) = self.sync_meshproxy().await {
            tracing::warn!(%problem, "meshproxy does not run the intended config yet; retrying");
        }
    }

    fn reload_if_changed(&mut self) {
        let fingerprint = self.source.fingerprint();
        if fingerprint == self.fingerprint {
            return;
        }
        self.fingerprint = fingerprint;
        match self.source.load() {
            Ok(manifests) => {
                tracing::info!(canaries = manifests.canaries.len(), "manifests reloaded");
                self.manifests = manifests;
            }
            Err(problems) => {
                for problem in problems {
                    tracing::error!(%problem, "manifest refused; the last good manifests keep running");
                }
            }
        }
    }

    /// A Canary removed from the manifests is no longer managed: its record goes, and with it the
    /// generated route.
    fn forget_removed(&mut self) {
        let keys: Vec<String> = self.manifests.canaries.iter().map(|c| c.key()).collect();
        let mut state = self.state.lock().expect("state lock");
        let before = state.canaries.len();
        state.canaries.retain(|key, _| keys.contains(key));
        if state.canaries.len() != before
            && let Err(problem) = state.save(&self.state_path)
        {
            tracing::error!(%problem, "cannot write the state file");
        }
    }

    /// Pushes the config the state implies when meshproxy runs anything else (also after a
    /// meshproxy restart, which shows as a generation we did not set).
    async fn sync_meshproxy(&mut self) -> Result<(), MeshproxyError> {
        let desired = {
            let state = self.state.lock().expect("state lock");
            router::desired_config(&self.manifests, &state)
        };
        let generation = self.meshproxy.generation().await?;
        if let Some((config, pushed_generation)) = &self.pushed
            && *config == desired
            && *pushed_generation == generation
        {
            return Ok(());
        }
        let generation = self.meshproxy.replace(&desired).await?;
        self.pushed = Some((desired, generation));
        Ok(())
    }
}
