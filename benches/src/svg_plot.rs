//! A small SVG writer for the bench plots: line charts (log2 or linear x, log10 or linear y)
//! and grouped bar charts, as self-contained SVG text (no fonts, no scripts, no dependency).
//! Used by `src/bin/bench_plots.rs`.

use std::fmt::Write;

/// Canvas size and plot margins, in SVG user units.
const WIDTH: f64 = 1040.0;
const HEIGHT: f64 = 540.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 300.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 70.0;

/// Colour-blind-friendly palette (Okabe–Ito), cycled.
const PALETTE: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000",
];

/// The colour of palette entry `i`.
pub fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// `text` with the XML special characters escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `1.5k`, `2M`, `350`, `0.25`: short labels for tick values.
pub fn si(value: f64) -> String {
    let (scaled, suffix) = match value.abs() {
        v if v >= 1e9 => (value / 1e9, "G"),
        v if v >= 1e6 => (value / 1e6, "M"),
        v if v >= 1e3 => (value / 1e3, "k"),
        _ => (value, ""),
    };
    let text = if scaled.fract().abs() < 1e-9 {
        format!("{scaled:.0}")
    } else if scaled.abs() >= 10.0 {
        format!("{scaled:.1}")
    } else {
        format!("{scaled:.2}")
    };
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    };
    format!("{text}{suffix}")
}

/// A scale from data values to a pixel range.
#[derive(Debug, Clone, Copy)]
struct Scale {
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
    log: Option<f64>,
}

impl Scale {
    fn map(&self, v: f64) -> f64 {
        let t = |x: f64| match self.log {
            Some(base) => x.max(f64::MIN_POSITIVE).log(base),
            None => x,
        };
        let span = (t(self.hi) - t(self.lo)).max(1e-12);
        self.from + (t(v) - t(self.lo)) / span * (self.to - self.from)
    }
}

/// Linear ticks: about five "nice" steps (1, 2 or 5 × 10^k) covering `0..=max`.
fn linear_ticks(max: f64) -> (f64, Vec<f64>) {
    let max = if max > 0.0 { max } else { 1.0 };
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let top = (max / step).ceil() * step;
    let ticks = (0..=((top / step).round() as usize))
        .map(|i| i as f64 * step)
        .collect();
    (top, ticks)
}

/// Log10 ticks at 1, 2 and 5 × 10^k over the decades that hold `lo..=hi`.
fn log10_ticks(lo: f64, hi: f64) -> (f64, f64, Vec<f64>) {
    let lo = 10f64.powf(lo.max(f64::MIN_POSITIVE).log10().floor());
    let hi = 10f64.powf(hi.max(lo).log10().ceil()).max(lo * 10.0);
    let mut ticks = Vec::new();
    let mut decade = lo;
    while decade <= hi * 1.000_001 {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if v <= hi * 1.000_001 {
                ticks.push(v);
            }
        }
        decade *= 10.0;
    }
    (lo, hi, ticks)
}

/// Powers of two from `lo` to `hi`.
fn log2_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut v = 2f64.powf(lo.max(1.0).log2().floor());
    while v <= hi * 1.000_001 {
        ticks.push(v);
        v *= 2.0;
    }
    ticks
}

/// The SVG header, background and title.
fn begin(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"28\" text-anchor=\"middle\" font-size=\"17\">{}</text>\n",
        (LEFT + WIDTH - RIGHT) / 2.0,
        escape(title)
    );
}

/// Axis lines and the two axis labels.
fn axes(out: &mut String, x_label: &str, y_label: &str) {
    let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP);
    let _ = write!(
        out,
        "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"black\"/>\n\
         <line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{y1}\" stroke=\"black\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n\
         <text x=\"20\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 20 {})\">{}</text>\n",
        (x0 + x1) / 2.0,
        HEIGHT - 25.0,
        escape(x_label),
        (y0 + y1) / 2.0,
        (y0 + y1) / 2.0,
        escape(y_label)
    );
}

/// A horizontal grid line with its y tick label.
fn y_tick(out: &mut String, y: f64, label: &str) {
    let _ = write!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#dddddd\"/>\n\
         <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
        WIDTH - RIGHT,
        LEFT - 6.0,
        y + 4.0,
        escape(label)
    );
}

