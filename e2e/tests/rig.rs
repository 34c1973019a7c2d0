//! The e2e rig, proven through kube-rs: Serin's CRDs and examples against a real apiserver, and
//! Deployments of the sample app played by the pod runner.
//!
//! Run inside the rig: `e2e/rig/rig up && e2e/rig/rig exec cargo test -p serin-e2e --features rig`.

mod cluster_services;
mod conformance;
mod kube_mode;
mod support;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use serin_crds::canary::Canary;
use serin_crds::manifest::{Manifest, parse_all};
use support::cluster::install_crds;
use support::{TestNamespace, apply, eventually, http_get, rig_client};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const APP_PORT: u16 = 9898;

#[tokio::test]
async fn crds_and_every_example_are_accepted_by_the_apiserver() {
    let client = rig_client().await;
    install_crds(&client).await;

    // Every example file, applied as a user would (`kubectl apply --server-side -f examples/`).
    let mut applied = 0;
    for entry in std::fs::read_dir(format!("{REPO}/examples")).unwrap() {
        let path = entry.unwrap().path();
        // Manifests only: `examples/standalone/` holds the standalone mode's own files.
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for manifest in parse_all(&path.display().to_string(), &text).unwrap() {
            apply_manifest(&client, manifest).await;
            applied += 1;
        }
    }
    assert!(applied >= 12, "only {applied} objects in examples/");

    // What the apiserver stored is what we sent: nothing pruned, defaults as the CRD declares them.
    let canary_file = format!("{REPO}/examples/canary-step-weight.yaml");
    let sent =
        serin_crds::manifest::parse_canary(&canary_file, &std::fs::read_to_string(&canary_file).unwrap()).unwrap();
    let stored =
        Api::<Canary>::namespaced(client.clone(), "test").get(&sent.metadata.name.clone().unwrap()).await.unwrap();
    assert_eq!(serde_json::to_value(&stored.spec).unwrap(), serde_json::to_value(&sent.spec).unwrap());

    // The schema refuses what validation must refuse, naming the field.
    let mut bad = sent.clone();
    bad.metadata =
        kube::api::ObjectMeta { name: Some("too-far".into()), namespace: Some("test".into()), ..Default::default() };
    let mut value = serde_json::to_value(&bad).unwrap();
    value["spec"]["analysis"]["stepWeight"] = json!(150);
    let api = Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), "test", &canary_resource());
    let refused = api
        .create(&PostParams::default(), &serde_json::from_value(value).unwrap())
        .await
        .expect_err("a stepWeight of 150 must be refused");
    let message = refused.to_string();
    assert!(message.contains("spec.analysis.stepWeight") && message.contains("less than or equal to 100"), "{message}");

    // The example workload the Canaries target is played like any other Deployment.
    eventually("examples/workload.yaml ready", Duration::from_secs(90), || async {
        let status = Api::<Deployment>::namespaced(client.clone(), "test")
            .get("podinfo")
            .await
            .map_err(|e| e.to_string())?
            .status;
        let ready = status.as_ref().and_then(|s| s.ready_replicas);
        if ready == Some(2) { Ok(()) } else { Err(format!("{status:?}")) }
    })
    .await;
}

