//! One SVG chart of the report: lines over time, the metric's threshold as a dashed line, the
//! rollout's phases and steps as vertical marks, and waits at a gate as shaded spans. Every label
//! is placed inside the picture, in the first free lane, so that none is cut off or drawn over
//! another.

use std::fmt::Write as _;

use super::escape;

pub const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 50.0;
const RIGHT: f64 = 20.0;
const BOTTOM: f64 = 44.0;
/// Room above the plot for two lanes of phase labels and one of step labels.
const TOP: f64 = 52.0;
const PHASE_LANES: [f64; 2] = [14.0, 28.0];
const STEP_LANE: f64 = 44.0;
/// Rough width of one character at the sizes used (system-ui 10 to 12 px).
const CHAR_WIDTH: f64 = 6.2;

/// One line of a chart.
pub struct Series<'a> {
    pub label: &'a str,
    pub color: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// The value a metric must stay on the right side of, as its Canary says.
pub struct Threshold {
    pub value: f64,
    pub label: String,
}

/// Something that happened at a moment of the rollout.
pub struct Mark {
    pub seconds: f64,
    pub label: String,
}

/// What every chart of one report shares: the time axis and its marks.
pub struct Timeline {
    /// Seconds the report covers.
    pub end: f64,
    /// Phase changes.
    pub phases: Vec<Mark>,
    /// Each step: a new weight, or a new iteration for A/B and blue/green.
    pub steps: Vec<Mark>,
    /// Spans spent waiting at a gate, as (from, to, label).
    pub gate_waits: Vec<(f64, f64, String)>,
}

pub struct Chart<'a> {
    pub title: &'a str,
    pub series: Vec<Series<'a>>,
    pub threshold: Option<Threshold>,
    /// The top of the value axis; else a little above the highest value or threshold.
    pub fixed_max: Option<f64>,
}

impl Chart<'_> {
    pub fn svg(&self, timeline: &Timeline) -> String {
        let highest = self.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0_f64, f64::max);
        let highest = highest.max(self.threshold.as_ref().map_or(0.0, |t| t.value));
        let top = self.fixed_max.unwrap_or_else(|| round_up(highest * 1.1));
        let plot = Plot { end: timeline.end.max(1.0), top };
        let mut svg = format!(
            r#"<h2>{}</h2><svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="system-ui,sans-serif">"#,
            escape(self.title)
        );
        plot.frame(&mut svg);
        plot.gate_waits(&mut svg, &timeline.gate_waits);
        plot.marks(&mut svg, &timeline.phases, &PHASE_LANES, "#999", "10");
        plot.marks(&mut svg, &timeline.steps, &[STEP_LANE], "#bbb", "10");
        if let Some(threshold) = &self.threshold {
            plot.threshold(&mut svg, threshold);
        }
        for line in &self.series {
            let points: Vec<String> =
                line.points.iter().map(|&(t, v)| format!("{:.1},{:.1}", plot.x(t), plot.y(v))).collect();
            let _ = write!(
                svg,
                r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
                line.color,
                points.join(" ")
            );
        }
        plot.legend(&mut svg, &self.series, self.threshold.is_some());
        svg.push_str("</svg>");
        svg
    }
}

/// The plotting area's scales.
struct Plot {
    end: f64,
    top: f64,
}

impl Plot {
    fn x(&self, seconds: f64) -> f64 {
        LEFT + (WIDTH - LEFT - RIGHT) * seconds.clamp(0.0, self.end) / self.end
    }

