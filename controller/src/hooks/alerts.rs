//! Alerts through AlertProviders: Slack, Microsoft Teams, Discord, Rocket.Chat, Google Chat and a
//! generic JSON webhook, each in the payload its receiver expects, filtered by each Canary alert's
//! minimum severity, sent directly or through the provider's HTTP proxy.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};
use serin_crds::CanaryStatus;
use serin_crds::alert_provider::{AlertProviderSpec, AlertProviderType};
use serin_crds::canary::{AlertSeverity, CanaryAlert};

use crate::analysis::{Catalog, ObjectKey};

use crate::outbound::{HttpProxy, Outbound, OutboundError, ProxyUrlError, display_url, without_credentials};

const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// One alert about one Canary.
#[derive(Debug, Clone)]
pub struct AlertMessage<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub severity: AlertSeverity,
    pub message: &'a str,
    /// Extra facts shown with the message (phase, weight, revision...).
    pub fields: Vec<(String, String)>,
}

/// An AlertProvider resolved for sending: its spec plus the secret's `address` and `token`.
#[derive(Debug, Clone)]
pub struct ResolvedProvider {
    /// The AlertProvider's name, for messages.
    pub name: String,
    pub spec: AlertProviderSpec,
    pub address: String,
    pub token: Option<String>,
    /// `spec.proxy`, checked.
    pub proxy: Option<HttpProxy>,
}

impl ResolvedProvider {
    /// `secret` is the provider's secret data when it has a `secretRef`.
    pub fn from_spec(
        name: &str,
        spec: &AlertProviderSpec,
        secret: Option<&BTreeMap<String, String>>,
    ) -> Result<ResolvedProvider, AlertError> {
        let proxy = match spec.proxy.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            None => None,
            Some(text) => Some(HttpProxy::parse(text).map_err(|source| AlertError::BadProxy {
                provider: name.to_string(),
                proxy: without_credentials(text),
                source,
            })?),
        };
        let address = secret
            .and_then(|s| s.get("address"))
            .map(|a| a.trim().to_string())
            .or_else(|| spec.address.clone())
            .ok_or_else(|| AlertError::NoAddress { provider: name.to_string() })?;
        let token = secret.and_then(|s| s.get("token")).map(|t| t.trim().to_string());
        Ok(ResolvedProvider { name: name.to_string(), spec: spec.clone(), address, token, proxy })
    }
}

/// Why an alert was not sent. Each names the AlertProvider (or the Canary's alert) and what to check.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("AlertProvider {provider}: no address (set spec.address or `address` in its secret)")]
    NoAddress { provider: String },
    #[error(
        "AlertProvider {provider}: spec.proxy {proxy:?} is not a proxy URL: {source}; write it as http://[user:password@]host:port"
    )]
    BadProxy { provider: String, proxy: String, source: ProxyUrlError },
    #[error("AlertProvider {provider}: address {address:?}: {reason}; set a full http(s) URL")]
    BadAddress { provider: String, address: String, reason: String },
    #[error("AlertProvider {provider}: {source}")]
    Unreachable { provider: String, source: OutboundError },
    #[error("AlertProvider {provider}: spec.proxy: {source}")]
    Proxy { provider: String, source: OutboundError },
    #[error("AlertProvider {provider}: {address} answered {status}: {body}")]
    BadStatus { provider: String, address: String, status: StatusCode, body: String },
    #[error("AlertProvider {provider} not found")]
    NotFound { provider: String },
    #[error("AlertProvider {provider}: secret {secret:?} not found")]
    SecretNotFound { provider: String, secret: String },
    /// The Canary's alert names a provider that could not be resolved.
    #[error("alert {alert}: {reason}")]
    Unresolved { alert: String, reason: String },
    #[error("alert {alert}: {source}")]
    NotSent { alert: String, source: Box<AlertError> },
}

impl AlertError {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            AlertError::NoAddress { .. }
            | AlertError::BadProxy { .. }
            | AlertError::BadAddress { .. }
            | AlertError::Unresolved { .. } => "bad_config",
            AlertError::NotFound { .. } | AlertError::SecretNotFound { .. } => "not_found",
            AlertError::Unreachable { source, .. } | AlertError::Proxy { source, .. } => source.label(),
            AlertError::BadStatus { .. } => "bad_status",
            AlertError::NotSent { source, .. } => source.label(),
        }
    }
}

