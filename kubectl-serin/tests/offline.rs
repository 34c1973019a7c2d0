//! The commands that need no cluster (`lint`, `completion`), run as users run them: the binary.

use std::process::Command;

fn lint(text: &str) -> (i32, String) {
    // One folder per call: tests run in parallel threads of one process.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("serin-lint-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("canary.yaml");
    std::fs::write(&path, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kubectl-serin")).args(["lint", "-f"]).arg(&path).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text.replace(&path.display().to_string(), "FILE"))
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
