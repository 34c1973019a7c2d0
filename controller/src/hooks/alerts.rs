//! Alerts through AlertProviders: Slack, Microsoft Teams, Discord, Rocket.Chat, Google Chat and a
//! generic JSON webhook, each in the payload its receiver expects, filtered by each Canary alert's
//! minimum severity.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::Full;
use serde_json::{Value, json};
use serin_crds::alert_provider::{AlertProviderSpec, AlertProviderType};
use serin_crds::canary::{AlertSeverity, CanaryAlert};

use crate::outbound::Outbound;

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
    pub spec: AlertProviderSpec,
    pub address: String,
    pub token: Option<String>,
}

impl ResolvedProvider {
    /// `secret` is the provider's secret data when it has a `secretRef`.
    pub fn resolve(
        name: &str,
        spec: &AlertProviderSpec,
        secret: Option<&std::collections::BTreeMap<String, String>>,
    ) -> Result<ResolvedProvider, String> {
        if spec.proxy.is_some() {
            return Err(format!("AlertProvider {name}: spec.proxy is not supported yet; remove it to send directly"));
        }
        let address = secret
            .and_then(|s| s.get("address"))
            .map(|a| a.trim().to_string())
            .or_else(|| spec.address.clone())
            .ok_or_else(|| format!("AlertProvider {name}: no address (set spec.address or `address` in its secret)"))?;
        let token = secret.and_then(|s| s.get("token")).map(|t| t.trim().to_string());
        Ok(ResolvedProvider { spec: spec.clone(), address, token })
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
    pub async fn send_all(
        &self,
        alerts: &[CanaryAlert],
        message: &AlertMessage<'_>,
        provider_of: impl Fn(&CanaryAlert) -> Result<ResolvedProvider, String>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for alert in alerts.iter().filter(|a| admits(a.severity, message.severity)) {
            let sent = match provider_of(alert) {
                Ok(provider) => self.send(&provider, message).await,
                Err(problem) => Err(problem),
            };
            if let Err(problem) = sent {
                problems.push(format!("alert {}: {problem}", alert.name));
            }
        }
        problems
    }

    pub async fn send(&self, provider: &ResolvedProvider, message: &AlertMessage<'_>) -> Result<(), String> {
        let body = payload(&provider.spec, message);
        let mut request = Request::post(&provider.address).header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = &provider.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| format!("address {:?}: {e}", provider.address))?;
        let reply = self.client.send(request, SEND_TIMEOUT, false).await.map_err(|e| e.to_string())?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(format!("{} answered {}: {}", provider.address, reply.status, reply.body_excerpt(300)))
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
