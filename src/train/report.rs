//! `output/data/report.html`: the training run as pictures people look at
//! rather than numbers they read. One self-contained file (inline SVG and
//! CSS, no script, no CDN, so it opens from S3, a laptop or an air-gapped
//! review): ROC and precision-recall curves of every model on the
//! evaluation set with each model's threshold marked, the reliability
//! (calibration) plot, total cost and savings against the threshold for the
//! default model (when errors have a price), and the top features by mean
//! |contribution|. The SVG is written by hand: the shapes are polylines,
//! circles and rectangles, and a plotting crate (plotters) would add a
//! dependency tree to draw them.

use super::card::Importance;
use crate::decide::{self, CostPoint};
use crate::metrics::reliability;
use crate::model::ModelKind;
use std::fmt::Write as _;

/// One model's figures on the evaluation set.
pub struct Curves<'a> {
    pub kind: ModelKind,
    /// Calibrated scores of the evaluation set's rows.
    pub scores: &'a [f32],
    pub threshold: f64,
    pub auc_roc: f64,
    pub auprc: f64,
    pub importance: Option<&'a Importance>,
}

/// Everything the report shows.
pub struct Input<'a> {
    /// "test" or "validation".
    pub set: &'a str,
    pub labels: &'a [u8],
    pub models: Vec<Curves<'a>>,
    pub default_model: ModelKind,
    /// What a missed fraud costs per evaluation row, and a review; `None`
    /// when errors have no price (no amount column, `fraud_cost=amount`).
    pub costs: Option<(&'a [f64], f64)>,
}

/// Drawing area of every plot, in SVG units.
const W: f64 = 360.0;
const H: f64 = 300.0;
const PAD: f64 = 44.0;
/// Smallest step (in units of the axes, which span 1) between two points a
/// curve keeps: finer steps are not visible and only swell the file.
const MIN_STEP: f64 = 1.0 / 500.0;
/// Width of the legend beside each plot.
const LEGEND: f64 = 170.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// Escapes text for HTML and SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// (false-positive rate, recall, precision) at every cut, from the top
/// score down, one point a distinct score; starts at (0, 0, 1).
fn cuts(scores: &[f32], labels: &[u8]) -> Vec<(f64, f64, f64, f32)> {
    let mut idx: Vec<usize> = (0..scores.len().min(labels.len()))
        .filter(|&i| !scores[i].is_nan())
        .collect();
    idx.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let pos = labels.iter().filter(|&&y| y == 1).count().max(1) as f64;
    let neg = (labels.len() as f64 - pos).max(1.0);
    let (mut tp, mut fp) = (0f64, 0f64);
    let mut out = vec![(0.0, 0.0, 1.0, f32::INFINITY)];
    for run in idx.chunk_by(|&a, &b| scores[a] == scores[b]) {
        for &i in run {
            if labels[i] == 1 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
        }
        out.push((fp / neg, tp / pos, tp / (tp + fp), scores[run[0]]));
    }
    out
}

/// The points of a curve (in axes that span 1) that move at least
/// [`MIN_STEP`] from the last one kept, and always the first and last: a
/// curve of 50,000 cuts draws with a few hundred points where it bends.
fn thin(v: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (k, &p) in v.iter().enumerate() {
        let far = out
            .last()
            .is_none_or(|q| (p.0 - q.0).abs() + (p.1 - q.1).abs() >= MIN_STEP);
        if far || k + 1 == v.len() {
            out.push(p);
        }
    }
    out
}

/// A plot's frame: axes from `x0..x1` and `y0..y1`, ticks, labels.
struct Plot {
    svg: String,
    x: (f64, f64),
    y: (f64, f64),
}

impl Plot {
    /// A plot of rates: both axes run from 0 to 1.
    fn unit(title: &str, xlabel: &str, ylabel: &str) -> Plot {
        Plot::new(title, xlabel, ylabel, (0.0, 1.0), (0.0, 1.0))
    }

