//! Measuring a Canary's metrics: the engine's `Question::Metrics`, answered.
//!
//! Each metric is a builtin (`request-success-rate`, `request-duration`), a MetricTemplate, or
//! Flagger's deprecated inline `query`. Builtins and inline queries go to Prometheus when one is
//! configured (the Canary's `metricsServer`, else the controller's), and builtins otherwise to the
//! embedded provider, which scrapes meshproxy itself. A metric with `compareToPrimary` is measured
//! twice over the same window: on the canary's backend and on the primary's.

pub mod builtin;
pub mod prometheus;
pub mod scrape;
pub mod template;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serin_crds::canary::CanaryMetric;
use serin_crds::metric_template::MetricTemplateSpec;
use serin_crds::{CanarySpec, duration};

use crate::engine::{MetricObservation, MetricValue};
use crate::outbound::Outbound;
use builtin::Builtin;
use prometheus::{Credentials, Prometheus, PrometheusError};
use scrape::{BackendKey, MeshproxyScraper};
use template::{QueryContext, render, uses_backend};

/// Flagger's default metric window.
const DEFAULT_INTERVAL: &str = "1m";

/// A namespaced object's name.
pub type ObjectKey = (String, String);

/// The MetricTemplates and secrets a platform knows, by (namespace, name).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub templates: BTreeMap<ObjectKey, MetricTemplateSpec>,
    /// Secret data by key, as mounted Kubernetes secrets hold it.
    pub secrets: BTreeMap<ObjectKey, BTreeMap<String, String>>,
}

impl Catalog {
    /// A secret by namespace and name; standalone secrets (namespace `*`) are seen from every namespace.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<&BTreeMap<String, String>> {
        self.secrets
            .get(&(namespace.to_string(), name.to_string()))
            .or_else(|| self.secrets.get(&("*".to_string(), name.to_string())))
    }
}

/// The Canary being measured.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub spec: &'a CanarySpec,
}

