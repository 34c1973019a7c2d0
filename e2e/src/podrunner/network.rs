use std::net::Ipv4Addr;

use tokio::process::Command;

use super::dns::resolv_conf_path;

/// A pod's network: its own namespace holding `eth0` with the pod IP, the other end of a veth pair
/// in the rig's namespace (where the runner runs) with a /32 route to the pod.
///
/// Inside the pod the default route points at a link-local gateway whose address resolves, by a
/// permanent neighbour entry, to the rig-side end's fixed MAC address, as Calico does. Traffic to other pods and to the apiserver goes through the
/// rig's namespace; the rig's namespace has no route out, so neither has the pod.
#[derive(Debug)]
pub struct PodNetwork {
    pub ip: Ipv4Addr,
    pub netns: String,
    host_link: String,
}

const GATEWAY: &str = "169.254.1.1";
/// Every rig-side end has this MAC address; it only has to be unique on each pod's own link.
const GATEWAY_MAC: &str = "ee:ee:ee:ee:ee:ee";

impl PodNetwork {
    pub fn name_for(prefix: &str, ip: Ipv4Addr) -> String {
        let [a, b, c, d] = ip.octets();
        format!("{prefix}-{a}-{b}-{c}-{d}")
    }

    /// Makes the namespace and its wiring; `resolv_conf`, when given, becomes the pod's
    /// `/etc/resolv.conf` (see `dns.rs`).
    pub async fn create(prefix: &str, ip: Ipv4Addr, resolv_conf: Option<&str>) -> Result<PodNetwork, String> {
        let netns = Self::name_for(prefix, ip);
        let [_, _, c, d] = ip.octets();
        // Interface names are at most 15 bytes; the pod's address makes this one unique.
        let host_link = format!("sp{c:02x}{d:02x}");
        let network = PodNetwork { ip, netns, host_link };
        // A namespace left by a runner that died gets replaced.
        network.destroy().await;
        let made = match network.wire().await {
            Ok(()) => network.write_resolv_conf(resolv_conf),
            Err(error) => Err(error),
        };
        if let Err(error) = made {
            network.destroy().await;
            return Err(error);
        }
        Ok(network)
    }

    async fn wire(&self) -> Result<(), String> {
        let (ns, link, pod_ip) = (self.netns.as_str(), self.host_link.as_str(), self.ip.to_string());
        ip(&["netns", "add", ns]).await?;
        ip(&["-n", ns, "link", "set", "lo", "up"]).await?;
        ip(&["link", "add", link, "address", GATEWAY_MAC, "type", "veth", "peer", "name", "eth0", "netns", ns]).await?;
        ip(&["link", "set", link, "up"]).await?;
        ip(&["route", "add", &format!("{pod_ip}/32"), "dev", link]).await?;
        ip(&["-n", ns, "addr", "add", &format!("{pod_ip}/32"), "dev", "eth0"]).await?;
        ip(&["-n", ns, "link", "set", "eth0", "up"]).await?;
        ip(&["-n", ns, "route", "add", GATEWAY, "dev", "eth0"]).await?;
        ip(&["-n", ns, "neigh", "add", GATEWAY, "lladdr", GATEWAY_MAC, "dev", "eth0", "nud", "permanent"]).await?;
        ip(&["-n", ns, "route", "add", "default", "via", GATEWAY, "dev", "eth0"]).await?;
        Ok(())
    }

    fn write_resolv_conf(&self, resolv_conf: Option<&str>) -> Result<(), String> {
        let Some(text) = resolv_conf else { return Ok(()) };
        let path = resolv_conf_path(&self.netns);
        let dir = path.parent().expect("the path has a folder");
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))
    }

    /// Removes the namespace, its /etc/netns files and the veth pair; quiet about parts that are
    /// already gone.
    pub async fn destroy(&self) {
        let _ = ip(&["link", "del", &self.host_link]).await;
        let _ = ip(&["netns", "del", &self.netns]).await;
        if let Some(dir) = resolv_conf_path(&self.netns).parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip").args(args).output().await.map_err(|e| format!("running ip: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()))
    }
}
