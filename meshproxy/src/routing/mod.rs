//! The route table: from a request's host, method, path, query and headers to the weighted
//! backends of the HTTPRoute rule that wins by Gateway API precedence. Compiled once per config
//! change and shared by every request started under it.

mod backend;
mod filters;
mod host;
mod matching;
mod table;

pub use backend::{Backend, BackendEndpoint};
pub use filters::HeaderModifier;
pub use host::host_forms;
pub use matching::RequestFacts;
pub use table::{RouteTable, Rule, ServiceEntry};
