//! Operator requests (`promote`, `abort`, `pause`, `resume`, `retry`, `gate open|close`): in a
//! cluster written into the Canary's `serin.dev/request` annotation with a fresh id, as `kubectl
//! annotate` would; to a standalone controller posted to its API with that id. Then followed until
//! the controller has acted on the id, to say what it answered.

use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serin_crds::canary::Canary;
use serin_crds::operator_request::{ANNOTATION, OperatorRequest, RequestAction, pending};

use crate::source::Source;

/// How long to wait for the controller to act on the request.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// Sends the request; returns the line to print once the controller acted on it, or an error
/// saying why it was not taken or not answered.
pub async fn send(
    source: &Source,
    namespace: &str,
    name: &str,
    action: RequestAction,
    gate: Option<&str>,
) -> anyhow::Result<String> {
    let id = format!("kubectl-{}-{}", jiff::Timestamp::now().as_millisecond(), std::process::id());
    let request = OperatorRequest::new(&id, action, gate)?;
    let what = match gate {
        Some(gate) => format!("{action} {gate}"),
        None => action.to_string(),
    };
    match source {
        Source::Cluster(client) => annotate(client, namespace, name, &request).await?,
        Source::Standalone(api) => {
            let answer = api.request(namespace, name, action.as_str(), gate, &id).await?;
            // A standalone gate changes at once, in the gate store: the answer is its new state.
            if action.is_gate() {
                let state = answer.get("state").and_then(|s| s.as_str()).unwrap_or("changed");
                return Ok(format!(
                    "the controller acted on it: gate {} of Canary {namespace}/{name} is {state}",
                    gate.unwrap_or_default()
                ));
            }
        }
    }
    println!("{what} requested for Canary {namespace}/{name} (id {id})");
    let started = Instant::now();
    while started.elapsed() < ANSWER_WITHIN {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let canary = source
            .canary(namespace, name)
            .await?
            .ok_or_else(|| anyhow::anyhow!("Canary {namespace}/{name} is gone"))?;
        let Some(status) = canary.status.filter(|s| s.last_handled_request.as_deref() == Some(id.as_str())) else {
            continue;
        };
        let gates = status.open_gates.iter().cloned().collect::<Vec<_>>().join(", ");
        let gates = if gates.is_empty() { "none".to_string() } else { gates };
        return Ok(format!(
            "the controller acted on it: {}, canary weight {}%{}; open gates: {gates}; {}",
            status.phase,
            status.canary_weight,
            if status.paused { ", paused" } else { "" },
            status.message
        ));
    }
    anyhow::bail!(
        "the request is taken, but the controller has not acted on it within {}s; is it running and does it handle this Canary?",
        ANSWER_WITHIN.as_secs()
    )
}

/// Writes the request into the Canary's annotation, unless one written earlier is not acted on.
async fn annotate(client: &Client, namespace: &str, name: &str, request: &OperatorRequest) -> anyhow::Result<()> {
    let canaries = Api::<Canary>::namespaced(client.clone(), namespace);
    let canary = canaries.get_opt(name).await?.ok_or_else(|| anyhow::anyhow!("no Canary {namespace}/{name}"))?;
    let handled = canary.status.as_ref().and_then(|s| s.last_handled_request.clone());
    let held = canary.metadata.annotations.as_ref().and_then(|a| a.get(ANNOTATION));
    if let Some(waiting) = pending(held.map(String::as_str), handled.as_deref()) {
        anyhow::bail!(
            "Canary {namespace}/{name}: request {:?} ({}) is not acted on yet; try again once it is (is the controller running?)",
            waiting.id,
            waiting.action
        );
    }
    let patch = request.annotation_patch(canary.metadata.resource_version.as_deref());
    canaries.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(|e| match e {
        kube::Error::Api(status) if status.code == 409 => {
            anyhow::anyhow!("Canary {namespace}/{name} changed while the request was written; run the command again")
        }
        other => other.into(),
    })?;
    Ok(())
}