#[tokio::test]
async fn the_sample_app_becomes_ready_serves_its_version_and_rolls_to_a_new_one() {
    let client = rig_client().await;
    let ns = TestNamespace::create(&client, "e2e-app").await;
    apply(&ns.api::<Deployment>(), &app_deployment("app", "serin-testapp:v1", json!([]))).await;
    apply(&ns.api::<Service>(), &app_service("app")).await;

    let ips = ready_pod_ips(&ns, "app", 2).await;
    for ip in &ips {
        assert!(ip.octets()[..2] == [10, 244], "pod IP {ip} is outside the pod range");
        let (code, body) = http_get(*ip, APP_PORT, "/version").await.unwrap();
        assert_eq!((code, body.as_str()), (200, r#"{"version":"v1"}"#), "from {ip}");
    }
    assert_eq!(endpoint_slice_ips(&ns, "app", &ips).await, ips);

    // A new image is a new ReplicaSet; when it is done every pod answers with the new version.
    apply(&ns.api::<Deployment>(), &app_deployment("app", "serin-testapp:v2", json!([]))).await;
    eventually("every pod serving v2", Duration::from_secs(90), || async {
        let ips = pod_ips(&ns, "app").await;
        if ips.len() != 2 {
            return Err(format!("{} pods", ips.len()));
        }
        for ip in &ips {
            match http_get(*ip, APP_PORT, "/version").await {
                Ok((200, body)) if body.contains("v2") => {}
                other => return Err(format!("{ip}: {other:?}")),
            }
        }
        Ok(())
    })
    .await;
    let new_ips = ready_pod_ips(&ns, "app", 2).await;
    assert_eq!(endpoint_slice_ips(&ns, "app", &new_ips).await, new_ips);

    // Deleting the Deployment stops the processes and the pods leave the API.
    ns.api::<Deployment>().delete("app", &DeleteParams::foreground()).await.unwrap();
    eventually("pods deleted", Duration::from_secs(60), || async {
        let left = ns.api::<Pod>().list(&ListParams::default()).await.map_err(|e| e.to_string())?.items.len();
        if left == 0 { Ok(()) } else { Err(format!("{left} pods left")) }
    })
    .await;
    for ip in &new_ips {
        assert!(http_get(*ip, APP_PORT, "/version").await.is_err(), "{ip} still answers after its pod was deleted");
    }
    ns.delete().await;
}

#[tokio::test]
async fn a_pod_gets_its_environment_and_service_account_as_from_a_kubelet() {
    let client = rig_client().await;
    let ns = TestNamespace::create(&client, "e2e-env").await;
    let config: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "settings" }, "data": { "colour": "teal" } })).unwrap();
    apply(&ns.api::<ConfigMap>(), &config).await;
    let token_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
    let env = json!([
        { "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
        { "name": "POD_IP", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } },
        { "name": "COLOUR", "valueFrom": { "configMapKeyRef": { "name": "settings", "key": "colour" } } },
        { "name": "GREETING", "value": "$(COLOUR) from $(POD_NAME)" },
    ]);
    let mut deployment = app_deployment("env", "serin-testapp:v1", env);
    // Ready only once the token, CA and namespace are where in-cluster clients read them, the
    // ConfigMap volume holds its key (read-only) and resolv.conf searches the pod's namespace.
    let settings = "/run/serin-e2e/settings";
    let check = format!(
        "test -s {token_dir}/token && test -s {token_dir}/ca.crt && grep -qx {ns} {token_dir}/namespace \
         && grep -qx teal {settings}/colour && ! touch {settings}/colour 2>/dev/null \
         && grep -qx 'search {ns}.svc.cluster.local svc.cluster.local cluster.local' /etc/resolv.conf",
        ns = ns.name
    );
    let pod_spec = deployment.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
    pod_spec.volumes =
        Some(vec![serde_json::from_value(json!({ "name": "settings", "configMap": { "name": "settings" } })).unwrap()]);
    let container = &mut pod_spec.containers[0];
    container.volume_mounts =
        Some(vec![serde_json::from_value(json!({ "name": "settings", "mountPath": settings })).unwrap()]);
    container.readiness_probe = Some(
        serde_json::from_value(json!({ "exec": { "command": ["sh", "-c", check] }, "periodSeconds": 1 })).unwrap(),
    );
    apply(&ns.api::<Deployment>(), &deployment).await;

    let ips = ready_pod_ips(&ns, "env", 2).await;
    let pods = ns.api::<Pod>().list(&ListParams::default().labels("app=env")).await.unwrap().items;
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap();
        let ip: Ipv4Addr = pod.status.unwrap().pod_ip.unwrap().parse().unwrap();
        assert!(ips.contains(&ip));
        let (code, body) = http_get(ip, APP_PORT, "/env").await.unwrap();
        assert_eq!(code, 200);
        let vars: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(vars["POD_NAME"], json!(name));
        assert_eq!(vars["HOSTNAME"], json!(name));
        assert_eq!(vars["POD_IP"], json!(ip.to_string()));
        assert_eq!(vars["GREETING"], json!(format!("teal from {name}")));
        // The `kubernetes` Service's ClusterIP, which kube-proxy sends to the apiserver.
        assert_eq!(vars["KUBERNETES_SERVICE_HOST"], json!("10.96.0.1"));
        assert_eq!(vars["KUBERNETES_SERVICE_PORT"], json!("443"));
    }
    ns.delete().await;
}

