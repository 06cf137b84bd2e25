//! `flowtime plot TARGET-OR-RUN SERIES... [--bins a..b] --out FILE.png|FILE.svg`: a chart of
//! series in the workbench's style (UTC time axis, units, legend, NaN as a gap), titled with the
//! target and its revision (or the run id). A session or variant is read through the API
//! (`GetGraph` for units, `GetSeries` for values); a run directory from its files.
//!
//! Text is drawn with DejaVu Sans compiled into the binary (the `dejavu` crate; DejaVu fonts
//! license, a Bitstream Vera derivative: free to embed and redistribute), so a machine without
//! system fonts renders the same labels. Same data, same bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::json;

use crate::cli::api::{status, target};
use crate::cli::query::parse_window;
use crate::cli::{Api, Failure, Reply};
use crate::diag::Diagnostic;
use crate::model::grid::{format_minutes, parse_utc_minutes};
use crate::server::pb;
use crate::sys;

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 500;
/// The page's series colours (light theme).
const PALETTE: [RGBColor; 6] = [
    RGBColor(0x27, 0x60, 0xc4),
    RGBColor(0xd2, 0x57, 0x1e),
    RGBColor(0x2e, 0x8b, 0x57),
    RGBColor(0x8e, 0x44, 0xad),
    RGBColor(0xb8, 0x86, 0x0b),
    RGBColor(0x17, 0xa2, 0xb8),
];

#[derive(clap::Args, Debug)]
pub struct PlotArgs {
    /// `session`, `session/variant`, or a run directory.
    pub target: String,
    /// Series ids, or patterns with `*`.
    #[arg(required = true)]
    pub series: Vec<String>,
    /// Half-open bin window `a..b` (`a..` and `..b` run to the grid's end or from its start).
    #[arg(long, value_name = "A..B")]
    pub bins: Option<String>,
    /// The image to write: `.png` or `.svg`.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// What a chart shows.
struct Chart {
    title: String,
    /// Start of bin 0 in minutes since the epoch (None without `grid.start`), and bin width.
    start: Option<i64>,
    bin_minutes: i64,
    /// First bin shown.
    offset: u32,
    /// (id, unit, values).
    lines: Vec<(String, &'static str, Vec<f64>)>,
}

#[derive(Clone, Copy)]
enum Format {
    Png,
    Svg,
}

fn format_of(out: &Path) -> Result<Format, Failure> {
    match out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("png") => Ok(Format::Png),
        Some("svg") => Ok(Format::Svg),
        _ => Err(Diagnostic::error("plot_format", format!("`{}` is neither .png nor .svg", out.display()))
            .at_path("--out")
            .with_help("name the image FILE.png or FILE.svg")
            .into()),
    }
}

/// The unit of a series kind (SPEC §8), as the page labels it.
fn unit(kind: &str) -> &'static str {
    match kind {
        "flow" => "per bin",
        "stock" => "items",
        "ratio" => "ratio",
        "time" => "minutes",
        _ => "",
    }
}

fn none_matched(asked: &[String], have: impl Iterator<Item = String>) -> Failure {
    let have: Vec<String> = have.collect();
    Diagnostic::error("unknown_series", format!("no series matches {}", asked.join(", ")))
        .at_path("SERIES")
        .with_help(format!("series here: {}", have.join(", ")))
        .into()
}

/// `plot` of a session or variant, through the API.
pub(crate) async fn plot(api: &Api, a: PlotArgs) -> Result<Reply, Failure> {
    let format = format_of(&a.out)?;
    let t = target(&a.target);
    let mut q = api.client().queries();
    let graph = q.get_graph(pb::GetGraphRequest { target: Some(t.clone()) }).await.map_err(status)?.into_inner();
    let kinds: BTreeMap<String, String> = graph.series.iter().map(|s| (s.id.clone(), s.kind.clone())).collect();
    let grid = graph.grid.unwrap_or_default();
    let (start, end) = match a.bins.as_deref().map(parse_window).transpose()? {
        None => (0, grid.bins),
        Some((s, e)) => (s, e.unwrap_or(grid.bins)),
    };
    let ids: Vec<String> =
        kinds.keys().filter(|id| a.series.iter().any(|p| crate::model::series::glob(p, id))).cloned().collect();
    if ids.is_empty() {
        return Err(none_matched(&a.series, kinds.keys().cloned()));
    }
    let r = q
        .get_series(pb::GetSeriesRequest {
            target: Some(t),
            ids: ids.clone(),
            window: Some(pb::BinWindow { start, end }),
            ..Default::default()
        })
        .await
        .map_err(status)?
        .into_inner();
    let revision = r.info.map_or(0, |i| i.revision);
    let lines = r.series.into_iter().map(|s| (s.id.clone(), unit(&kinds[&s.id]), s.values)).collect();
    let chart = Chart {
        title: format!("{} (revision {revision})", a.target),
        start: parse_utc_minutes(&grid.start).ok(),
        bin_minutes: grid.bin_minutes as i64,
        offset: r.window.map_or(start, |w| w.start),
        lines,
    };
    write(&chart, format, &a.out)
}

