use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

/// Hands out pod IPs from each node's /24, as a CNI's host-local IPAM would.
#[derive(Debug, Default)]
pub struct Ipam {
    nodes: HashMap<String, NodePool>,
}

#[derive(Debug)]
struct NodePool {
    network: [u8; 3],
    used: BTreeSet<u8>,
}

/// Pod addresses start at .2: .0 is the network and .1 is kept for a gateway, as CNIs do.
const FIRST_HOST: u8 = 2;
const LAST_HOST: u8 = 254;

impl Ipam {
    pub fn new(nodes: &[(String, String)]) -> Result<Self, String> {
        let mut ipam = Ipam::default();
        for (name, cidr) in nodes {
            ipam.nodes.insert(name.clone(), NodePool { network: parse_cidr24(cidr)?, used: BTreeSet::new() });
        }
        Ok(ipam)
    }

    pub fn plays(&self, node: &str) -> bool {
        self.nodes.contains_key(node)
    }

    /// The lowest free address on `node`, or None when the node is unknown or full.
    pub fn allocate(&mut self, node: &str) -> Option<Ipv4Addr> {
        let pool = self.nodes.get_mut(node)?;
        let host = (FIRST_HOST..=LAST_HOST).find(|h| !pool.used.contains(h))?;
        pool.used.insert(host);
        let [a, b, c] = pool.network;
        Some(Ipv4Addr::new(a, b, c, host))
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        let [a, b, c, host] = ip.octets();
        for pool in self.nodes.values_mut() {
            if pool.network == [a, b, c] {
                pool.used.remove(&host);
            }
        }
    }
}

/// Parses `a.b.c.0/24`; other prefix lengths are refused, as the rig's nodes all get a /24.
pub fn parse_cidr24(cidr: &str) -> Result<[u8; 3], String> {
    let (address, prefix) = cidr.split_once('/').ok_or_else(|| format!("{cidr:?} is not a CIDR"))?;
    let address: Ipv4Addr = address.parse().map_err(|_| format!("{cidr:?}: {address:?} is not an IPv4 address"))?;
    if prefix != "24" {
        return Err(format!("{cidr:?}: only /24 pod ranges are supported"));
    }
    let [a, b, c, d] = address.octets();
    if d != 0 {
        return Err(format!("{cidr:?}: the network address must end in .0"));
    }
    Ok([a, b, c])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_lowest_free_and_reuses_released() {
        let mut ipam =
            Ipam::new(&[("n0".into(), "10.244.0.0/24".into()), ("n1".into(), "10.244.1.0/24".into())]).unwrap();
        assert_eq!(ipam.allocate("n0"), Some(Ipv4Addr::new(10, 244, 0, 2)));
        assert_eq!(ipam.allocate("n0"), Some(Ipv4Addr::new(10, 244, 0, 3)));
        assert_eq!(ipam.allocate("n1"), Some(Ipv4Addr::new(10, 244, 1, 2)));
        ipam.release(Ipv4Addr::new(10, 244, 0, 2));
        assert_eq!(ipam.allocate("n0"), Some(Ipv4Addr::new(10, 244, 0, 2)));
        assert_eq!(ipam.allocate("elsewhere"), None);
        for _ in 4..=254 {
            assert!(ipam.allocate("n0").is_some());
        }
        assert_eq!(ipam.allocate("n0"), None, "a full /24 hands out nothing more");
    }

    #[test]
    fn refuses_other_prefixes() {
        assert!(parse_cidr24("10.244.0.0/16").is_err());
        assert!(parse_cidr24("10.244.0.7/24").is_err());
        assert!(parse_cidr24("nonsense").is_err());
    }
}
