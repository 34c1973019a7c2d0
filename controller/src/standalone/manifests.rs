//! The manifests folder: Canary, MetricTemplate, AlertProvider and TrafficPolicy objects, Gateway
//! API HTTPRoutes for services no Canary manages, the endpoint groups file, and secrets as
//! `secrets/<name>/<key>` files (the layout of a mounted Kubernetes Secret). Loaded whole: any error
//! refuses the whole set, so a typo can never look like a deleted Canary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use gateway_api::apis::standard::httproutes::HttpRoute;
use serde_json::Value;
use serin_crds::alert_provider::AlertProviderSpec;
use serin_crds::manifest::{Manifest, parse_all};
use serin_crds::{Canary, TrafficPolicy, canary::CanarySpec};

use super::error::ManifestProblem;
use super::groups::{self, DEFAULT_NAMESPACE, EndpointGroup};
use crate::analysis::{Catalog, ObjectKey};
use crate::reconcile::CanaryRef;

/// One Canary and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedCanary {
    pub namespace: String,
    pub name: String,
    pub spec: CanarySpec,
    pub generation: i64,
    pub source: String,
}

impl LoadedCanary {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn reference(&self) -> CanaryRef<'_> {
        CanaryRef { namespace: &self.namespace, name: &self.name, spec: &self.spec, generation: self.generation }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Manifests {
    /// Shared, so a loop over them does not copy every spec.
    pub canaries: Vec<Arc<LoadedCanary>>,
    pub catalog: Catalog,
    pub alert_providers: BTreeMap<ObjectKey, (String, AlertProviderSpec)>,
    /// HTTPRoutes for services no Canary manages, passed to meshproxy as they are.
    pub routes: Vec<HttpRoute>,
    pub traffic_policies: Vec<TrafficPolicy>,
    pub groups: Vec<EndpointGroup>,
    /// Index into `groups` by (namespace, name).
    group_index: std::collections::HashMap<(String, String), usize>,
}

impl Manifests {
    pub fn group(&self, namespace: &str, name: &str) -> Option<&EndpointGroup> {
        let index = self.group_index.get(&(namespace.to_string(), name.to_string()))?;
        self.groups.get(*index)
    }
}

/// Where the manifests live.
#[derive(Debug, Clone)]
pub struct ManifestSource {
    pub folder: PathBuf,
    pub services: PathBuf,
}

impl ManifestSource {
    pub fn new(folder: &Path, services: Option<&Path>) -> ManifestSource {
        ManifestSource {
            folder: folder.to_path_buf(),
            services: services.map_or_else(|| folder.join("services.yaml"), Path::to_path_buf),
        }
    }

    /// The newest modification time of anything loaded, to notice edits cheaply.
    pub fn fingerprint(&self) -> Vec<(PathBuf, Option<SystemTime>)> {
        let mut files = self.yaml_files().unwrap_or_default();
        files.push(self.services.clone());
        let secrets = self.folder.join("secrets");
        if let Ok(entries) = std::fs::read_dir(&secrets) {
            for entry in entries.flatten() {
                if let Ok(keys) = std::fs::read_dir(entry.path()) {
                    files.extend(keys.flatten().map(|k| k.path()));
                }
            }
        }
        files.sort();
        files.into_iter().map(|f| (f.clone(), std::fs::metadata(&f).and_then(|m| m.modified()).ok())).collect()
    }

    fn yaml_files(&self) -> Result<Vec<PathBuf>, ManifestProblem> {
        let entries = std::fs::read_dir(&self.folder)
            .map_err(|e| ManifestProblem::in_file(self.folder.display(), e.to_string()))?;
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .filter(|p| *p != self.services)
            .collect();
        files.sort();
        Ok(files)
    }