/// `plot` of a run directory, from its files (verified against its manifest).
pub(crate) fn plot_run(a: &PlotArgs) -> Result<Reply, Failure> {
    let format = format_of(&a.out)?;
    let dir = Path::new(&a.target);
    let (grid, values) = crate::artifacts::read_run_series(dir)?;
    let run: serde_json::Value =
        sys::read(&dir.join("run.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let index: serde_json::Value = sys::read(&dir.join("series/index.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let kinds: BTreeMap<&str, &str> = index["series"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| Some((s["id"].as_str()?, s["kind"].as_str()?))).collect())
        .unwrap_or_default();
    let bins = grid["bins"].as_u64().unwrap_or(0) as u32;
    let (start, end) = match a.bins.as_deref().map(parse_window).transpose()? {
        None => (0, bins),
        Some((s, e)) => (s, e.unwrap_or(bins)),
    };
    if start >= end || end > bins {
        return Err(Diagnostic::error(
            "bins_window",
            format!("bins {start}..{end} are not within the run's {bins} bins"),
        )
        .at_path("--bins")
        .into());
    }
    let lines: Vec<_> = values
        .iter()
        .filter(|(id, _)| a.series.iter().any(|p| crate::model::series::glob(p, id)))
        .map(|(id, v)| {
            let k = kinds.get(id.as_str()).copied().unwrap_or("");
            (id.clone(), unit(k), v[start as usize..(end as usize).min(v.len())].to_vec())
        })
        .collect();
    if lines.is_empty() {
        return Err(none_matched(&a.series, values.keys().cloned()));
    }
    let chart = Chart {
        title: format!("run {}", run["runId"].as_str().unwrap_or(&a.target)),
        start: grid["start"].as_str().and_then(|s| parse_utc_minutes(s).ok()),
        bin_minutes: grid["binMinutes"].as_i64().unwrap_or(1),
        offset: start,
        lines,
    };
    write(&chart, format, &a.out)
}

fn write(chart: &Chart, format: Format, out: &Path) -> Result<Reply, Failure> {
    let bytes = render(chart, format)?;
    sys::write(out, &bytes).map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot write {}: {e}", out.display())))?;
    let ids: Vec<&str> = chart.lines.iter().map(|l| l.0.as_str()).collect();
    Ok(Reply {
        json: json!({"ok": true, "out": out.display().to_string(), "title": chart.title, "series": ids, "bytes": bytes.len()}),
        text: format!("wrote {} ({}: {})\n", out.display(), chart.title, ids.join(", ")),
    })
}

/// The image's bytes.
fn render(chart: &Chart, format: Format) -> Result<Vec<u8>, Failure> {
    font();
    let fail = |e: String| Failure::Runtime(anyhow::anyhow!("cannot draw the chart: {e}"));
    match format {
        Format::Svg => {
            let mut text = String::new();
            {
                let root = SVGBackend::with_string(&mut text, (WIDTH, HEIGHT)).into_drawing_area();
                draw(&root, chart).map_err(fail)?;
                root.present().map_err(|e| fail(e.to_string()))?;
            }
            Ok(text.into_bytes())
        }
        Format::Png => {
            let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
                draw(&root, chart).map_err(fail)?;
                root.present().map_err(|e| fail(e.to_string()))?;
            }
            let mut png = Vec::new();
            let mut enc = png::Encoder::new(&mut png, WIDTH, HEIGHT);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().map_err(|e| fail(e.to_string()))?;
            w.write_image_data(&rgb).map_err(|e| fail(e.to_string()))?;
            w.finish().map_err(|e| fail(e.to_string()))?;
            Ok(png)
        }
    }
}