    fn y(&self, value: f64) -> f64 {
        TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - value.clamp(0.0, self.top) / self.top)
    }

    /// The box, the value axis at 0, half and top, and the time axis every few seconds.
    fn frame(&self, svg: &mut String) {
        let _ = write!(
            svg,
            r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#ccc"/>"##,
            WIDTH - LEFT - RIGHT,
            HEIGHT - TOP - BOTTOM
        );
        for fraction in [0.0, 0.5, 1.0] {
            let value = self.top * fraction;
            let _ = write!(
                svg,
                r##"<text x="{}" y="{:.1}" font-size="11" text-anchor="end" fill="#555">{value:.0}</text>"##,
                LEFT - 4.0,
                self.y(value) + 4.0
            );
        }
        let every = tick_spacing(self.end);
        let mut tick = 0.0;
        while tick <= self.end + 1e-9 {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle" fill="#555">{tick:.0}s</text>"##,
                self.x(tick).clamp(LEFT + 8.0, WIDTH - RIGHT - 8.0),
                HEIGHT - BOTTOM + 14.0
            );
            tick += every;
        }
    }

    fn gate_waits(&self, svg: &mut String, waits: &[(f64, f64, String)]) {
        for (from, to, label) in waits {
            let (x1, x2) = (self.x(*from), self.x(*to));
            let _ = write!(
                svg,
                r##"<rect x="{x1:.1}" y="{TOP}" width="{:.1}" height="{}" fill="#fff3bf" opacity="0.7"><title>{}</title></rect>"##,
                (x2 - x1).max(1.0),
                HEIGHT - TOP - BOTTOM,
                escape(label)
            );
        }
    }

    /// A vertical line per mark, its label in the first lane where it fits.
    fn marks(&self, svg: &mut String, marks: &[Mark], lanes: &[f64], color: &str, size: &str) {
        let mut placed = Lanes::new(lanes.len());
        for mark in marks {
            let x = self.x(mark.seconds);
            let _ = write!(
                svg,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="{color}" stroke-dasharray="3,3" stroke-width="0.8"/>"##,
                HEIGHT - BOTTOM
            );
            let width = mark.label.chars().count() as f64 * CHAR_WIDTH;
            // Past the right edge, the label ends at the line instead of starting there.
            let start = (x + 2.0).min(WIDTH - RIGHT - width).max(2.0);
            if let Some(lane) = placed.take(start, width) {
                let _ = write!(
                    svg,
                    r##"<text x="{start:.1}" y="{}" font-size="{size}" fill="#555">{}</text>"##,
                    lanes[lane],
                    escape(&mark.label)
                );
            }
        }
    }

    fn threshold(&self, svg: &mut String, threshold: &Threshold) {
        let y = self.y(threshold.value);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#c92a2a" stroke-dasharray="6,4" stroke-width="1.2"/>"##,
            WIDTH - RIGHT
        );
        // Above the line, unless that would leave the plot.
        let label_y = if y - 4.0 < TOP + 10.0 { y + 13.0 } else { y - 4.0 };
        let _ = write!(
            svg,
            r##"<text x="{}" y="{label_y:.1}" font-size="11" text-anchor="end" fill="#c92a2a">{}</text>"##,
            WIDTH - RIGHT - 4.0,
            escape(&threshold.label)
        );
    }

    fn legend(&self, svg: &mut String, series: &[Series<'_>], threshold: bool) {
        let mut x = LEFT;
        let y = HEIGHT - 8.0;
        let entries = series.iter().map(|s| (s.label, s.color, "")).chain(threshold.then_some((
            "threshold",
            "#c92a2a",
            r#" stroke-dasharray="6,4""#,
        )));
        for (label, color, dash) in entries {
            let _ = write!(
                svg,
                r#"<line x1="{x:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="2"{dash}/><text x="{:.1}" y="{y}" font-size="12" fill="{color}">{}</text>"#,
                x + 18.0,
                y - 4.0,
                y - 4.0,
                x + 22.0,
                escape(label)
            );
            x += 22.0 + label.chars().count() as f64 * CHAR_WIDTH * 1.1 + 18.0;
        }
    }
}

/// Rows of labels, each remembering where its last label ends.
struct Lanes {
    ends: Vec<f64>,
}

impl Lanes {
    fn new(count: usize) -> Lanes {
        Lanes { ends: vec![f64::NEG_INFINITY; count] }
    }

    /// The first lane free from `start` for `width`, now taken; none when every lane is busy.
    fn take(&mut self, start: f64, width: f64) -> Option<usize> {
        let lane = self.ends.iter().position(|&end| end + 4.0 <= start)?;
        self.ends[lane] = start + width;
        Some(lane)
    }
}

