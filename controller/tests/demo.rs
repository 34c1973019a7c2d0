//! `serin-controller demo`, the README's first command, run as a newcomer runs it: real meshproxy
//! and sample-app processes on loopback, a good v2 promoted (exit 0) and a faulty one rolled back
//! (exit 1), each leaving a report that draws what the rollout did.

use std::path::{Path, PathBuf};
use std::process::Output;

/// Runs the demo with `flags` into a folder of its own; the binaries it starts are the workspace's
/// own, built beside this one by `cargo test --workspace`.
async fn demo(name: &str, flags: &[&str]) -> (Output, PathBuf) {
    let controller = Path::new(env!("CARGO_BIN_EXE_serin-controller"));
    for needed in ["meshproxy", "serin-testapp"] {
        let path = controller.with_file_name(needed);
        assert!(
            path.is_file(),
            "{} is missing: run `cargo test --workspace`, or build it with `cargo build -p serin-meshproxy -p serin-testapp`",
            path.display()
        );
    }
    let folder = std::env::temp_dir().join(format!("serin-demo-test-{name}-{}", std::process::id()));
    let output = tokio::process::Command::new(controller)
        .arg("demo")
        .args(flags)
        .arg("--folder")
        .arg(&folder)
        .env_remove("CARGO")
        .kill_on_drop(true)
        .output()
        .await
        .expect("running the demo");
    (output, folder)
}

#[tokio::test]
async fn the_demo_promotes_a_good_v2_and_rolls_back_a_faulty_one_with_a_report_of_each() {
    let ((good, good_folder), (faulty, faulty_folder)) = tokio::join!(demo("good", &[]), demo("faulty", &["--faulty"]));
    let text = |o: &Output| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));

    assert_eq!(good.status.code(), Some(0), "{}", text(&good));
    assert!(text(&good).contains("Succeeded: v2 promoted"), "{}", text(&good));
    assert!(text(&good).contains("0 answered 5xx, 0 failed to connect"), "{}", text(&good));
    let report = std::fs::read_to_string(good_folder.join("report.html")).unwrap();
    for drawn in
        ["request-success-rate min 95%", "request-duration max 100 ms", ">20%<", ">40%<", ">60%<", ">Succeeded<"]
    {
        assert!(report.contains(drawn), "the report lacks {drawn}");
    }
    assert!(report.contains("Promotion completed!"), "no promotion among the report's events");

    assert_eq!(faulty.status.code(), Some(1), "{}", text(&faulty));
    assert!(text(&faulty).contains("Failed: v2 rolled back, all traffic on v1"), "{}", text(&faulty));
    let named = ["request-success-rate", "request-duration"].iter().any(|m| text(&faulty).contains(m));
    assert!(named, "the reason names the metric: {}", text(&faulty));
    let report = std::fs::read_to_string(faulty_folder.join("report.html")).unwrap();
    assert!(report.contains(">Failed<") && report.contains("Canary failed!"), "the report shows the rollback");

    for folder in [good_folder, faulty_folder] {
        let _ = std::fs::remove_dir_all(folder);
    }
}
