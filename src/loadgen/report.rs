//! What a run prints and writes: the summary table, `--json` (every session's record and
//! each round's figures) and `--report` (a self-contained HTML page with SVG plots).

use std::fmt::Write as _;

use anyhow::anyhow;
use plotters::prelude::*;

use super::record::Pace;
use super::run::{Round, Workload};
use super::stats::{Aggregate, Percentiles};
use super::target::{Protocol, Target};

/// Everything a run measured.
#[derive(Debug, serde::Serialize)]
pub struct RunReport {
    /// The target as given.
    pub target: String,
    /// What it speaks.
    pub protocol: Protocol,
    /// How audio was paced.
    pub pace: Pace,
    /// Clips available to the sessions.
    pub clips: usize,
    /// The latency targets, as given.
    pub slo: Option<String>,
    /// Each round's figures and sessions.
    pub rounds: Vec<RoundReport>,
    /// The largest concurrency that met `slo`, when searched for.
    pub capacity: Option<usize>,
}

/// One round: its figures, what it missed of the targets, and its sessions.
#[derive(Debug, serde::Serialize)]
pub struct RoundReport {
    /// The round's figures.
    pub aggregate: Aggregate,
    /// What it missed of the targets (empty when it met them, or there were none).
    pub misses: Vec<String>,
    /// The raw sessions.
    pub round: Round,
}

impl RunReport {
    /// A report for `target` with no rounds yet.
    pub fn new(target: &Target, pace: Pace, clips: usize, slo: Option<String>) -> Self {
        Self {
            target: target.display.clone(),
            protocol: target.protocol,
            pace,
            clips,
            slo,
            rounds: Vec::new(),
            capacity: None,
        }
    }
}

/// One column of the summary, in the terminal and on the page: heading, width, value.
struct Column {
    heading: &'static str,
    width: usize,
    value: fn(&Aggregate) -> String,
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2} s"))
}

const COLUMNS: &[Column] = &[
    Column {
        heading: "workload",
        width: 16,
        value: |a| a.workload.to_string(),
    },
    Column {
        heading: "opened",
        width: 6,
        value: |a| a.sessions.to_string(),
    },
    Column {
        heading: "done",
        width: 5,
        value: |a| a.completed.to_string(),
    },
    Column {
        heading: "refused",
        width: 7,
        value: |a| a.refused.to_string(),
    },
    Column {
        heading: "failed",
        width: 6,
        value: |a| a.failed.to_string(),
    },
    Column {
        heading: "1st int",
        width: 8,
        value: |a| secs(a.first_interim_s.p50),
    },
    Column {
        heading: "1st words",
        width: 9,
        value: |a| secs(a.first_words_s.p50),
    },
    Column {
        heading: "commit50",
        width: 8,
        value: |a| secs(a.commit_lag_s.p50),
    },
    Column {
        heading: "commit90",
        width: 8,
        value: |a| secs(a.commit_lag_s.p90),
    },
    Column {
        heading: "commit99",
        width: 8,
        value: |a| secs(a.commit_lag_s.p99),
    },
    Column {
        heading: "final50",
        width: 8,
        value: |a| secs(a.final_latency_s.p50),
    },
    Column {
        heading: "final95",
        width: 8,
        value: |a| secs(a.final_latency_s.p95),
    },
    Column {
        heading: "final99",
        width: 8,
        value: |a| secs(a.final_latency_s.p99),
    },
    Column {
        heading: "WER",
        width: 7,
        value: |a| {
            a.wer
                .map_or_else(|| "-".into(), |w| format!("{:.2}%", 100.0 * w))
        },
    },
    Column {
        heading: "audio/s",
        width: 7,
        value: |a| format!("{:.2}", a.audio_per_wall),
    },
];

/// The summary table's header (percentile columns are p50 unless numbered).
pub fn table_header() -> String {
    let cells: Vec<String> = COLUMNS
        .iter()
        .map(|c| format!("{:>w$}", c.heading, w = c.width))
        .collect();
    cells.join(" ")
}

/// One round's line of the summary table.
pub fn table_row(a: &Aggregate) -> String {
    let cells: Vec<String> = COLUMNS
        .iter()
        .map(|c| format!("{:>w$}", (c.value)(a), w = c.width))
        .collect();
    cells.join(" ")
}

