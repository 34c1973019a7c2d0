//! Webhooks, gates and alerts against a local HTTP receiver that records what it got, and alerts
//! through a real HTTP forward proxy.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use serin_controller::api::{self, Api};
use serin_controller::engine::HookOutcome;
use serin_controller::hooks::alerts::{AlertMessage, AlertSender, ResolvedProvider};
use serin_controller::hooks::gates::{Gate, GateStore};
use serin_controller::hooks::webhook::{HookTarget, WebhookCaller};
use serin_controller::outbound::Outbound;
use serin_crds::CanaryPhase;
use serin_crds::alert_provider::AlertProviderSpec;
use serin_crds::canary::{AlertSeverity, CanaryAlert, CanaryWebhook, HookType};
use support::receiver::Receiver;
use support::tinyproxy;

fn hook(kind: HookType, name: &str, url: String, extra: Value) -> CanaryWebhook {
    let mut spec = serde_json::json!({"type": kind.as_str(), "name": name, "url": url});
    spec.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    serde_json::from_value(spec).unwrap()
}

fn target(phase: CanaryPhase) -> HookTarget<'static> {
    HookTarget { name: "podinfo", namespace: "test", phase, checksum: "rev-2" }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_send_flaggers_payload_retry_and_report_the_body_of_a_failure() {
    let receiver = Receiver::start().await;
    let caller = WebhookCaller::new(Outbound::new());
    let hooks = vec![
        hook(
            HookType::Rollout,
            "load-test",
            receiver.url("/ok"),
            serde_json::json!({"metadata": {"cmd": "hey -z 1m"}}),
        ),
        hook(HookType::Rollout, "flaky", receiver.url("/flaky/2"), serde_json::json!({"retries": 2})),
        hook(HookType::PreRollout, "not-now", receiver.url("/fail"), Value::Null),
    ];
    assert_eq!(caller.run(HookType::Rollout, &hooks, &target(CanaryPhase::Progressing)).await, HookOutcome::Succeeded);
    let calls = receiver.calls();
    assert_eq!(calls.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(), ["/ok", "/flaky/2", "/flaky/2", "/flaky/2"]);
    assert_eq!(
        calls[0].json(),
        serde_json::json!({"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "rev-2", "metadata": {"cmd": "hey -z 1m"}})
    );
    assert_eq!(calls[0].header("content-type"), Some("application/json"));

    // Failures: the first failing hook stops the rest, and its answer is in the message.
    let hooks = vec![
        hook(HookType::ConfirmPromotion, "fails", receiver.url("/fail"), Value::Null),
        hook(HookType::ConfirmPromotion, "never-called", receiver.url("/ok"), Value::Null),
    ];
    receiver.clear();
    let outcome = caller.run(HookType::ConfirmPromotion, &hooks, &target(CanaryPhase::Progressing)).await;
    let HookOutcome::Failed { hook: failed, message } = outcome else { panic!("expected a failure") };
    assert_eq!(failed, "fails");
    assert!(message.contains("500 Internal Server Error: load test failed: p99 2.1s"), "{message}");
    assert_eq!(receiver.calls().len(), 1);

    // Retries give up after the last attempt and say so.
    let flaky = vec![hook(HookType::Rollout, "flaky", receiver.url("/flaky/5"), serde_json::json!({"retries": 1}))];
    let HookOutcome::Failed { message, .. } =
        caller.run(HookType::Rollout, &flaky, &target(CanaryPhase::Progressing)).await
    else {
        panic!()
    };
    assert!(message.ends_with("(after 2 attempts)"), "{message}");

    // A hook that hangs is cut at its timeout.
    let slow = vec![hook(HookType::Rollout, "slow", receiver.url("/slow"), serde_json::json!({"timeout": "300ms"}))];
    let started = Instant::now();
    let HookOutcome::Failed { message, .. } =
        caller.run(HookType::Rollout, &slow, &target(CanaryPhase::Progressing)).await
    else {
        panic!()
    };
    assert!(message.contains("no response within 300ms"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // Nothing listening.
    let dead =
        vec![hook(HookType::Rollout, "dead", format!("http://127.0.0.1:{}/x", support::free_port()), Value::Null)];
    let HookOutcome::Failed { message, .. } =
        caller.run(HookType::Rollout, &dead, &target(CanaryPhase::Progressing)).await
    else {
        panic!()
    };
    assert!(message.to_lowercase().contains("connect"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_webhooks_get_the_event_in_their_metadata() {
    let receiver = Receiver::start().await;
    let caller = WebhookCaller::new(Outbound::new());
    let hooks = vec![
        hook(HookType::Event, "events", receiver.url("/ok"), serde_json::json!({"metadata": {"team": "web"}})),
        hook(HookType::Rollout, "not-an-event", receiver.url("/fail"), Value::Null),
    ];
    let problems = caller
        .post_event(&hooks, &target(CanaryPhase::Progressing), "Normal", "Advance podinfo.test canary weight 10")
        .await;
    assert!(problems.is_empty(), "{problems:?}");
    let calls = receiver.calls();
    assert_eq!(calls.len(), 1);
    let metadata = &calls[0].json()["metadata"];
    assert_eq!(metadata["eventMessage"], "Advance podinfo.test canary weight 10");
    assert_eq!(metadata["eventType"], "Normal");
    assert_eq!(metadata["team"], "web");
    assert!(metadata["timestamp"].as_str().unwrap().parse::<i64>().unwrap() > 1_700_000_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_open_through_the_api_answer_webhooks_and_survive_a_restart() {
    let folder = support::TempDir::new("gates");
    let file = folder.path().join("gates.json");
    let gates = Arc::new(GateStore::open_file(&file).unwrap());
    let address = api::start(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(Api {
            gates: Some(gates.clone()),
            gate_check: None,
            status: None,
            metrics: None,
            requests: None,
            canaries: None,
        }),
    )
    .await
    .unwrap();
    let caller = WebhookCaller::new(Outbound::new());
    let gate_hook = vec![hook(
        HookType::ConfirmPromotion,
        "approval",
        format!("http://{address}/gates/test/podinfo/promotion"),
        Value::Null,
    )];

    let outcome = caller.run(HookType::ConfirmPromotion, &gate_hook, &target(CanaryPhase::Progressing)).await;
    let HookOutcome::Failed { message, .. } = outcome else { panic!("a new gate is closed") };
    assert!(message.contains("403") && message.contains("closed"), "{message}");

    let client = Outbound::new();
    let post = |path: &str| {
        http::Request::post(format!("http://{address}{path}")).body(http_body_util::Full::default()).unwrap()
    };
    let reply = client.send(post("/gates/test/podinfo/promotion/open"), Duration::from_secs(5), false).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        caller.run(HookType::ConfirmPromotion, &gate_hook, &target(CanaryPhase::Progressing)).await,
        HookOutcome::Succeeded
    );
    // Other gates and other canaries stay closed.
    assert!(!gates.is_open("test", "podinfo", Gate::Rollback));
    assert!(!gates.is_open("test", "other", Gate::Promotion));

    // A restarted controller reads the same gates.
    let reopened = GateStore::open_file(&file).unwrap();
    assert!(reopened.is_open("test", "podinfo", Gate::Promotion));

    let reply = client.send(post("/gates/test/podinfo/promotion/close"), Duration::from_secs(5), false).await.unwrap();
    assert_eq!(reply.status, 200);
    assert!(!GateStore::open_file(&file).unwrap().is_open("test", "podinfo", Gate::Promotion));

    let reply = client.send(post("/gates/test/podinfo/deploy/open"), Duration::from_secs(5), false).await.unwrap();
    assert_eq!(reply.status, 400);
    assert!(reply.body_excerpt(500).contains("unknown gate \\\"deploy\\\""), "{}", reply.body_excerpt(500));

    std::fs::write(&file, "not json").unwrap();
    let problem = GateStore::open_file(&file).err().unwrap().to_string();
    assert!(problem.contains("not a gate file"), "{problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_each_provider_type_in_its_format_filtered_by_severity() {
    let receiver = Receiver::start().await;
    let sender = AlertSender::new(Outbound::new());
    let provider = |kind: &str, path: &str| -> AlertProviderSpec {
        serde_json::from_value(serde_json::json!({"type": kind, "address": receiver.url(path), "channel": "deploys"}))
            .unwrap()
    };
    let message = |severity| AlertMessage {
        name: "podinfo",
        namespace: "test",
        severity,
        message: "Canary analysis failed, rollback",
        fields: vec![("Phase".into(), "Failed".into()), ("Revision".into(), "rev-2".into())],
    };
    for kind in ["slack", "msteams", "discord", "rocket", "gchat", "generic"] {
        let resolved = ResolvedProvider::from_spec(kind, &provider(kind, &format!("/alerts/{kind}")), None).unwrap();
        sender.send(&resolved, &message(AlertSeverity::Error)).await.unwrap();
    }
    let calls = receiver.calls();
    let body = |kind: &str| calls.iter().find(|c| c.path == format!("/alerts/{kind}")).unwrap().json();
    let slack = body("slack");
    assert_eq!(slack["channel"], "deploys");
    assert_eq!(slack["username"], "serin");
    assert_eq!(slack["attachments"][0]["color"], "danger");
    assert_eq!(slack["attachments"][0]["author_name"], "podinfo.test");
    assert_eq!(slack["attachments"][0]["fields"][0]["title"], "Phase");
    assert_eq!(body("rocket")["attachments"][0]["text"], "Canary analysis failed, rollback");
    let teams = body("msteams");
    assert_eq!(teams["@type"], "MessageCard");
    assert_eq!(teams["themeColor"], "FF0000");
    assert_eq!(teams["sections"][0]["facts"][1]["value"], "rev-2");
    let discord = body("discord");
    assert_eq!(discord["embeds"][0]["title"], "podinfo.test");
    assert_eq!(discord["embeds"][0]["description"], "Canary analysis failed, rollback");
    let gchat = body("gchat");
    assert_eq!(gchat["cards"][0]["header"]["title"], "podinfo.test");
    assert_eq!(
        gchat["cards"][0]["sections"][0]["widgets"][0]["textParagraph"]["text"],
        "Canary analysis failed, rollback"
    );
    let generic = body("generic");
    assert_eq!((generic["name"].as_str(), generic["severity"].as_str()), (Some("podinfo"), Some("error")));
    assert_eq!(generic["fields"]["Revision"], "rev-2");

    // Severity: a `warn` alert takes warnings and errors, not info.
    receiver.clear();
    let alerts: Vec<CanaryAlert> = serde_json::from_value(serde_json::json!([
        {"name": "all", "severity": "info", "providerRef": {"name": "all"}},
        {"name": "warnings", "severity": "warn", "providerRef": {"name": "warnings"}},
        {"name": "errors", "severity": "error", "providerRef": {"name": "errors"}},
    ]))
    .unwrap();
    let resolve = |alert: &CanaryAlert| {
        let secret: BTreeMap<String, String> =
            [("address".into(), receiver.url(&format!("/to/{}", alert.name))), ("token".into(), "s3cret".into())]
                .into();
        ResolvedProvider::from_spec(&alert.name, &provider("generic", "/unused"), Some(&secret))
    };
    for severity in [AlertSeverity::Info, AlertSeverity::Warn, AlertSeverity::Error] {
        assert!(sender.send_all(&alerts, &message(severity), resolve).await.is_empty());
    }
    let mut got: Vec<(String, String)> =
        receiver.calls().iter().map(|c| (c.path.clone(), c.json()["severity"].as_str().unwrap().to_string())).collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("/to/all", "error"),
            ("/to/all", "info"),
            ("/to/all", "warn"),
            ("/to/errors", "error"),
            ("/to/warnings", "error"),
            ("/to/warnings", "warn")
        ]
        .map(|(p, s)| (p.to_string(), s.to_string()))
    );
    assert!(receiver.calls().iter().all(|c| c.header("authorization") == Some("Bearer s3cret")));

    // A receiver that refuses is reported with its answer; a provider without an address is named.
    let refusing = ResolvedProvider::from_spec("x", &provider("slack", "/fail"), None).unwrap();
    let problem = sender.send(&refusing, &message(AlertSeverity::Error)).await.unwrap_err();
    assert_eq!(problem.label(), "bad_status");
    let problem = problem.to_string();
    assert!(problem.contains("500") && problem.contains("load test failed"), "{problem}");
    let no_address: AlertProviderSpec =
        serde_json::from_value(serde_json::json!({"type": "slack", "secretRef": {"name": "slack"}})).unwrap();
    let problem = ResolvedProvider::from_spec("on-call", &no_address, Some(&BTreeMap::new())).unwrap_err();
    assert!(problem.to_string().contains("AlertProvider on-call: no address"), "{problem}");
}

fn alert_through(proxy: &str, address: String) -> AlertProviderSpec {
    serde_json::from_value(serde_json::json!({"type": "generic", "address": address, "proxy": proxy})).unwrap()
}

fn rollback_alert() -> AlertMessage<'static> {
    AlertMessage {
        name: "podinfo",
        namespace: "test",
        severity: AlertSeverity::Error,
        message: "Canary analysis failed, rollback",
        fields: vec![("Phase".into(), "Failed".into())],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_go_through_an_authenticating_http_proxy_and_its_refusals_are_named() {
    let receiver = Receiver::start().await;
    let proxy = tinyproxy::start(Some(("alerts", "proxy-pass")));
    let sender = AlertSender::new(Outbound::new());

    let through =
        ResolvedProvider::from_spec("on-call", &alert_through(&proxy.url(), receiver.url("/p")), None).unwrap();
    sender.send(&through, &rollback_alert()).await.unwrap();
    sender.send(&through, &rollback_alert()).await.unwrap();
    let calls = receiver.calls();
    assert_eq!(calls.len(), 2);
    // tinyproxy forwarded them: it adds its `Via` and keeps the proxy's credentials to itself.
    assert!(calls[0].header("via").is_some_and(|via| via.contains("tinyproxy")), "{:?}", calls[0].headers);
    assert_eq!(calls[0].header("proxy-authorization"), None);
    assert_eq!(calls[0].json()["message"], "Canary analysis failed, rollback");
    let log = proxy.log();
    assert_eq!(log.matches(&format!("POST {} ", receiver.url("/p"))).count(), 2, "{log}");

    // Wrong credentials: the proxy refuses, and the error names the provider and the field.
    let wrong = alert_through(&proxy.url_with("alerts", "not-the-password"), receiver.url("/p"));
    let error = sender
        .send(&ResolvedProvider::from_spec("on-call", &wrong, None).unwrap(), &rollback_alert())
        .await
        .unwrap_err();
    assert_eq!(error.label(), "proxy_auth");
    let text = error.to_string();
    assert!(text.starts_with("AlertProvider on-call: spec.proxy: "), "{text}");
    assert!(text.contains(&format!("the proxy http://127.0.0.1:{}", proxy.port)), "{text}");
    assert!(text.contains("check the user and password"), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");

    // No credentials at all: the proxy asks for them.
    let anonymous = alert_through(&format!("http://127.0.0.1:{}", proxy.port), receiver.url("/p"));
    let error = sender
        .send(&ResolvedProvider::from_spec("on-call", &anonymous, None).unwrap(), &rollback_alert())
        .await
        .unwrap_err();
    assert_eq!(error.label(), "proxy_auth");
    assert!(error.to_string().contains("407") && error.to_string().contains("user:password@"), "{error}");
    assert_eq!(receiver.calls().len(), 2, "a refused alert never reaches the receiver");

    // Nothing listens at the proxy's address.
    let closed = format!("http://alerts:proxy-pass@127.0.0.1:{}", support::free_port());
    let unreachable =
        ResolvedProvider::from_spec("on-call", &alert_through(&closed, receiver.url("/p")), None).unwrap();
    let error = sender.send(&unreachable, &rollback_alert()).await.unwrap_err();
    assert_eq!(error.label(), "proxy_unreachable");
    let text = error.to_string();
    assert!(text.starts_with("AlertProvider on-call: spec.proxy: "), "{text}");
    assert!(text.contains("could not go through the proxy") && text.to_lowercase().contains("connect"), "{text}");
    assert!(!text.contains("proxy-pass"), "{text}");

    // A malformed proxy URL is refused when the provider is resolved, without its password.
    for bad in ["htp://alerts:proxy-pass@127.0.0.1:3128", "http://alerts:proxy-pass@/", "127.0.0.1:3128"] {
        let problem = ResolvedProvider::from_spec("on-call", &alert_through(bad, receiver.url("/p")), None)
            .unwrap_err()
            .to_string();
        assert!(problem.starts_with("AlertProvider on-call: spec.proxy "), "{problem}");
        assert!(problem.contains("http://[user:password@]host:port") && !problem.contains("proxy-pass"), "{problem}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_go_through_an_open_http_proxy_only_when_their_provider_names_it() {
    let receiver = Receiver::start().await;
    let proxy = tinyproxy::start(None);
    let sender = AlertSender::new(Outbound::new());
    let alerts: Vec<CanaryAlert> = serde_json::from_value(serde_json::json!([
        {"name": "proxied", "severity": "info", "providerRef": {"name": "proxied"}},
        {"name": "direct", "severity": "info", "providerRef": {"name": "direct"}},
    ]))
    .unwrap();
    let resolve = |alert: &CanaryAlert| {
        let mut spec = alert_through(&proxy.url(), receiver.url(&format!("/{}", alert.name)));
        if alert.name == "direct" {
            spec.proxy = None;
        }
        ResolvedProvider::from_spec(&alert.name, &spec, None)
    };
    let problems = sender.send_all(&alerts, &rollback_alert(), resolve).await;
    assert!(problems.is_empty(), "{problems:?}");
    let calls = receiver.calls();
    let via = |path: &str| calls.iter().find(|c| c.path == path).unwrap().header("via").map(str::to_string);
    assert!(via("/proxied").is_some_and(|via| via.contains("tinyproxy")), "{calls:?}");
    assert_eq!(via("/direct"), None);
    assert!(proxy.log().contains(&format!("POST {} ", receiver.url("/proxied"))), "{}", proxy.log());
    assert!(!proxy.log().contains("/direct"), "{}", proxy.log());
}
