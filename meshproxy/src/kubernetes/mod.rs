//! meshproxy's Kubernetes config source: in a cluster, the config is not a file but the
//! cluster's own objects. HTTPRoutes attached to a Service (GAMMA), TrafficPolicies, Services (each
//! port to its targetPort) and EndpointSlices (ready endpoints, with the version from the pod's
//! labels) are watched and built into the same `ProxyConfig` a file gives, then swapped in
//! whole. In this mode the admin API only reads.

mod apply;
mod source;
mod translate;

pub use apply::{Applied, apply};
pub use source::{Scope, SourceError, run};
pub use translate::{ClusterObjects, PodFacts, WAYPOINT_LABEL, build_config};
