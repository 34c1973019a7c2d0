//! Every YAML file under `examples/` must load with the same loader users get, and bad input must be
//! refused with an error that names the field.

use std::path::{Path, PathBuf};

use serin_crds::manifest::{Manifest, ManifestError, parse_all};

/// The Canary examples the README promises (one per strategy and feature).
const EXPECTED_CANARIES: usize = 8;

fn examples_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    dir.canonicalize().unwrap_or(dir)
}

/// Every `*.yaml` under `examples/`, recursively, sorted, read at test time so new files are covered.
/// `examples/standalone/` holds files of the standalone mode (meshproxy configs), which are not
/// Kubernetes manifests; meshproxy's own tests check them. `examples/gitops/github-actions/` holds a
/// CI workflow.
fn example_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "standalone" && n != "github-actions") {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|ext| ext == "yaml") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&examples_dir(), &mut files);
    files.sort();
    files
}

/// Loads every example; panics naming each file that fails.
fn load_examples() -> Vec<(PathBuf, Vec<Manifest>)> {
    let mut loaded = Vec::new();
    let mut failures = Vec::new();
    for path in example_files() {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        match parse_all(&path.display().to_string(), &text) {
            Ok(manifests) => loaded.push((path, manifests)),
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(failures.is_empty(), "examples that do not load:\n{}", failures.join("\n"));
    loaded
}

#[test]
fn every_example_loads() {
    let loaded = load_examples();
    assert!(!loaded.is_empty(), "no *.yaml under {}", examples_dir().display());
    for (path, manifests) in &loaded {
        assert!(!manifests.is_empty(), "{} holds no object", path.display());
    }
    let canaries =
        loaded.iter().flat_map(|(_, manifests)| manifests).filter(|m| matches!(m, Manifest::Canary(_))).count();
    assert!(
        canaries >= EXPECTED_CANARIES,
        "expected at least {EXPECTED_CANARIES} Canary objects in examples/, found {canaries}"
    );
}

#[test]
fn every_example_file_starts_with_a_comment() {
    for path in example_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# "), "{} should start with a comment saying what it shows", path.display());
    }
}

/// The example Canaries refer only to templates and providers the examples define, and give every
/// `{{ variables.x }}` its template uses.
#[test]
fn example_references_resolve() {
    let manifests: Vec<Manifest> = load_examples().into_iter().flat_map(|(_, m)| m).collect();
    let namespace_of = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.namespace.clone().unwrap_or_else(|| "default".to_string())
    };
    let templates: Vec<(String, String, &str)> = manifests
        .iter()
        .filter_map(|m| match m {
            Manifest::MetricTemplate(t) => {
                Some((namespace_of(&t.metadata), t.metadata.name.clone().unwrap_or_default(), t.spec.query.as_str()))
            }
            _ => None,
        })
        .collect();
    let providers: Vec<(String, String)> = manifests
        .iter()
        .filter_map(|m| match m {
            Manifest::AlertProvider(p) => {
                Some((namespace_of(&p.metadata), p.metadata.name.clone().unwrap_or_default()))
            }
            _ => None,
        })
        .collect();
    for manifest in &manifests {
        let Manifest::Canary(canary) = manifest else { continue };
        let canary_ns = namespace_of(&canary.metadata);
        let canary_name = canary.metadata.name.clone().unwrap_or_default();
        for metric in &canary.spec.analysis.metrics {
            let Some(reference) = &metric.template_ref else {
                continue;
            };
            let ns = reference.namespace.clone().unwrap_or_else(|| canary_ns.clone());
            let (_, _, query) = templates
                .iter()
                .find(|(t_ns, t_name, _)| *t_ns == ns && *t_name == reference.name)
                .unwrap_or_else(|| {
                    panic!(
                        "Canary {canary_name}: metric {} refers to MetricTemplate {ns}/{} that no example defines",
                        metric.name, reference.name
                    )
                });
            for variable in query.split("{{").skip(1).filter_map(|rest| rest.split("}}").next()) {
                if let Some(name) = variable.trim().strip_prefix("variables.") {
                    assert!(
                        metric.template_variables.contains_key(name),
                        "Canary {canary_name}: metric {} uses template {ns}/{} which needs templateVariables.{name}",
                        metric.name,
                        reference.name
                    );
                }
            }
        }
        for alert in &canary.spec.analysis.alerts {
            let reference = &alert.provider_ref;
            let ns = reference.namespace.clone().unwrap_or_else(|| canary_ns.clone());
            assert!(
                providers.contains(&(ns.clone(), reference.name.clone())),
                "Canary {canary_name}: alert {:?} refers to AlertProvider {ns}/{} that no example defines",
                alert.name,
                reference.name
            );
        }
    }
}

