//! The commands that need no cluster (`lint`, `completion`), run as users run them: the binary.

use std::process::Command;

/// Runs `kubectl-serin ARGS`; its exit code and what it printed (stdout, then stderr).
fn plugin(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kubectl-serin")).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

fn lint(text: &str) -> (i32, String) {
    // One folder per call: tests run in parallel threads of one process.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("serin-lint-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("canary.yaml");
    std::fs::write(&path, text).unwrap();
    let (code, out) = plugin(&["lint".as_ref(), "-f".as_ref(), path.as_os_str()]);
    let _ = std::fs::remove_dir_all(&dir);
    (code, out.replace(&path.display().to_string(), "FILE"))
}

#[test]
fn every_example_passes() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    for entry in
        std::fs::read_dir(examples).unwrap().flatten().filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
    {
        let (code, out) = lint(&std::fs::read_to_string(entry.path()).unwrap());
        assert_eq!(code, 0, "{}: {out}", entry.path().display());
        assert!(out.contains("no problems"), "{out}");
    }
}

#[test]
fn every_broken_rule_is_named_by_document_object_and_field() {
    let (code, out) = lint(
        r#"
apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {name: web}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: ""}
  service: {port: 80}
  analysis: {interval: 10s, stepWeights: [10, 50, 30]}
---
apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {name: api}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: api}
  service: {port: 80}
  analysis: {interval: 10s, stepWeight: 10, colour: blue}
"#,
    );
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(r#"FILE: document 1: Canary "web": spec.targetRef.name: must not be empty"#)),
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(r#"FILE: document 1: Canary "web": spec.analysis.stepWeights"#)),
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(r#"FILE: document 2: Canary "api": spec.analysis"#) && l.contains("colour")),
        "{out}"
    );
}

#[test]
fn completion_scripts_name_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let output = Command::new(env!("CARGO_BIN_EXE_kubectl-serin")).args(["completion", shell]).output().unwrap();
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&output.stdout);
        for command in ["get", "list", "promote", "abort", "gate", "wait", "lint"] {
            assert!(script.contains(command), "{shell} completion lacks {command}");
        }
    }
}

fn simulate(args: &[&str]) -> (i32, String) {
    let args: Vec<&std::ffi::OsStr> =
        std::iter::once("simulate").chain(args.iter().copied()).map(AsRef::as_ref).collect();
    plugin(&args)
}

#[test]
fn simulate_shows_each_example_promoted_when_healthy_and_rolled_back_when_failing() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let canaries: Vec<std::path::PathBuf> = std::fs::read_dir(examples)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("kind: Canary")))
        .collect();
    assert!(canaries.len() >= 8, "{canaries:?}");
    let mut failing = 0;
    for canary in &canaries {
        let file = canary.to_str().unwrap();
        let (code, out) = simulate(&["-f", file]);
        assert_eq!(code, 0, "{file}: {out}");
        assert!(out.contains("Progressing") && out.trim_end().ends_with("result: Succeeded"), "{file}: {out}");
        // Only the builtin metrics follow the simulated error rate.
        if std::fs::read_to_string(canary).unwrap().contains("name: request-success-rate") {
            let (code, out) = simulate(&["-f", file, "--error-rate", "0.5"]);
            assert_eq!(code, 1, "{file}: {out}");
            assert!(out.trim_end().ends_with("result: Failed"), "{file}: {out}");
            failing += 1;
        }
    }
    assert!(failing >= 5, "only {failing} examples judged by request-success-rate");
}

#[test]
fn simulate_names_what_is_wrong_with_its_input() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/canary-step-weight.yaml");
    let (code, out) = simulate(&["-f", example, "--metric", "latency=5"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("--metric latency: the Canary has no such metric (it has: request-success-rate"), "{out}");
    let (code, out) = simulate(&["-f", "no-such-canary.yaml"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot read no-such-canary.yaml"), "{out}");
    let (code, out) = simulate(&["-f", example, "--error-rate", "2"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("2 is outside 0.0..=1.0"), "{out}");
}

/// A CI gate must not call an unreachable API a failed rollout: it asks again until its timeout,
/// then exits 4 (cannot tell), never 1 (failed).
#[test]
fn wait_asks_an_unreachable_api_again_and_then_says_it_cannot_tell() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("serin-wait-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"http://127.0.0.1:{port}\"}}}}]\n\
             users: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u, namespace: test}}}}]\n\
             current-context: x\n"
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_kubectl-serin"))
        .args(["wait", "podinfo", "--timeout", "5s"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{text}");
    assert!(text.contains("test/podinfo cannot read the rollout, asking again"), "{text}");
    assert!(
        text.contains("cannot tell how the rollout went: the rollout could not be read until the timeout"),
        "{text}"
    );
    assert!(started.elapsed() >= std::time::Duration::from_secs(5), "it gave up before its timeout: {text}");
}
