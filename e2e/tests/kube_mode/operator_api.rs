//! Operator requests through the controller's HTTP API in a cluster: only a bearer token whose
//! owner may patch the Canary changes a rollout; gate checks stay open.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::PostParams;
use serde_json::json;
use serin_crds::CanaryPhase;
use serin_crds::canary::Canary;

use super::super::support::{TestNamespace, apply, eventually};
use super::{
    canary, image_of, namespace_with_target, serve_api, set_image, start_controller_with_context, wait_for_phase,
};

#[tokio::test]
async fn gates_and_requests_on_the_api_need_a_token_allowed_to_patch_the_canary() {
    let ns = namespace_with_target("kube-api-auth").await;
    let (controller, context) = start_controller_with_context(&ns);
    let port = serve_api(&context, true).await.port();
    let gate_url = |gate: &str| format!("http://127.0.0.1:{port}/gates/{}/podinfo/{gate}", ns.name);
    let analysis = json!({"interval": "1s", "stepWeight": 50, "maxWeight": 50, "webhooks": [
        {"type": "confirm-rollout", "name": "start", "url": gate_url("rollout")},
        {"type": "confirm-promotion", "name": "approval", "url": gate_url("promotion")},
    ]});
    apply(&ns.api::<Canary>(), &canary(&ns, analysis)).await;
    wait_for_phase(&ns, CanaryPhase::Initialized, Duration::from_secs(120)).await;
    let operator = token_for(&ns, "operator", true).await;
    let viewer = token_for(&ns, "viewer", false).await;

    set_image(&ns, "serin-testapp:v2").await;
    wait_for_phase(&ns, CanaryPhase::Waiting, Duration::from_secs(120)).await;
    let open_rollout = format!("/gates/{}/podinfo/rollout/open", ns.name);
    let (code, body) = post(port, &open_rollout, None).await;
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("no bearer token"), "{body}");
    let (code, body) = post(port, &open_rollout, Some("not-a-token")).await;
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("did not accept the token"), "{body}");
    let (code, body) = post(port, &open_rollout, Some(&viewer)).await;
    assert_eq!(code, 403, "{body}");
    let viewer_name = format!("system:serviceaccount:{}:viewer", ns.name);
    assert!(body.contains(&viewer_name) && body.contains("may not patch canaries.serin.dev"), "{body}");
    let (code, body) = post(port, &format!("/canaries/{}/podinfo/promote", ns.name), Some(&viewer)).await;
    assert_eq!(code, 403, "{body}");
    // The gate check stays open to the cluster, and nothing above changed the run.
    assert_eq!(post(port, &format!("/gates/{}/podinfo/rollout", ns.name), None).await.0, 403, "the gate is closed");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = ns.api::<Canary>().get("podinfo").await.unwrap().status.unwrap();
    assert_eq!((held.phase, held.canary_weight), (CanaryPhase::Waiting, 0), "{held:?}");
    assert!(held.open_gates.is_empty(), "{:?}", held.open_gates);

    // Allowed to patch the Canary: the gate opens, the run goes on to the promotion gate.
    let (code, body) = post(port, &open_rollout, Some(&operator)).await;
    assert_eq!(code, 202, "{body}");
    assert!(body.contains(&format!("system:serviceaccount:{}:operator", ns.name)), "{body}");
    wait_for_phase(&ns, CanaryPhase::WaitingPromotion, Duration::from_secs(120)).await;
    let (code, body) =
        post(port, &format!("/canaries/{}/podinfo/open-gate/promotion?id=ship-v2", ns.name), Some(&operator)).await;
    assert_eq!(code, 202, "{body}");
    let done = wait_for_phase(&ns, CanaryPhase::Succeeded, Duration::from_secs(120)).await.status.unwrap();
    assert_eq!(done.last_handled_request.as_deref(), Some("ship-v2"));
    assert!(done.open_gates.contains("rollout") && done.open_gates.contains("promotion"), "{:?}", done.open_gates);
    let (code, body) = post(port, &format!("/canaries/{}/podinfo/pause?id=ship-v2", ns.name), Some(&operator)).await;
    assert_eq!(code, 409, "an id is acted on once: {body}");

    // The gates stay open, so the next revision runs at once, and an abort mid-run rolls it back.
    set_image(&ns, "serin-testapp:v3").await;
    eventually("v3 taking traffic", Duration::from_secs(120), || async {
        let status = ns.api::<Canary>().get("podinfo").await.map_err(|e| e.to_string())?.status.unwrap_or_default();
        if status.canary_weight > 0 { Ok(()) } else { Err(format!("{status:?}")) }
    })
    .await;
    let (code, body) = post(port, &format!("/canaries/{}/podinfo/abort?id=stop-v3", ns.name), Some(&operator)).await;
    assert_eq!(code, 202, "{body}");
    let failed = wait_for_phase(&ns, CanaryPhase::Failed, Duration::from_secs(120)).await.status.unwrap();
    assert_eq!(failed.last_handled_request.as_deref(), Some("stop-v3"));
    let primary = ns.api::<Deployment>().get("podinfo-primary").await.unwrap();
    assert_eq!(image_of(&primary), "serin-testapp:v2", "the abort left the promoted version serving");
    controller.abort();
    ns.delete().await;
}

/// A service account's token, from the TokenRequest API as `kubectl create token` gets it; with
/// `may_patch`, the account may patch Canaries in the namespace (and nothing else).
pub(super) async fn token_for(ns: &TestNamespace, account: &str, may_patch: bool) -> String {
    let accounts = ns.api::<ServiceAccount>();
    apply(&accounts, &serde_json::from_value(json!({"metadata": {"name": account, "namespace": ns.name}})).unwrap())
        .await;
    if may_patch {
        let role = json!({"metadata": {"name": account, "namespace": ns.name},
            "rules": [{"apiGroups": ["serin.dev"], "resources": ["canaries"], "verbs": ["get", "patch"]}]});
        apply(&ns.api::<Role>(), &serde_json::from_value(role).unwrap()).await;
        let binding = json!({"metadata": {"name": account, "namespace": ns.name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns.name}]});
        apply(&ns.api::<RoleBinding>(), &serde_json::from_value(binding).unwrap()).await;
    }
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 600}})).unwrap();
    let issued = accounts.create_token_request(account, &PostParams::default(), &request).await.unwrap();
    issued.status.unwrap().token.unwrap()
}

/// A POST with no body and, if given, `Authorization: Bearer TOKEN`; the status code and body.
async fn post(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    post_to(std::net::Ipv4Addr::LOCALHOST, port, path, token).await
}

pub(super) async fn post_to(ip: std::net::Ipv4Addr, port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect((ip, port)).await.unwrap();
    let authorization = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{authorization}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}