/// The self-contained HTML page of `report`.
pub fn html(report: &RunReport) -> anyhow::Result<String> {
    let mut page = String::new();
    let title = format!("hearken loadgen: {} ({})", report.target, report.protocol);
    write!(
        page,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title><style>\
         body{{font-family:sans-serif;margin:2em;color:#222}}\
         table{{border-collapse:collapse;font-size:0.9em}}\
         th,td{{border:1px solid #ccc;padding:0.3em 0.6em;text-align:right;white-space:nowrap}}\
         .miss{{color:#b00}} svg{{display:block;margin:1em 0}}</style></head><body>\
         <h1>{}</h1><p>{} clips, {} pace{}{}</p>",
        escape(&title),
        escape(&title),
        report.clips,
        match report.pace {
            Pace::RealTime => "real-time",
            Pace::Fast => "as-fast-as-possible",
        },
        report
            .slo
            .as_ref()
            .map(|s| format!(", targets <code>{}</code>", escape(s)))
            .unwrap_or_default(),
        match (report.slo.is_some(), report.capacity) {
            (true, Some(n)) => format!(", <b>largest concurrency meeting them: {n}</b>"),
            (true, None) => ", <b>no concurrency met them</b>".into(),
            _ => String::new(),
        }
    )?;
    page.push_str(&summary_table(report));
    let concurrency: Vec<&RoundReport> = report
        .rounds
        .iter()
        .filter(|r| matches!(r.aggregate.workload, Workload::Concurrency(_)))
        .collect();
    if !concurrency.is_empty() {
        page.push_str(&percentiles_plot(&concurrency)?);
    }
    for (name, pick) in [
        (
            "commit lag",
            (|a: &Round| commit_lags(a)) as fn(&Round) -> Vec<f64>,
        ),
        ("final latency", |a: &Round| {
            a.sessions
                .iter()
                .filter_map(|s| s.final_latency_s)
                .collect()
        }),
        ("first interim", |a: &Round| {
            a.sessions
                .iter()
                .filter_map(|s| s.first_interim_s)
                .collect()
        }),
    ] {
        if let Some(svg) = cdf_plot(name, &report.rounds, pick)? {
            page.push_str(&svg);
        }
    }
    page.push_str("</body></html>\n");
    Ok(page)
}

fn commit_lags(round: &Round) -> Vec<f64> {
    round
        .sessions
        .iter()
        .flat_map(|s| s.commit_lags_s.iter().copied())
        .collect()
}

fn summary_table(report: &RunReport) -> String {
    let mut out = String::from("<table><tr>");
    for column in COLUMNS {
        let _ = write!(out, "<th>{}</th>", escape(column.heading));
    }
    out.push_str("<th>misses</th></tr>");
    for r in &report.rounds {
        out.push_str("<tr>");
        for column in COLUMNS {
            let _ = write!(out, "<td>{}</td>", escape(&(column.value)(&r.aggregate)));
        }
        let _ = write!(
            out,
            "<td class=\"miss\">{}</td></tr>",
            escape(&r.misses.join("; "))
        );
    }
    out.push_str("</table>");
    out
}

/// Latency percentiles against concurrency, one line per figure.
fn percentiles_plot(rounds: &[&RoundReport]) -> anyhow::Result<String> {
    let x_of = |r: &RoundReport| match r.aggregate.workload {
        Workload::Concurrency(n) => n as f64,
        Workload::Arrivals(rate) => rate,
    };
    type Pick = fn(&Aggregate) -> &Percentiles;
    let lines: [(&str, Pick, u8); 5] = [
        ("first interim p50", |a| &a.first_interim_s, 50),
        ("commit lag p50", |a| &a.commit_lag_s, 50),
        ("commit lag p90", |a| &a.commit_lag_s, 90),
        ("final p50", |a| &a.final_latency_s, 50),
        ("final p95", |a| &a.final_latency_s, 95),
    ];
    let series: Vec<(&str, Vec<(f64, f64)>)> = lines
        .iter()
        .map(|(name, pick, q)| {
            let points = rounds
                .iter()
                .filter_map(|r| Some((x_of(r), pick(&r.aggregate).get(*q)?)))
                .collect();
            (*name, points)
        })
        .filter(|(_, points): &(&str, Vec<(f64, f64)>)| !points.is_empty())
        .collect();
    let x_max = rounds.iter().map(|r| x_of(r)).fold(1.0, f64::max);
    let y_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(0.5, f64::max);
    line_chart(
        "Latency against concurrency",
        "concurrent sessions",
        "seconds",
        (0.0, x_max * 1.05),
        (0.0, y_max * 1.1),
        &series,
        true,
    )
}

/// The cumulative distribution of `pick` in each round, one line per round.
fn cdf_plot(
    name: &str,
    rounds: &[RoundReport],
    pick: fn(&Round) -> Vec<f64>,
) -> anyhow::Result<Option<String>> {
    let series: Vec<(String, Vec<(f64, f64)>)> = rounds
        .iter()
        .filter_map(|r| {
            let mut values = pick(&r.round);
            values.sort_by(f64::total_cmp);
            let n = values.len() as f64;
            // A step at each value: the fraction below it, then at or below it.
            let points: Vec<(f64, f64)> = values
                .iter()
                .enumerate()
                .flat_map(|(i, v)| [(*v, i as f64 / n), (*v, (i + 1) as f64 / n)])
                .collect();
            (!points.is_empty()).then(|| (r.aggregate.workload.to_string(), points))
        })
        .collect();
    if series.is_empty() {
        return Ok(None);
    }
    let x_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .fold(0.5, f64::max);
    let named: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(n, p)| (n.as_str(), p.clone()))
        .collect();
    line_chart(
        &format!("Distribution of {name}"),
        &format!("{name} (s)"),
        "fraction at or below",
        (0.0, x_max * 1.05),
        (0.0, 1.0),
        &named,
        false,
    )
    .map(Some)
}

/// One SVG line chart.
fn line_chart(
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    x: (f64, f64),
    y: (f64, f64),
    series: &[(&str, Vec<(f64, f64)>)],
    points: bool,
) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(x.0..x.1, y.0..y.1)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()
            .map_err(plot_error)?;
        for (i, (name, data)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(data.iter().copied(), color.stroke_width(2)))
                .map_err(plot_error)?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            if points {
                chart
                    .draw_series(data.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(plot_error)?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the report's plot: {e}")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::record::{CommitTiming, Outcome, SessionRecord};

    fn round(n: usize, lag: f64) -> RoundReport {
        let session = SessionRecord {
            clip: "c".into(),
            started_s: 0.0,
            audio_seconds: 5.0,
            outcome: Outcome::Completed,
            code: None,
            message: None,
            first_interim_s: Some(0.8),
            first_words_s: Some(0.6),
            commit_lags_s: vec![lag, lag * 2.0],
            commit_timing: Some(CommitTiming::WordTimings),
            final_latency_s: Some(lag / 2.0),
            wall_s: 6.0,
            hypothesis: "hi".into(),
            errors: Some(0),
            reference_words: Some(1),
        };
        let round = Round {
            workload: Workload::Concurrency(n),
            wall_s: 6.0,
            sessions: vec![session; n],
        };
        RoundReport {
            aggregate: Aggregate::of(&round),
            misses: vec![],
            round,
        }
    }

    #[test]
    fn the_report_is_one_page_with_its_plots_inline() {
        let target = Target::parse("grpc://127.0.0.1:1").unwrap();
        let mut report = RunReport::new(&target, Pace::RealTime, 3, Some("final_p95=2s".into()));
        report.rounds = vec![round(1, 1.0), round(4, 2.5)];
        report.capacity = Some(4);
        let page = html(&report).unwrap();
        assert!(page.starts_with("<!doctype html>"));
        // One percentile plot and three distributions, drawn inline; nothing fetched.
        assert_eq!(page.matches("<svg").count(), 4, "{page}");
        assert!(page.contains("Latency against concurrency"));
        assert!(page.contains("largest concurrency meeting them: 4"));
        assert!(
            !page.contains("src=\"http"),
            "the page must be self-contained"
        );
        let row = table_row(&report.rounds[1].aggregate);
        assert!(
            row.contains("4 concurrent") && row.contains("1.25 s"),
            "{row}"
        );
    }
}
