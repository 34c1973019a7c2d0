//! A pod's resolv.conf, as a kubelet writes it for the pod's `dnsPolicy`.
//!
//! `ip netns exec` bind-mounts every file in `/etc/netns/<namespace>/` over its namesake in `/etc`,
//! inside the process's private mount namespace. Writing `/etc/netns/<pod namespace>/resolv.conf`
//! therefore gives every process of the pod (and exec probes) its own resolver configuration,
//! without touching the machine's.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};

/// The cluster's DNS, as a kubelet's `clusterDNS` and `clusterDomain` settings give it.
#[derive(Debug, Clone)]
pub struct ClusterDns {
    pub server: std::net::Ipv4Addr,
    pub domain: String,
}

/// What `ip netns exec` mounts over `/etc/resolv.conf` for this pod network namespace.
pub fn resolv_conf_path(netns: &str) -> PathBuf {
    PathBuf::from("/etc/netns").join(netns).join("resolv.conf")
}

/// The resolv.conf for `pod`, or None when the pod keeps the node's (`dnsPolicy: Default`).
pub fn resolv_conf(pod: &Pod, cluster: &ClusterDns) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let custom = spec.dns_config.clone().unwrap_or_default();
    let (mut servers, mut searches, mut options) = match spec.dns_policy.as_deref() {
        Some("Default") => return None,
        Some("None") => (Vec::new(), Vec::new(), Vec::new()),
        // ClusterFirst (the default) and ClusterFirstWithHostNet.
        _ => (
            vec![cluster.server.to_string()],
            vec![
                format!("{namespace}.svc.{}", cluster.domain),
                format!("svc.{}", cluster.domain),
                cluster.domain.clone(),
            ],
            vec![("ndots".to_string(), Some("5".to_string()))],
        ),
    };
    merge(&custom, &mut servers, &mut searches, &mut options);

    let mut text = String::new();
    if !searches.is_empty() {
        text.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for server in &servers {
        text.push_str(&format!("nameserver {server}\n"));
    }
    if !options.is_empty() {
        let rendered: Vec<String> = options
            .iter()
            .map(|(name, value)| match value {
                Some(value) => format!("{name}:{value}"),
                None => name.clone(),
            })
            .collect();
        text.push_str(&format!("options {}\n", rendered.join(" ")));
    }
    Some(text)
}

/// `dnsConfig` adds servers and searches after the policy's, and its options replace the
/// policy's options of the same name.
fn merge(
    custom: &PodDNSConfig,
    servers: &mut Vec<String>,
    searches: &mut Vec<String>,
    options: &mut Vec<(String, Option<String>)>,
) {
    for server in custom.nameservers.iter().flatten() {
        if !servers.contains(server) {
            servers.push(server.clone());
        }
    }
    for search in custom.searches.iter().flatten() {
        if !searches.contains(search) {
            searches.push(search.clone());
        }
    }
    for option in custom.options.iter().flatten() {
        let Some(name) = option.name.clone() else { continue };
        options.retain(|(existing, _)| *existing != name);
        options.push((name, option.value.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodDNSConfigOption, PodSpec};

    fn pod(policy: Option<&str>, config: Option<PodDNSConfig>) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.namespace = Some("test".into());
        pod.spec = Some(PodSpec { dns_policy: policy.map(String::from), dns_config: config, ..PodSpec::default() });
        pod
    }

    fn cluster() -> ClusterDns {
        ClusterDns { server: "10.245.0.3".parse().unwrap(), domain: "cluster.local".into() }
    }

    #[test]
    fn cluster_first_searches_the_pods_namespace_first() {
        let text = resolv_conf(&pod(None, None), &cluster()).unwrap();
        assert_eq!(
            text,
            "search test.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.245.0.3\noptions ndots:5\n"
        );
    }

    #[test]
    fn default_policy_keeps_the_nodes_resolver() {
        assert_eq!(resolv_conf(&pod(Some("Default"), None), &cluster()), None);
    }

    #[test]
    fn dns_config_adds_to_the_policy_and_replaces_options_by_name() {
        let config = PodDNSConfig {
            nameservers: Some(vec!["10.0.0.53".into()]),
            searches: Some(vec!["example.test".into()]),
            options: Some(vec![
                PodDNSConfigOption { name: Some("ndots".into()), value: Some("2".into()) },
                PodDNSConfigOption { name: Some("edns0".into()), value: None },
            ]),
        };
        let text = resolv_conf(&pod(None, Some(config.clone())), &cluster()).unwrap();
        assert!(
            text.contains("search test.svc.cluster.local svc.cluster.local cluster.local example.test\n"),
            "{text}"
        );
        assert!(text.contains("nameserver 10.245.0.3\nnameserver 10.0.0.53\n"), "{text}");
        assert!(text.ends_with("options ndots:2 edns0\n"), "{text}");

        let only_custom = resolv_conf(&pod(Some("None"), Some(config)), &cluster()).unwrap();
        assert_eq!(only_custom, "search example.test\nnameserver 10.0.0.53\noptions ndots:2 edns0\n");
    }
}