/// A legend entry (`index`th, from the top of the right margin).
fn legend(out: &mut String, index: usize, color: &str, dashed: bool, label: &str) {
    let x = WIDTH - RIGHT + 20.0;
    let y = TOP + 10.0 + index as f64 * 22.0;
    let dash = if dashed {
        " stroke-dasharray=\"6 4\""
    } else {
        ""
    };
    let _ = write!(
        out,
        "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{color}\" stroke-width=\"3\"{dash}/>\n\
         <text x=\"{}\" y=\"{}\">{}</text>\n",
        x + 28.0,
        x + 36.0,
        y + 4.0,
        escape(label)
    );
}

/// One line of a [`LineChart`].
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// `(x, y)` points, drawn in x order.
    pub points: Vec<(f64, f64)>,
    /// Index into the palette.
    pub color: usize,
    /// Drawn dashed.
    pub dashed: bool,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// Title above the chart.
    pub title: String,
    /// Text under the x axis.
    pub x_label: String,
    /// Text beside the y axis.
    pub y_label: String,
    /// The lines, in legend order.
    pub series: Vec<Series>,
    /// x on a log2 axis (ticks at powers of two); linear otherwise.
    pub x_log2: bool,
    /// y on a log10 axis; linear from 0 otherwise.
    pub y_log10: bool,
}

impl LineChart {
    /// The chart as SVG text. Non-positive values are left out of log axes.
    pub fn to_svg(&self) -> String {
        let usable = |x: f64, y: f64| {
            x.is_finite()
                && y.is_finite()
                && (!self.x_log2 || x > 0.0)
                && (!self.y_log10 || y > 0.0)
        };
        let points: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|&(x, y)| usable(x, y))
            .collect();
        let mut out = String::new();
        begin(&mut out, &self.title);
        axes(&mut out, &self.x_label, &self.y_label);
        if points.is_empty() {
            out.push_str("<text x=\"300\" y=\"270\">no data</text>\n</svg>\n");
            return out;
        }
        let fold = |f: fn(f64, f64) -> f64, init: f64, pick: fn(&(f64, f64)) -> f64| {
            points.iter().map(pick).fold(init, f)
        };
        let (x_min, x_max) = (
            fold(f64::min, f64::INFINITY, |p| p.0),
            fold(f64::max, f64::NEG_INFINITY, |p| p.0),
        );
        let (y_min, y_max) = (
            fold(f64::min, f64::INFINITY, |p| p.1),
            fold(f64::max, f64::NEG_INFINITY, |p| p.1),
        );
        let (x_ticks, x_lo, x_hi) = if self.x_log2 {
            let ticks = log2_ticks(x_min, x_max);
            let lo = ticks.first().copied().unwrap_or(1.0);
            let hi = ticks.last().copied().unwrap_or(2.0).max(lo * 2.0);
            (ticks, lo, hi)
        } else {
            let (top, ticks) = linear_ticks(x_max);
            (ticks, 0.0, top)
        };
        let (y_ticks, y_lo, y_hi) = if self.y_log10 {
            let (lo, hi, ticks) = log10_ticks(y_min, y_max);
            (ticks, lo, hi)
        } else {
            let (top, ticks) = linear_ticks(y_max);
            (ticks, 0.0, top)
        };
        let xs = Scale {
            lo: x_lo,
            hi: x_hi,
            from: LEFT + 20.0,
            to: WIDTH - RIGHT - 20.0,
            log: self.x_log2.then_some(2.0),
        };
        let ys = Scale {
            lo: y_lo,
            hi: y_hi,
            from: HEIGHT - BOTTOM,
            to: TOP,
            log: self.y_log10.then_some(10.0),
        };
        for &t in &y_ticks {
            y_tick(&mut out, ys.map(t), &si(t));
        }
        for &t in &x_ticks {
            let x = xs.map(t);
            let _ = write!(
                out,
                "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"black\"/>\n\
                 <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                HEIGHT - BOTTOM,
                HEIGHT - BOTTOM + 5.0,
                HEIGHT - BOTTOM + 20.0,
                si(t)
            );
        }
        for (i, s) in self.series.iter().enumerate() {
            let mut pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|&(x, y)| usable(x, y))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let c = color(s.color);
            let path: Vec<String> = pts
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", xs.map(x), ys.map(y)))
                .collect();
            let dash = if s.dashed {
                " stroke-dasharray=\"6 4\""
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2.5\"{dash}/>",
                path.join(" ")
            );
            for &(x, y) in &pts {
                let _ = writeln!(
                    out,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{c}\"><title>{}: {} at {}</title></circle>",
                    xs.map(x),
                    ys.map(y),
                    escape(&s.label),
                    si(y),
                    si(x)
                );
            }
            legend(&mut out, i, c, s.dashed, &s.label);
        }
        out.push_str("</svg>\n");
        out
    }
}