impl<'a> AlertMessage<'a> {
    /// A message about a Canary with its status' phase, weight and failed checks as fields.
    pub fn about(
        name: &'a str,
        namespace: &'a str,
        status: &CanaryStatus,
        severity: AlertSeverity,
        message: &'a str,
    ) -> AlertMessage<'a> {
        AlertMessage {
            name,
            namespace,
            severity,
            message,
            fields: vec![
                ("Phase".into(), status.phase.to_string()),
                ("Canary weight".into(), format!("{}%", status.canary_weight)),
                ("Failed checks".into(), status.failed_checks.to_string()),
            ],
        }
    }
}

/// The AlertProviders a platform knows, by (namespace, name), and the secrets they may name.
#[derive(Clone, Copy)]
pub struct AlertDirectory<'a> {
    pub providers: &'a BTreeMap<ObjectKey, (String, AlertProviderSpec)>,
    pub catalog: &'a Catalog,
}

impl AlertDirectory<'_> {
    /// The provider a Canary's alert names (in the Canary's namespace unless it says otherwise),
    /// with its secret's address and token.
    pub fn resolve(&self, alert: &CanaryAlert, canary_namespace: &str) -> Result<ResolvedProvider, AlertError> {
        let namespace = alert.provider_ref.namespace.clone().unwrap_or_else(|| canary_namespace.to_string());
        let provider = format!("{namespace}/{}", alert.provider_ref.name);
        let (name, spec) = self
            .providers
            .get(&(namespace.clone(), alert.provider_ref.name.clone()))
            .ok_or_else(|| AlertError::NotFound { provider: provider.clone() })?;
        let secret =
            match &spec.secret_ref {
                Some(secret) => Some(self.catalog.secret(&namespace, &secret.name).ok_or_else(|| {
                    AlertError::SecretNotFound { provider: name.clone(), secret: secret.name.clone() }
                })?),
                None => None,
            };
        ResolvedProvider::from_spec(name, spec, secret)
    }
}

/// Whether an alert with minimum severity `wanted` takes a message of `severity`.
pub fn admits(wanted: AlertSeverity, severity: AlertSeverity) -> bool {
    severity >= wanted
}

#[derive(Clone)]
pub struct AlertSender {
    client: Outbound,
}

impl AlertSender {
    pub fn new(client: Outbound) -> AlertSender {
        AlertSender { client }
    }

    /// Sends `message` through every alert of the Canary whose severity admits it; `provider_of`
    /// resolves an alert's provider. Returns one problem per alert that could not be sent.
    pub async fn send_all<E: std::fmt::Display>(
        &self,
        alerts: &[CanaryAlert],
        message: &AlertMessage<'_>,
        provider_of: impl Fn(&CanaryAlert) -> Result<ResolvedProvider, E>,
    ) -> Vec<AlertError> {
        let mut problems = Vec::new();
        for alert in alerts.iter().filter(|a| admits(a.severity, message.severity)) {
            let sent = match provider_of(alert) {
                Ok(provider) => self.send(&provider, message).await,
                Err(problem) => {
                    problems.push(AlertError::Unresolved { alert: alert.name.clone(), reason: problem.to_string() });
                    continue;
                }
            };
            if let Err(problem) = sent {
                problems.push(AlertError::NotSent { alert: alert.name.clone(), source: Box::new(problem) });
            }
        }
        problems
    }

    /// [`AlertSender::send_all`] with providers from `directory`, logging each alert not sent.
    pub async fn send_all_and_log(
        &self,
        alerts: &[CanaryAlert],
        message: &AlertMessage<'_>,
        directory: AlertDirectory<'_>,
    ) {
        let resolve = |alert: &CanaryAlert| directory.resolve(alert, message.namespace);
        for problem in self.send_all(alerts, message, resolve).await {
            let canary = format!("{}/{}", message.namespace, message.name);
            tracing::warn!(%canary, %problem, label = problem.label(), "alert not sent");
        }
    }

