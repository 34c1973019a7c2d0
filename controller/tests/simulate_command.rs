//! `serin-controller simulate`: the timeline of every example Canary, through the real binary.

use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut canaries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("kind: Canary")))
        .collect();
    canaries.sort();
    assert!(canaries.len() >= 8, "expected the example Canaries, found {canaries:?}");
    canaries
}

fn simulate(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_serin-controller")).arg("simulate").args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), stdout, stderr)
}

#[test]
fn every_example_is_promoted_when_the_new_version_is_healthy() {
    for example in examples() {
        let (code, stdout, stderr) = simulate(&[example.to_str().unwrap()]);
        assert_eq!(code, 0, "{}:\n{stdout}{stderr}", example.display());
        assert!(stdout.contains("Progressing") && stdout.contains("Promoting"), "{stdout}");
        assert!(stdout.trim_end().ends_with("result: Succeeded"), "{stdout}");
    }
}

#[test]
fn every_example_is_rolled_back_when_the_new_version_fails() {
    for example in examples() {
        let path = example.to_str().unwrap();
        let text = std::fs::read_to_string(&example).unwrap();
        // Judge each example by a metric it has: the builtins follow --error-rate and --latency-ms,
        // a template metric is forced outside its range.
        let args: Vec<String> = if text.contains("request-success-rate") {
            vec![path.into(), "--error-rate".into(), "0.5".into()]
        } else if text.contains("request-duration") {
            vec![path.into(), "--latency-ms".into(), "100000".into()]
        } else {
            let name = text.lines().find_map(|l| l.trim().strip_prefix("- name: ")).unwrap().trim().to_string();
            vec![path.into(), "--metric".into(), format!("{name}=nodata")]
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stdout, stderr) = simulate(&args);
        assert_eq!(code, 1, "{}:\n{stdout}{stderr}", example.display());
        assert!(stdout.trim_end().ends_with("result: Failed"), "{stdout}");
        let last_row = stdout.lines().rev().find(|l| l.contains("Failed ")).unwrap();
        assert!(last_row.contains("routes 100/0"), "rollback routes everything to the primary: {last_row}");
    }
}

#[test]
fn the_timeline_of_step_weights_matches_flagger() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/canary-step-weights.yaml");
    let (code, stdout, _) = simulate(&[example.to_str().unwrap()]);
    assert_eq!(code, 0);
    let routes: Vec<&str> =
        stdout.lines().filter_map(|l| l.split("routes ").nth(1)).map(|r| r.split([' ', ',']).next().unwrap()).collect();
    assert!(routes.windows(4).any(|w| w == ["99/1", "98/2", "90/10", "20/80"]), "{routes:?}\n{stdout}");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let (code, _, stderr) = simulate(&["no/such/file.yaml"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read no/such/file.yaml"), "{stderr}");

    let dir = std::env::temp_dir().join(format!("serin-simulate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: serin.dev/v1alpha1\nkind: Canary\nmetadata: {name: web}\nspec:\n  targetRef: {name: web}\n  service: {port: 80}\n  analysis: {stepWeight: 10, intervall: 1m}\n",
    )
    .unwrap();
    let (code, _, stderr) = simulate(&[bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("spec.analysis.intervall") && stderr.contains("Canary \"web\""), "{stderr}");

    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/canary-step-weight.yaml");
    let (code, _, stderr) = simulate(&[example.to_str().unwrap(), "--metric", "nope=1"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--metric nope: the Canary has no such metric"), "{stderr}");
    let (code, _, stderr) = simulate(&[example.to_str().unwrap(), "--error-rate", "2"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("outside 0.0..=1.0"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