    fn new(title: &str, xlabel: &str, ylabel: &str, x: (f64, f64), y: (f64, f64)) -> Plot {
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<figure><figcaption>{}</figcaption><svg viewBox="0 0 {} {}" width="{}" height="{}" role="img" aria-label="{}">"#,
            esc(title),
            W + PAD * 1.5 + LEGEND,
            H + PAD * 1.5,
            W + PAD * 1.5 + LEGEND,
            H + PAD * 1.5,
            esc(title)
        );
        let mut p = Plot { svg, x, y };
        p.frame(xlabel, ylabel);
        p
    }

    fn px(&self, v: f64) -> f64 {
        PAD + (v - self.x.0) / (self.x.1 - self.x.0).max(f64::MIN_POSITIVE) * W
    }

    fn py(&self, v: f64) -> f64 {
        PAD * 0.5 + H - (v - self.y.0) / (self.y.1 - self.y.0).max(f64::MIN_POSITIVE) * H
    }

    fn frame(&mut self, xlabel: &str, ylabel: &str) {
        let (l, r, t, b) = (PAD, PAD + W, PAD * 0.5, PAD * 0.5 + H);
        let _ = write!(
            self.svg,
            r##"<rect x="{l}" y="{t}" width="{W}" height="{H}" fill="#fff" stroke="#999"/>"##
        );
        for k in 0..=4 {
            let f = f64::from(k) / 4.0;
            let (xv, yv) = (
                self.x.0 + f * (self.x.1 - self.x.0),
                self.y.0 + f * (self.y.1 - self.y.0),
            );
            let (x, y) = (self.px(xv), self.py(yv));
            let _ = write!(
                self.svg,
                r##"<line x1="{x:.1}" y1="{t}" x2="{x:.1}" y2="{b}" stroke="#eee"/><line x1="{l}" y1="{y:.1}" x2="{r}" y2="{y:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
                b + 13.0,
                tick(xv),
                l - 4.0,
                y + 3.0,
                tick(yv)
            );
        }
        let _ = write!(
            self.svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text><text x="12" y="{:.1}" font-size="11" text-anchor="middle" transform="rotate(-90 12 {:.1})">{}</text>"#,
            l + W / 2.0,
            b + 30.0,
            esc(xlabel),
            t + H / 2.0,
            t + H / 2.0,
            esc(ylabel)
        );
    }

    /// A polyline; values beyond the axes are drawn at their edge.
    fn line(&mut self, points: &[(f64, f64)], colour: &str, dash: bool) {
        let pts: Vec<String> = points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| {
                let (x, y) = (x.clamp(self.x.0, self.x.1), y.clamp(self.y.0, self.y.1));
                format!("{:.1},{:.1}", self.px(x), self.py(y))
            })
            .collect();
        let dash = if dash {
            r#" stroke-dasharray="4 3""#
        } else {
            ""
        };
        let _ = write!(
            self.svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="1.6"{dash}/>"#,
            pts.join(" ")
        );
    }

    fn dot(&mut self, x: f64, y: f64, colour: &str, title: &str) {
        if x.is_finite() && y.is_finite() {
            let _ = write!(
                self.svg,
                r##"<circle cx="{:.1}" cy="{:.1}" r="4.5" fill="{colour}" stroke="#000"><title>{}</title></circle>"##,
                self.px(x),
                self.py(y),
                esc(title)
            );
        }
    }

    fn finish(mut self, legend: &[(String, &str)]) -> String {
        for (k, (text, colour)) in legend.iter().enumerate() {
            let y = PAD * 0.5 + 14.0 + 14.0 * k as f64;
            let x = PAD + W + 10.0;
            let _ = write!(
                self.svg,
                r#"<rect x="{x}" y="{:.1}" width="10" height="10" fill="{colour}"/><text x="{:.1}" y="{y:.1}" font-size="10" dy="-1">{}</text>"#,
                y - 9.0,
                x + 14.0,
                esc(text)
            );
        }
        self.svg.push_str("</svg></figure>");
        self.svg
    }
}

