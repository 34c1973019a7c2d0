//! Operator requests: promote, abort, pause, resume, retry, and opening or closing a gate, without
//! editing the spec, so GitOps never reverts them.
//!
//! In a cluster a request is the annotation [`ANNOTATION`] on the Canary, holding one JSON object:
//!
//! ```text
//! kubectl annotate canary podinfo --overwrite serin.dev/request='{"id":"7f3a","action":"promote"}'
//! kubectl annotate canary podinfo --overwrite serin.dev/request='{"id":"7f3b","action":"open-gate","gate":"promotion"}'
//! ```
//!
//! Each request is acted on once: the controller records its `id` in `status.lastHandledRequest`
//! and says what it did in an event (`Promote`, `Paused`, `Resumed`, `Retry`, a rollback's `Synced`,
//! or `OperatorRequestIgnored` with the reason). A new request needs a new `id`. The same requests
//! go to the controller's API: `POST /canaries/{namespace}/{name}/{action}` (`.../open-gate/{gate}`,
//! `.../close-gate/{gate}`), with an optional `?id=`. In a cluster that API takes a request only with
//! `Authorization: Bearer TOKEN` from someone RBAC lets patch the Canary (checked with TokenReview
//! and SubjectAccessReview), and writes it into this annotation; a request not yet acted on is
//! never overwritten (409).

use serde::{Deserialize, Serialize};

/// The annotation that carries a request.
pub const ANNOTATION: &str = "serin.dev/request";

/// A gate a request can open or close, as the built-in gate webhooks name it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Gate {
    Rollout,
    TrafficIncrease,
    Promotion,
    Rollback,
}

impl Gate {
    pub const ALL: [Gate; 4] = [Gate::Rollout, Gate::TrafficIncrease, Gate::Promotion, Gate::Rollback];

    pub const fn as_str(self) -> &'static str {
        match self {
            Gate::Rollout => "rollout",
            Gate::TrafficIncrease => "traffic-increase",
            Gate::Promotion => "promotion",
            Gate::Rollback => "rollback",
        }
    }

    pub fn parse(text: &str) -> Option<Gate> {
        Gate::ALL.into_iter().find(|g| g.as_str() == text)
    }
}

/// The gates' names, as a request's `gate` holds them.
pub const GATES: [&str; 4] =
    [Gate::ALL[0].as_str(), Gate::ALL[1].as_str(), Gate::ALL[2].as_str(), Gate::ALL[3].as_str()];

/// One request, as the annotation holds it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperatorRequest {
    /// Unique per request: the controller acts once per id.
    pub id: String,
    pub action: RequestAction,
    /// For `open-gate` and `close-gate`: one of [`GATES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
}

/// What a request asks for.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RequestAction {
    /// Skip what is left of the analysis and gates, and promote now.
    Promote,
    /// Roll back now.
    Abort,
    /// Hold the current step (safety checks still act).
    Pause,
    Resume,
    /// Run a failed revision again.
    Retry,
    OpenGate,
    CloseGate,
}

impl RequestAction {
    pub const ALL: [RequestAction; 7] = [
        RequestAction::Promote,
        RequestAction::Abort,
        RequestAction::Pause,
        RequestAction::Resume,
        RequestAction::Retry,
        RequestAction::OpenGate,
        RequestAction::CloseGate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestAction::Promote => "promote",
            RequestAction::Abort => "abort",
            RequestAction::Pause => "pause",
            RequestAction::Resume => "resume",
            RequestAction::Retry => "retry",
            RequestAction::OpenGate => "open-gate",
            RequestAction::CloseGate => "close-gate",
        }
    }

    pub fn parse(text: &str) -> Option<RequestAction> {
        RequestAction::ALL.into_iter().find(|a| a.as_str() == text)
    }

    /// Whether the request is about a gate (and so needs `gate`).
    pub fn is_gate(self) -> bool {
        matches!(self, RequestAction::OpenGate | RequestAction::CloseGate)
    }
}

impl std::fmt::Display for RequestAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request was refused; each names the field at fault and what it may hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("annotation {ANNOTATION}: not a request object ({0}); write {{\"id\": \"...\", \"action\": \"promote\"}}")]
    NotJson(String),
    #[error("annotation {ANNOTATION}: id: must not be empty")]
    EmptyId,
    #[error("annotation {ANNOTATION}: action: {0:?} is not one of {actions}", actions = actions())]
    UnknownAction(String),
    #[error("annotation {ANNOTATION}: gate: {action} needs a gate, one of {gates}", gates = GATES.join(", "))]
    MissingGate { action: RequestAction },
    #[error("annotation {ANNOTATION}: gate: {0:?} is not one of {gates}", gates = GATES.join(", "))]
    UnknownGate(String),
    #[error("annotation {ANNOTATION}: gate: only open-gate and close-gate take a gate, not {action}")]
    UnexpectedGate { action: RequestAction },
}

