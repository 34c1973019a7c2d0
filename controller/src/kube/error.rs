//! What can go wrong talking to the Kubernetes API, naming the object and what to do.

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("Canary {canary}: {kind} {namespace}/{name} not found; create it or fix spec.targetRef")]
    TargetNotFound { canary: String, kind: String, namespace: String, name: String },
    #[error("Canary {canary}: spec.targetRef.kind {kind:?} is not supported (use Deployment or DaemonSet)")]
    UnsupportedTarget { canary: String, kind: String },
    #[error("{action} {object}: {source}")]
    Api { action: &'static str, object: String, source: ::kube::Error },
    #[error("lost the lease {lease} to another replica; stopping so that only one reconciles")]
    LostLease { lease: String },
}

impl crate::reconcile::Labelled for KubeError {
    fn label(&self) -> &'static str {
        KubeError::label(self)
    }
}

impl KubeError {
    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            KubeError::TargetNotFound { .. } => "target_not_found",
            KubeError::UnsupportedTarget { .. } => "unsupported_target",
            KubeError::Api { .. } => "kubernetes_api",
            KubeError::LostLease { .. } => "lost_lease",
        }
    }

    pub fn api(action: &'static str, object: impl Into<String>) -> impl FnOnce(::kube::Error) -> KubeError {
        let object = object.into();
        move |source| KubeError::Api { action, object, source }
    }
}
