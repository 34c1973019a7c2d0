//! `kubectl serin` against the rig: the request commands and `wait`, the CI gate, with each of its
//! exit codes, run as CI runs it (the binary, with the kubeconfig).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use serin_crds::canary::Canary;

use super::super::support::{eventually, rig_tool};
use super::{image_of, initialized_behind_a_promotion_gate, set_image};

#[tokio::test]
async fn kubectl_serin_wait_passes_only_for_the_current_revision_and_requests_steer_the_run() {
    let (ns, controller, _) = initialized_behind_a_promotion_gate("plugin").await;
    let n = ns.name.as_str();

    // v1 was promoted at bootstrap.
    let (code, out) = plugin(&["wait", "podinfo", "-n", n, "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{out}");
    // A Canary that is not there is no rollout to judge: 4 at once, not 1 and not a long wait.
    let (code, out) = plugin(&["wait", "podinf0", "-n", n, "--timeout", "10m"]).await;
    assert_eq!(code, 4, "{out}");
    assert!(out.contains(&format!("cannot tell how the rollout went: no Canary {n}/podinf0")), "{out}");

    // A new image: right after the push the Canary still shows v1's success, which must not pass.
    // The run then holds at the closed promotion gate: `--for paused` ends there (3), a plain wait
    // runs out of time (2).
    set_image(&ns, "serin-testapp:v2").await;
    let (code, out) = plugin(&["wait", "podinfo", "-n", n, "--for", "paused", "--timeout", "120s"]).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("waiting for approval: WaitingPromotion"), "{out}");
    let (code, out) = plugin(&["wait", "podinfo", "-n", n, "--timeout", "3s"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("timed out"), "{out}");
    let (code, out) = plugin(&["get", "podinfo", "-n", n]).await;
    assert_eq!(code, 0, "{out}");
    let lines: Vec<Vec<&str>> =
        out.lines().map(|l| l.split("   ").map(str::trim).filter(|c| !c.is_empty()).collect()).collect();
    assert_eq!(lines[0], ["NAME", "STRATEGY", "PHASE", "WEIGHT", "STEP", "FAILED CHECKS", "LAST TRANSITION"], "{out}");
    assert_eq!(lines[1][..6], ["podinfo", "canary", "WaitingPromotion", "50%", "1/1", "0/1"], "{out}");

    // The rollout view: plain text when stdout is not a terminal...
    let (code, out) = plugin(&["status", "podinfo", "-n", n]).await;
    assert_eq!(code, 0, "{out}");
    for line in [
        "  primary  serin-testapp:v1",
        "  canary   serin-testapp:v2",
        "  phase    WaitingPromotion: ",
        "  step     1 of 1  [##########..........]  canary 50%",
        "  gates    promotion (approval): closed, the run waits for it",
        "  events",
    ] {
        assert!(out.contains(line), "{line:?} not in\n{out}");
    }
    assert!(out.contains("Advance podinfo canary weight 50"), "the Canary's own events listed: {out}");
    assert!(!out.contains('\x1b'), "no colour off a terminal: {out:?}");
    // ...and through a pseudo-terminal, `--watch` redraws in place, in colour unless NO_COLOR.
    let watched = in_terminal(&["status", "podinfo", "-n", n, "--watch"], &[]).await;
    assert!(watched.contains("\x1b[H\x1b[2J") && watched.contains("\x1b[33mWaitingPromotion"), "{watched:?}");
    let plain = in_terminal(&["status", "podinfo", "-n", n, "--watch"], &[("NO_COLOR", "1")]).await;
    assert!(plain.contains("\x1b[H\x1b[2J") && !plain.contains("\x1b[33m"), "{plain:?}");

    // Opening the gate with the plugin: it says what the controller answered, and the wait passes.
    let (code, out) = plugin(&["gate", "open", "promotion", "podinfo", "-n", n]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the controller acted on it") && out.contains("open gates: promotion"), "{out}");
    let (code, out) = plugin(&["wait", "podinfo", "-n", n, "--timeout", "120s"]).await;
    assert_eq!(code, 0, "{out}");
    let primary = ns.api::<Deployment>().get("podinfo-primary").await.unwrap();
    assert_eq!(image_of(&primary), "serin-testapp:v2");
    let (code, out) = plugin(&["list", "-A", "-o", "json"]).await;
    assert_eq!(code, 0, "{out}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ours = list["items"].as_array().unwrap().iter().find(|c| c["metadata"]["namespace"] == n).unwrap();
    assert_eq!(ours["status"]["phase"], "Succeeded");
    let (code, out) = plugin(&["list", "-A", "-o", "wide"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("NAMESPACE") && out.contains("Deployment/podinfo"), "{out}");

    // The next image, aborted mid-run: the wait fails (1) with the reason.
    set_image(&ns, "serin-testapp:v3").await;
    eventually("v3 under analysis", Duration::from_secs(120), || async {
        let status = ns.api::<Canary>().get("podinfo").await.map_err(|e| e.to_string())?.status.unwrap_or_default();
        if status.phase.is_running() { Ok(()) } else { Err(format!("{status:?}")) }
    })
    .await;
    let (code, out) = plugin(&["abort", "podinfo", "-n", n]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("abort requested") && out.contains("the controller acted on it"), "{out}");
    let (code, out) = plugin(&["wait", "podinfo", "-n", n, "--timeout", "120s"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("failed"), "{out}");

    // Errors name what and where.
    let (code, out) = plugin(&["promote", "nothing-here", "-n", n]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("no Canary {n}/nothing-here")), "{out}");
    controller.abort();
    ns.delete().await;
}

/// Runs `kubectl-serin ARGS` on a pseudo-terminal (util-linux `script`), watching for 3 s; returns
/// what the terminal got.
async fn in_terminal(args: &[&str], env: &[(&str, &str)]) -> String {
    let command = std::iter::once(binary().display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let output = tokio::process::Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("SERIN_STATUS_FOR", "3")
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn binary() -> std::path::PathBuf {
    let deps = std::env::current_exe().unwrap();
    let binary = deps.parent().and_then(|d| d.parent()).unwrap().join("kubectl-serin");
    assert!(binary.exists(), "{} is not built (cargo build -p kubectl-serin)", binary.display());
    binary
}

/// Runs `kubectl-serin ARGS` (built next to the test binaries) with the rig's kubeconfig; returns
/// its exit code and its output (stdout then stderr).
async fn plugin(args: &[&str]) -> (i32, String) {
    let output = tokio::process::Command::new(binary()).args(args).output().await.unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

/// The release path: the binary packed by `kubectl-serin/krew/package.sh`, its manifest rendered
/// by `render.sh`, installed by krew itself (built by the rig) from that manifest and archive; an
/// archive that is not the one the manifest hashed is refused.
#[test]
fn krew_installs_kubectl_serin_from_the_rendered_manifest_and_refuses_another_archive() {
    let scripts = concat!(env!("CARGO_MANIFEST_DIR"), "/../kubectl-serin/krew");
    let work = std::env::temp_dir().join(format!("serin-krew-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let run = |command: &mut std::process::Command| {
        let output = command.output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.success(), text)
    };
    let target = "x86_64-unknown-linux-gnu";
    let (ok, out) =
        run(std::process::Command::new(format!("{scripts}/package.sh")).arg(binary()).arg(target).arg(&work));
    assert!(ok, "{out}");
    let archive = work.join(format!("kubectl-serin-{target}.tar.gz"));
    let (ok, manifest) = run(std::process::Command::new(format!("{scripts}/render.sh")).arg("0.1.0").arg(&work));
    assert!(ok, "{manifest}");
    let manifest_path = work.join("serin.yaml");
    std::fs::write(&manifest_path, &manifest).unwrap();

    let krew = rig_tool("krew");
    let install = |root: &str, archive: &std::path::Path| {
        let mut command = std::process::Command::new(&krew);
        command.env("KREW_ROOT", work.join(root)).arg("install").arg("--manifest").arg(&manifest_path).arg("--archive");
        run(command.arg(archive))
    };
    let (ok, out) = install("root", &archive);
    assert!(ok, "krew install: {out}");
    let installed = work.join("root/bin/kubectl-serin");
    let (ok, version) = run(std::process::Command::new(&installed).arg("--version"));
    assert!(ok && version.contains(env!("CARGO_PKG_VERSION")), "{version}");

    let mut other = std::fs::read(&archive).unwrap();
    other.push(0);
    let tampered = work.join("tampered.tar.gz");
    std::fs::write(&tampered, other).unwrap();
    let (ok, out) = install("other-root", &tampered);
    assert!(!ok, "krew installed an archive the manifest did not hash: {out}");
    assert!(out.contains("checksum does not match"), "{out}");
    let _ = std::fs::remove_dir_all(&work);
}
