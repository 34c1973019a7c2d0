use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::select_all;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Container, Pod, ServiceAccount};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::watch;

use super::config::RunnerConfig;
use super::container::{Blocked, ContainerPlan, ContainerReport, Launch, RestartPolicy, RunState, run_container};
use super::dns::resolv_conf;
use super::env::{EnvContext, container_env, expand};
use super::image::ImageRef;
use super::ipam::Ipam;
use super::network::PodNetwork;
use super::status::{ConditionClock, PodView, pod_status};
use super::volume::{BindMount, PreparedVolume, prepare as prepare_volumes};

/// Where in-cluster clients look for their token, CA and namespace.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// What every pod's task shares.
pub struct Shared {
    pub client: Client,
    pub config: RunnerConfig,
    pub images: BTreeMap<String, PathBuf>,
    pub ipam: Mutex<Ipam>,
    pub ca_pem: String,
}

/// How a pod's task learns that it must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Running,
    /// The pod was removed from the API, or the runner is shutting down: stop with this grace.
    Gone(Duration),
}

/// Plays one pod from the moment it is scheduled here until it is deleted.
pub async fn play_pod(shared: Arc<Shared>, mut pod: watch::Receiver<Arc<Pod>>, mut ending: watch::Receiver<Ending>) {
    let first = pod.borrow().clone();
    let id = PodId::of(&first);
    let Some(ip) = shared.ipam.lock().expect("the IPAM lock is never poisoned").allocate(&id.node) else {
        tracing::error!(pod = %id, "no free pod IP on node {}", id.node);
        return;
    };

    let network = loop {
        let resolv_conf = resolv_conf(&first, &shared.config.cluster_dns());
        match PodNetwork::create(&shared.config.netns_prefix, ip, resolv_conf.as_deref()).await {
            Ok(network) => break network,
            Err(error) => {
                tracing::error!(pod = %id, %error, "cannot create the pod's network; retrying");
                if wait_or_end(&mut ending, Duration::from_secs(2)).await {
                    shared.ipam.lock().expect("the IPAM lock is never poisoned").release(ip);
                    return;
                }
            }
        }
    };
    tracing::info!(pod = %id, %ip, netns = %network.netns, "pod network ready");

    let pod_dir = shared.config.state_dir.join(format!("{}_{}_{}", id.namespace, id.name, id.uid));
    let token_dir = if wants_token(&first) {
        let dir = pod_dir.join("serviceaccount");
        loop {
            match write_token(&shared, &first, &dir).await {
                Ok(()) => break Some(dir),
                Err(error) => {
                    tracing::warn!(pod = %id, %error, "cannot issue the service-account token yet; retrying");
                    if wait_or_end(&mut ending, Duration::from_secs(1)).await {
                        break None;
                    }
                }
            }
        }
    } else {
        None
    };

    let volumes = prepare_volumes(&shared.client, &first, &pod_dir.join("volumes")).await;
    if let Err(error) = &volumes {
        tracing::warn!(pod = %id, %error, "cannot prepare the pod's volumes");
    }
    let (stop_tx, stop_rx) = watch::channel(None);
    let mut reports = Vec::new();
    let mut tasks = Vec::new();
    let containers = first.spec.as_ref().map(|s| s.containers.clone()).unwrap_or_default();
    for container in &containers {
        let mounts = Mounts { token_dir: token_dir.as_deref(), volumes: &volumes };
        let plan = plan_container(&shared, &first, container, ip, &network, &pod_dir, mounts).await;
        let (report_tx, report_rx) = watch::channel(initial_report(container));
        tasks.push(tokio::spawn(run_container(plan, report_tx, stop_rx.clone())));
        reports.push(report_rx);
    }

    let api = Api::<Pod>::namespaced(shared.client.clone(), &id.namespace);
    let started = jiff::Timestamp::now();
    let mut clock = ConditionClock::default();
    let mut last_sent = None;
    let grace = loop {
        let snapshot: Vec<ContainerReport> = reports.iter().map(|r| r.borrow().clone()).collect();
        let status = pod_status(
            &PodView { uid: &id.uid, pod_ip: ip, host_ip: shared.config.host_ip, started, containers: &snapshot },
            &mut clock,
        );
        let patch = json!({ "status": status });
        if last_sent.as_ref() != Some(&patch) {
            match api.patch_status(&id.name, &PatchParams::default(), &Patch::Strategic(&patch)).await {
                Ok(_) => last_sent = Some(patch),
                Err(error) => tracing::warn!(pod = %id, %error, "cannot write pod status; will retry"),
            }
        }

        let changed = async {
            // A report channel only closes if its container task died; don't spin on it.
            if reports.is_empty() || select_all(reports.iter_mut().map(|r| Box::pin(r.changed()))).await.0.is_err() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        };
        tokio::select! {
            _ = changed => {}
            update = pod.changed() => {
                if update.is_err() { break grace_of(&pod.borrow()) }
                if pod.borrow().metadata.deletion_timestamp.is_some() { break grace_of(&pod.borrow()) }
            }
            _ = ending.changed() => {
                if let Ending::Gone(grace) = *ending.borrow() { break grace }
            }
            // Resync now and then, in case a status write was lost.
            _ = tokio::time::sleep(Duration::from_secs(10)) => { last_sent = None }
        }
    };

    tracing::info!(pod = %id, grace_seconds = grace.as_secs(), "stopping pod");
    let _ = stop_tx.send(Some(grace));
    for task in tasks {
        let _ = task.await;
    }
    network.destroy().await;
    shared.ipam.lock().expect("the IPAM lock is never poisoned").release(ip);
    if let Some(dir) = &token_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = std::fs::remove_dir_all(pod_dir.join("volumes"));
    // As a kubelet does once the containers are gone: finish the graceful deletion.
    if *ending.borrow() == Ending::Running {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: Some(id.uid.clone()), resource_version: None }),
            ..DeleteParams::default()
        };
        match api.delete(&id.name, &params).await {
            Ok(_) => tracing::info!(pod = %id, "pod stopped and deleted"),
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(error) => tracing::warn!(pod = %id, %error, "cannot finish deleting the pod"),
        }
    }
}

