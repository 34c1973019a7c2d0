//! Config changes under load: weight steps and whole swaps through the admin API and the store,
//! with a steady stream of requests that must see no failure.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serin_meshproxy::config::parse_config;
use support::{backend, canary_config, client, get, proxy};

async fn admin_put(admin: std::net::SocketAddr, path: &str, body: String) -> (u16, String) {
    let client = client();
    let request = http::Request::put(format!("http://{admin}{path}")).body(Full::new(Bytes::from(body))).unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    (status, String::from_utf8_lossy(&response.into_body().collect().await.unwrap().to_bytes()).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_config_changes_under_load_drop_nothing() {
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let proxy = proxy(&canary_config(v1, v2, 100, 0, "")).await;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, sent, failed, addr, client) = (stop.clone(), sent.clone(), failed.clone(), proxy.addr, client());
        load.push(tokio::spawn(async move {
            // Bounded: stops when told, or after 200,000 requests at most.
            for _ in 0..200_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let (status, _, _) = get(&client, addr, "podinfo.test", "/version", &[]).await;
                sent.fetch_add(1, Ordering::Relaxed);
                if status != 200 {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    let mut refused = 0;
    for step in 0..1000u32 {
        let canary = (step % 11) * 10;
        let primary = 100 - canary;
        if step % 2 == 0 {
            // A weight step, as the controller makes it.
            let body = format!(r#"{{"podinfo-primary": {primary}, "podinfo-canary": {canary}}}"#);
            let (status, answer) = admin_put(proxy.admin, "/routes/test/podinfo/weights", body).await;
            assert_eq!(status, 200, "{answer}");
        } else {
            // A whole-config swap.
            let config = parse_config("test", &canary_config(v1, v2, primary, canary, "")).unwrap();
            proxy.store.replace(config).unwrap();
        }
        if step % 100 == 50 {
            // A malformed config in the middle of it all: refused, and nothing changes.
            let before = proxy.store.load().generation;
            let (status, answer) = admin_put(
                proxy.admin,
                "/config",
                "routes: [{kind: HTTPRoute, metadata: {name: x}, spec: {rulez: []}}]".into(),
            )
            .await;
            assert_eq!(status, 400);
            assert!(answer.contains("HTTPRoute default/x") && answer.contains("rulez"), "{answer}");
            assert_eq!(proxy.store.load().generation, before);
            refused += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("1000 changes ({refused} malformed configs refused), {sent} requests, {failed} failed");
    assert!(sent > 1000, "the load ran alongside the changes ({sent} requests)");
    assert_eq!(failed, 0);
    assert_eq!(proxy.store.load().generation, 1001);
}

#[tokio::test]
async fn weights_for_a_missing_route_or_backend_are_refused_by_name() {
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let proxy = proxy(&canary_config(v1, v2, 100, 0, "")).await;
    let (status, answer) = admin_put(proxy.admin, "/routes/test/nope/weights", r#"{"a": 1}"#.into()).await;
    assert_eq!((status, answer.contains("HTTPRoute test/nope")), (400, true), "{answer}");
    let (status, answer) =
        admin_put(proxy.admin, "/routes/test/podinfo/weights", r#"{"podinfo-canry": 5}"#.into()).await;
    assert_eq!((status, answer.contains("podinfo-canry")), (400, true), "{answer}");
    let (status, answer) =
        admin_put(proxy.admin, "/routes/test/podinfo/weights", r#"{"podinfo-canary": -5}"#.into()).await;
    assert_eq!((status, answer.contains("backendRefs[1].weight")), (400, true), "{answer}");
    assert_eq!(proxy.store.load().generation, 1);
}