/// A minimal valid Canary with `analysis` replaced by `analysis_body` (indented under `analysis:`).
fn canary_with_analysis(analysis_body: &str) -> String {
    let mut yaml = String::from(
        "apiVersion: serin.dev/v1alpha1\nkind: Canary\nmetadata:\n  name: podinfo\n  namespace: test\nspec:\n  targetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: podinfo\n  service:\n    port: 80\n    targetPort: 9898\n  analysis:\n",
    );
    for line in analysis_body.lines() {
        yaml.push_str("    ");
        yaml.push_str(line);
        yaml.push('\n');
    }
    yaml
}

fn load_error(source: &str, yaml: &str) -> (ManifestError, String) {
    match parse_all(source, yaml) {
        Ok(manifests) => panic!("{source} should be refused, but loaded: {manifests:?}"),
        Err(e) => {
            let text = e.to_string();
            (e, text)
        }
    }
}

#[test]
fn misspelled_field_names_the_field_and_its_path() {
    let yaml = canary_with_analysis("interval: 30s\nstepWieght: 10\nmaxWeight: 50\n");
    let (error, text) = load_error("typo.yaml", &yaml);
    assert!(text.contains("stepWieght"), "error should name the unknown field: {text}");
    assert!(text.contains("spec.analysis"), "error should give the field's path: {text}");
    assert!(text.starts_with("typo.yaml: document 1: Canary \"podinfo\""), "error should say where: {text}");
    match error {
        ManifestError::Field(problem) => {
            let (field, message) = (&problem.field, &problem.message);
            assert_eq!(field, "spec.analysis.stepWieght", "full path of the unknown field");
            assert!(message.contains("stepWeight"), "message should list the valid names: {message}");
        }
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn misspelled_nested_field_names_the_full_path() {
    let yaml = canary_with_analysis(
        "stepWeight: 10\nmetrics:\n  - name: request-success-rate\n    tresholdRange:\n      min: 99\n",
    );
    let (_, text) = load_error("typo.yaml", &yaml);
    assert!(text.contains("spec.analysis.metrics[0].tresholdRange"), "{text}");
}

#[test]
fn two_strategies_are_refused() {
    let yaml = canary_with_analysis("stepWeight: 10\niterations: 10\n");
    let (error, text) = load_error("two.yaml", &yaml);
    assert!(text.contains("exactly one"), "{text}");
    assert!(text.contains("stepWeight and iterations"), "error should say which were set: {text}");
    assert!(matches!(&error, ManifestError::Field(p) if p.field == "spec.analysis"), "{error:?}");
}

#[test]
fn no_strategy_is_refused() {
    let yaml = canary_with_analysis("interval: 1m\n");
    let (_, text) = load_error("none.yaml", &yaml);
    assert!(text.contains("exactly one") && text.contains("found none"), "{text}");
}

#[test]
fn descending_step_weights_name_the_step() {
    let yaml = canary_with_analysis("stepWeights: [10, 5]\n");
    let (error, text) = load_error("steps.yaml", &yaml);
    assert!(text.contains("spec.analysis.stepWeights[1]"), "{text}");
    assert!(matches!(&error, ManifestError::Field(p) if p.field == "spec.analysis.stepWeights[1]"), "{error:?}");
}

#[test]
fn flagger_api_version_says_what_to_change() {
    let yaml = canary_with_analysis("stepWeight: 10\n").replace("serin.dev/v1alpha1", "flagger.app/v1beta1");
    let (error, text) = load_error("flagger.yaml", &yaml);
    assert!(text.contains("serin.dev/v1alpha1"), "{text}");
    assert!(matches!(&error, ManifestError::Field(p) if p.field == "apiVersion"), "{error:?}");
}

/// Flagger's documented podinfo Canary (Istio tutorial form), with only `apiVersion` changed and the
/// load tester's URL pointed at a local name.
const FLAGGER_CANARY: &str = r#"
apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  # deployment reference
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  # the maximum time in seconds for the canary deployment
  # to make progress before it is rollback (default 600s)
  progressDeadlineSeconds: 60
  # HPA reference (optional)
  autoscalerRef:
    apiVersion: autoscaling/v2
    kind: HorizontalPodAutoscaler
    name: podinfo
  service:
    # service port number
    port: 9898
    # container port number or name (optional)
    targetPort: 9898
    # Istio gateways (optional)
    gateways:
    - public-gateway.istio-system.svc.cluster.local
    # Istio virtual service host names (optional)
    hosts:
    - app.example.com
    # Istio traffic policy (optional)
    trafficPolicy:
      tls:
        # use ISTIO_MUTUAL when mTLS is enabled
        mode: DISABLE
    # Istio retry policy (optional)
    retries:
      attempts: 3
      perTryTimeout: 1s
      retryOn: "gateway-error,connect-failure,refused-stream"
  analysis:
    # schedule interval (default 60s)
    interval: 1m
    # max number of failed metric checks before rollback
    threshold: 5
    # max traffic percentage routed to canary
    # percentage (0-100)
    maxWeight: 50
    # canary increment step
    # percentage (0-100)
    stepWeight: 10
    metrics:
    - name: request-success-rate
      # minimum req success rate (non 5xx responses)
      # percentage (0-100)
      thresholdRange:
        min: 99
      interval: 1m
    - name: request-duration
      # maximum req duration P99
      # milliseconds
      thresholdRange:
        max: 500
      interval: 30s
    # testing (optional)
    webhooks:
      - name: acceptance-test
        type: pre-rollout
        url: http://loadtester.test/
        timeout: 30s
        metadata:
          type: bash
          cmd: "curl -sd 'test' http://podinfo-canary:9898/token | grep token"
      - name: load-test
        url: http://loadtester.test/
        timeout: 5s
        metadata:
          cmd: "hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/"
    alerts:
      - name: "on-call Slack"
        severity: error
        providerRef:
          name: on-call
          namespace: flagger
"#;

#[test]
fn flagger_documented_canary_loads_after_changing_api_version() {
    let manifests = parse_all("flagger-podinfo.yaml", FLAGGER_CANARY).unwrap_or_else(|e| panic!("{e}"));
    let [Manifest::Canary(canary)] = manifests.as_slice() else {
        panic!("expected one Canary, got {manifests:?}");
    };
    let analysis = &canary.spec.analysis;
    assert_eq!(analysis.step_weight, Some(10));
    assert_eq!(analysis.max_weight, Some(50));
    assert_eq!(analysis.metrics.len(), 2);
    assert_eq!(analysis.metrics[0].threshold_range.as_ref().and_then(|r| r.min), Some(99.0));
    assert_eq!(analysis.webhooks.len(), 2);
    assert_eq!(analysis.webhooks[0].type_, serin_crds::canary::HookType::PreRollout);
    assert_eq!(
        analysis.webhooks[1].type_,
        serin_crds::canary::HookType::Rollout,
        "a webhook without type is a rollout hook"
    );
    assert_eq!(analysis.webhooks[0].metadata.get("type").map(String::as_str), Some("bash"));
    assert_eq!(canary.spec.service.retries.as_ref().map(|r| r.attempts), Some(3));
    assert!(canary.spec.service.traffic_policy.is_some(), "Istio trafficPolicy is kept verbatim");
}

#[test]
fn a_misspelled_top_level_key_is_named() {
    let yaml = "apiVersion: serin.dev/v1alpha1\nkind: Canary\nmetadata: {name: podinfo}\nspce: {}\n";
    let error = serin_crds::manifest::parse_all("typo.yaml", yaml).unwrap_err().to_string();
    assert!(error.contains("spce") && error.contains("unknown field"), "{error}");
}

#[test]
fn flaggers_deprecated_canary_analysis_gets_a_rename_hint() {
    let yaml = r#"
apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {name: podinfo}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 80}
  canaryAnalysis: {interval: 1m, threshold: 5, stepWeight: 10}
"#;
    let error = serin_crds::manifest::parse_all("old.yaml", yaml).unwrap_err().to_string();
    assert!(error.contains("spec.canaryAnalysis") && error.contains("rename it to analysis"), "{error}");
}
