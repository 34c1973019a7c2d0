//! Leader election over a coordination.k8s.io Lease, so that with several replicas exactly one
//! reconciles. A replica takes the Lease when it is free or has not been renewed within its
//! duration, renews it while it works, and stops working the moment a renewal fails: two leaders
//! must never step the same Canary. Every write carries the Lease's resourceVersion, so two replicas
//! racing for it cannot both win.

use std::future::Future;
use std::time::Duration;

use ::kube::Client;
use ::kube::api::{Api, PostParams};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

use super::error::KubeError;

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's name (its pod name).
    pub identity: String,
    /// How long a Lease not renewed stays its holder's.
    pub duration: Duration,
    /// How often the holder renews it; well under `duration`.
    pub renew_every: Duration,
}

/// Waits to hold the Lease, then runs `work` while renewing it. Returns an error when leadership
/// is lost (the caller should exit, and come back as a candidate); `work` is dropped first.
pub async fn lead<F: Future<Output = ()>>(client: &Client, config: &LeaseConfig, work: F) -> Result<(), KubeError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    loop {
        if try_acquire(&api, config).await? {
            break;
        }
        tokio::time::sleep(config.renew_every).await;
    }
    tracing::info!(lease = %config.name, identity = %config.identity, "leading");
    let renewing = async {
        loop {
            tokio::time::sleep(config.renew_every).await;
            if !try_acquire(&api, config).await? {
                return Err(KubeError::LostLease { lease: format!("{}/{}", config.namespace, config.name) });
            }
        }
    };
    tokio::select! {
        () = work => Ok(()),
        lost = renewing => lost,
    }
}

/// Takes or renews the Lease; `false` while another live holder has it.
async fn try_acquire(api: &Api<Lease>, config: &LeaseConfig) -> Result<bool, KubeError> {
    let object = format!("Lease {}/{}", config.namespace, config.name);
    let now = Timestamp::now();
    let current = api.get_opt(&config.name).await.map_err(KubeError::api("reading", object.clone()))?;
    let Some(mut lease) = current else {
        let lease = Lease {
            metadata: ObjectMeta { name: Some(config.name.clone()), ..Default::default() },
            spec: Some(spec(config, now, now, 0)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            // Another replica created it first.
            Err(::kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(source) => Err(KubeError::Api { action: "creating", object, source }),
        };
    };
    let held = lease.spec.clone().unwrap_or_default();
    let holder = held.holder_identity.clone().unwrap_or_default();
    let mine = holder == config.identity;
    let renewed = held.renew_time.as_ref().map(|t| t.0).unwrap_or(Timestamp::UNIX_EPOCH);
    let lasts = Duration::from_secs(u64::try_from(held.lease_duration_seconds.unwrap_or(0)).unwrap_or(0));
    let expired = now.duration_since(renewed).unsigned_abs() > lasts;
    if !mine && !expired {
        return Ok(false);
    }
    let acquired = if mine { held.acquire_time.map_or(now, |t| t.0) } else { now };
    let transitions = held.lease_transitions.unwrap_or(0) + i32::from(!mine);
    lease.spec = Some(spec(config, acquired, now, transitions));
    match api.replace(&config.name, &PostParams::default(), &lease).await {
        Ok(_) => {
            if !mine {
                tracing::info!(lease = %config.name, previous = %holder, "took over an expired lease");
            }
            Ok(true)
        }
        // Someone else wrote it since we read it: not ours this round.
        Err(::kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(source) => Err(KubeError::Api { action: "renewing", object, source }),
    }
}

fn spec(config: &LeaseConfig, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(i32::try_from(config.duration.as_secs()).unwrap_or(i32::MAX)),
        acquire_time: Some(MicroTime(acquired)),
        renew_time: Some(MicroTime(renewed)),
        lease_transitions: Some(transitions),
        ..Default::default()
    }
}
