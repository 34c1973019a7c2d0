//! `serin-podrunner`: the kubelet of the e2e rig.
//!
//! kwok makes nodes look real but runs nothing. The pod runner watches pods the scheduler put on
//! the rig's nodes and plays each one as local processes, one per container, chosen by image name.
//! Each pod gets its own network namespace with its pod IP, wired to the rig's namespace by a veth
//! pair, so programs bind `0.0.0.0` as they would in a container and reach each other and the
//! apiserver but nothing else. The runner reports status as a kubelet does: pod IP, container
//! states, restarts with back-off, readiness and liveness from the pod's probes. A container whose
//! image it cannot play waits in `ErrImagePull` and its pod never becomes Ready.

mod config;
mod container;
mod dns;
mod env;
mod image;
mod ipam;
mod network;
mod pod;
mod probe;
mod runner;
mod status;
mod volume;

pub use config::RunnerConfig;
pub use image::ImageRef;
pub use ipam::Ipam;
pub use runner::run;