    /// Sends one alert, through the provider's proxy when it has one.
    pub async fn send(&self, provider: &ResolvedProvider, message: &AlertMessage<'_>) -> Result<(), AlertError> {
        let body = payload(&provider.spec, message);
        let mut request = Request::post(&provider.address).header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = &provider.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(Full::new(Bytes::from(body.to_string()))).map_err(|e| AlertError::BadAddress {
            provider: provider.name.clone(),
            address: display_url(&provider.address),
            reason: e.to_string(),
        })?;
        let provider_name = || provider.name.clone();
        let reply = match &provider.proxy {
            None => self
                .client
                .send(request, SEND_TIMEOUT, false)
                .await
                .map_err(|source| AlertError::Unreachable { provider: provider_name(), source })?,
            Some(proxy) => self.client.send_through(request, SEND_TIMEOUT, false, proxy).await.map_err(|source| {
                if source.is_proxy() {
                    AlertError::Proxy { provider: provider_name(), source }
                } else {
                    AlertError::Unreachable { provider: provider_name(), source }
                }
            })?,
        };
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(AlertError::BadStatus {
                provider: provider_name(),
                address: display_url(&provider.address),
                status: reply.status,
                body: reply.body_excerpt(300),
            })
        }
    }
}

/// The body each receiver expects.
pub fn payload(spec: &AlertProviderSpec, message: &AlertMessage<'_>) -> Value {
    let title = format!("{}.{}", message.name, message.namespace);
    let username = spec.username.clone().unwrap_or_else(|| "serin".to_string());
    let channel = spec.channel.clone().unwrap_or_else(|| "general".to_string());
    let severity = match message.severity {
        AlertSeverity::Info => "info",
        AlertSeverity::Warn => "warn",
        AlertSeverity::Error => "error",
    };
    match spec.type_ {
        // Rocket.Chat's incoming webhooks take Slack's format.
        AlertProviderType::Slack | AlertProviderType::Rocket => {
            let color = match message.severity {
                AlertSeverity::Info => "good",
                AlertSeverity::Warn => "warning",
                AlertSeverity::Error => "danger",
            };
            let fields: Vec<Value> =
                message.fields.iter().map(|(k, v)| json!({"title": k, "value": v, "short": true})).collect();
            json!({
                "channel": channel,
                "username": username,
                "text": format!("{title}: {}", message.message),
                "attachments": [{
                    "color": color,
                    "author_name": title,
                    "text": message.message,
                    "fields": fields,
                    "mrkdwn_in": ["text"],
                }],
            })
        }
        AlertProviderType::Msteams => {
            let color = match message.severity {
                AlertSeverity::Info => "0076D7",
                AlertSeverity::Warn => "FFA500",
                AlertSeverity::Error => "FF0000",
            };
            let facts: Vec<Value> = message.fields.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
            json!({
                "@type": "MessageCard",
                "@context": "http://schema.org/extensions",
                "themeColor": color,
                "summary": title,
                "sections": [{"activityTitle": title, "activitySubtitle": message.message, "facts": facts}],
            })
        }
        AlertProviderType::Discord => {
            let color = match message.severity {
                AlertSeverity::Info => 0x2e_b8_86,
                AlertSeverity::Warn => 0xf2_c7_44,
                AlertSeverity::Error => 0xd0_02_1b,
            };
            let fields: Vec<Value> =
                message.fields.iter().map(|(k, v)| json!({"name": k, "value": v, "inline": true})).collect();
            json!({
                "username": username,
                "embeds": [{"title": title, "description": message.message, "color": color, "fields": fields}],
            })
        }
        AlertProviderType::Gchat => {
            let mut widgets = vec![json!({"textParagraph": {"text": message.message}})];
            widgets.extend(message.fields.iter().map(|(k, v)| json!({"keyValue": {"topLabel": k, "content": v}})));
            json!({
                "cards": [{
                    "header": {"title": title, "subtitle": format!("Serin ({severity})")},
                    "sections": [{"widgets": widgets}],
                }],
            })
        }
        AlertProviderType::Generic => {
            let fields: serde_json::Map<String, Value> =
                message.fields.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
            json!({
                "name": message.name,
                "namespace": message.namespace,
                "severity": severity,
                "message": message.message,
                "fields": fields,
                "timestamp": jiff::Timestamp::now().to_string(),
            })
        }
    }
}