/// One group of bars.
#[derive(Debug, Clone)]
pub struct BarGroup {
    /// Text under the group.
    pub label: String,
    /// `(bar name, value)`; a name keeps its colour across groups.
    pub bars: Vec<(String, f64)>,
}

/// A grouped bar chart from 0.
#[derive(Debug, Clone)]
pub struct BarChart {
    /// Title above the chart.
    pub title: String,
    /// Text beside the y axis.
    pub y_label: String,
    /// The groups, left to right.
    pub groups: Vec<BarGroup>,
}

impl BarChart {
    /// The chart as SVG text; each bar is labelled with its value.
    pub fn to_svg(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        for g in &self.groups {
            for (name, _) in &g.bars {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
        }
        let max = self
            .groups
            .iter()
            .flat_map(|g| g.bars.iter().map(|b| b.1))
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let mut out = String::new();
        begin(&mut out, &self.title);
        axes(&mut out, "", &self.y_label);
        let (top, ticks) = linear_ticks(max);
        let ys = Scale {
            lo: 0.0,
            hi: top,
            from: HEIGHT - BOTTOM,
            to: TOP,
            log: None,
        };
        for &t in &ticks {
            y_tick(&mut out, ys.map(t), &si(t));
        }
        let width = WIDTH - RIGHT - LEFT;
        let group_width = width / self.groups.len().max(1) as f64;
        for (gi, g) in self.groups.iter().enumerate() {
            let x0 = LEFT + gi as f64 * group_width;
            let bar_width = (group_width * 0.8) / g.bars.len().max(1) as f64;
            for (bi, (name, value)) in g.bars.iter().enumerate() {
                if !value.is_finite() {
                    continue;
                }
                let ci = names.iter().position(|n| n == name).unwrap_or(0);
                let x = x0 + group_width * 0.1 + bi as f64 * bar_width;
                let y = ys.map(*value);
                let _ = write!(
                    out,
                    "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\">\
                     <title>{}: {value:.1}</title></rect>\n\
                     <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\">{value:.1}</text>\n",
                    (bar_width - 2.0).max(1.0),
                    (HEIGHT - BOTTOM - y).max(0.0),
                    color(ci),
                    escape(name),
                    x + bar_width / 2.0,
                    y - 4.0
                );
            }
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x0 + group_width / 2.0,
                HEIGHT - BOTTOM + 20.0,
                escape(&g.label)
            );
        }
        for (i, name) in names.iter().enumerate() {
            legend(&mut out, i, color(i), false, name);
        }
        out.push_str("</svg>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_ticks() {
        assert_eq!(si(1_500.0), "1.5k");
        assert_eq!(si(2_000_000.0), "2M");
        assert_eq!(si(350.0), "350");
        assert_eq!(si(0.25), "0.25");
        assert_eq!(
            linear_ticks(9.0),
            (10.0, vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0])
        );
        assert_eq!(log2_ticks(1.0, 8.0), vec![1.0, 2.0, 4.0, 8.0]);
        let (lo, hi, ticks) = log10_ticks(150.0, 3000.0);
        assert_eq!((lo, hi), (100.0, 10_000.0));
        assert!(ticks.contains(&500.0) && ticks.contains(&10_000.0));
        assert_eq!(escape("a<b&c"), "a&lt;b&amp;c");
    }

    #[test]
    fn charts_are_svg() {
        let line = LineChart {
            title: "t".into(),
            x_label: "partitions".into(),
            y_label: "events/s".into(),
            series: vec![Series {
                label: "a <b>".into(),
                points: vec![(1.0, 100.0), (8.0, 1000.0), (0.0, 5.0)],
                color: 0,
                dashed: true,
            }],
            x_log2: true,
            y_log10: true,
        }
        .to_svg();
        assert!(line.starts_with("<svg") && line.ends_with("</svg>\n"));
        assert!(line.contains("<polyline") && line.contains("a &lt;b&gt;"));
        let bars = BarChart {
            title: "rss".into(),
            y_label: "MiB".into(),
            groups: vec![BarGroup {
                label: "tansu".into(),
                bars: vec![("x".into(), 12.5), ("y".into(), f64::NAN)],
            }],
        }
        .to_svg();
        assert!(bars.contains("<rect x") && bars.contains("12.5"));
        let empty = LineChart {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            series: Vec::new(),
            x_log2: false,
            y_log10: false,
        };
        assert!(empty.to_svg().contains("no data"));
    }
}