#[tokio::test]
async fn an_image_the_runner_cannot_play_stays_unready() {
    let client = rig_client().await;
    let ns = TestNamespace::create(&client, "e2e-badimage").await;
    apply(&ns.api::<Deployment>(), &app_deployment("nginx", "nginx:1.27", json!([]))).await;
    let reason = waiting_reason(&ns, "nginx", |r| r == "ErrImagePull").await;
    assert_eq!(reason, "ErrImagePull");
    // Still unready a while later, and out of its Service's ready endpoints.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_unready(&ns, "nginx").await;
    ns.delete().await;
}

#[tokio::test]
async fn a_program_that_fails_to_start_never_becomes_ready() {
    let client = rig_client().await;
    let ns = TestNamespace::create(&client, "e2e-crash").await;
    let mut deployment = app_deployment("crash", "serin-testapp:v1", json!([]));
    deployment.spec.as_mut().unwrap().template.spec.as_mut().unwrap().containers[0].args =
        Some(vec!["--no-such-flag".to_string()]);
    apply(&ns.api::<Deployment>(), &deployment).await;
    waiting_reason(&ns, "crash", |r| r == "CrashLoopBackOff").await;
    // Each replica fails on its own schedule: wait until every one has failed and been restarted.
    eventually("every crash pod restarted after a failed exit", Duration::from_secs(60), || async {
        let pods = ns.api::<Pod>().list(&ListParams::default().labels("app=crash")).await.map_err(|e| e.to_string())?;
        for pod in &pods.items {
            let status = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref()).and_then(|c| c.first());
            let Some(status) = status else { return Err("a pod without container status".to_string()) };
            let failed =
                status.last_state.as_ref().and_then(|s| s.terminated.as_ref()).is_some_and(|t| t.exit_code != 0);
            if status.restart_count < 1 || !failed {
                return Err(format!("{status:?}"));
            }
        }
        Ok(())
    })
    .await;
    assert_unready(&ns, "crash").await;
    ns.delete().await;
}

// ---- helpers ----

fn canary_resource() -> kube::api::ApiResource {
    kube::api::ApiResource::erase::<Canary>(&())
}

async fn apply_manifest(client: &Client, manifest: Manifest) {
    match manifest {
        Manifest::Canary(object) => apply_in_own_namespace(client, *object).await,
        Manifest::MetricTemplate(object) => apply_in_own_namespace(client, *object).await,
        Manifest::AlertProvider(object) => apply_in_own_namespace(client, *object).await,
        Manifest::TrafficPolicy(object) => apply_in_own_namespace(client, *object).await,
        Manifest::Other { api_version, kind, value, .. } => {
            use kube::api::{DynamicObject, GroupVersionKind};
            let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
            let gvk = GroupVersionKind::gvk(group, version, &kind);
            let (resource, capabilities) =
                kube::discovery::pinned_kind(client, &gvk).await.unwrap_or_else(|e| panic!("{gvk:?}: {e}"));
            let object: DynamicObject = serde_json::from_value(value).unwrap();
            let api: Api<DynamicObject> = match (capabilities.scope, object.metadata.namespace.as_deref()) {
                (kube::discovery::Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
                (kube::discovery::Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &resource),
                (kube::discovery::Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
            };
            apply(&api, &object).await;
        }
    }
}

async fn apply_in_own_namespace<K>(client: &Client, object: K)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let namespace = object.meta().namespace.clone().unwrap_or_else(|| "default".into());
    ensure_namespace(client, &namespace).await;
    apply(&Api::<K>::namespaced(client.clone(), &namespace), &object).await;
}

async fn ensure_namespace(client: &Client, name: &str) {
    let namespace: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
    apply(&Api::all(client.clone()), &namespace).await;
}

fn app_deployment(name: &str, image: &str, env: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{
                        "name": "app",
                        "image": image,
                        "env": env,
                        "ports": [{ "name": "http", "containerPort": APP_PORT }],
                        "readinessProbe": { "httpGet": { "path": "/readyz", "port": "http" }, "periodSeconds": 1 },
                        "livenessProbe": { "httpGet": { "path": "/healthz", "port": "http" }, "periodSeconds": 2 },
                    }],
                },
            },
        },
    }))
    .unwrap()
}