    /// Reads everything; every problem found is returned, each naming its file, object and field.
    pub fn load(&self) -> Result<Manifests, Vec<ManifestProblem>> {
        let mut problems = Vec::new();
        let mut manifests = Manifests::default();
        match groups::load(&self.services) {
            Ok(groups) => {
                manifests.group_index = groups.iter().enumerate().map(|(i, g)| (g.key(), i)).collect();
                manifests.groups = groups;
            }
            Err(problem) => problems.push(problem),
        }
        let files = self.yaml_files().map_err(|p| vec![p])?;
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for file in &files {
            let source = file.display().to_string();
            let text = match std::fs::read_to_string(file) {
                Ok(text) => text,
                Err(e) => {
                    problems.push(ManifestProblem::in_file(&source, e.to_string()));
                    continue;
                }
            };
            let objects = match parse_all(&source, &text) {
                Ok(objects) => objects,
                Err(e) => {
                    problems.push(e.into());
                    continue;
                }
            };
            for object in objects {
                if let Err(problem) = manifests.add(object, &source, &mut seen) {
                    problems.push(problem);
                }
            }
        }
        manifests.catalog.secrets = read_secrets(&self.folder.join("secrets"), &mut problems);
        problems.extend(manifests.check());
        if problems.is_empty() { Ok(manifests) } else { Err(problems) }
    }
}

impl Manifests {
    fn add(
        &mut self,
        object: Manifest,
        source: &str,
        seen: &mut BTreeMap<String, String>,
    ) -> Result<(), ManifestProblem> {
        let namespace_of = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            meta.namespace.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
        };
        let (kind, namespace, name) = match &object {
            Manifest::Canary(c) => ("Canary", namespace_of(&c.metadata), c.metadata.name.clone().unwrap_or_default()),
            Manifest::MetricTemplate(t) => {
                ("MetricTemplate", namespace_of(&t.metadata), t.metadata.name.clone().unwrap_or_default())
            }
            Manifest::AlertProvider(a) => {
                ("AlertProvider", namespace_of(&a.metadata), a.metadata.name.clone().unwrap_or_default())
            }
            Manifest::TrafficPolicy(p) => {
                ("TrafficPolicy", namespace_of(&p.metadata), p.metadata.name.clone().unwrap_or_default())
            }
            Manifest::Other { kind, name, value, .. } => {
                let namespace = value["metadata"]["namespace"].as_str().unwrap_or(DEFAULT_NAMESPACE).to_string();
                (kind.as_str(), namespace, name.clone())
            }
        };
        let id = format!("{kind} {namespace}/{name}");
        if let Some(first) = seen.insert(id.clone(), source.to_string()) {
            return Err(ManifestProblem::in_file(source, format!("{id} is already defined in {first}")));
        }
        match object {
            Manifest::Canary(canary) => {
                let Canary { metadata, spec, .. } = *canary;
                self.canaries.push(Arc::new(LoadedCanary {
                    namespace,
                    name,
                    spec,
                    generation: metadata.generation.unwrap_or(1),
                    source: source.to_string(),
                }));
            }
            Manifest::MetricTemplate(template) => {
                self.catalog.templates.insert((namespace, name), template.spec);
            }
            Manifest::AlertProvider(provider) => {
                self.alert_providers.insert((namespace, name.clone()), (name, provider.spec));
            }
            Manifest::TrafficPolicy(policy) => {
                self.traffic_policies.push(*policy);
            }
            Manifest::Other { kind, value, .. } if kind == "HTTPRoute" => {
                self.routes.push(http_route(&id, source, value)?)
            }
            Manifest::Other { api_version, kind, .. } => {
                return Err(ManifestProblem::in_file(
                    source,
                    format!(
                        "{kind} {namespace}/{name} ({api_version}): standalone mode reads Canary, MetricTemplate, AlertProvider, TrafficPolicy and HTTPRoute; put endpoints in the services file"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// What standalone mode needs beyond a valid object: the endpoint groups a Canary refers to.
    fn check(&self) -> Vec<ManifestProblem> {
        let mut problems = Vec::new();
        for canary in &self.canaries {
            let at = format!("Canary {}", canary.key());
            let problem = |message: String| ManifestProblem::in_file(&canary.source, message);
            let (canary_group, primary_group) = (canary.spec.canary_service_name(), canary.spec.primary_service_name());
            if self.group(&canary.namespace, &canary_group).is_none() {
                problems.push(problem(format!(
                    "{at}: spec.targetRef.name: the services file has no endpoint group {}/{canary_group} to run the new version",
                    canary.namespace,
                )));
            }
            if self.group(&canary.namespace, &primary_group).is_some() {
                problems.push(problem(format!(
                    "{at}: the services file defines {}/{primary_group}, which the controller manages; remove it",
                    canary.namespace,
                )));
            }
            let apex = canary.spec.apex_name();
            for route in &self.routes {
                if route.metadata.name.as_deref() == Some(apex)
                    && route.metadata.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE) == canary.namespace
                {
                    problems.push(problem(format!(
                        "{at}: HTTPRoute {}/{apex} is generated from this Canary; remove the hand-written one",
                        canary.namespace,
                    )));
                }
            }
        }
        problems
    }
}

/// A hand-written HTTPRoute, typed. The Gateway API types drop fields they do not know; a misspelt
/// field is refused here rather than silently routing traffic some other way.
fn http_route(id: &str, source: &str, value: Value) -> Result<HttpRoute, ManifestProblem> {
    let route: HttpRoute = serde_path_to_error::deserialize(&value)
        .map_err(|e| ManifestProblem::in_file(source, format!("{id}: {}: {}", e.path(), e.inner())))?;
    let kept = serde_json::to_value(&route).expect("an HTTPRoute serializes");
    let mut unknown = Vec::new();
    serin_meshproxy_api::unknown_fields(&value, &kept, "", &mut unknown);
    match unknown.first() {
        Some(field) => Err(ManifestProblem::in_file(source, format!("{id}: {field}: unknown field"))),
        None => Ok(route),
    }
}

/// `secrets/<name>/<key>` files: the secret `<name>` in every namespace.
fn read_secrets(folder: &Path, problems: &mut Vec<ManifestProblem>) -> BTreeMap<ObjectKey, BTreeMap<String, String>> {
    let mut by_name: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(folder) else { return BTreeMap::new() };
    for entry in entries.flatten().filter(|e| e.path().is_dir()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(keys) = std::fs::read_dir(entry.path()) else { continue };
        for key in keys.flatten().filter(|k| k.path().is_file()) {
            match std::fs::read_to_string(key.path()) {
                Ok(value) => {
                    by_name
                        .entry(name.clone())
                        .or_default()
                        .insert(key.file_name().to_string_lossy().into_owned(), value);
                }
                Err(e) => problems.push(ManifestProblem::in_file(key.path().display(), e.to_string())),
            }
        }
    }
    // Standalone has no namespaces for secrets: every namespace sees them (key "*").
    by_name.into_iter().map(|(name, data)| (("*".to_string(), name), data)).collect()
}
