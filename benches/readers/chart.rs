//! The chart: reads/s of every configuration as grouped bars, one group per file and reader
//! count, one bar per target and phase (its transport in the legend), on a log scale since
//! the kernel reads an order of magnitude faster than any daemon. Drawn with plotters'
//! bitmap backend; its text needs a TrueType font, DejaVu Sans from Debian's
//! fonts-dejavu-core (`scripts/deps.sh bench` installs it).

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::goals::short;
use crate::report::Row;
use crate::results::Results;

/// The font the chart's text is set in.
pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// The family name the font is registered under.
const FAMILY: &str = "sans-serif";

/// Width of the legend beside the bars, in pixels.
const LEGEND_W: u32 = 330;

/// Registers [`FONT`] once per process (plotters keeps it for good, hence the leak of its
/// bytes, a few hundred KiB once).
fn font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = std::fs::read(FONT).map_err(|e| {
                format!("{FONT}: {e} (install fonts-dejavu-core: scripts/deps.sh bench)")
            })?;
            plotters::style::register_font(FAMILY, FontStyle::Normal, Vec::leak(bytes))
                .map_err(|_| format!("{FONT}: not a font plotters can read"))
        })
        .clone()
}

/// One bar series: a target in a phase.
struct Series {
    phase: String,
    target: String,
    label: String,
    color: RGBColor,
}

/// Draws the chart of `r`'s rows to `path` (PNG).
pub fn draw(r: &Results, path: &Path) -> Result<(), String> {
    font()?;
    let groups = groups(r);
    let series = series(&r.rows);
    if groups.is_empty() || series.is_empty() {
        return Err("no rows to draw".into());
    }
    let bars = groups.len() * (series.len() + 1);
    let width = (bars as u32 * 11 + 160).max(1000) + LEGEND_W;
    let height = 720;
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    let err = |e: DrawingAreaErrorKind<_>| format!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(err)?;
    let (plot, legend) = root.split_horizontally(width - LEGEND_W);
    let value = |g: &(String, usize), s: &Series| {
        (r.rows.iter())
            .find(|x| {
                x.phase == s.phase && x.target == s.target && x.file == g.0 && x.readers == g.1
            })
            .map(|x| x.reads_per_s)
            .filter(|v| *v > 0.0)
    };
    let all: Vec<f64> = (groups.iter())
        .flat_map(|g| series.iter().filter_map(move |s| value(g, s)))
        .collect();
    let lo = 10f64.powf(all.iter().copied().fold(f64::MAX, f64::min).log10().floor());
    let hi = 10f64.powf(all.iter().copied().fold(0.0, f64::max).log10().ceil());
    let caption = format!(
        "reads/s per configuration (log scale); {} UTC, kernel {}, {} CPUs",
        r.started.trim_end_matches('Z').replace('T', " "),
        r.host.kernel,
        r.host.cpus
    );
    let mut chart = ChartBuilder::on(&plot)
        .caption(caption, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..groups.len() as f64, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("reads/s, all readers together")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FAMILY, 14))
        .draw()
        .map_err(err)?;
    let width_of = 0.8 / series.len() as f64;
    for (i, s) in series.iter().enumerate() {
        let color = s.color;
        let rects = (groups.iter().enumerate()).filter_map(|(g, key)| {
            let x0 = g as f64 + 0.1 + i as f64 * width_of;
            let v = value(key, s)?;
            Some(Rectangle::new(
                [(x0, lo), (x0 + width_of * 0.9, v)],
                color.filled(),
            ))
        });
        chart.draw_series(rects).map_err(err)?;
    }
    // Group names under the axis, centred under each group's bars.
    for (g, (file, n)) in groups.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(g as f64 + 0.5, lo));
        let text = format!("{} ×{n}", short(file));
        let style =
            TextStyle::from((FAMILY, 14).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        plot.draw(&Text::new(text, (x, y + 8), style))
            .map_err(err)?;
    }
    draw_legend(&legend, &series).map_err(err)?;
    root.present().map_err(err)
}

/// The legend in its own area beside the chart, so that it hides no bar.
fn draw_legend(
    area: &DrawingArea<BitMapBackend, Shift>,
    series: &[Series],
) -> Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>> {
    let style = TextStyle::from((FAMILY, 14).into_font());
    area.draw(&Text::new(
        "target, transport (phase)",
        (10, 50),
        style.clone(),
    ))?;
    for (i, s) in series.iter().enumerate() {
        let y = 80 + i as i32 * 24;
        area.draw(&Rectangle::new([(10, y), (28, y + 14)], s.color.filled()))?;
        area.draw(&Text::new(s.label.clone(), (36, y), style.clone()))?;
    }
    let foot = "×N: N readers at once";
    area.draw(&Text::new(foot, (10, 90 + series.len() as i32 * 24), style))?;
    Ok(())
}

/// The groups: each file and reader count of the settings that has rows, in their order.
fn groups(r: &Results) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for row in &r.rows {
        let key = (row.file.clone(), row.readers);
        if !out.contains(&key) {
            out.push(key);
        }
    }
    let rank = |k: &(String, usize)| {
        let f = r.settings.files.iter().position(|f| *f == k.0);
        let n = r.settings.readers.iter().position(|n| *n == k.1);
        (f.unwrap_or(usize::MAX), n.unwrap_or(usize::MAX))
    };
    out.sort_by_key(rank);
    out
}

/// The series: each target of each phase, a target's phases side by side (in the order
/// they came), the targets in the order they came.
fn series(rows: &[Row]) -> Vec<Series> {
    let mut targets: Vec<&str> = Vec::new();
    let mut phases: Vec<&str> = Vec::new();
    for row in rows {
        if !targets.contains(&row.target.as_str()) {
            targets.push(&row.target);
        }
        if !phases.contains(&row.phase.as_str()) {
            phases.push(&row.phase);
        }
    }
    let mut out = Vec::new();
    for (ti, target) in targets.iter().enumerate() {
        let mut shade = 0;
        for phase in &phases {
            let Some(row) = (rows.iter()).find(|r| r.target == *target && r.phase == *phase) else {
                continue;
            };
            let via = match row.transport.as_str() {
                "kernel" => String::new(),
                t => format!(", {t}"),
            };
            out.push(Series {
                phase: row.phase.clone(),
                target: row.target.clone(),
                label: format!("{target}{via} ({phase})"),
                color: color(ti, shade),
            });
            shade += 1;
        }
    }
    out
}

/// Target `t`'s colour (kernel grey, lxcfs red, lxcfs-rs blue, the floor green, in the order
/// scripts/bench passes them), lighter for each later phase, so that a target's bars read as
/// one family.
fn color(t: usize, shade: usize) -> RGBColor {
    const BASE: [(u8, u8, u8); 4] = [
        (100, 100, 100),
        (214, 39, 40),
        (31, 100, 180),
        (40, 150, 40),
    ];
    let (r, g, b) = BASE
        .get(t)
        .copied()
        .unwrap_or_else(|| Palette99::pick(t).rgb());
    let towards_white = [0.0, 0.45, 0.7, 0.85][shade.min(3)];
    let mix = |c: u8| (c as f64 + (255.0 - c as f64) * towards_white).round() as u8;
    RGBColor(mix(r), mix(g), mix(b))
}