/// Four significant digits, in scientific notation below 0.01.
pub fn significant(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.01 {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

fn tick(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{:.0}", v)
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The point of a curve where a threshold cuts it: the last cut whose
/// score is at or above the threshold.
fn at_threshold(c: &[(f64, f64, f64, f32)], threshold: f64) -> (f64, f64, f64) {
    let p = c
        .iter()
        .rev()
        .find(|p| f64::from(p.3) >= threshold)
        .unwrap_or(&c[0]);
    (p.0, p.1, p.2)
}

/// The report's HTML.
pub fn render(input: &Input<'_>) -> String {
    let mut roc = Plot::unit(
        &format!("ROC on {} (dot: the model's threshold)", input.set),
        "false-positive rate",
        "recall (true-positive rate)",
    );
    let mut pr = Plot::unit(
        &format!("Precision-recall on {}", input.set),
        "recall",
        "precision",
    );
    let mut cal = Plot::unit(
        &format!("Calibration on {} (10 bins)", input.set),
        "mean predicted probability",
        "observed fraud rate",
    );
    cal.line(&[(0.0, 0.0), (1.0, 1.0)], "#999", true);
    roc.line(&[(0.0, 0.0), (1.0, 1.0)], "#999", true);
    let mut legend = Vec::new();
    for (k, m) in input.models.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let c = cuts(m.scores, input.labels);
        roc.line(
            &thin(&c.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>()),
            colour,
            false,
        );
        pr.line(
            &thin(&c.iter().skip(1).map(|p| (p.1, p.2)).collect::<Vec<_>>()),
            colour,
            false,
        );
        let (fpr, rec, prec) = at_threshold(&c, m.threshold);
        let label = format!("{} at threshold {:.3}", m.kind, m.threshold);
        roc.dot(fpr, rec, colour, &label);
        pr.dot(rec, prec, colour, &label);
        let bins = reliability(m.scores, input.labels, 10);
        cal.line(
            &bins
                .iter()
                .map(|b| (b.mean_predicted, b.observed_rate))
                .collect::<Vec<_>>(),
            colour,
            false,
        );
        legend.push((
            format!(
                "{}{} AUC {:.3} AP {:.3}",
                m.kind,
                if m.kind == input.default_model {
                    "*"
                } else {
                    ""
                },
                m.auc_roc,
                m.auprc
            ),
            colour,
        ));
    }
    let mut figures = vec![roc.finish(&legend), pr.finish(&legend), cal.finish(&legend)];
    let default = input.models.iter().find(|m| m.kind == input.default_model);
    if let (Some(m), Some((miss, review))) = (default, &input.costs) {
        figures.push(cost_plot(input, m, miss, *review));
    }
    if let Some(i) = default.and_then(|m| m.importance) {
        figures.push(importance_plot(input.default_model, i));
    }
    let rows: String = input
        .models
        .iter()
        .map(|m| {
            format!(
                "<tr><td>{}{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td></tr>",
                m.kind,
                if m.kind == input.default_model {
                    " (default)"
                } else {
                    ""
                },
                m.auc_roc,
                m.auprc,
                m.threshold
            )
        })
        .collect();
    let frauds = input.labels.iter().filter(|&&y| y == 1).count();
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ccfraud training report</title><style>
body{{font-family:system-ui,sans-serif;margin:24px;color:#222}} figure{{display:inline-block;margin:8px;vertical-align:top}}
figcaption{{font-weight:600;margin-bottom:4px}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}</style></head><body>
<h1>ccfraud training report</h1>
<p>Evaluated on the {set} set: {rows_n} transactions, {frauds} frauds. Scores are the calibrated probabilities each model serves; * marks the default model.</p>
<table><tr><th>model</th><th>AUC-ROC</th><th>AUPRC</th><th>threshold</th></tr>{rows}</table>
{figures}
</body></html>
"#,
        set = esc(input.set),
        rows_n = input.labels.len(),
        figures = figures.join("\n"),
    )
}

/// Total cost and savings of the default model against the threshold.
fn cost_plot(input: &Input<'_>, m: &Curves<'_>, miss: &[f64], review: f64) -> String {
    let grid: Vec<f64> = (0..=100).map(|k| f64::from(k) / 100.0).collect();
    let points: Vec<CostPoint> = grid
        .iter()
        .map(|&t| decide::at(m.scores, input.labels, miss, review, t))
        .collect();
    // Axes from minus to plus the cost of no model: alerting nearly
    // everything costs far more, and would flatten the part that matters.
    let none = points
        .last()
        .map_or(1.0, |p| p.total_cost + p.savings)
        .max(1.0);
    let (low, top) = (-none, 1.1 * none);
    let mut plot = Plot::new(
        &format!(
            "Cost and savings of {} on {} (review {review}; dot: its threshold; clipped at ±the cost of no model)",
            m.kind, input.set
        ),
        "threshold",
        "amount",
        (0.0, 1.0),
        (low, top),
    );
    plot.line(
        &points
            .iter()
            .map(|p| (p.threshold, p.total_cost))
            .collect::<Vec<_>>(),
        COLOURS[1],
        false,
    );
    plot.line(
        &points
            .iter()
            .map(|p| (p.threshold, p.savings))
            .collect::<Vec<_>>(),
        COLOURS[2],
        false,
    );
    let chosen = decide::at(m.scores, input.labels, miss, review, m.threshold);
    plot.dot(
        m.threshold,
        chosen.total_cost,
        COLOURS[1],
        &format!(
            "threshold {:.3}: cost {:.0}, savings {:.0}",
            m.threshold, chosen.total_cost, chosen.savings
        ),
    );
    plot.finish(&[
        ("total cost".to_string(), COLOURS[1]),
        ("savings vs no model".to_string(), COLOURS[2]),
    ])
}

/// The top features of the default model, as horizontal bars.
fn importance_plot(kind: ModelKind, i: &Importance) -> String {
    let top: Vec<&(String, f64)> = i.features.iter().take(15).collect();
    let max = top.iter().map(|f| f.1).fold(f64::MIN_POSITIVE, f64::max);
    let row = 18.0;
    let height = row * top.len() as f64 + 10.0;
    let (label_w, bar_w) = (110.0, 300.0);
    let mut svg = format!(
        r#"<figure><figcaption>Top features of {kind}: mean |contribution| ({:?}, {} validation rows)</figcaption><svg viewBox="0 0 {} {height}" width="{}" height="{height}" role="img" aria-label="top features">"#,
        i.space,
        i.rows,
        label_w + bar_w + 70.0,
        label_w + bar_w + 70.0,
    );
    for (k, (name, v)) in top.iter().enumerate() {
        let y = 5.0 + row * k as f64;
        let w = v / max * bar_w;
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text><rect x="{label_w}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="#1f77b4"/><text x="{:.1}" y="{:.1}" font-size="10">{}</text>"##,
            label_w - 6.0,
            y + 12.0,
            esc(name),
            row - 4.0,
            label_w + w + 4.0,
            y + 12.0,
            significant(*v)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::explain::Space;

    fn input<'a>(scores: &'a [f32], labels: &'a [u8], imp: &'a Importance) -> Input<'a> {
        Input {
            set: "test",
            labels,
            models: vec![Curves {
                kind: ModelKind::Gbdt,
                scores,
                threshold: 0.5,
                auc_roc: 0.9,
                auprc: 0.8,
                importance: Some(imp),
            }],
            default_model: ModelKind::Gbdt,
            costs: Some((&[100.0; 4][..], 5.0)),
        }
    }

    #[test]
    fn cuts_walk_the_scores_from_the_top() {
        let c = cuts(&[0.9, 0.8, 0.8, 0.1], &[1, 0, 1, 0]);
        let fpr_rec: Vec<(f64, f64)> = c.iter().map(|p| (p.0, p.1)).collect();
        assert_eq!(fpr_rec, [(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]);
        assert_eq!(c[2].2, 2.0 / 3.0);
        assert_eq!(at_threshold(&c, 0.85), (0.0, 0.5, 1.0));
        assert_eq!(at_threshold(&c, 0.95), (0.0, 0.0, 1.0));
        // 10,000 steps of 1e-4: about every twentieth kept (float sums
        // land a step early or late), and the last
        let fine: Vec<(f64, f64)> = (0..=10_000).map(|k| (f64::from(k) * 1e-4, 0.0)).collect();
        let t = thin(&fine);
        assert!((495..=502).contains(&t.len()), "{}", t.len());
        assert_eq!(t.last(), fine.last());
        assert_eq!(thin(&[(0.0, 0.0), (0.5, 0.5)]), [(0.0, 0.0), (0.5, 0.5)]);
        assert_eq!(significant(0.000_612), "6.120e-4");
        assert_eq!(significant(0.4301), "0.4301");
    }

    #[test]
    fn the_report_is_one_self_contained_page_with_every_plot() {
        let imp = Importance {
            space: Space::LogOdds,
            rows: 4,
            features: vec![("V14".into(), 1.5), ("<V4>".into(), 0.5)],
        };
        let scores = [0.9, 0.8, 0.3, 0.1];
        let labels = [1, 0, 1, 0];
        let html = render(&input(&scores, &labels, &imp));
        assert!(html.starts_with("<!doctype html>"));
        for want in [
            "ROC on test",
            "Precision-recall on test",
            "Calibration on test",
            "Cost and savings of gbdt",
            "Top features of gbdt",
            "V14",
            "&lt;V4&gt;",
            "4 transactions, 2 frauds",
        ] {
            assert!(html.contains(want), "{want}");
        }
        assert_eq!(html.matches("<svg").count(), 5);
        assert!(
            !html.contains("http://") && !html.contains("https://") && !html.contains("<script")
        );
        assert!(!html.contains("NaN") && !html.contains("inf"), "{html}");
        // without prices, no cost plot
        let mut i = input(&scores, &labels, &imp);
        i.costs = None;
        assert_eq!(render(&i).matches("<svg").count(), 4);
    }
}
