//! RequestHeaderModifier and ResponseHeaderModifier.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

/// A compiled RequestHeaderModifier or ResponseHeaderModifier: set, then add, then remove.
#[derive(Debug, Clone, Default)]
pub struct HeaderModifier {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub add: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl HeaderModifier {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// Adds another modifier's changes after this one's.
    pub fn extend(&mut self, other: HeaderModifier) {
        self.set.extend(other.set);
        self.add.extend(other.add);
        self.remove.extend(other.remove);
    }

    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
        for name in &self.remove {
            headers.remove(name);
        }
    }

    /// Builds one from the Gateway API lists; Err names the bad header.
    pub fn compile(
        set: impl IntoIterator<Item = (String, String)>,
        add: impl IntoIterator<Item = (String, String)>,
        remove: impl IntoIterator<Item = String>,
    ) -> Result<HeaderModifier, String> {
        let pair = |(name, value): (String, String)| -> Result<(HeaderName, HeaderValue), String> {
            let header =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("{name:?} is not a header name"))?;
            let value =
                HeaderValue::from_str(&value).map_err(|_| format!("{value:?} is not a valid value for {name}"))?;
            Ok((header, value))
        };
        Ok(HeaderModifier {
            set: set.into_iter().map(pair).collect::<Result<_, _>>()?,
            add: add.into_iter().map(pair).collect::<Result<_, _>>()?,
            remove: remove
                .into_iter()
                .map(|n| HeaderName::from_bytes(n.as_bytes()).map_err(|_| format!("{n:?} is not a header name")))
                .collect::<Result<_, _>>()?,
        })
    }
}
