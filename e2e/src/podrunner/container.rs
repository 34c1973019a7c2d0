use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerPort, Probe};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::sleep_until;

use super::probe::{ProbeState, ProbeTarget, ProbeTiming, probe_once};
use super::volume::BindMount;

/// How a container's program is started.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Volumes (the service-account token among them) bound into the container's mount namespace.
    pub mounts: Vec<BindMount>,
}

/// Why a container cannot start, in a kubelet's words (`ErrImagePull`, `CreateContainerConfigError`).
#[derive(Debug, Clone)]
pub struct Blocked {
    pub reason: &'static str,
    pub message: String,
}

/// Everything one container needs to run.
pub struct ContainerPlan {
    pub name: String,
    pub image: String,
    pub launch: Result<Launch, Blocked>,
    pub ports: Vec<ContainerPort>,
    pub readiness: Option<Probe>,
    pub liveness: Option<Probe>,
    pub restart: RestartPolicy,
    pub netns: String,
    pub pod_ip: std::net::Ipv4Addr,
    pub work_dir: PathBuf,
    pub log_file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn parse(policy: Option<&str>) -> Self {
        match policy {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        }
    }

    fn restarts_after(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

/// What the runner reports about a container; `status.rs` turns it into a `ContainerStatus`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerReport {
    pub name: String,
    pub image: String,
    pub ready: bool,
    pub started: bool,
    pub restart_count: i32,
    pub state: RunState,
    pub last_terminated: Option<Terminated>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    Waiting { reason: String, message: String },
    Running { started_at: Timestamp },
    Terminated(Terminated),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Terminated {
    pub exit_code: i32,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
}

/// Back-off between restarts: doubles from 1 s to 30 s, and starts over after a container has run
/// for a minute. (A kubelet uses 10 s to 5 min; tests cannot wait that long.)
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const RUN_THAT_RESETS_BACKOFF: Duration = Duration::from_secs(60);

/// Binds each volume (arguments in threes: source, target, `ro` or `rw`) where the container
/// wants it, then becomes the program. `ip netns exec` has already given the process its own
/// mount namespace, so the mounts are private; a missing mount point is made, empty.
const MOUNT_VOLUMES_AND_EXEC: &str = r#"while [ "$1" != -- ]; do
  mkdir -p "$2" && mount --bind "$1" "$2" || exit 1
  if [ "$3" = ro ]; then mount -o remount,bind,ro "$2" || exit 1; fi
  shift 3
done
shift
exec "$@""#;

/// Runs a container until `stop` carries a grace period, restarting it by its policy, and
/// publishes every change of its state on `report`.
pub async fn run_container(
    plan: ContainerPlan,
    report: watch::Sender<ContainerReport>,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let mut current = ContainerReport {
        name: plan.name.clone(),
        image: plan.image.clone(),
        ready: false,
        started: false,
        restart_count: 0,
        state: RunState::Waiting { reason: "ContainerCreating".into(), message: String::new() },
        last_terminated: None,
    };
    let launch = match &plan.launch {
        Ok(launch) => launch.clone(),
        Err(blocked) => {
            current.state = RunState::Waiting { reason: blocked.reason.into(), message: blocked.message.clone() };
            report.send_replace(current);
            let _ = stop.wait_for(Option::is_some).await;
            return;
        }
    };

    let mut backoff = FIRST_BACKOFF;
    loop {
        let started_at = Timestamp::now();
        let began = Instant::now();
        let exit = match spawn(&plan, &launch) {
            Err(message) => {
                current.state = RunState::Waiting { reason: "RunContainerError".into(), message };
                report.send_replace(current.clone());
                None
            }
            Ok(child) => {
                current.state = RunState::Running { started_at };
                current.started = true;
                current.ready = plan.readiness.is_none();
                report.send_replace(current.clone());
                match supervise(&plan, &launch, child, &report, &mut current, &mut stop).await {
                    Ended::Stopped(terminated) => {
                        current.ready = false;
                        current.state = RunState::Terminated(terminated);
                        report.send_replace(current);
                        return;
                    }
                    Ended::Exited(terminated) => Some(terminated),
                }
            }
        };

        current.ready = false;
        if let Some(terminated) = &exit {
            if !plan.restart.restarts_after(terminated.exit_code) {
                current.state = RunState::Terminated(terminated.clone());
                report.send_replace(current);
                let _ = stop.wait_for(Option::is_some).await;
                return;
            }
            current.last_terminated = Some(terminated.clone());
            current.restart_count += 1;
        }
        if began.elapsed() >= RUN_THAT_RESETS_BACKOFF {
            backoff = FIRST_BACKOFF;
        }
        if exit.is_some() {
            current.state = RunState::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: format!("back-off {}s restarting failed container={}", backoff.as_secs(), plan.name),
            };
        }
        current.started = false;
        report.send_replace(current.clone());
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(Option::is_some) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

enum Ended {
    /// The runner stopped it (pod deleted).
    Stopped(Terminated),
    /// It exited, or its liveness probe failed and it was killed.
    Exited(Terminated),
}

fn spawn(plan: &ContainerPlan, launch: &Launch) -> Result<Child, String> {
    if let Some(parent) = plan.log_file.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&plan.log_file)
        .map_err(|e| format!("opening {}: {e}", plan.log_file.display()))?;
    let log_err = log.try_clone().map_err(|e| format!("opening {}: {e}", plan.log_file.display()))?;
    let mut command = Command::new("ip");
    command.args(["netns", "exec", &plan.netns]);
    if !launch.mounts.is_empty() {
        command.args(["sh", "-c", MOUNT_VOLUMES_AND_EXEC, "sh"]);
        for mount in &launch.mounts {
            command.arg(&mount.source).arg(&mount.target).arg(if mount.read_only { "ro" } else { "rw" });
        }
        command.arg("--");
    }
    command
        .arg(&launch.program)
        .args(&launch.args)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(&plan.work_dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        // Its own process group, so a stop reaches anything it started too.
        .process_group(0)
        .kill_on_drop(true);
    command.spawn().map_err(|e| format!("starting {}: {e}", launch.program.display()))
}

async fn supervise(
    plan: &ContainerPlan,
    launch: &Launch,
    mut child: Child,
    report: &watch::Sender<ContainerReport>,
    current: &mut ContainerReport,
    stop: &mut watch::Receiver<Option<Duration>>,
) -> Ended {
    let started_at = match current.state {
        RunState::Running { started_at } => started_at,
        _ => Timestamp::now(),
    };
    let pid = child.id();
    let readiness = plan.readiness.as_ref().map(|p| (p, ProbeTiming::of(p)));
    let liveness = plan.liveness.as_ref().map(|p| (p, ProbeTiming::of(p)));
    let mut ready_state = ProbeState::new(false);
    let mut live_state = ProbeState::new(true);
    let now = tokio::time::Instant::now();
    let far = now + Duration::from_secs(365 * 24 * 3600);
    let mut next_ready = readiness.map_or(far, |(_, t)| now + t.initial_delay);
    let mut next_live = liveness.map_or(far, |(_, t)| now + t.initial_delay);
    let target = ProbeTarget { pod_ip: plan.pod_ip, ports: &plan.ports, pid, env: &launch.env };

    loop {
        tokio::select! {
            status = child.wait() => {
                let exit_code = match status {
                    Ok(status) => exit_code(status),
                    Err(_) => -1,
                };
                return Ended::Exited(terminated(exit_code, started_at, None));
            }
            grace = stop_grace(stop) => {
                let exit_code = terminate(&mut child, grace).await;
                return Ended::Stopped(terminated(exit_code, started_at, None));
            }
            _ = sleep_until(next_ready), if readiness.is_some() => {
                let (probe, timing) = readiness.expect("guarded by the branch condition");
                ready_state.record(&timing, probe_once(probe, &timing, &target).await);
                next_ready = tokio::time::Instant::now() + timing.period;
                if current.ready != ready_state.passing {
                    current.ready = ready_state.passing;
                    report.send_replace(current.clone());
                }
            }
            _ = sleep_until(next_live), if liveness.is_some() => {
                let (probe, timing) = liveness.expect("guarded by the branch condition");
                live_state.record(&timing, probe_once(probe, &timing, &target).await);
                next_live = tokio::time::Instant::now() + timing.period;
                if !live_state.passing {
                    let why = live_state.last_failure.clone().unwrap_or_default();
                    tracing::info!(container = %plan.name, %why, "liveness probe failed; restarting");
                    let exit_code = terminate(&mut child, Duration::from_secs(5)).await;
                    return Ended::Exited(terminated(exit_code, started_at, Some(format!("liveness probe failed: {why}"))));
                }
            }
        }
    }
}

/// Waits until the runner asks this container to stop, and returns the grace period it gives.
async fn stop_grace(stop: &mut watch::Receiver<Option<Duration>>) -> Duration {
    match stop.wait_for(Option::is_some).await {
        Ok(grace) => grace.unwrap_or_default(),
        Err(_) => Duration::ZERO,
    }
}

fn terminated(exit_code: i32, started_at: Timestamp, message: Option<String>) -> Terminated {
    Terminated {
        exit_code,
        reason: if exit_code == 0 { "Completed".into() } else { "Error".into() },
        message,
        started_at,
        finished_at: Timestamp::now(),
    }
}

/// SIGTERM to the process group, SIGKILL after `grace`; returns the exit code.
async fn terminate(child: &mut Child, grace: Duration) -> i32 {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
        if let Ok(Ok(status)) = tokio::time::timeout(grace, child.wait()).await {
            return exit_code(status);
        }
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.start_kill();
    child.wait().await.map(exit_code).unwrap_or(-1)
}

/// A kubelet reports death by signal N as exit code 128 + N.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(-1)
}
