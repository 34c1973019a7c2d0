//! `meshproxy run` as a process: serves a config file, reloads it when it changes, keeps the old
//! config when the new file is bad, and exits cleanly on SIGTERM.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{backend, canary_config, client, get, spawn_meshproxy, version_of};

/// A folder of the test's own holding `proxy.yaml` with `text`; returns both paths.
fn config_file(tag: &str, text: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("meshproxy-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("proxy.yaml");
    std::fs::write(&file, text).unwrap();
    (dir, file)
}

async fn generation(admin: std::net::SocketAddr) -> u64 {
    let (_, _, body) = get(&client(), admin, "admin", "/config", &[]).await;
    serde_json::from_str::<serde_json::Value>(&body).map(|v| v["generation"].as_u64().unwrap_or(0)).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_file_and_reloads_it() {
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let (dir, file) = config_file("run", &canary_config(v1, v2, 100, 0, ""));
    let (mut child, proxy, admin) = spawn_meshproxy(&file, &[], Stdio::null());
    let client = client();
    let (_, _, body) = get(&client, proxy, "podinfo.test", "/version", &[]).await;
    assert_eq!(version_of(&body), "v1");

    std::fs::write(&file, canary_config(v1, v2, 0, 100, "")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while generation(admin).await != 2 {
        assert!(Instant::now() < deadline, "the edited file was not reloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, _, body) = get(&client, proxy, "podinfo.test", "/version", &[]).await;
    assert_eq!(version_of(&body), "v2");

    // A broken file is refused; the config in use stays and keeps serving.
    std::fs::write(&file, "services: [{name: podinfo, namespace: test, endpoints: [{address: nowhere}]}]").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(generation(admin).await, 2);
    let (status, _, body) = get(&client, proxy, "podinfo.test", "/version", &[]).await;
    assert_eq!((status.as_u16(), version_of(&body).as_str()), (200, "v2"));

    let (status, _, _) = get(&client, admin, "admin", "/ready", &[]).await;
    assert_eq!(status, 200);
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = exited_within(&mut child, Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_logs_are_json_lines_on_stdout() {
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let (dir, file) = config_file("log", &canary_config(v1, v2, 100, 0, ""));
    let (child, proxy, _) = spawn_meshproxy(&file, &["--access-log", "on"], Stdio::piped());
    let client = client();
    get(
        &client,
        proxy,
        "podinfo.test",
        "/version?x=1",
        &[("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")],
    )
    .await;
    get(&client, proxy, "nowhere.test", "/", &[]).await;
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let output = child.wait_with_output().unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}")))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let served = &lines[0];
    assert_eq!(served["status"], 200);
    assert_eq!(served["method"], "GET");
    assert_eq!(served["path"], "/version");
    assert_eq!(served["authority"], "podinfo.test");
    assert_eq!(served["route"], "test/podinfo");
    assert_eq!(served["backend"], "podinfo-primary");
    assert_eq!(served["version"], "v1");
    assert_eq!(served["endpoint"], v1.to_string());
    assert_eq!(served["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(served["time"].as_str().unwrap().ends_with('Z'));
    let refused = &lines[1];
    assert_eq!(refused["status"], 404);
    assert_eq!(refused["blame"], "policy");
    assert_eq!(refused["error"], "policy: no service for host \"nowhere.test\"");
    assert!(served.get("blame").is_none() && served.get("error").is_none(), "{served}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigterm_it_keeps_serving_for_the_shutdown_delay_and_asks_clients_to_leave() {
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let (dir, file) = config_file("delay", &canary_config(v1, v2, 100, 0, ""));
    let (mut child, proxy, admin) = spawn_meshproxy(&file, &["--shutdown-delay-seconds", "2"], Stdio::null());
    let client = client();
    let (status, headers, _) = get(&client, proxy, "podinfo.test", "/version", &[]).await;
    assert_eq!(status, 200);
    assert!(headers.get("connection").is_none(), "{headers:?}");

    let stopped_at = Instant::now();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Within the delay: unready, still answering new connections, each answer saying to leave.
    let (status, _, _) = get(&client, admin, "admin", "/ready", &[]).await;
    assert_eq!(status, 503);
    let fresh = support::client();
    let (status, headers, body) = get(&fresh, proxy, "podinfo.test", "/version", &[]).await;
    assert_eq!((status.as_u16(), version_of(&body).as_str()), (200, "v1"));
    assert_eq!(headers.get("connection").map(|v| v.to_str().unwrap()), Some("close"));
    assert!(child.try_wait().unwrap().is_none(), "still running within the delay");

    let status = exited_within(&mut child, Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
    assert!(stopped_at.elapsed() >= Duration::from_secs(2), "it waited out the delay");
    assert!(std::net::TcpStream::connect(proxy).is_err(), "the port is closed once it has gone");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits for the process to exit, at most `limit`; its exit status.
async fn exited_within(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "meshproxy did not exit within {limit:?} of SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