/// Sleeps for `wait`; true if the pod ended meanwhile.
async fn wait_or_end(ending: &mut watch::Receiver<Ending>, wait: Duration) -> bool {
    let _ = tokio::time::timeout(wait, ending.wait_for(|e| *e != Ending::Running)).await;
    *ending.borrow() != Ending::Running
}

fn grace_of(pod: &Pod) -> Duration {
    let seconds = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30);
    Duration::from_secs(seconds.max(0) as u64)
}

fn initial_report(container: &Container) -> ContainerReport {
    ContainerReport {
        name: container.name.clone(),
        image: container.image.clone().unwrap_or_default(),
        ready: false,
        started: false,
        restart_count: 0,
        state: RunState::Waiting { reason: "ContainerCreating".into(), message: String::new() },
        last_terminated: None,
    }
}

/// The pod's identity, for logs and API calls.
struct PodId {
    namespace: String,
    name: String,
    uid: String,
    node: String,
}

impl PodId {
    fn of(pod: &Pod) -> PodId {
        PodId {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for PodId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Whether any container mounts the service-account token, which the apiserver's admission adds
/// to every pod unless `automountServiceAccountToken: false`.
fn wants_token(pod: &Pod) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .any(|m| m.mount_path == SERVICE_ACCOUNT_DIR && is_token_volume(pod, &m.name))
}

fn is_token_volume(pod: &Pod, volume: &str) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter(|v| v.name == volume)
        .filter_map(|v| v.projected.as_ref())
        .any(|p| p.sources.iter().flatten().any(|s| s.service_account_token.is_some()))
}

/// Asks the apiserver for a token bound to this pod, as a kubelet does, and writes it with the
/// cluster CA and the namespace.
async fn write_token(shared: &Shared, pod: &Pod, dir: &Path) -> Result<(), String> {
    let id = PodId::of(pod);
    let account = pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_else(|| "default".into());
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: None,
            expiration_seconds: Some(24 * 3600),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(id.name.clone()),
                uid: Some(id.uid.clone()),
            }),
        }),
        ..TokenRequest::default()
    };
    let issued = Api::<ServiceAccount>::namespaced(shared.client.clone(), &id.namespace)
        .create_token_request(&account, &PostParams::default(), &request)
        .await
        .map_err(|e| format!("TokenRequest for ServiceAccount {}/{account}: {e}", id.namespace))?;
    let token = issued.status.and_then(|s| s.token).ok_or("TokenRequest answered without a token")?;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    for (file, content) in [("token", token.as_str()), ("ca.crt", shared.ca_pem.as_str()), ("namespace", &id.namespace)]
    {
        std::fs::write(dir.join(file), content).map_err(|e| format!("writing {}: {e}", dir.join(file).display()))?;
    }
    Ok(())
}

