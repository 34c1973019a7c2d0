//! The pod volumes the rig plays besides the service-account token: `configMap`, `secret` and
//! `emptyDir`. Each is written once, when the pod starts, into the pod's folder, and bind-mounted
//! where a container asks (read-only for ConfigMaps and Secrets, as a kubelet mounts them). A
//! kubelet would also refresh ConfigMap and Secret files when the objects change; the rig does not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, Pod, Secret, Volume};
use kube::{Api, Client};

/// One bind mount into a container's private mount namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
}

/// A played volume: where its files are, and whether containers get it read-only.
#[derive(Debug, Clone)]
pub struct PreparedVolume {
    pub dir: PathBuf,
    pub read_only: bool,
}

/// Writes every `configMap`, `secret` and `emptyDir` volume of `pod` under `root`, by volume name.
/// Volumes of other kinds are left out: a container mounting one is refused when it is planned.
/// An error names the volume and the object it could not read.
pub async fn prepare(client: &Client, pod: &Pod, root: &Path) -> Result<BTreeMap<String, PreparedVolume>, String> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut prepared = BTreeMap::new();
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let Some((files, read_only)) = files_of(client, &namespace, volume).await? else { continue };
        let dir = root.join(&volume.name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        for (relative, content) in files {
            let path = safe_join(&dir, &relative).ok_or_else(|| {
                format!("volume {:?}: path {relative:?} must be relative and stay inside the volume", volume.name)
            })?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
            }
            std::fs::write(&path, content).map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
        prepared.insert(volume.name.clone(), PreparedVolume { dir, read_only });
    }
    Ok(prepared)
}

/// The files of one volume (path inside it, content) and whether it mounts read-only; None for
/// kinds the rig does not play here.
async fn files_of(
    client: &Client,
    namespace: &str,
    volume: &Volume,
) -> Result<Option<(Vec<(String, Vec<u8>)>, bool)>, String> {
    if volume.empty_dir.is_some() {
        return Ok(Some((Vec::new(), false)));
    }
    if let Some(source) = &volume.config_map {
        let name = &source.name;
        let data = match Api::<ConfigMap>::namespaced(client.clone(), namespace).get_opt(name).await {
            Ok(Some(map)) => {
                let mut data: BTreeMap<String, Vec<u8>> =
                    map.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
                data.extend(map.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
                data
            }
            Ok(None) if source.optional == Some(true) => BTreeMap::new(),
            Ok(None) => return Err(format!("volume {:?}: ConfigMap {namespace}/{name} not found", volume.name)),
            Err(error) => {
                return Err(format!("volume {:?}: reading ConfigMap {namespace}/{name}: {error}", volume.name));
            }
        };
        let files = select(&volume.name, data, source.items.as_deref())?;
        return Ok(Some((files, true)));
    }
    if let Some(source) = &volume.secret {
        let name = source.secret_name.clone().unwrap_or_default();
        let data = match Api::<Secret>::namespaced(client.clone(), namespace).get_opt(&name).await {
            Ok(Some(secret)) => secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect(),
            Ok(None) if source.optional == Some(true) => BTreeMap::new(),
            Ok(None) => return Err(format!("volume {:?}: Secret {namespace}/{name} not found", volume.name)),
            Err(error) => return Err(format!("volume {:?}: reading Secret {namespace}/{name}: {error}", volume.name)),
        };
        let files = select(&volume.name, data, source.items.as_deref())?;
        return Ok(Some((files, true)));
    }
    Ok(None)
}

/// Every key as a file of its name, or only the listed `items` at their paths; a listed key that
/// is missing is an error, as in a kubelet.
fn select(
    volume: &str,
    mut data: BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let Some(items) = items else { return Ok(data.into_iter().collect()) };
    items
        .iter()
        .map(|item| {
            data.remove(&item.key)
                .map(|content| (item.path.clone(), content))
                .ok_or_else(|| format!("volume {volume:?}: key {:?} is not in the object", item.key))
        })
        .collect()
}

/// `dir/relative`, or None when `relative` is absolute or climbs out with `..`.
fn safe_join(dir: &Path, relative: &str) -> Option<PathBuf> {
    let path = Path::new(relative);
    let inside = path.components().all(|c| matches!(c, std::path::Component::Normal(_)));
    (inside && !relative.is_empty()).then(|| dir.join(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_pick_keys_and_name_their_files() {
        let data = BTreeMap::from([("a".to_string(), b"1".to_vec()), ("b".to_string(), b"2".to_vec())]);
        let items = [KeyToPath { key: "b".into(), path: "conf/b.yml".into(), mode: None }];
        assert_eq!(select("v", data.clone(), Some(&items)).unwrap(), vec![("conf/b.yml".to_string(), b"2".to_vec())]);
        assert_eq!(select("v", data.clone(), None).unwrap().len(), 2);
        let missing = [KeyToPath { key: "c".into(), path: "c".into(), mode: None }];
        assert!(select("v", data, Some(&missing)).unwrap_err().contains("key \"c\""));
    }

    #[test]
    fn paths_stay_inside_the_volume() {
        let dir = Path::new("/v");
        assert_eq!(safe_join(dir, "a/b"), Some(PathBuf::from("/v/a/b")));
        assert_eq!(safe_join(dir, "../x"), None);
        assert_eq!(safe_join(dir, "/etc/passwd"), None);
        assert_eq!(safe_join(dir, ""), None);
    }
}