/// A round number at or above `value`, for the top of the value axis.
fn round_up(value: f64) -> f64 {
    let magnitude = 10f64.powf(value.max(1.0).log10().floor());
    let steps = [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0];
    steps.into_iter().map(|s| s * magnitude).find(|top| *top >= value).unwrap_or(10.0 * magnitude)
}

/// Seconds between time labels: a round number giving at most ten of them.
fn tick_spacing(end: f64) -> f64 {
    [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0].into_iter().find(|s| end / s <= 10.0).unwrap_or(600.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_takes_the_first_free_lane_and_none_when_all_are_busy() {
        let mut lanes = Lanes::new(2);
        assert_eq!(lanes.take(0.0, 50.0), Some(0));
        assert_eq!(lanes.take(20.0, 50.0), Some(1));
        assert_eq!(lanes.take(40.0, 50.0), None);
        assert_eq!(lanes.take(60.0, 10.0), Some(0));
    }

    #[test]
    fn the_value_axis_ends_at_a_round_number() {
        assert_eq!(round_up(298.0), 300.0);
        assert_eq!(round_up(110.0), 120.0);
        assert_eq!(round_up(3.3), 4.0);
        assert_eq!(round_up(0.2), 1.0);
        assert_eq!(round_up(1000.0), 1000.0);
    }

    #[test]
    fn time_labels_are_round_and_few() {
        assert_eq!(tick_spacing(9.0), 1.0);
        assert_eq!(tick_spacing(14.0), 2.0);
        assert_eq!(tick_spacing(45.0), 5.0);
        assert_eq!(tick_spacing(150.0), 15.0);
    }

    /// Every text's extent, by the same estimate the placement uses.
    fn text_spans(svg: &str) -> Vec<(f64, f64, String)> {
        let mut spans = Vec::new();
        for piece in svg.split("<text ").skip(1) {
            let attr = |name: &str| -> Option<f64> {
                let at = piece.find(&format!("{name}=\""))? + name.len() + 2;
                piece[at..].split('"').next()?.parse().ok()
            };
            let text = piece.split('>').nth(1).unwrap_or_default().split('<').next().unwrap_or_default().to_string();
            let width = text.chars().count() as f64 * CHAR_WIDTH;
            let x = attr("x").unwrap();
            let start = if piece.contains(r#"text-anchor="end""#) {
                x - width
            } else if piece.contains(r#"text-anchor="middle""#) {
                x - width / 2.0
            } else {
                x
            };
            spans.push((start, start + width, text));
        }
        spans
    }

    #[test]
    fn labels_late_in_the_run_stay_inside_the_picture() {
        let mark = |seconds: f64, label: &str| Mark { seconds, label: label.to_string() };
        let timeline = Timeline {
            end: 14.0,
            phases: vec![mark(0.0, "Progressing"), mark(12.5, "Finalising"), mark(13.6, "Succeeded")],
            steps: vec![mark(2.0, "20%"), mark(13.9, "100%")],
            gate_waits: vec![(4.0, 6.0, "waiting at confirm-promotion".into())],
        };
        let chart = Chart {
            title: "t",
            series: vec![Series { label: "canary p99", color: "#000", points: vec![(0.0, 3.0), (14.0, 5.0)] }],
            threshold: Some(Threshold { value: 100.0, label: "max 100 ms".into() }),
            fixed_max: None,
        };
        let svg = chart.svg(&timeline);
        let spans = text_spans(&svg);
        for (start, end, text) in &spans {
            assert!(*start >= 0.0 && *end <= WIDTH, "{text:?} spans {start:.0}..{end:.0}");
        }
        let labels: Vec<&str> = spans.iter().map(|s| s.2.as_str()).collect();
        for wanted in ["Finalising", "Succeeded", "100%", "max 100 ms", "threshold"] {
            assert!(labels.contains(&wanted), "{wanted} missing from {labels:?}");
        }
        assert!(svg.contains("waiting at confirm-promotion"));
        // The threshold sets the scale: 100 ms is inside the plot although the lines stay low.
        assert!(svg.contains(r##"stroke="#c92a2a" stroke-dasharray="6,4" stroke-width="1.2""##));
    }
}