async fn plan_container(
    shared: &Shared,
    pod: &Pod,
    container: &Container,
    pod_ip: std::net::Ipv4Addr,
    network: &PodNetwork,
    pod_dir: &Path,
    mounts: Mounts<'_>,
) -> ContainerPlan {
    let image = container.image.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    ContainerPlan {
        name: container.name.clone(),
        image: image.clone(),
        launch: launch_for(shared, pod, container, pod_ip, mounts).await,
        ports: container.ports.clone().unwrap_or_default(),
        readiness: container.readiness_probe.clone(),
        liveness: container.liveness_probe.clone(),
        restart: RestartPolicy::parse(spec.and_then(|s| s.restart_policy.as_deref())),
        netns: network.netns.clone(),
        pod_ip,
        work_dir: pod_dir.to_path_buf(),
        log_file: pod_dir.join(format!("{}.log", container.name)),
    }
}

/// Which program plays the container, with what arguments and environment; or why none can.
async fn launch_for(
    shared: &Shared,
    pod: &Pod,
    container: &Container,
    pod_ip: std::net::Ipv4Addr,
    mounts: Mounts<'_>,
) -> Result<Launch, Blocked> {
    let image_name = container.image.clone().unwrap_or_default();
    let image = ImageRef::parse(&image_name);
    let Some(program) = shared.images.get(&image.repository) else {
        let known: Vec<&str> = shared.images.keys().map(String::as_str).collect();
        return Err(Blocked {
            reason: "ErrImagePull",
            message: format!("image {image_name:?} is not one the rig can play (it plays {})", known.join(", ")),
        });
    };
    if !program.is_file() {
        return Err(Blocked {
            reason: "ErrImagePull",
            message: format!("image {image_name:?} is played by {}, which is not built", program.display()),
        });
    }
    if spec_has_init_containers(pod) {
        return Err(Blocked {
            reason: "CreateContainerConfigError",
            message: "init containers are not played by the rig".into(),
        });
    }
    let binds =
        mounts.binds(pod, container).map_err(|message| Blocked { reason: "CreateContainerConfigError", message })?;

    let context = EnvContext {
        client: &shared.client,
        pod,
        pod_ip,
        host_ip: shared.config.host_ip,
        api_host: shared.config.api_host,
        api_port: shared.config.api_port,
        image: &image,
    };
    let env = container_env(&context, container)
        .await
        .map_err(|message| Blocked { reason: "CreateContainerConfigError", message })?;

    // The image's entrypoint is its program; a `command` may only name that program again.
    let mut args = Vec::new();
    if let Some(command) = container.command.as_ref().filter(|c| !c.is_empty()) {
        let named = Path::new(&command[0]).file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let program_name = program.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if named != image.repository && named != program_name {
            return Err(Blocked {
                reason: "CreateContainerError",
                message: format!("command {:?}: image {image_name:?} has only its own program", command[0]),
            });
        }
        args.extend(command[1..].iter().map(|a| expand(a, &env)));
    }
    args.extend(container.args.iter().flatten().map(|a| expand(a, &env)));
    Ok(Launch { program: program.clone(), args, env, mounts: binds })
}

/// What a pod can mount: its service-account token and its prepared volumes.
#[derive(Clone, Copy)]
struct Mounts<'a> {
    token_dir: Option<&'a Path>,
    volumes: &'a Result<BTreeMap<String, PreparedVolume>, String>,
}

impl Mounts<'_> {
    /// The bind mounts `container` asks for; an error names the mount the rig cannot give.
    fn binds(&self, pod: &Pod, container: &Container) -> Result<Vec<BindMount>, String> {
        let mut binds = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let target = mount.mount_path.clone();
            if target == SERVICE_ACCOUNT_DIR && is_token_volume(pod, &mount.name) {
                let source = self.token_dir.ok_or("the service-account token could not be issued")?;
                binds.push(BindMount { source: source.to_path_buf(), target, read_only: true });
                continue;
            }
            if mount.sub_path.as_deref().is_some_and(|p| !p.is_empty()) || mount.sub_path_expr.is_some() {
                return Err(format!("volume {:?} at {target}: subPath is not played by the rig", mount.name));
            }
            let volumes = self.volumes.as_ref().map_err(Clone::clone)?;
            let Some(volume) = volumes.get(&mount.name) else {
                return Err(format!(
                    "volume {:?} at {target}: the rig plays configMap, secret, emptyDir and the service-account token volumes",
                    mount.name
                ));
            };
            let read_only = volume.read_only || mount.read_only == Some(true);
            binds.push(BindMount { source: volume.dir.clone(), target, read_only });
        }
        Ok(binds)
    }
}

fn spec_has_init_containers(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.init_containers.as_ref()).is_some_and(|c| !c.is_empty())
}
