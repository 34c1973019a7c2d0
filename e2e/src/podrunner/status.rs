use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, HostIP,
    PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::container::{ContainerReport, RunState, Terminated};

/// The pod as the runner sees it, ready to be turned into a `PodStatus`.
pub struct PodView<'a> {
    pub uid: &'a str,
    pub pod_ip: Ipv4Addr,
    pub host_ip: Ipv4Addr,
    pub started: Timestamp,
    pub containers: &'a [ContainerReport],
}

/// Remembers when each condition last changed, so lastTransitionTime moves only on a change.
#[derive(Debug, Default)]
pub struct ConditionClock {
    since: BTreeMap<&'static str, (bool, Timestamp)>,
}

impl ConditionClock {
    fn condition(
        &mut self,
        kind: &'static str,
        status: bool,
        reason: Option<String>,
        message: Option<String>,
    ) -> PodCondition {
        let entry = self.since.entry(kind).or_insert((status, Timestamp::now()));
        if entry.0 != status {
            *entry = (status, Timestamp::now());
        }
        PodCondition {
            type_: kind.to_string(),
            status: if status { "True" } else { "False" }.to_string(),
            last_transition_time: Some(Time(entry.1)),
            reason,
            message,
            ..PodCondition::default()
        }
    }
}

/// The status a kubelet would write for this pod.
pub fn pod_status(view: &PodView<'_>, clock: &mut ConditionClock) -> PodStatus {
    let unready: Vec<&str> = view.containers.iter().filter(|c| !c.ready).map(|c| c.name.as_str()).collect();
    let all_ready = unready.is_empty() && !view.containers.is_empty();
    let (reason, message) = if all_ready {
        (None, None)
    } else {
        (
            Some("ContainersNotReady".to_string()),
            Some(format!("containers with unready status: [{}]", unready.join(" "))),
        )
    };
    let conditions = vec![
        clock.condition("PodReadyToStartContainers", true, None, None),
        clock.condition("Initialized", true, None, None),
        clock.condition("ContainersReady", all_ready, reason.clone(), message.clone()),
        clock.condition("Ready", all_ready, reason, message),
    ];
    PodStatus {
        phase: Some(phase(view.containers).to_string()),
        conditions: Some(conditions),
        container_statuses: Some(view.containers.iter().map(|c| container_status(view.uid, c)).collect()),
        pod_ip: Some(view.pod_ip.to_string()),
        pod_ips: Some(vec![PodIP { ip: view.pod_ip.to_string() }]),
        host_ip: Some(view.host_ip.to_string()),
        host_ips: Some(vec![HostIP { ip: view.host_ip.to_string() }]),
        start_time: Some(Time(view.started)),
        ..PodStatus::default()
    }
}

/// Pending until a container has started; Succeeded or Failed once all have ended for good.
fn phase(containers: &[ContainerReport]) -> &'static str {
    let ended: Vec<&Terminated> = containers
        .iter()
        .filter_map(|c| match &c.state {
            RunState::Terminated(t) => Some(t),
            _ => None,
        })
        .collect();
    if !containers.is_empty() && ended.len() == containers.len() {
        return if ended.iter().all(|t| t.exit_code == 0) { "Succeeded" } else { "Failed" };
    }
    let ever_started = containers
        .iter()
        .any(|c| matches!(c.state, RunState::Running { .. }) || c.last_terminated.is_some() || !ended.is_empty());
    if ever_started { "Running" } else { "Pending" }
}

fn container_status(uid: &str, report: &ContainerReport) -> ContainerStatus {
    let repository = super::image::ImageRef::parse(&report.image).repository;
    ContainerStatus {
        name: report.name.clone(),
        image: report.image.clone(),
        image_id: format!("serin-rig://{repository}"),
        container_id: report.started.then(|| format!("serin-rig://{uid}/{}/{}", report.name, report.restart_count)),
        ready: report.ready,
        started: Some(report.started),
        restart_count: report.restart_count,
        state: Some(state(&report.state)),
        last_state: Some(report.last_terminated.as_ref().map_or_else(ContainerState::default, |t| ContainerState {
            terminated: Some(terminated(t)),
            ..ContainerState::default()
        })),
        ..ContainerStatus::default()
    }
}

fn state(state: &RunState) -> ContainerState {
    match state {
        RunState::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: (!message.is_empty()).then(|| message.clone()),
            }),
            ..ContainerState::default()
        },
        RunState::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning { started_at: Some(Time(*started_at)) }),
            ..ContainerState::default()
        },
        RunState::Terminated(t) => ContainerState { terminated: Some(terminated(t)), ..ContainerState::default() },
    }
}

fn terminated(t: &Terminated) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        reason: Some(t.reason.clone()),
        message: t.message.clone(),
        started_at: Some(Time(t.started_at)),
        finished_at: Some(Time(t.finished_at)),
        ..ContainerStateTerminated::default()
    }
}
