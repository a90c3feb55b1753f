//! The alert e-mail's trend chart: the entity's `history` as a line with a
//! dot per period (coloured by its level) against the warn and critical
//! threshold lines, drawn in memory with plotters' bitmap backend and
//! encoded as a PNG for an inline (CID) attachment. No text is drawn (no
//! fonts on the machine); the HTML beside it says the numbers.

use plotters::prelude::*;

/// The chart's size in pixels, as the `<img>` tag says.
pub const WIDTH: u32 = 480;
pub const HEIGHT: u32 = 160;
/// The Content-ID the HTML part refers to (`cid:trend`).
pub const CID: &str = "trend";

/// Where the plot sits inside the image.
const LEFT: i32 = 14;
const RIGHT: i32 = WIDTH as i32 - 14;
const TOP: i32 = 14;
const BOTTOM: i32 = HEIGHT as i32 - 14;

pub const WARN_COLOUR: RGBColor = RGBColor(230, 145, 0);
pub const CRITICAL_COLOUR: RGBColor = RGBColor(200, 0, 32);
const LINE_COLOUR: RGBColor = RGBColor(40, 80, 160);
const FRAME_COLOUR: RGBColor = RGBColor(215, 215, 215);

/// A period's verdict, as `history[].level` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Critical,
}

impl Level {
    pub fn parse(level: &str) -> Level {
        match level {
            "critical" => Level::Critical,
            "warn" => Level::Warn,
            _ => Level::Ok,
        }
    }
}

/// The vertical scale: values and thresholds all fit, with a margin.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    lo: f64,
    hi: f64,
}

impl Scale {
    pub fn new(values: impl Iterator<Item = f64>) -> Scale {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            return Scale { lo: 0.0, hi: 1.0 };
        }
        let pad = if hi > lo {
            (hi - lo) * 0.12
        } else {
            lo.abs().max(1.0) * 0.1
        };
        Scale {
            lo: lo - pad,
            hi: hi + pad,
        }
    }

    /// The pixel row of `v` (0 at the top).
    pub fn row(&self, v: f64) -> i32 {
        let f = (self.hi - v) / (self.hi - self.lo);
        TOP + (f * (BOTTOM - TOP) as f64).round() as i32
    }
}

/// The scale [`trend_png`] draws `history` and the thresholds with.
pub fn scale(history: &[(Option<f64>, Level)], warn: Option<f64>, critical: Option<f64>) -> Scale {
    Scale::new(
        history
            .iter()
            .filter_map(|(v, _)| *v)
            .chain(warn)
            .chain(critical),
    )
}

/// The PNG of `history` (oldest first) against `warn` and `critical`;
/// periods without a value leave a gap in the line.
pub fn trend_png(
    history: &[(Option<f64>, Level)],
    warn: Option<f64>,
    critical: Option<f64>,
) -> Vec<u8> {
    let mut rgb = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    draw(&mut rgb, history, warn, critical).expect("drawing in memory does not fail");
    encode(&rgb, WIDTH, HEIGHT)
}

fn draw(
    rgb: &mut [u8],
    history: &[(Option<f64>, Level)],
    warn: Option<f64>,
    critical: Option<f64>,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::with_buffer(rgb, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let scale = scale(history, warn, critical);
    root.draw(&Rectangle::new(
        [(LEFT, TOP), (RIGHT, BOTTOM)],
        FRAME_COLOUR.stroke_width(1),
    ))?;
    // The thresholds, two pixels thick across the whole plot.
    for (t, colour) in [(warn, WARN_COLOUR), (critical, CRITICAL_COLOUR)] {
        if let Some(t) = t.filter(|t| t.is_finite()) {
            let y = scale.row(t);
            root.draw(&Rectangle::new(
                [(LEFT + 1, y), (RIGHT - 1, y + 1)],
                colour.filled(),
            ))?;
        }
    }
    let n = history.len().max(2) as i32 - 1;
    let x = |i: usize| LEFT + 10 + (i as i32) * (RIGHT - LEFT - 20) / n;
    let points: Vec<Option<(i32, i32)>> = history
        .iter()
        .enumerate()
        .map(|(i, (v, _))| v.filter(|v| v.is_finite()).map(|v| (x(i), scale.row(v))))
        .collect();
    // The line, broken where a period has no value.
    for run in points.split(|p| p.is_none()) {
        let run: Vec<(i32, i32)> = run.iter().flatten().copied().collect();
        if run.len() > 1 {
            root.draw(&PathElement::new(run, LINE_COLOUR.stroke_width(2)))?;
        }
    }
    for (p, (_, level)) in points.iter().zip(history) {
        let Some(p) = *p else { continue };
        let colour = match level {
            Level::Ok => LINE_COLOUR,
            Level::Warn => WARN_COLOUR,
            Level::Critical => CRITICAL_COLOUR,
        };
        root.draw(&Circle::new(p, 5, WHITE.filled()))?;
        root.draw(&Circle::new(p, 4, colour.filled()))?;
    }
    root.present()?;
    Ok(())
}

/// `rgb` (`width`×`height` pixels, three bytes each) as a PNG.
pub(crate) fn encode(rgb: &[u8], width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().expect("PNG header in memory");
    writer.write_image_data(rgb).expect("PNG data in memory");
    writer.finish().expect("PNG end in memory");
    out
}

/// The chart of a template's `history` (`[{value, level}, …]`), when it
/// has at least two values to draw a line through.
pub fn from_history(
    history: Option<&serde_json::Value>,
    warn: Option<f64>,
    critical: Option<f64>,
) -> Option<Vec<u8>> {
    let points: Vec<(Option<f64>, Level)> = history?
        .as_array()?
        .iter()
        .map(|h| {
            (
                h.get("value").and_then(|v| v.as_f64()),
                Level::parse(h.get("level").and_then(|l| l.as_str()).unwrap_or("")),
            )
        })
        .collect();
    (points.iter().filter(|(v, _)| v.is_some()).count() >= 2)
        .then(|| trend_png(&points, warn, critical))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Renders the golden test's trend to `CONVEYOR_TREND_PNG` for a look.
    #[test]
    fn outbox_chart_is_a_png_of_its_size() {
        let h = [
            (Some(3.6), Level::Ok),
            (Some(3.4), Level::Warn),
            (Some(3.8), Level::Ok),
            (Some(2.8), Level::Critical),
        ];
        let png = trend_png(&h, Some(3.5), Some(3.0));
        if let Ok(path) = std::env::var("CONVEYOR_TREND_PNG") {
            std::fs::write(path, &png).unwrap();
        }
        let img = decode(&png);
        assert_eq!((img.0, img.1), (WIDTH, HEIGHT));
        let s = scale(&h, Some(3.5), Some(3.0));
        assert!(row_has(&img, s.row(3.5), WARN_COLOUR));
        assert!(row_has(&img, s.row(3.0), CRITICAL_COLOUR));
    }

    /// A decoded PNG: width, height, RGB bytes.
    pub(crate) fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut reader = png::Decoder::new(bytes).read_info().expect("a PNG");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("a PNG frame");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    /// Most of the plot's width of row `y` is `colour`.
    pub(crate) fn row_has(img: &(u32, u32, Vec<u8>), y: i32, colour: RGBColor) -> bool {
        let (w, _, px) = img;
        let row = &px[(y as usize * *w as usize * 3)..((y as usize + 1) * *w as usize * 3)];
        let hits = row
            .chunks(3)
            .filter(|p| p == &[colour.0, colour.1, colour.2])
            .count();
        hits as i32 > (RIGHT - LEFT) * 3 / 4
    }
}
