use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVarSource, Pod, Secret};
use kube::{Api, Client};

use super::image::ImageRef;

/// What a container's environment is built from.
pub struct EnvContext<'a> {
    pub client: &'a Client,
    pub pod: &'a Pod,
    pub pod_ip: Ipv4Addr,
    pub host_ip: Ipv4Addr,
    pub api_host: Ipv4Addr,
    pub api_port: u16,
    pub image: &'a ImageRef,
}

/// The environment a kubelet would give `container`, in its order: defaults and the image's own
/// variables, the apiserver's address, `envFrom`, then `env` (later entries win, and `$(NAME)`
/// refers to a variable defined before). An error names the variable that cannot be resolved.
pub async fn container_env(ctx: &EnvContext<'_>, container: &Container) -> Result<Vec<(String, String)>, String> {
    let meta = &ctx.pod.metadata;
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()),
        ("HOSTNAME".into(), meta.name.clone().unwrap_or_default()),
        // What the image would set: the rig's images are programs, so their tag is all they add.
        ("SERIN_IMAGE".into(), container.image.clone().unwrap_or_default()),
        ("SERIN_IMAGE_TAG".into(), ctx.image.tag.clone()),
        ("KUBERNETES_SERVICE_HOST".into(), ctx.api_host.to_string()),
        ("KUBERNETES_SERVICE_PORT".into(), ctx.api_port.to_string()),
        ("KUBERNETES_SERVICE_PORT_HTTPS".into(), ctx.api_port.to_string()),
        ("KUBERNETES_PORT".into(), format!("tcp://{}:{}", ctx.api_host, ctx.api_port)),
    ];
    let namespace = meta.namespace.clone().unwrap_or_default();

    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        if let Some(reference) = &source.config_map_ref {
            let data = config_map_data(ctx.client, &namespace, &reference.name, reference.optional).await?;
            env.extend(data.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)));
        }
        if let Some(reference) = &source.secret_ref {
            let data = secret_data(ctx.client, &namespace, &reference.name, reference.optional).await?;
            env.extend(data.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)));
        }
    }

    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(source)) => match resolve_source(ctx, &namespace, source).await {
                Ok(Some(value)) => value,
                Ok(None) => continue,
                Err(error) => return Err(format!("env {}: {error}", var.name)),
            },
            (Some(value), None) => expand(value, &env),
            (None, None) => String::new(),
        };
        env.push((var.name.clone(), value));
    }

    // Later definitions win, as in a kubelet.
    let mut seen = BTreeMap::new();
    for (index, (name, _)) in env.iter().enumerate() {
        seen.insert(name.clone(), index);
    }
    Ok(env.into_iter().enumerate().filter(|(index, (name, _))| seen[name] == *index).map(|(_, pair)| pair).collect())
}

/// Expands `$(NAME)` from the variables defined so far; `$$(NAME)` stays literal `$(NAME)`, and an
/// unknown name is left as written, as a kubelet does.
pub fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(escaped) = after.strip_prefix('$') {
            out.push('$');
            rest = escaped;
        } else if let Some(reference) = after.strip_prefix('(')
            && let Some(end) = reference.find(')')
        {
            let name = &reference[..end];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, value)) => out.push_str(value),
                None => out.push_str(&format!("$({name})")),
            }
            rest = &reference[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Ok(None) means an optional reference that is absent: the variable is left out.
async fn resolve_source(
    ctx: &EnvContext<'_>,
    namespace: &str,
    source: &EnvVarSource,
) -> Result<Option<String>, String> {
    if let Some(field) = &source.field_ref {
        return field_value(ctx, &field.field_path).map(Some);
    }
    if let Some(key) = &source.config_map_key_ref {
        let data = config_map_data(ctx.client, namespace, &key.name, key.optional).await?;
        return pick_key(data, &format!("ConfigMap {namespace}/{}", key.name), &key.key, key.optional);
    }
    if let Some(key) = &source.secret_key_ref {
        let data = secret_data(ctx.client, namespace, &key.name, key.optional).await?;
        return pick_key(data, &format!("Secret {namespace}/{}", key.name), &key.key, key.optional);
    }
    Err("only value, fieldRef, configMapKeyRef and secretKeyRef are played by the rig".to_string())
}

/// One key of a ConfigMap's or Secret's data; an optional key that is absent leaves the variable out.
fn pick_key(
    mut data: BTreeMap<String, String>,
    object: &str,
    key: &str,
    optional: Option<bool>,
) -> Result<Option<String>, String> {
    match data.remove(key) {
        Some(value) => Ok(Some(value)),
        None if optional == Some(true) => Ok(None),
        None => Err(format!("{object} has no key {key:?}")),
    }
}

fn field_value(ctx: &EnvContext<'_>, path: &str) -> Result<String, String> {
    let meta = &ctx.pod.metadata;
    let spec = ctx.pod.spec.as_ref();
    let from_map = |map: &Option<BTreeMap<String, String>>, key: &str| map.as_ref().and_then(|m| m.get(key)).cloned();
    let value = match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.podIP" => Some(ctx.pod_ip.to_string()),
        "status.hostIP" => Some(ctx.host_ip.to_string()),
        _ => {
            let label = path.strip_prefix("metadata.labels['").and_then(|p| p.strip_suffix("']"));
            let annotation = path.strip_prefix("metadata.annotations['").and_then(|p| p.strip_suffix("']"));
            match (label, annotation) {
                (Some(key), _) => Some(from_map(&meta.labels, key).unwrap_or_default()),
                (_, Some(key)) => Some(from_map(&meta.annotations, key).unwrap_or_default()),
                _ => return Err(format!("fieldRef {path:?} is not supported")),
            }
        }
    };
    Ok(value.unwrap_or_default())
}

async fn config_map_data(
    client: &Client,
    namespace: &str,
    name: &str,
    optional: Option<bool>,
) -> Result<BTreeMap<String, String>, String> {
    match Api::<ConfigMap>::namespaced(client.clone(), namespace).get_opt(name).await {
        Ok(Some(map)) => Ok(map.data.unwrap_or_default()),
        Ok(None) if optional == Some(true) => Ok(BTreeMap::new()),
        Ok(None) => Err(format!("ConfigMap {namespace}/{name} not found")),
        Err(error) => Err(format!("reading ConfigMap {namespace}/{name}: {error}")),
    }
}

async fn secret_data(
    client: &Client,
    namespace: &str,
    name: &str,
    optional: Option<bool>,
) -> Result<BTreeMap<String, String>, String> {
    match Api::<Secret>::namespaced(client.clone(), namespace).get_opt(name).await {
        Ok(Some(secret)) => Ok(secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .chain(secret.string_data.unwrap_or_default())
            .collect()),
        Ok(None) if optional == Some(true) => Ok(BTreeMap::new()),
        Ok(None) => Err(format!("Secret {namespace}/{name} not found")),
        Err(error) => Err(format!("reading Secret {namespace}/{name}: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn expands_earlier_variables_like_a_kubelet() {
        let env = vec![("A".to_string(), "1".to_string()), ("B".to_string(), "two".to_string())];
        assert_eq!(expand("x$(A)y$(B)", &env), "x1ytwo");
        assert_eq!(expand("$(MISSING)", &env), "$(MISSING)");
        assert_eq!(expand("$$(A)", &env), "$(A)");
        assert_eq!(expand("cost $5", &env), "cost $5");
        assert_eq!(expand("$(A", &env), "$(A");
    }
}