/// Registers the embedded font once (plotters' `ab_glyph` text has no other source).
fn font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font, compiled in.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

/// "HH:MM" of a bin start (with the date at midnight), or the bin index without a start.
fn time_label(chart: &Chart, bin: f64) -> String {
    match chart.start {
        Some(s) => {
            let t = format_minutes(s + (bin.round() as i64) * chart.bin_minutes);
            if t.get(11..16) == Some("00:00") { t[5..10].to_string() } else { t.get(11..16).unwrap_or(&t).to_string() }
        }
        None => format!("{}", bin.round() as i64),
    }
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let n = chart.lines.iter().map(|l| l.2.len()).max().unwrap_or(0).max(2);
    let first = chart.offset as f64;
    let last = (chart.offset as usize + n - 1) as f64;
    let (mut lo, mut hi) = (0.0f64, f64::MIN);
    for v in chart.lines.iter().flat_map(|l| l.2.iter()).filter(|v| v.is_finite()) {
        lo = lo.min(*v);
        hi = hi.max(*v);
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.05;
    // Each unit once, in the order the lines first use it.
    let mut units: Vec<&str> = Vec::new();
    for u in chart.lines.iter().map(|l| l.1).filter(|u| !u.is_empty()) {
        if !units.contains(&u) {
            units.push(u);
        }
    }
    let y_desc = if units.is_empty() { "value".to_string() } else { units.join(", ") };
    let date = chart.start.map(|s| format_minutes(s + chart.offset as i64 * chart.bin_minutes)[..10].to_string());
    let x_desc = match date {
        Some(d) => format!("time (UTC, from {d})"),
        None => "bin".to_string(),
    };
    let ids: Vec<&str> = chart.lines.iter().map(|l| l.0.as_str()).collect();
    let mut c = ChartBuilder::on(root)
        .caption(format!("{}: {}", chart.title, ids.join(", ")), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(64)
        .build_cartesian_2d(first..last, (lo - if lo < 0.0 { pad } else { 0.0 })..(hi + pad))
        .map_err(e)?;
    c.configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(8)
        .y_labels(6)
        .x_label_formatter(&|b| time_label(chart, *b))
        .y_label_formatter(&|v| crate::artifacts::fmt_value(*v))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .light_line_style(RGBColor(0xee, 0xef, 0xf1))
        .bold_line_style(RGBColor(0xdc, 0xdf, 0xe3))
        .draw()
        .map_err(e)?;
    for (k, (id, _, values)) in chart.lines.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        // NaN ends a segment: a gap, never a fake value.
        let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for (i, v) in values.iter().enumerate() {
            if v.is_finite() {
                segments.last_mut().expect("one segment").push((first + i as f64, *v));
            } else if !segments.last().expect("one segment").is_empty() {
                segments.push(Vec::new());
            }
        }
        // The legend names the series at its first drawn segment, a lone point as well as a line.
        for (j, seg) in segments.into_iter().filter(|s| !s.is_empty()).enumerate() {
            let style = ShapeStyle::from(&color).stroke_width(2);
            let s = if seg.len() == 1 {
                c.draw_series(std::iter::once(Circle::new(seg[0], 2, style.filled()))).map_err(e)?
            } else {
                c.draw_series(LineSeries::new(seg, style)).map_err(e)?
            };
            if j == 0 {
                s.label(id.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            }
        }
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(0xdc, 0xdf, 0xe3))
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn patterns_match_runs_of_characters() {
        assert!(crate::model::series::glob("orders_backlog", "orders_backlog"));
        assert!(!crate::model::series::glob("orders_backlog", "orders_backlog2"));
        assert!(crate::model::series::glob("*_backlog", "orders_backlog"));
        assert!(crate::model::series::glob("order*", "orders_backlog"));
        assert!(crate::model::series::glob("*capacity*", "order_capacity_inferred"));
        assert!(!crate::model::series::glob("*_queue", "orders_backlog"));
        assert!(!crate::model::series::glob("a*a", "a"));
    }
}
