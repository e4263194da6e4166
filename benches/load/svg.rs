//! The SVG plot: latency by percentile (log axis toward the tail, one line per
//! class), then requests per second and p99 latency per second over the run
//! (the flood's start marked), so a reader sees the shape and not one number.
//!
//! Written by hand: three line charts are ~150 lines, and a plotting crate
//! would add a dozen dependencies to every `cargo bench` build.

use std::fmt::Write;

use super::report::Report;

const WIDTH: f64 = 900.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];
/// The percentile axis ends at 99.999 (5 nines).
const NINES: f64 = 5.0;

/// XML-escape text.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round axis maximum and step (1, 2 or 5 times a power of ten) covering `max`.
pub fn nice_axis(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 0.2);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

/// Position of percentile `p` (0..=100) on the log axis: the number of nines.
pub fn nines(p: f64) -> f64 {
    if p >= 100.0 {
        return NINES;
    }
    (1.0 / (1.0 - p / 100.0)).log10().min(NINES)
}

struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

struct Chart<'a> {
    top: f64,
    height: f64,
    title: &'a str,
    y_label: &'a str,
    x_max: f64,
    x_ticks: Vec<(f64, String)>,
    marker: Option<(f64, &'a str)>,
}

const LEFT: f64 = 80.0;
const RIGHT: f64 = 160.0;

