//! Standalone mode: the engine on one machine, no cluster. Canaries come from a folder of manifests,
//! services are endpoint groups, weights go to meshproxy through its admin API, metrics come from
//! meshproxy (or Prometheus), and status lives in a state folder, one file per Canary.
//!
//! Each loop: reload the manifests if a file changed (a bad change is reported and the last good
//! set keeps running), tick the Canaries that are due (a schedule, not a scan), and make meshproxy
//! run the config the state implies. A tick goes through the shared reconcile routine, which writes
//! the decided status before carrying out its actions.

pub mod demo;
pub mod error;
pub mod groups;
pub mod manifests;
pub mod requests;
pub mod router;
pub mod schedule;
pub mod state;
pub mod tick;
pub mod view;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serin_meshproxy_api::ProxyConfig;

use crate::analysis::MetricSources;
use crate::hooks::alerts::AlertSender;
use crate::hooks::gates::GateStore;
use crate::hooks::webhook::WebhookCaller;
use error::{MeshproxyError, StartError};
use manifests::{LoadedCanary, ManifestSource, Manifests};
use requests::RequestStore;
use router::MeshproxyAdmin;
use schedule::Schedule;
use state::{StandaloneState, StateStore};

/// The longest the loop sleeps: how often meshproxy's generation is checked when no tick is due.
const LOOP_PERIOD: Duration = Duration::from_millis(250);
/// How long after a failed meshproxy sync the next one is tried.
const SYNC_RETRY: Duration = Duration::from_secs(2);
/// Ticks due this close together run in one wake-up.
const TICK_BATCH: Duration = Duration::from_millis(5);
/// How often the manifests folder is looked at for changes.
const RELOAD_PERIOD: Duration = Duration::from_secs(1);
/// How often the schedule's health (ticks run, how late) is logged.
const SCHEDULE_REPORT_PERIOD: Duration = Duration::from_secs(10);

pub struct Standalone {
    pub source: ManifestSource,
    pub store: StateStore,
    pub meshproxy: MeshproxyAdmin,
    pub metrics: MetricSources,
    pub webhooks: WebhookCaller,
    pub alerts: AlertSender,
    /// Shared with the API's `/status`.
    pub state: Arc<Mutex<StandaloneState>>,
    /// Shared with the API, which accepts operator requests into it.
    pub requests: Arc<RequestStore>,
    manifests: Manifests,
    /// The manifests' Canaries by `namespace/name`, shared with the API's view of them.
    by_key: Arc<RwLock<HashMap<String, Arc<LoadedCanary>>>>,
    schedule: Schedule,
    fingerprint: Vec<(PathBuf, Option<std::time::SystemTime>)>,
    last_reload_check: Instant,
    last_schedule_report: Instant,
    last_sync: Instant,
    /// After a failed sync: not before then.
    sync_retry_at: Option<Instant>,
    /// The state changed in a way the meshproxy config may follow; rebuild it before the next sync.
    config_stale: bool,
    /// The config last pushed and the generation meshproxy gave it.
    pushed: Option<(ProxyConfig, u64)>,
    /// History lines in each Canary's file since it was last cut back.
    history_lines: HashMap<String, usize>,
    /// When each endpoint group was first seen not ready, by `namespace/name`.
    not_ready_since: BTreeMap<String, Timestamp>,
}

impl Standalone {
    /// Loads the manifests and the state; every manifest problem is returned.
    pub fn new(
        source: ManifestSource,
        store: StateStore,
        meshproxy: MeshproxyAdmin,
        metrics: MetricSources,
    ) -> Result<Standalone, StartError> {
        let fingerprint = source.fingerprint();
        let manifests = source.load().map_err(StartError::Manifests)?;
        let state = store.load()?;
        let requests = Arc::new(RequestStore::open(&store.dir().join("requests"))?);
        let history_lines = state.canaries.iter().map(|(key, r)| (key.clone(), r.history.len())).collect();
        let client = metrics.client.clone();
        let mut standalone = Standalone {
            source,
            store,
            meshproxy,
            metrics,
            webhooks: WebhookCaller::new(client.clone()),
            alerts: AlertSender::new(client),
            state: Arc::new(Mutex::new(state)),
            requests,
            manifests: Manifests::default(),
            by_key: Arc::default(),
            schedule: Schedule::default(),
            fingerprint,
            last_reload_check: Instant::now(),
            last_schedule_report: Instant::now(),
            last_sync: Instant::now(),
            sync_retry_at: None,
            config_stale: true,
            pushed: None,
            history_lines,
            not_ready_since: BTreeMap::new(),
        };
        standalone.take_manifests(manifests);
        Ok(standalone)
    }

    pub fn manifests(&self) -> &Manifests {
        &self.manifests
    }

    /// What the API serves about the Canaries: the running ones, their state, their gates in
    /// `gates`, and their targets as the manifests on disk have them.
    pub fn view(&self, gates: Arc<GateStore>) -> view::CanaryView {
        view::CanaryView { running: self.by_key.clone(), state: self.state.clone(), source: self.source.clone(), gates }
    }

