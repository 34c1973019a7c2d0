//! Operator requests that arrive on the controller's HTTP API while it runs in a cluster.
//!
//! Nothing unauthenticated may change a rollout, and who may is RBAC's to say, as for the
//! annotation itself: a request carries a bearer token, the Kubernetes API says whose it is
//! (TokenReview) and whether that user may patch the Canary (SubjectAccessReview), and only then
//! does the controller write the request into the Canary's `serin.dev/request` annotation. From
//! there it takes the one path every request takes: acted on once, the outcome in the status.

use std::sync::Arc;

use ::kube::api::{Api, Patch, PatchParams, PostParams};
use ::kube::runtime::reflector::ObjectRef;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use serin_crds::canary::Canary;
use serin_crds::operator_request::{ANNOTATION, OperatorRequest, pending};

use super::{Context, FIELD_MANAGER};

/// The permission a request needs: the same as writing the annotation by hand.
const VERB: &str = "patch";

/// Takes operator requests for the Canaries of one controller.
pub struct ClusterRequests {
    pub context: Arc<Context>,
}

/// A request written into the Canary's annotation.
#[derive(Debug)]
pub struct Submitted {
    /// Who asked, as the Kubernetes API named the token's owner.
    pub user: String,
}

/// Why a request was not written, and whose move it is.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(
        "no bearer token: in a cluster an operator request carries one (Authorization: Bearer ...; `kubectl create token ACCOUNT` makes one), or goes through the {ANNOTATION} annotation"
    )]
    NoToken,
    #[error("the Kubernetes API did not accept the token{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    BadToken { reason: Option<String> },
    #[error("{user} may not {VERB} canaries.serin.dev {name:?} in namespace {namespace:?}{}; grant it with a Role, as for the annotation", reason.as_deref().filter(|r| !r.is_empty()).map(|r| format!(" ({r})")).unwrap_or_default())]
    Forbidden { user: String, namespace: String, name: String, reason: Option<String> },
    #[error("no Canary {namespace}/{name} handled by this controller")]
    UnknownCanary { namespace: String, name: String },
    #[error(
        "request {id:?} ({action}) on {namespace}/{name} is not acted on yet; send this one when status.lastHandledRequest shows it"
    )]
    Pending { namespace: String, name: String, id: String, action: String },
    #[error("request id {id:?} was already handled for {namespace}/{name}; a new request needs a new id")]
    AlreadyHandled { namespace: String, name: String, id: String },
    #[error("the Canary {namespace}/{name} changed while the request was written; send it again")]
    Raced { namespace: String, name: String },
    #[error("the Kubernetes API failed while {doing}: {source}")]
    Unavailable { doing: &'static str, source: ::kube::Error },
}

impl Refused {
    /// The HTTP status that says whose move it is.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            Refused::NoToken | Refused::BadToken { .. } => StatusCode::UNAUTHORIZED,
            Refused::Forbidden { .. } => StatusCode::FORBIDDEN,
            Refused::UnknownCanary { .. } => StatusCode::NOT_FOUND,
            Refused::Pending { .. } | Refused::AlreadyHandled { .. } | Refused::Raced { .. } => StatusCode::CONFLICT,
            Refused::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl ClusterRequests {
    /// Checks who sent `token` and whether they may steer the Canary, then writes `request` into
    /// its annotation.
    pub async fn submit(
        &self,
        token: Option<&str>,
        namespace: &str,
        name: &str,
        request: &OperatorRequest,
    ) -> Result<Submitted, Refused> {
        let token = token.filter(|t| !t.is_empty()).ok_or(Refused::NoToken)?;
        // Whether the Canary is ours is checked after the token, so that the API tells nobody
        // unauthenticated which Canaries exist.
        let user = self.authenticate(token).await?;
        self.authorize(&user, namespace, name).await?;
        let known = self.context.canaries.get().and_then(|s| s.get(&ObjectRef::new(name).within(namespace)));
        if known.is_none() {
            return Err(Refused::UnknownCanary { namespace: namespace.into(), name: name.into() });
        }
        self.write(namespace, name, request).await?;
        Ok(Submitted { user: user.username.unwrap_or_default() })
    }

    async fn authenticate(&self, token: &str) -> Result<k8s_openapi::api::authentication::v1::UserInfo, Refused> {
        let review =
            TokenReview { spec: TokenReviewSpec { token: token.to_string(), audiences: None }, ..Default::default() };
        let reviewed = Api::<TokenReview>::all(self.context.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|source| Refused::Unavailable { doing: "reviewing the token", source })?;
        let status = reviewed.status.unwrap_or_default();
        match (status.authenticated, status.user) {
            (Some(true), Some(user)) => Ok(user),
            _ => Err(Refused::BadToken { reason: status.error }),
        }
    }

    async fn authorize(
        &self,
        user: &k8s_openapi::api::authentication::v1::UserInfo,
        namespace: &str,
        name: &str,
    ) -> Result<(), Refused> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username.clone(),
                groups: user.groups.clone(),
                uid: user.uid.clone(),
                extra: user.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    group: Some("serin.dev".into()),
                    resource: Some("canaries".into()),
                    verb: Some(VERB.into()),
                    namespace: Some(namespace.into()),
                    name: Some(name.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let reviewed = Api::<SubjectAccessReview>::all(self.context.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|source| Refused::Unavailable { doing: "reviewing the permission", source })?;
        let status = reviewed.status.unwrap_or_default();
        if status.allowed && !status.denied.unwrap_or(false) {
            return Ok(());
        }
        Err(Refused::Forbidden {
            user: user.username.clone().unwrap_or_default(),
            namespace: namespace.into(),
            name: name.into(),
            reason: status.reason,
        })
    }

    /// Writes the annotation unless a request not yet acted on holds it: one request at a time,
    /// so none is lost by being overwritten. The patch carries the resourceVersion read, so a
    /// request written meanwhile by someone else makes it fail rather than vanish.
    async fn write(&self, namespace: &str, name: &str, request: &OperatorRequest) -> Result<(), Refused> {
        let api = Api::<Canary>::namespaced(self.context.client.clone(), namespace);
        let canary = api.get(name).await.map_err(|source| match source {
            ::kube::Error::Api(status) if status.code == 404 => {
                Refused::UnknownCanary { namespace: namespace.into(), name: name.into() }
            }
            source => Refused::Unavailable { doing: "reading the Canary", source },
        })?;
        let handled = canary.status.as_ref().and_then(|s| s.last_handled_request.clone());
        if handled.as_deref() == Some(request.id.as_str()) {
            return Err(Refused::AlreadyHandled {
                namespace: namespace.into(),
                name: name.into(),
                id: request.id.clone(),
            });
        }
        let held = canary.metadata.annotations.as_ref().and_then(|a| a.get(ANNOTATION));
        if let Some(pending) = pending(held.map(String::as_str), handled.as_deref()) {
            return Err(Refused::Pending {
                namespace: namespace.into(),
                name: name.into(),
                id: pending.id,
                action: pending.action.to_string(),
            });
        }
        let patch = request.annotation_patch(canary.metadata.resource_version.as_deref());
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        api.patch(name, &params, &Patch::Merge(&patch)).await.map(drop).map_err(|source| match source {
            ::kube::Error::Api(status) if status.code == 409 => {
                Refused::Raced { namespace: namespace.into(), name: name.into() }
            }
            source => Refused::Unavailable { doing: "writing the request annotation", source },
        })
    }
}
