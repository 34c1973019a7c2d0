//! Calling a Canary's webhooks with Flagger's payload: a deadline per attempt, retries with backoff,
//! and 2xx as success. A failure carries the status and the start of the response body, which go
//! into the event.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::Full;
use serde::Serialize;
use serin_crds::canary::{CanaryWebhook, HookType};
use serin_crds::{CanaryPhase, duration};

use crate::engine::HookOutcome;
use crate::outbound::{Outbound, OutboundError, display_url};

/// Flagger's default per-attempt timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// First pause between attempts; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// The JSON body every webhook gets, field for field Flagger's `CanaryWebhookPayload`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HookPayload {
    pub name: String,
    pub namespace: String,
    pub phase: CanaryPhase,
    /// The revision under analysis.
    pub checksum: String,
    pub metadata: BTreeMap<String, String>,
}

/// The Canary a set of hooks belongs to.
#[derive(Debug, Clone)]
pub struct HookTarget<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub phase: CanaryPhase,
    pub checksum: &'a str,
}

#[derive(Clone)]
pub struct WebhookCaller {
    client: Outbound,
}

impl WebhookCaller {
    pub fn new(client: Outbound) -> WebhookCaller {
        WebhookCaller { client }
    }

    /// Runs every webhook of `kind` in order and stops at the first failure.
    pub async fn run(&self, kind: HookType, hooks: &[CanaryWebhook], target: &HookTarget<'_>) -> HookOutcome {
        for hook in hooks.iter().filter(|h| h.type_ == kind) {
            if let Err(error) = self.call(hook, target, BTreeMap::new()).await {
                return HookOutcome::Failed { hook: hook.name.clone(), message: error.to_string() };
            }
        }
        HookOutcome::Succeeded
    }

    /// Posts an event to every `event` webhook, as Flagger's event webhook does: the hook's metadata
    /// plus `eventMessage`, `eventType` and `timestamp` (milliseconds). Failures are returned for
    /// logging only; events never hold a rollout.
    /// Runs webhooks whose outcome changes nothing (post-rollout): a failure is logged, not returned.
    pub async fn run_and_log(&self, kind: HookType, hooks: &[CanaryWebhook], target: &HookTarget<'_>) {
        if let HookOutcome::Failed { hook, message } = self.run(kind, hooks, target).await {
            tracing::warn!(canary = %format!("{}/{}", target.namespace, target.name), %hook, %message, "{kind} webhook failed");
        }
    }

    /// Posts an event to the `event` webhooks, logging any that fail (fire and forget).
    pub async fn post_event_and_log(
        &self,
        hooks: &[CanaryWebhook],
        target: &HookTarget<'_>,
        event_type: &str,
        message: &str,
    ) {
        for problem in self.post_event(hooks, target, event_type, message).await {
            tracing::warn!(canary = %format!("{}/{}", target.namespace, target.name), %problem, "event webhook failed");
        }
    }

    pub async fn post_event(
        &self,
        hooks: &[CanaryWebhook],
        target: &HookTarget<'_>,
        event_type: &str,
        message: &str,
    ) -> Vec<WebhookError> {
        let mut problems = Vec::new();
        for hook in hooks.iter().filter(|h| h.type_ == HookType::Event) {
            let extra = BTreeMap::from([
                ("eventMessage".to_string(), message.to_string()),
                ("eventType".to_string(), event_type.to_string()),
                ("timestamp".to_string(), jiff::Timestamp::now().as_millisecond().to_string()),
            ]);
            if let Err(problem) = self.call(hook, target, extra).await {
                problems.push(WebhookError::Event { hook: hook.name.clone(), source: Box::new(problem) });
            }
        }
        problems
    }

    /// One webhook with its retries. `Err` says what the last attempt got.
    pub async fn call(
        &self,
        hook: &CanaryWebhook,
        target: &HookTarget<'_>,
        extra_metadata: BTreeMap<String, String>,
    ) -> Result<(), WebhookError> {
        let timeout = match hook.timeout.as_deref() {
            Some(text) => duration::parse(text)
                .map_err(|e| WebhookError::BadTimeout { timeout: text.to_string(), reason: e.to_string() })?,
            None => DEFAULT_TIMEOUT,
        };
        let mut metadata = hook.metadata.clone();
        metadata.extend(extra_metadata);
        let payload = HookPayload {
            name: target.name.to_string(),
            namespace: target.namespace.to_string(),
            phase: target.phase,
            checksum: target.checksum.to_string(),
            metadata,
        };
        let body = Bytes::from(serde_json::to_vec(&payload).expect("a payload serializes"));
        let attempts = 1 + hook.retries.unwrap_or(0).max(0) as u32;
        let mut backoff = FIRST_BACKOFF;
        let mut last = None;
        for attempt in 1..=attempts {
            let request = Request::post(&hook.url)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(body.clone()))
                .map_err(|e| WebhookError::BadUrl { url: display_url(&hook.url), reason: e.to_string() })?;
            match self.client.send(request, timeout, hook.disable_tls.unwrap_or(false)).await {
                Ok(reply) if reply.status.is_success() => return Ok(()),
                Ok(reply) => {
                    last = Some(WebhookError::BadStatus {
                        url: display_url(&hook.url),
                        status: reply.status,
                        body: reply.body_excerpt(300),
                    });
                }
                Err(error) => last = Some(WebhookError::Unreachable(error)),
            }
            if attempt < attempts {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        let last = last.expect("at least one attempt");
        Err(if attempts > 1 { WebhookError::GaveUp { last: Box::new(last), attempts } } else { last })
    }
}

/// Why a webhook failed; the message goes into the Canary's events.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("timeout {timeout:?}: {reason}")]
    BadTimeout { timeout: String, reason: String },
    #[error("url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("{url} answered {status}: {body}")]
    BadStatus { url: String, status: StatusCode, body: String },
    #[error(transparent)]
    Unreachable(OutboundError),
    #[error("{last} (after {attempts} attempts)")]
    GaveUp { last: Box<WebhookError>, attempts: u32 },
    /// An `event` webhook's failure, named.
    #[error("event webhook {hook}: {source}")]
    Event { hook: String, source: Box<WebhookError> },
}

impl WebhookError {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            WebhookError::BadTimeout { .. } | WebhookError::BadUrl { .. } => "bad_config",
            WebhookError::BadStatus { .. } => "bad_status",
            WebhookError::Unreachable(error) => error.label(),
            WebhookError::GaveUp { last, .. } => last.label(),
            WebhookError::Event { source, .. } => source.label(),
        }
    }
}
