//! JSON access logs on stdout, one line per request: off, on, or a random sample.

use std::io::Write;
use std::str::FromStr;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum AccessLog {
    #[default]
    Off,
    On,
    /// Logs this share (0..=1) of requests.
    Sampled(f64),
}

impl FromStr for AccessLog {
    type Err = String;

    fn from_str(text: &str) -> Result<AccessLog, String> {
        match text {
            "off" => Ok(AccessLog::Off),
            "on" => Ok(AccessLog::On),
            _ => {
                let share = text
                    .strip_prefix("sampled:")
                    .and_then(|s| s.parse::<f64>().ok())
                    .filter(|s| (0.0..=1.0).contains(s))
                    .ok_or_else(|| format!("{text:?}: expected off, on, or sampled:SHARE with SHARE in 0..=1"))?;
                Ok(AccessLog::Sampled(share))
            }
        }
    }
}

/// One request, as logged.
#[derive(Debug, Serialize)]
pub struct AccessEntry<'a> {
    /// RFC 3339, UTC.
    pub time: String,
    pub client: String,
    pub method: &'a str,
    pub authority: &'a str,
    pub path: &'a str,
    pub protocol: &'a str,
    pub status: u16,
    pub duration_ms: f64,
    pub service: &'a str,
    pub namespace: &'a str,
    pub route: &'a str,
    pub backend: &'a str,
    pub version: &'a str,
    pub endpoint: Option<String>,
    pub attempts: u32,
    pub trace_id: &'a str,
    /// Who is to blame when the proxy itself answered: client, policy, fault or upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blame: Option<&'a str>,
    /// What `x-meshproxy-error` said, when the proxy itself answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

impl AccessLog {
    /// Whether this request is logged; decided before the work of building the entry.
    pub fn wants(&self) -> bool {
        match self {
            AccessLog::Off => false,
            AccessLog::On => true,
            AccessLog::Sampled(share) => fastrand::f64() < *share,
        }
    }

    pub fn write(entry: &AccessEntry<'_>) {
        let Ok(mut line) = serde_json::to_vec(entry) else { return };
        line.push(b'\n');
        // A closed stdout must not take requests down with it.
        let _ = std::io::stdout().lock().write_all(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modes() {
        assert_eq!("off".parse::<AccessLog>(), Ok(AccessLog::Off));
        assert_eq!("on".parse::<AccessLog>(), Ok(AccessLog::On));
        assert_eq!("sampled:0.25".parse::<AccessLog>(), Ok(AccessLog::Sampled(0.25)));
        assert!("sampled:2".parse::<AccessLog>().is_err() && "maybe".parse::<AccessLog>().is_err());
    }
}
