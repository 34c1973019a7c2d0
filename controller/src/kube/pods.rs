//! Why a workload's pods are not ready, in the kubelet's words, so that a progress deadline names
//! the cause and the pods (a crash loop, an image that cannot be pulled), not only the counts.

use std::collections::BTreeMap;

use ::kube::Client;
use ::kube::api::{Api, ListParams};
use k8s_openapi::api::core::v1::Pod;

/// How many troubled pods a reason names; the rest are counted.
const NAMED: usize = 2;

/// What keeps the pods selected by `selector` from running, if their containers say; `None` when
/// nothing does (or the pods cannot be listed: this only explains, it never decides).
pub async fn trouble(client: &Client, namespace: &str, selector: &BTreeMap<String, String>) -> Option<String> {
    if selector.is_empty() {
        return None;
    }
    let labels = selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    let pods = Api::<Pod>::namespaced(client.clone(), namespace).list(&ListParams::default().labels(&labels)).await;
    describe(&pods.ok()?.items)
}

/// One line naming each troubled pod (up to [`NAMED`]) and its first troubled container.
pub fn describe(pods: &[Pod]) -> Option<String> {
    let troubled: Vec<String> =
        pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).filter_map(pod_trouble).collect();
    let (named, more) = troubled.split_at(troubled.len().min(NAMED));
    if named.is_empty() {
        return None;
    }
    let mut line = named.join("; ");
    if !more.is_empty() {
        line.push_str(&format!("; and {} more pods", more.len()));
    }
    Some(line)
}

fn pod_trouble(pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let status = pod.status.as_ref()?;
    let containers = status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
    containers.filter(|c| !c.ready).find_map(|container| {
        let waiting = container.state.as_ref()?.waiting.as_ref()?;
        let reason = waiting.reason.as_deref().filter(|r| *r != "ContainerCreating" && *r != "PodInitializing")?;
        let restarts = match container.restart_count {
            0 => String::new(),
            1 => " after 1 restart".into(),
            n => format!(" after {n} restarts"),
        };
        let message =
            waiting.message.as_deref().filter(|m| !m.is_empty()).map(|m| format!(": {m}")).unwrap_or_default();
        Some(format!("pod {name} container {}: {reason}{restarts}{message}", container.name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, reason: &str, restarts: i32) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {"containerStatuses": [
                {"name": "sidecar", "image": "s", "imageID": "", "ready": true, "restartCount": 0,
                 "state": {"running": {}}},
                {"name": "app", "image": "a", "imageID": "", "ready": false, "restartCount": restarts,
                 "state": {"waiting": {"reason": reason, "message": "back-off 40s restarting failed container"}}},
            ]},
        }))
        .unwrap()
    }

    #[test]
    fn names_the_troubled_pods_their_container_and_the_kubelets_reason() {
        let pods =
            [pod("web-1", "CrashLoopBackOff", 4), pod("web-2", "CrashLoopBackOff", 1), pod("web-3", "ErrImagePull", 0)];
        assert_eq!(
            describe(&pods).unwrap(),
            "pod web-1 container app: CrashLoopBackOff after 4 restarts: back-off 40s restarting failed container; \
             pod web-2 container app: CrashLoopBackOff after 1 restart: back-off 40s restarting failed container; \
             and 1 more pods"
        );
    }

    #[test]
    fn a_pod_still_being_created_is_no_trouble() {
        assert_eq!(describe(&[pod("web-1", "ContainerCreating", 0)]), None);
        assert_eq!(describe(&[]), None);
    }
}