impl Chart<'_> {
    fn draw(&self, out: &mut String, series: &[Series]) {
        let w = WIDTH - LEFT - RIGHT;
        let h = self.height - 70.0;
        let (x0, y0) = (LEFT, self.top + 35.0);
        let y_data = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max);
        let (y_max, y_step) = nice_axis(y_data);
        let sx = |x: f64| x0 + w * (x / self.x_max.max(1e-9));
        let sy = |y: f64| y0 + h - h * (y / y_max);
        let _ = writeln!(
            out,
            r#"<text x="{x0}" y="{}" font-size="15" font-weight="bold">{}</text>"#,
            self.top + 20.0,
            escape(self.title)
        );
        let _ = writeln!(
            out,
            r##"<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#888"/>"##
        );
        let mut y = 0.0;
        while y <= y_max + y_step / 2.0 {
            let py = sy(y);
            let _ = writeln!(
                out,
                r##"<line x1="{x0}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
                x0 + w,
                x0 - 6.0,
                py + 4.0,
                trim(y)
            );
            y += y_step;
        }
        for (x, label) in &self.x_ticks {
            let px = sx(*x);
            let _ = writeln!(
                out,
                r##"<line x1="{px:.1}" y1="{y0}" x2="{px:.1}" y2="{:.1}" stroke="#eee"/><text x="{px:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
                y0 + h,
                y0 + h + 16.0,
                escape(label)
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="20" y="{:.1}" font-size="12" transform="rotate(-90 20 {:.1})" text-anchor="middle">{}</text>"#,
            y0 + h / 2.0,
            y0 + h / 2.0,
            escape(self.y_label)
        );
        if let Some((x, label)) = self.marker {
            let px = sx(x);
            let _ = writeln!(
                out,
                r##"<line x1="{px:.1}" y1="{y0}" x2="{px:.1}" y2="{:.1}" stroke="#000" stroke-dasharray="5,4"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"##,
                y0 + h,
                px + 4.0,
                y0 + 12.0,
                escape(label)
            );
        }
        for (i, s) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let pts: Vec<String> = s
                .points
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
                .collect();
            if !pts.is_empty() {
                let _ = writeln!(
                    out,
                    r#"<polyline class="series" fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                    pts.join(" ")
                );
            }
            let ly = y0 + 14.0 + 18.0 * i as f64;
            let _ = writeln!(
                out,
                r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="3"/><text x="{:.1}" y="{:.1}" font-size="12">{}</text>"#,
                x0 + w + 12.0,
                x0 + w + 32.0,
                x0 + w + 38.0,
                ly + 4.0,
                escape(&s.name)
            );
        }
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The whole plot for `report`.
pub fn render(report: &Report) -> String {
    let percentile = Chart {
        top: 50.0,
        height: 400.0,
        title: "Latency by percentile",
        y_label: "latency (ms)",
        x_max: NINES,
        x_ticks: ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
            .iter()
            .enumerate()
            .map(|(i, l)| (i as f64, l.to_string()))
            .collect(),
        marker: None,
    };
    let curves: Vec<Series> = report
        .classes
        .iter()
        .map(|c| Series {
            name: c.name.clone(),
            points: c
                .percentiles
                .iter()
                .map(|(p, us)| (nines(*p), *us as f64 / 1000.0))
                .collect(),
        })
        .collect();
    let seconds = report
        .classes
        .iter()
        .map(|c| c.timeline.len())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let step = (seconds / 10.0).ceil().max(1.0);
    let x_ticks: Vec<(f64, String)> = (0..=(seconds / step) as usize)
        .map(|i| (i as f64 * step, format!("{}s", i as f64 * step)))
        .collect();
    let marker = report
        .flood
        .as_ref()
        .map(|f| (f.baseline_s, "flood starts"));
    let timeline = |top, title, y_label| Chart {
        top,
        height: 260.0,
        title,
        y_label,
        x_max: seconds,
        x_ticks: x_ticks.clone(),
        marker,
    };
    let per_second = |f: &dyn Fn(&super::stats::Second) -> f64| -> Vec<Series> {
        report
            .classes
            .iter()
            .map(|c| Series {
                name: c.name.clone(),
                // A bucket's figures are drawn at the middle of its second.
                points: c
                    .timeline
                    .iter()
                    .map(|s| (s.t as f64 + 0.5, f(s)))
                    .collect(),
            })
            .collect()
    };
    let height = 50.0 + 400.0 + 260.0 * 2.0 + 20.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = format!(
        "passgate load: {} over HTTP/{}, {} connections, {}, {:.0} s, {} cores",
        report.scenario,
        report.http,
        report.connections,
        report.rate.map_or("closed loop".to_string(), |r| format!(
            "{r:.0} req/s open loop"
        )),
        report.elapsed_s,
        report.machine.cores,
    );
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="28" font-size="17">{}</text>"#,
        escape(&title)
    );
    percentile.draw(&mut out, &curves);
    timeline(450.0, "Requests per second", "requests/s")
        .draw(&mut out, &per_second(&|s| s.requests as f64));
    timeline(710.0, "p99 latency per second", "p99 (ms)")
        .draw(&mut out, &per_second(&|s| s.p99_us as f64 / 1000.0));
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn axes() {
        let close =
            |a: (f64, f64), b: (f64, f64)| (a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9;
        assert!(close(nice_axis(0.0), (1.0, 0.2)));
        assert!(close(nice_axis(9.3), (10.0, 2.0)));
        assert!(close(nice_axis(1234.0), (1500.0, 500.0)));
        assert!(close(nice_axis(0.42), (0.5, 0.1)));
        assert!((nines(0.0) - 0.0).abs() < 1e-12);
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-6);
        assert_eq!(nines(100.0), NINES);
        assert_eq!(escape(r#"<a & "b">"#), "&lt;a &amp; &quot;b&quot;&gt;");
        assert_eq!(trim(0.5), "0.5");
        assert_eq!(trim(200.0), "200");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod well_formed {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::render;
    use crate::load::args::Args;
    use crate::load::report::Report;
    use crate::load::scenarios::{IDLE_CLASS, Run};
    use crate::load::stats::{Outcome, Progress, Recorder, Timeline, merge_all};

    fn report(scenario: &str, classes: &[&'static str], flood: bool) -> Report {
        let args = Args::parse_from_list(["load", "--scenario", scenario, "-q"]).unwrap();
        let start = Instant::now();
        let timeline = Arc::new(Timeline::default());
        let mut rec = Recorder::new(start, Arc::clone(&timeline), Arc::new(Progress::default()));
        for i in 0..3000u64 {
            let class = classes[(i % classes.len() as u64) as usize];
            let at = start + Duration::from_millis(i);
            rec.record(
                class,
                Duration::from_micros(200 + i % 977),
                &Outcome::ok(200),
                at,
            );
        }
        let run = Run {
            classes: merge_all([rec.finish()]),
            timeline,
            elapsed: Duration::from_secs(3),
            flood_start: flood.then(|| Duration::from_secs(1)),
            fatal: None,
        };
        Report::new(&args, "in-process".into(), &run, None)
    }

    fn check(svg: &str, lines: usize) {
        let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        let series = root
            .descendants()
            .filter(|n| n.tag_name().name() == "polyline" && n.attribute("class") == Some("series"))
            .count();
        assert_eq!(series, lines, "{svg}");
        for n in root.descendants().filter(|n| n.has_tag_name("polyline")) {
            for p in n.attribute("points").unwrap_or("").split_whitespace() {
                let (x, y) = p.split_once(',').unwrap();
                assert!(
                    x.parse::<f64>().unwrap().is_finite() && y.parse::<f64>().unwrap().is_finite()
                );
            }
        }
    }

    #[test]
    fn plots_are_well_formed_xml() {
        // One class: a percentile curve, a throughput line, a p99 line.
        check(&render(&report("proxy", &["proxy"], false)), 3);
        // flood: three classes in each of the three charts, and the start marker.
        let svg = render(&report("flood", &[IDLE_CLASS, "proxy", "flood"], true));
        check(&svg, 9);
        assert!(svg.contains("flood starts"));
    }

    #[test]
    fn empty_run_still_plots() {
        let args = Args::parse_from_list(["load", "-q"]).unwrap();
        let run = Run {
            classes: Default::default(),
            timeline: Arc::new(Timeline::default()),
            elapsed: Duration::ZERO,
            flood_start: None,
            fatal: Some("x < y & z".into()),
        };
        check(&render(&Report::new(&args, "t".into(), &run, None)), 0);
    }
}
