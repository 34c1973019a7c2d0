//! The route table: from a request's host, method, path, query and headers to the weighted
//! backends of the HTTPRoute rule that wins by Gateway API precedence. Compiled once per config
//! change and shared by every request started under it.

mod backend;
mod backend_ref;
mod balance;
mod endpoint;
mod filters;
mod header_modifier;
mod host;
mod matching;
mod rewrite;
mod table;

pub use backend::Backend;
pub use backend_ref::BackendRef;
pub use endpoint::BackendEndpoint;
pub use filters::{Mirror, RuleFilters};
pub use header_modifier::HeaderModifier;
pub use host::host_forms;
pub use matching::RequestFacts;
pub use matching::RequestMatch;
pub use rewrite::{PathChange, Redirect, UrlRewrite};
pub use table::{RouteTable, Rule, ServiceEntry};
