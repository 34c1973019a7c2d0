//! `kubectl serin get [NAME]` and `kubectl serin list`: one line per Canary, as `kubectl get` prints
//! (`-o wide` adds the target and the message; `-o json|yaml` prints the objects).

use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use serin_crds::canary::{Canary, CanaryAnalysis};

/// How to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Wide,
    Json,
    Yaml,
}

/// The Canaries of a namespace, or of all (`namespace` None), from the cluster.
pub async fn list(client: &Client, namespace: Option<&str>) -> anyhow::Result<Vec<Canary>> {
    let api: Api<Canary> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    Ok(api.list(&ListParams::default()).await?.items)
}

/// The text to print for `canaries`.
pub fn render(canaries: &[Canary], output: Option<Output>, all_namespaces: bool) -> anyhow::Result<String> {
    match output {
        Some(Output::Json) => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": canaries});
            return Ok(serde_json::to_string_pretty(&list)? + "\n");
        }
        Some(Output::Yaml) => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": canaries});
            return Ok(serde_saphyr::to_string(&list)?);
        }
        _ => {}
    }
    if canaries.is_empty() {
        return Ok("No Canaries found.\n".into());
    }
    let wide = output == Some(Output::Wide);
    let mut rows = vec![header(all_namespaces, wide)];
    for canary in canaries {
        rows.push(row(canary, all_namespaces, wide));
    }
    Ok(columns(&rows))
}

fn header(all_namespaces: bool, wide: bool) -> Vec<String> {
    let mut header: Vec<&str> = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE");
    }
    header.extend(["NAME", "STRATEGY", "PHASE", "WEIGHT", "STEP", "FAILED CHECKS", "LAST TRANSITION"]);
    if wide {
        header.extend(["TARGET", "MESSAGE"]);
    }
    header.into_iter().map(String::from).collect()
}

fn row(canary: &Canary, all_namespaces: bool, wide: bool) -> Vec<String> {
    let status = canary.status.clone().unwrap_or_default();
    let analysis = &canary.spec.analysis;
    let mut row = Vec::new();
    if all_namespaces {
        row.push(canary.namespace().unwrap_or_default());
    }
    let (step, steps) = step_of(analysis, status.canary_weight, status.iterations);
    row.extend([
        canary.name_any(),
        strategy(analysis).to_string(),
        format!("{}{}", status.phase, if status.paused { " (paused)" } else { "" }),
        format!("{}%", status.canary_weight),
        format!("{step}/{steps}"),
        format!("{}/{}", status.failed_checks, threshold(analysis)),
        status.last_transition_time.map(|t| age(t.0)).unwrap_or_else(|| "-".into()),
    ]);
    if wide {
        let target = &canary.spec.target_ref;
        row.push(format!("{}/{}", target.kind.as_deref().unwrap_or("Deployment"), target.name));
        row.push(status.message);
    }
    row
}

/// The strategy the analysis describes, named as Flagger's metrics name it.
pub fn strategy(analysis: &CanaryAnalysis) -> &'static str {
    if analysis.is_ab_test() {
        "ab-testing"
    } else if analysis.iterations.unwrap_or(0) > 0 {
        "blue-green"
    } else {
        "canary"
    }
}

/// Which step of how many the run is at: by weight for a canary, by iteration otherwise. The
/// engine's rules: `stepWeight` wins over `stepWeights`, and `maxWeight` defaults to 100.
pub fn step_of(analysis: &CanaryAnalysis, weight: i32, iterations: i32) -> (i32, i32) {
    let step = analysis.step_weight.filter(|&s| s > 0);
    match (analysis.iterations.unwrap_or(0), step, analysis.step_weights.as_ref().filter(|w| !w.is_empty())) {
        (n, _, _) if n > 0 => (iterations.min(n), n),
        (_, Some(step), _) => {
            let max = analysis.max_weight.filter(|&m| m > 0).unwrap_or(100).min(100);
            (weight / step, (max + step - 1) / step)
        }
        (_, None, Some(weights)) => {
            let at = weights.iter().take_while(|w| **w <= weight).count();
            (if weight == 0 { 0 } else { at as i32 }, weights.len() as i32)
        }
        _ => (0, 0),
    }
}

/// Failed checks that end a run, as the engine counts them: `threshold`, or 1 when unset.
pub fn threshold(analysis: &CanaryAnalysis) -> i32 {
    analysis.threshold.filter(|&t| t > 0).unwrap_or(1)
}

fn age(since: jiff::Timestamp) -> String {
    let seconds = jiff::Timestamp::now().duration_since(since).as_secs().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m{}s", s / 60, s % 60),
        s if s < 172_800 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        s => format!("{}d", s / 86_400),
    }
}

/// Left-aligned columns three spaces apart, as kubectl prints them.
fn columns(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r.get(i).map_or(0, |c| c.chars().count())).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        text.push_str(cells.join("   ").trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis(value: serde_json::Value) -> CanaryAnalysis {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn steps_by_weight_list_by_step_weight_and_by_iteration() {
        assert_eq!(step_of(&analysis(serde_json::json!({"stepWeights": [10, 20, 50]})), 20, 0), (2, 3));
        assert_eq!(step_of(&analysis(serde_json::json!({"stepWeight": 20, "maxWeight": 50})), 40, 0), (2, 3));
        assert_eq!(step_of(&analysis(serde_json::json!({"iterations": 5})), 0, 3), (3, 5));
        assert_eq!(strategy(&analysis(serde_json::json!({"iterations": 5}))), "blue-green");
    }

    #[test]
    fn columns_line_up() {
        let rows = vec![vec!["NAME".into(), "PHASE".into()], vec!["podinfo".into(), "Progressing".into()]];
        assert_eq!(columns(&rows), "NAME      PHASE\npodinfo   Progressing\n");
    }
}
