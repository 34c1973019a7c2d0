//! `meshproxy check`: accepts the example config, and refuses bad ones naming object and field.

use std::process::Command;

fn check(text: &str) -> (i32, String, String) {
    let dir = std::env::temp_dir().join(format!("meshproxy-check-{}-{}", std::process::id(), fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_meshproxy")).arg("check").arg(&path).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn accepts_the_example_config() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/standalone/meshproxy.yaml")).unwrap();
    let (code, stdout, stderr) = check(&example);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ok (3 services, 1 routes, 0 traffic policies)"), "{stdout}");
}

#[test]
fn refuses_bad_configs_naming_object_and_field() {
    let services = "services: [{name: app}, {name: app-v1, endpoints: [{address: \"127.0.0.1:1\"}]}]\n";
    let route = |rule: &str| {
        format!(
            "{services}routes: [{{metadata: {{name: r, namespace: default}}, spec: {{parentRefs: [{{group: \"\", kind: Service, name: app}}], rules: [{rule}]}}}}]"
        )
    };
    let policy = |spec: &str| {
        format!("{services}trafficPolicies: [{{metadata: {{name: p}}, spec: {{targetRef: {{name: app-v1}}, {spec}}}}}]")
    };
    let cases = [
        ("services: [{name: app, endpoint: []}]", "Service default/app: endpoint: unknown field `endpoint`"),
        (
            "services: [{name: app, endpoints: [{address: nowhere}]}]",
            "Service default/app: endpoints[0].address: \"nowhere\" is not an ip:port",
        ),
        (
            &route("{backendRef: [{name: app-v1}]}") as &str,
            "HTTPRoute default/r: spec.rules[0].backendRef: unknown field",
        ),
        (
            &route("{backendRefs: [{name: app-v2}]}"),
            "HTTPRoute default/r: spec.rules[0].backendRefs[0].name: no Service default/app-v2",
        ),
        (&route("{backendRefs: [{name: app-v1, weight: -1}]}"), "spec.rules[0].backendRefs[0].weight: -1 is outside"),
        (
            &route(
                "{matches: [{headers: [{name: x, type: RegularExpression, value: \"(\"}]}], backendRefs: [{name: app-v1}]}",
            ),
            "spec.rules[0].matches[0].headers[0].value: \"(\" is not a regular expression",
        ),
        (&route("{timeouts: {request: soon}, backendRefs: [{name: app-v1}]}"), "spec.rules[0].timeouts.request"),
        ("services: [{name: app}, {name: app}]", "Service default/app: name: defined more than once"),
        (&policy("retries: {attempts: 0}"), "TrafficPolicy default/p: spec.retries.attempts: 0 is outside 1..=10"),
        (&policy("retries: {attempts: 2, perTryTimeout: 1x}"), "TrafficPolicy default/p: spec.retries.perTryTimeout"),
        (&policy("fault: {abort: {percent: 150, httpStatus: 500}}"), "spec.fault.abort.percent: 150 is outside"),
        (&policy("connectionPool: {maxConnections: 0}"), "spec.connectionPool.maxConnections: 0 is less than 1"),
        (&policy("retry: {attempts: 2}"), "unknown field `retry`"),
        ("services: [{name: app]", "not valid YAML"),
    ];
    for (config, expected) in cases {
        let (code, _, stderr) = check(config);
        assert_eq!(code, 1, "{config}");
        assert!(stderr.contains(expected), "for {config}\nexpected: {expected}\ngot: {stderr}");
        assert!(stderr.contains("config.yaml: "), "the file is named: {stderr}");
    }
}