fn app_service(name: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": name },
        "spec": { "selector": { "app": name }, "ports": [{ "name": "http", "port": APP_PORT, "targetPort": "http" }] },
    }))
    .unwrap()
}

/// IPs of the pods labelled `app=<app>` that are not being deleted.
async fn pod_ips(ns: &TestNamespace, app: &str) -> BTreeSet<Ipv4Addr> {
    let pods = ns.api::<Pod>().list(&ListParams::default().labels(&format!("app={app}"))).await.unwrap().items;
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.status.as_ref()?.pod_ip.as_ref()?.parse().ok())
        .collect()
}

/// Waits until the Deployment has `count` ready, up-to-date replicas; returns their pod IPs.
async fn ready_pod_ips(ns: &TestNamespace, app: &str, count: i32) -> BTreeSet<Ipv4Addr> {
    eventually(&format!("Deployment {app} ready"), Duration::from_secs(90), || async {
        let deployment = ns.api::<Deployment>().get(app).await.map_err(|e| e.to_string())?;
        let status = deployment.status.unwrap_or_default();
        let done = status.observed_generation == deployment.metadata.generation
            && status.updated_replicas == Some(count)
            && status.ready_replicas == Some(count)
            && status.replicas == Some(count);
        if !done {
            return Err(format!("{status:?}"));
        }
        let ips = pod_ips(ns, app).await;
        if ips.len() as i32 == count { Ok(ips) } else { Err(format!("pod IPs {ips:?}")) }
    })
    .await
}

/// Waits until the Service's EndpointSlices list exactly `expected` as ready; returns them.
async fn endpoint_slice_ips(ns: &TestNamespace, service: &str, expected: &BTreeSet<Ipv4Addr>) -> BTreeSet<Ipv4Addr> {
    eventually(&format!("EndpointSlice of {service}"), Duration::from_secs(30), || async {
        let selector = format!("kubernetes.io/service-name={service}");
        let slices = ns
            .api::<EndpointSlice>()
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| e.to_string())?;
        let ready: BTreeSet<Ipv4Addr> = slices
            .items
            .iter()
            .flat_map(|s| s.endpoints.iter().flatten())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .flat_map(|e| &e.addresses)
            .filter_map(|a| a.parse().ok())
            .collect();
        if &ready == expected { Ok(ready) } else { Err(format!("ready endpoints {ready:?}")) }
    })
    .await
}

/// Waits until a pod of `app` reports a waiting reason matching `wanted`; returns it.
async fn waiting_reason(ns: &TestNamespace, app: &str, wanted: impl Fn(&str) -> bool) -> String {
    eventually(&format!("pods of {app} waiting"), Duration::from_secs(60), || async {
        let pods = ns
            .api::<Pod>()
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .map_err(|e| e.to_string())?;
        let reasons: Vec<String> = pods
            .items
            .iter()
            .filter_map(|p| {
                p.status
                    .as_ref()?
                    .container_statuses
                    .as_ref()?
                    .first()?
                    .state
                    .as_ref()?
                    .waiting
                    .as_ref()?
                    .reason
                    .clone()
            })
            .collect();
        match reasons.iter().find(|r| wanted(r)) {
            Some(reason) => Ok(reason.clone()),
            None => Err(format!("waiting reasons {reasons:?}")),
        }
    })
    .await
}

async fn assert_unready(ns: &TestNamespace, app: &str) {
    let deployment = ns.api::<Deployment>().get(app).await.unwrap();
    let status = deployment.status.unwrap_or_default();
    assert_eq!(status.ready_replicas.unwrap_or(0), 0, "{status:?}");
    for pod in ns.api::<Pod>().list(&ListParams::default().labels(&format!("app={app}"))).await.unwrap().items {
        let ready = pod
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        assert!(!ready, "pod {:?} is Ready", pod.metadata.name);
    }
}