impl Subject<'_> {
    fn target(&self) -> &str {
        &self.spec.target_ref.name
    }

    fn backend(&self, which: Side) -> String {
        match which {
            Side::Canary => format!("{}-canary", self.target()),
            Side::Primary => format!("{}-primary", self.target()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Canary,
    Primary,
}

/// Where metrics come from, for every Canary of a controller.
#[derive(Clone)]
pub struct MetricSources {
    pub client: Outbound,
    /// The controller's Prometheus, for Canaries without `metricsServer`.
    pub prometheus: Option<String>,
    /// meshproxy's own metrics, used for builtins when there is no Prometheus.
    pub embedded: Option<Arc<MeshproxyScraper>>,
    /// Fewer requests than this in a window is no data, not a verdict.
    pub min_requests: u64,
    pub query_timeout: Duration,
}

impl MetricSources {
    /// Measures every metric of the Canary's analysis, in spec order.
    pub async fn measure(&self, subject: Subject<'_>, catalog: &Catalog) -> Vec<MetricObservation> {
        if let Some(scraper) = &self.embedded
            && self.uses_embedded(subject, catalog)
            && let Err(error) = scraper.scrape().await
        {
            tracing::warn!(%error, "scraping meshproxy before the analysis failed; using the samples kept");
        }
        let mut observations = Vec::new();
        for metric in &subject.spec.analysis.metrics {
            let value = self.measure_one(subject, catalog, metric, Side::Canary).await;
            let primary = match metric.compare_to_primary {
                Some(_) => Some(self.measure_one(subject, catalog, metric, Side::Primary).await),
                None => None,
            };
            observations.push(MetricObservation { name: metric.name.clone(), value, primary });
        }
        observations
    }

    /// Flagger's availability check before the first analysis: every provider the Canary uses must
    /// answer. Returns the problems found, one per provider.
    pub async fn check_online(&self, subject: Subject<'_>, catalog: &Catalog) -> Vec<String> {
        self.check_online_skipping(subject, catalog, &mut Vec::new()).await
    }

    /// As [`MetricSources::check_online`], skipping the providers in `checked` and adding the ones
    /// it checks: a controller with many Canaries asks each provider once.
    pub async fn check_online_skipping(
        &self,
        subject: Subject<'_>,
        catalog: &Catalog,
        checked: &mut Vec<String>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for metric in &subject.spec.analysis.metrics {
            match self.source_of(subject, catalog, metric) {
                Ok(Source::Prometheus(server, _)) => {
                    if !checked.contains(&server.address().to_string()) {
                        checked.push(server.address().to_string());
                        if let Err(problem) = server.is_online().await {
                            problems.push(format!("metric {}: {problem}", metric.name));
                        }
                    }
                }
                Ok(Source::Embedded(_)) => {
                    if !checked.iter().any(|c| c == "embedded") {
                        checked.push("embedded".into());
                        if let Some(scraper) = &self.embedded
                            && let Err(problem) = scraper.scrape().await
                        {
                            problems.push(format!("metric {}: {problem}", metric.name));
                        }
                    }
                }
                Err(problem) => problems.push(format!("metric {}: {problem}", metric.name)),
            }
        }
        problems
    }

    fn uses_embedded(&self, subject: Subject<'_>, catalog: &Catalog) -> bool {
        subject
            .spec
            .analysis
            .metrics
            .iter()
            .any(|m| matches!(self.source_of(subject, catalog, m), Ok(Source::Embedded(_))))
    }

    async fn measure_one(
        &self,
        subject: Subject<'_>,
        catalog: &Catalog,
        metric: &CanaryMetric,
        side: Side,
    ) -> MetricValue {
        let interval = metric.interval.clone().unwrap_or_else(|| DEFAULT_INTERVAL.to_string());
        let window = match duration::parse(&interval) {
            Ok(window) => window,
            Err(e) => return MetricValue::Error(format!("interval {interval:?}: {e}")),
        };
        let context = QueryContext {
            name: subject.name.to_string(),
            namespace: subject.namespace.to_string(),
            target: subject.target().to_string(),
            service: subject.spec.apex_name().to_string(),
            interval: interval.clone(),
            backend: subject.backend(side),
            variables: metric.template_variables.clone(),
        };
        let source = match self.source_of(subject, catalog, metric) {
            Ok(source) => source,
            Err(problem) => return MetricValue::Error(problem.to_string()),
        };
        match source {
            Source::Prometheus(server, query) => {
                let is_builtin = matches!(query, Query::Builtin(_));
                let query = match query {
                    Query::Text(text) => {
                        if side == Side::Primary && !uses_backend(&text) {
                            return MetricValue::Error(
                                "compareToPrimary needs the query to select its backend with {{ backend }}".into(),
                            );
                        }
                        match render(&text, &context) {
                            Ok(query) => query,
                            Err(e) => return MetricValue::Error(e.to_string()),
                        }
                    }
                    Query::Builtin(builtin) => builtin.promql(&context, self.min_requests),
                };
                match server.query(&query).await {
                    // An empty builtin means the request floor was not met.
                    MetricValue::NoData(_) if is_builtin => MetricValue::TooFewRequests(format!(
                        "fewer than {} requests reached {} in the last {interval}",
                        self.min_requests, context.backend
                    )),
                    other => other,
                }
            }
            Source::Embedded(builtin) => {
                let Some(scraper) = &self.embedded else {
                    return MetricValue::Error(
                        "no metrics provider: configure Prometheus or meshproxy scraping".into(),
                    );
                };
                let key = BackendKey { namespace: context.namespace.clone(), backend: context.backend.clone() };
                match scraper.delta(&key, window) {
                    None => MetricValue::Warming(format!(
                        "meshproxy has been scraped {} time(s) since the controller started; two samples are needed",
                        scraper.sample_count()
                    )),
                    // A controller that just started has not seen the whole window: a thin one is
                    // not evidence of anything yet.
                    Some(delta) => match builtin.from_delta(&delta, &context, self.min_requests) {
                        MetricValue::TooFewRequests(why) if scraper.sampling_for() < window => {
                            MetricValue::Warming(format!(
                                "{why}; the controller has sampled meshproxy for {}s of the {interval} window since it started",
                                scraper.sampling_for().as_secs()
                            ))
                        }
                        other => other,
                    },
                }
            }
        }
    }

    fn source_of(
        &self,
        subject: Subject<'_>,
        catalog: &Catalog,
        metric: &CanaryMetric,
    ) -> Result<Source, MetricSourceError> {
        if let Some(reference) = &metric.template_ref {
            let namespace = reference.namespace.clone().unwrap_or_else(|| subject.namespace.to_string());
            let template_key = format!("{namespace}/{}", reference.name);
            let template = catalog
                .templates
                .get(&(namespace.clone(), reference.name.clone()))
                .ok_or_else(|| MetricSourceError::TemplateNotFound { template: template_key.clone() })?;
            let provider_error =
                |source: PrometheusError| MetricSourceError::Provider { template: template_key.clone(), source };
            return match template.provider.type_.as_str() {
                "prometheus" => {
                    let address = template
                        .provider
                        .address
                        .clone()
                        .or_else(|| self.prometheus_address(subject))
                        .ok_or_else(|| MetricSourceError::NoAddress { template: template_key.clone() })?;
                    let credentials = match &template.provider.secret_ref {
                        None => None,
                        Some(secret) => {
                            let data =
                                catalog.secrets.get(&(namespace.clone(), secret.name.clone())).ok_or_else(|| {
                                    MetricSourceError::SecretNotFound {
                                        template: template_key.clone(),
                                        secret: secret.name.clone(),
                                    }
                                })?;
                            Some(Credentials::try_from_secret(&secret.name, data).map_err(|source| {
                                MetricSourceError::Secret { template: template_key.clone(), source }
                            })?)
                        }
                    };
                    let server = Prometheus::new(&address, self.client.clone())
                        .map_err(provider_error)?
                        .with_credentials(credentials)
                        .with_headers(&template.provider.headers)
                        .map_err(provider_error)?
                        .with_timeout(self.query_timeout)
                        .skip_tls_verify(template.provider.insecure_skip_verify.unwrap_or(false));
                    Ok(Source::Prometheus(server, Query::Text(template.query.clone())))
                }
                "meshproxy" => {
                    let builtin = Builtin::parse(template.query.trim())
                        .ok_or_else(|| MetricSourceError::MeshproxyQuery { template: template_key.clone() })?;
                    Ok(Source::Embedded(builtin))
                }
                other => Err(MetricSourceError::UnsupportedProvider {
                    template: template_key.clone(),
                    kind: other.to_string(),
                }),
            };
        }
        let prometheus = match self.prometheus_address(subject) {
            Some(address) => Some(
                Prometheus::new(&address, self.client.clone())
                    .map_err(MetricSourceError::MetricsServer)?
                    .with_timeout(self.query_timeout),
            ),
            None => None,
        };
        if let Some(query) = &metric.query {
            let server = prometheus.ok_or(MetricSourceError::InlineNeedsPrometheus)?;
            return Ok(Source::Prometheus(server, Query::Text(query.clone())));
        }
        let builtin = Builtin::parse(&metric.name).ok_or_else(|| MetricSourceError::NotBuiltin(metric.name.clone()))?;
        Ok(match prometheus {
            Some(server) => Source::Prometheus(server, Query::Builtin(builtin)),
            None => Source::Embedded(builtin),
        })
    }

    fn prometheus_address(&self, subject: Subject<'_>) -> Option<String> {
        subject.spec.metrics_server.clone().or_else(|| self.prometheus.clone())
    }
}

/// Why a metric has no source to measure it: each names the template or field to fix.
#[derive(Debug, thiserror::Error)]
pub enum MetricSourceError {
    #[error("MetricTemplate {template} not found")]
    TemplateNotFound { template: String },
    #[error("MetricTemplate {template}: provider.address is not set and there is no default Prometheus")]
    NoAddress { template: String },
    #[error("MetricTemplate {template}: secret {secret:?} not found")]
    SecretNotFound { template: String, secret: String },
    #[error("MetricTemplate {template}: provider.secretRef: {source}")]
    Secret { template: String, source: PrometheusError },
    #[error("MetricTemplate {template}: provider.{source}")]
    Provider { template: String, source: PrometheusError },
    #[error("MetricTemplate {template}: a meshproxy query is one of {}", Builtin::SPELLINGS)]
    MeshproxyQuery { template: String },
    #[error("MetricTemplate {template}: provider type {kind:?} is not supported (use prometheus or meshproxy)")]
    UnsupportedProvider { template: String, kind: String },
    #[error("metricsServer: {0}")]
    MetricsServer(PrometheusError),
    #[error("an inline query needs Prometheus: set spec.metricsServer")]
    InlineNeedsPrometheus,
    #[error("metric {0:?} is not builtin and has neither templateRef nor query")]
    NotBuiltin(String),
}

impl MetricSourceError {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            MetricSourceError::TemplateNotFound { .. } | MetricSourceError::SecretNotFound { .. } => "not_found",
            _ => "bad_config",
        }
    }
}

enum Source {
    Prometheus(Prometheus, Query),
    Embedded(Builtin),
}

enum Query {
    Text(String),
    Builtin(Builtin),
}