fn actions() -> String {
    RequestAction::ALL.map(RequestAction::as_str).join(", ")
}

impl OperatorRequest {
    /// Builds a request, checking that the gate fits the action.
    pub fn new(id: &str, action: RequestAction, gate: Option<&str>) -> Result<OperatorRequest, RequestError> {
        let request = OperatorRequest { id: id.to_string(), action, gate: gate.map(str::to_string) };
        request.check()?;
        Ok(request)
    }

    /// Reads the annotation's value.
    pub fn parse(value: &str) -> Result<OperatorRequest, RequestError> {
        let raw: serde_json::Value = serde_json::from_str(value).map_err(|e| RequestError::NotJson(e.to_string()))?;
        if let Some(action) = raw.get("action").and_then(serde_json::Value::as_str)
            && RequestAction::parse(action).is_none()
        {
            return Err(RequestError::UnknownAction(action.to_string()));
        }
        let request: OperatorRequest = serde_json::from_value(raw).map_err(|e| RequestError::NotJson(e.to_string()))?;
        request.check()?;
        Ok(request)
    }

    fn check(&self) -> Result<(), RequestError> {
        if self.id.trim().is_empty() {
            return Err(RequestError::EmptyId);
        }
        match (&self.gate, self.action.is_gate()) {
            (None, true) => Err(RequestError::MissingGate { action: self.action }),
            (Some(gate), true) if !GATES.contains(&gate.as_str()) => Err(RequestError::UnknownGate(gate.clone())),
            (Some(_), false) => Err(RequestError::UnexpectedGate { action: self.action }),
            _ => Ok(()),
        }
    }

    /// The annotation's value for this request.
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).expect("a request serializes")
    }

    /// The merge patch that writes this request onto a Canary read at `resource_version`. The
    /// resourceVersion makes the write fail (409) rather than overwrite a request written since.
    pub fn annotation_patch(&self, resource_version: Option<&str>) -> serde_json::Value {
        serde_json::json!({"metadata": {
            "resourceVersion": resource_version,
            "annotations": {ANNOTATION: self.to_annotation()},
        }})
    }
}

/// The request a Canary's annotation holds that the controller has not acted on yet, given the
/// annotation's value and `status.lastHandledRequest`: whoever writes a request must not overwrite
/// it. A malformed value is not pending (the controller refused it, with an event saying why).
pub fn pending(annotation: Option<&str>, last_handled: Option<&str>) -> Option<OperatorRequest> {
    let request = OperatorRequest::parse(annotation?).ok()?;
    (last_handled != Some(request.id.as_str())).then_some(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_the_annotation() {
        for (action, gate) in [(RequestAction::Promote, None), (RequestAction::OpenGate, Some("promotion"))] {
            let request = OperatorRequest::new("r-1", action, gate).unwrap();
            assert_eq!(OperatorRequest::parse(&request.to_annotation()).unwrap(), request);
        }
        assert_eq!(OperatorRequest::parse(r#"{"id":"7f3a","action":"pause"}"#).unwrap().action, RequestAction::Pause);
    }

    #[test]
    fn bad_requests_name_the_field() {
        let cases = [
            ("promote", "not a request object"),
            (r#"{"id":"","action":"pause"}"#, "id: must not be empty"),
            (r#"{"id":"1","action":"promte"}"#, "action: \"promte\" is not one of promote, abort"),
            (r#"{"id":"1","action":"open-gate"}"#, "gate: open-gate needs a gate"),
            (r#"{"id":"1","action":"close-gate","gate":"merge"}"#, "gate: \"merge\" is not one of rollout"),
            (r#"{"id":"1","action":"abort","gate":"promotion"}"#, "only open-gate and close-gate take a gate"),
            (r#"{"id":"1","action":"abort","why":"x"}"#, "unknown field `why`"),
        ];
        for (value, expected) in cases {
            let error = OperatorRequest::parse(value).unwrap_err().to_string();
            assert!(error.starts_with("annotation serin.dev/request: "), "{error}");
            assert!(error.contains(expected), "{value}: {error}");
        }
    }
}