    /// Runs until the process ends.
    pub async fn run(mut self) {
        // Flagger's availability check, once per provider however many Canaries share it.
        let mut checked = Vec::new();
        for canary in self.manifests.canaries.clone() {
            let subject =
                crate::analysis::Subject { name: &canary.name, namespace: &canary.namespace, spec: &canary.spec };
            for problem in self.metrics.check_online_skipping(subject, &self.manifests.catalog, &mut checked).await {
                tracing::warn!(canary = %canary.key(), %problem, "metrics provider not available");
            }
        }
        loop {
            self.step().await;
            // Wake for the next due tick (ticks due within a few milliseconds run together), and at
            // least every loop period for meshproxy and the files.
            let until_due = self.schedule.next_due().map_or(LOOP_PERIOD, |at| {
                let wait = at.duration_since(Timestamp::now());
                if wait.is_negative() { Duration::ZERO } else { wait.unsigned_abs().min(LOOP_PERIOD) }
            });
            tokio::time::sleep(until_due.max(TICK_BATCH)).await;
        }
    }

    /// One pass: reload, tick what is due, sync meshproxy.
    pub async fn step(&mut self) {
        if self.last_reload_check.elapsed() >= RELOAD_PERIOD {
            self.last_reload_check = Instant::now();
            self.reload_if_changed();
        }
        let now = Timestamp::now();
        while let Some(key) = self.schedule.pop_due(now) {
            let Some(canary) = self.by_key.read().expect("canaries lock").get(&key).cloned() else { continue };
            let next = self.tick(&canary).await;
            self.schedule.set(&key, next);
        }
        self.report_schedule();
        if !self.config_stale && self.last_sync.elapsed() < LOOP_PERIOD {
            return;
        }
        if self.sync_retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        self.last_sync = Instant::now();
        self.sync_retry_at = None;
        if let Err(problem) = self.sync_meshproxy().await {
            tracing::warn!(%problem, label = problem.label(), "meshproxy does not run the intended config yet; retrying");
            // A refused or unreachable meshproxy is asked again shortly, not on every wake-up.
            self.sync_retry_at = Some(Instant::now() + SYNC_RETRY);
            self.config_stale = true;
        }
    }

    fn report_schedule(&mut self) {
        if self.last_schedule_report.elapsed() < SCHEDULE_REPORT_PERIOD {
            return;
        }
        let seconds = self.last_schedule_report.elapsed().as_secs_f64();
        self.last_schedule_report = Instant::now();
        let mut lateness = self.schedule.take_lateness();
        tracing::info!(
            canaries = self.schedule.len(),
            ticks_per_second = (lateness.ticks() as f64 / seconds * 10.0).round() / 10.0,
            late_p50_ms = lateness.quantile_ms(0.5),
            late_p99_ms = lateness.quantile_ms(0.99),
            late_max_ms = lateness.quantile_ms(1.0),
            "schedule"
        );
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
                self.take_manifests(manifests);
            }
            Err(problems) => {
                for problem in problems {
                    tracing::error!(%problem, "manifest refused; the last good manifests keep running");
                }
            }
        }
    }

    /// Starts running `manifests`: new Canaries are due now, and a Canary removed from them is no
    /// longer managed: its record goes, and with it the generated route.
    fn take_manifests(&mut self, manifests: Manifests) {
        let by_key: HashMap<String, Arc<LoadedCanary>> =
            manifests.canaries.iter().map(|c| (c.key(), c.clone())).collect();
        self.requests.set_known(by_key.keys().cloned());
        self.schedule.retain_and_add(by_key.keys().map(String::as_str), Timestamp::now());
        self.manifests = manifests;
        self.config_stale = true;
        let mut state = self.state.lock().expect("state lock");
        let removed: Vec<String> = state.canaries.keys().filter(|k| !by_key.contains_key(*k)).cloned().collect();
        *self.by_key.write().expect("canaries lock") = by_key;
        for key in removed {
            state.canaries.remove(&key);
            self.history_lines.remove(&key);
            if let Err(problem) = self.store.remove(&key) {
                tracing::error!(canary = %key, %problem, "cannot remove the state of a Canary no longer managed");
            }
        }
    }

    /// Pushes the config the state implies when meshproxy runs anything else (also after a
    /// meshproxy restart, which shows as a generation we did not set). The config is rebuilt only
    /// when the manifests or a record changed.
    async fn sync_meshproxy(&mut self) -> Result<(), MeshproxyError> {
        let generation = self.meshproxy.generation().await?;
        if !self.config_stale
            && let Some((_, pushed_generation)) = &self.pushed
            && *pushed_generation == generation
        {
            return Ok(());
        }
        let desired = {
            let state = self.state.lock().expect("state lock");
            router::desired_config(&self.manifests, &state)
        };
        self.config_stale = false;
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
