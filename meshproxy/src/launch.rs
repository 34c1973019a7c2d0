//! Putting a meshproxy together: the config store, the metrics, the admin API and the proxy
//! listener, wired to one another. The binary, the tests and anything embedding meshproxy start it
//! the same way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::access_log::AccessLog;
use crate::admin::{self, Admin, Exposure, Writes};
use crate::config::ProxyConfig;
use crate::metrics::ProxyMetrics;
use crate::proxy::{Limits, ProxyServer, Shared, Upstreams};
use crate::store::ConfigStore;

/// What a meshproxy is started with.
pub struct Launch {
    pub config: ProxyConfig,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub limits: Limits,
    pub connect_timeout: Duration,
    pub access_log: AccessLog,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Where the config comes from: a file or the admin API, or the cluster (which starts empty
    /// and not ready).
    pub source: ConfigSource,
    /// A listener for `/live`, `/ready` and `/metrics` only, reachable from other pods.
    pub observe: Option<SocketAddr>,
}

/// Where a meshproxy's config comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// The config given at launch, then the file watch and the admin API.
    Local,
    /// The cluster's objects: the launch config is ignored, and the admin API only reads.
    Cluster,
}

impl Launch {
    /// On ephemeral loopback ports with default limits, no TLS and no access log.
    pub fn local(config: ProxyConfig) -> Launch {
        Launch {
            config,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            limits: Limits::default(),
            connect_timeout: Duration::from_secs(2),
            access_log: AccessLog::Off,
            tls: None,
            source: ConfigSource::Local,
            observe: None,
        }
    }
}

/// A meshproxy serving.
pub struct Running {
    pub store: Arc<ConfigStore>,
    pub server: ProxyServer,
    pub admin: SocketAddr,
    pub observe: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot listen on {address} ({what}): {source}")]
    Listen { what: &'static str, address: SocketAddr, source: std::io::Error },
}

/// Checks the config, binds the admin API and the proxy listener, and serves both.
pub async fn start(launch: Launch) -> Result<Running, LaunchError> {
    let (store, writes) = match launch.source {
        ConfigSource::Local => (ConfigStore::new(launch.config)?, Writes::Allowed),
        ConfigSource::Cluster => (ConfigStore::waiting(), Writes::FromCluster),
    };
    let store = Arc::new(store);
    let metrics = Arc::new(ProxyMetrics::new(store.state.clone()));
    let api = Arc::new(Admin { store: store.clone(), metrics: metrics.clone(), writes });
    let admin = admin::start(launch.admin, api.clone()).await.map_err(|source| LaunchError::Listen {
        what: "admin",
        address: launch.admin,
        source,
    })?;
    let observe = match launch.observe {
        Some(address) => {
            Some(admin::serve(address, api, Exposure::Observe).await.map_err(|source| LaunchError::Listen {
                what: "metrics",
                address,
                source,
            })?)
        }
        None => None,
    };
    let shared = Arc::new(Shared {
        store: store.clone(),
        upstreams: Upstreams::new(launch.connect_timeout, store.state.clone()),
        metrics,
        limits: launch.limits,
        access_log: launch.access_log,
    });
    let server = ProxyServer::start(launch.listen, shared, launch.tls).await.map_err(|source| LaunchError::Listen {
        what: "proxy",
        address: launch.listen,
        source,
    })?;
    Ok(Running { store, server, admin, observe })
}
