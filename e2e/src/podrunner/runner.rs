use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::RunnerConfig;
use super::ipam::Ipam;
use super::pod::{Ending, SERVICE_ACCOUNT_DIR, Shared, play_pod};

/// How long pods get to stop when the runner itself is told to stop (the rig going down).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

struct PodTask {
    updates: watch::Sender<Arc<Pod>>,
    ending: watch::Sender<Ending>,
    task: JoinHandle<()>,
}

/// Watches every pod and plays those bound to this runner's nodes, until SIGTERM or Ctrl-C.
pub async fn run(config: RunnerConfig, client: Client) -> anyhow::Result<()> {
    let ca_pem = std::fs::read_to_string(&config.ca_file)
        .map_err(|e| anyhow::anyhow!("reading the cluster CA {}: {e}", config.ca_file.display()))?;
    std::fs::create_dir_all(SERVICE_ACCOUNT_DIR)
        .map_err(|e| anyhow::anyhow!("creating the token mount point {SERVICE_ACCOUNT_DIR}: {e}"))?;
    let ipam = Ipam::new(&config.nodes).map_err(anyhow::Error::msg)?;
    let shared = Arc::new(Shared {
        client: client.clone(),
        images: config.image_programs(),
        config,
        ipam: Mutex::new(ipam),
        ca_pem,
    });

    let mut pods: HashMap<String, PodTask> = HashMap::new();
    let mut listed: HashSet<String> = HashSet::new();
    let mut events = watcher::watcher(Api::<Pod>::all(client), watcher::Config::default()).boxed();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tracing::info!(nodes = ?shared.config.nodes, images = ?shared.images, "pod runner started");

    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(event) = event else { break };
        match event {
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitApply(pod)) => {
                listed.insert(uid(&pod));
                apply(&shared, &mut pods, pod);
            }
            Ok(Event::InitDone) => {
                // Pods that vanished while the watch was down are gone.
                for (key, task) in &pods {
                    if !listed.contains(key) {
                        let _ = task.ending.send(Ending::Gone(Duration::ZERO));
                    }
                }
            }
            Ok(Event::Apply(pod)) => apply(&shared, &mut pods, pod),
            Ok(Event::Delete(pod)) => {
                if let Some(task) = pods.get(&uid(&pod)) {
                    let _ = task.ending.send(Ending::Gone(Duration::ZERO));
                }
            }
            Err(error) => {
                tracing::warn!(%error, "pod watch failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        pods.retain(|_, task| !task.task.is_finished());
    }

    tracing::info!(pods = pods.len(), "stopping every pod");
    for task in pods.values() {
        let _ = task.ending.send(Ending::Gone(SHUTDOWN_GRACE));
    }
    for (_, task) in pods.drain() {
        let _ = task.task.await;
    }
    Ok(())
}

fn apply(shared: &Arc<Shared>, pods: &mut HashMap<String, PodTask>, pod: Pod) {
    let key = uid(&pod);
    if let Some(task) = pods.get(&key) {
        task.updates.send_replace(Arc::new(pod));
        return;
    }
    let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or_default();
    let finished =
        pod.status.as_ref().and_then(|s| s.phase.as_deref()).is_some_and(|p| p == "Succeeded" || p == "Failed");
    if !shared.ipam.lock().expect("the IPAM lock is never poisoned").plays(node) || finished {
        return;
    }
    if pod.metadata.deletion_timestamp.is_some() {
        // Deleted before it ever ran here: nothing to stop, just let the deletion finish.
        let client = shared.client.clone();
        tokio::spawn(async move {
            let api = Api::<Pod>::namespaced(client, pod.metadata.namespace.as_deref().unwrap_or_default());
            let name = pod.metadata.name.clone().unwrap_or_default();
            let _ = api
                .delete(&name, &kube::api::DeleteParams { grace_period_seconds: Some(0), ..Default::default() })
                .await;
        });
        return;
    }
    let (updates, pod_rx) = watch::channel(Arc::new(pod));
    let (ending, ending_rx) = watch::channel(Ending::Running);
    let task = tokio::spawn(play_pod(shared.clone(), pod_rx, ending_rx));
    pods.insert(key, PodTask { updates, ending, task });
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}
