//! Where the plugin reads rollouts from: a cluster's Kubernetes API (the kubeconfig kubectl uses),
//! or a standalone controller's API (`--standalone URL`, or `SERIN_STANDALONE`). Every command but
//! the offline ones goes through here, so each works the same against both.

use kube::Client;
use serin_crds::canary::Canary;

use crate::standalone::{ApiError, Standalone};
use crate::status::Snapshot;

pub enum Source {
    Cluster(Client),
    Standalone(Box<Standalone>),
}

impl Source {
    /// The standalone controller at `standalone`, or else the cluster of the current context.
    pub async fn connect(standalone: Option<&str>) -> anyhow::Result<Source> {
        if let Some(url) = standalone {
            return Ok(Source::Standalone(Box::new(Standalone::new(url)?)));
        }
        let client = Client::try_default().await.map_err(|e| {
            anyhow::anyhow!(
                "no Kubernetes API to talk to (check KUBECONFIG or the current context; for a standalone controller give --standalone URL): {e}"
            )
        })?;
        Ok(Source::Cluster(client))
    }

    /// The namespace a command means without `-n`: the context's, or `default` (standalone
    /// manifests without a namespace are in `default`).
    pub fn default_namespace(&self) -> String {
        match self {
            Source::Cluster(client) => client.default_namespace().to_string(),
            Source::Standalone(_) => "default".to_string(),
        }
    }

    /// One Canary by name, those of a namespace, or all (`namespace` None).
    pub async fn canaries(&self, namespace: Option<&str>, name: Option<&str>) -> anyhow::Result<Vec<Canary>> {
        match (name, namespace) {
            (Some(name), Some(namespace)) => {
                let found = self.canary(namespace, name).await?;
                Ok(vec![found.ok_or_else(|| anyhow::anyhow!("no Canary {namespace}/{name}"))?])
            }
            (Some(_), None) => anyhow::bail!("a Canary is named within one namespace"),
            (None, namespace) => match self {
                Source::Cluster(client) => crate::get::list(client, namespace).await,
                Source::Standalone(api) => Ok(api.canaries(namespace).await?),
            },
        }
    }

    pub async fn canary(&self, namespace: &str, name: &str) -> anyhow::Result<Option<Canary>> {
        match self {
            Source::Cluster(client) => {
                Ok(kube::Api::<Canary>::namespaced(client.clone(), namespace).get_opt(name).await?)
            }
            Source::Standalone(api) => Ok(api.canary(namespace, name).await?),
        }
    }

    /// What the status view shows of one Canary.
    pub async fn snapshot(&self, namespace: &str, name: &str) -> anyhow::Result<Snapshot> {
        let canary =
            self.canary(namespace, name).await?.ok_or_else(|| anyhow::anyhow!("no Canary {namespace}/{name}"))?;
        match self {
            Source::Cluster(client) => crate::status::cluster_snapshot(client, namespace, canary).await,
            Source::Standalone(api) => {
                let target = api.target(namespace, name).await?;
                let events = api.events(namespace, name).await?;
                let recent = events.iter().rev().take(5).rev().map(|e| (e.reason.clone(), e.message.clone()));
                Ok(Snapshot {
                    canary,
                    primary_runs: target.primary.iter().map(|g| g.describe()).collect(),
                    canary_runs: vec![target.canary.describe()],
                    events: recent.collect(),
                })
            }
        }
    }

    /// The revision id of the Canary's target as it is now, as the controller computes it.
    pub async fn revision(&self, namespace: &str, canary: &Canary) -> anyhow::Result<String> {
        match self {
            Source::Cluster(client) => crate::revision::current(client, namespace, canary).await,
            Source::Standalone(api) => {
                let name = canary.metadata.name.as_deref().unwrap_or_default();
                Ok(api.target(namespace, name).await?.revision)
            }
        }
    }
}

/// Whether asking again may help: the API unreachable, overloaded or failing, not a refusal.
pub fn transient(problem: &anyhow::Error) -> bool {
    if let Some(error) = problem.downcast_ref::<kube::Error>() {
        return match error {
            kube::Error::Api(status) => matches!(status.code, 408 | 429 | 500..=599),
            _ => true,
        };
    }
    problem.downcast_ref::<ApiError>().is_some_and(ApiError::transient)
}
