use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Flags of `serin-podrunner`. The rig's `up` passes them; see `e2e/rig/rig`.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "serin-podrunner", about = "Plays pods scheduled on the rig's kwok nodes as local processes")]
pub struct RunnerConfig {
    /// A node this runner plays, with its pod CIDR (a /24): `kwok-node-0=10.244.0.0/24`. Repeat per node.
    #[arg(long = "node", value_parser = parse_node, required = true)]
    pub nodes: Vec<(String, String)>,

    /// An image repository the runner can play and the program that plays it:
    /// `serin-testapp=/path/to/serin-testapp`. Repeat per image.
    #[arg(long = "image", value_parser = parse_image)]
    pub images: Vec<(String, PathBuf)>,

    /// Where pod state (service-account tokens, container logs) is kept.
    #[arg(long)]
    pub state_dir: PathBuf,

    /// The cluster CA certificate, written next to each pod's service-account token.
    #[arg(long)]
    pub ca_file: PathBuf,

    /// The apiserver address given to pods as KUBERNETES_SERVICE_HOST: the `kubernetes` Service's
    /// ClusterIP, as a kubelet gives it.
    #[arg(long)]
    pub api_host: Ipv4Addr,

    /// The apiserver port given to pods as KUBERNETES_SERVICE_PORT.
    #[arg(long, default_value_t = 6443)]
    pub api_port: u16,

    /// The cluster DNS server written into pods' resolv.conf (a kubelet's `clusterDNS`).
    #[arg(long)]
    pub dns_server: Ipv4Addr,

    /// The cluster's domain (a kubelet's `clusterDomain`).
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,

    /// The nodes' address, reported as each pod's hostIP.
    #[arg(long)]
    pub host_ip: Ipv4Addr,

    /// Prefix of the network namespaces made for pods (`<prefix>-10-244-0-5`).
    #[arg(long, default_value = "serin-rig")]
    pub netns_prefix: String,
}

impl RunnerConfig {
    pub fn cluster_dns(&self) -> super::dns::ClusterDns {
        super::dns::ClusterDns { server: self.dns_server, domain: self.cluster_domain.clone() }
    }

    pub fn image_programs(&self) -> BTreeMap<String, PathBuf> {
        self.images.iter().cloned().collect()
    }
}

fn parse_node(text: &str) -> Result<(String, String), String> {
    let (name, cidr) = text.split_once('=').ok_or_else(|| format!("{text:?}: expected NAME=CIDR"))?;
    super::ipam::parse_cidr24(cidr)?;
    Ok((name.to_string(), cidr.to_string()))
}

fn parse_image(text: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = text.split_once('=').ok_or_else(|| format!("{text:?}: expected IMAGE=PROGRAM"))?;
    Ok((name.to_string(), PathBuf::from(path)))
}
