//! A scorecard's charts, drawn in memory with plotters' bitmap backend and
//! sent as inline PNGs: a trend (one value per period against the goal)
//! and a scatter of two measures per entity with its least-squares line.
//! No text is drawn (no fonts on the machine): the table beside each chart
//! says the numbers.

use plotters::prelude::*;

/// Every chart's size in pixels, as the `<img>` tags say.
pub const WIDTH: u32 = 520;
pub const HEIGHT: u32 = 200;

const MARGIN: i32 = 16;
const LEFT: i32 = MARGIN;
const RIGHT: i32 = WIDTH as i32 - MARGIN;
const TOP: i32 = MARGIN;
const BOTTOM: i32 = HEIGHT as i32 - MARGIN;

pub const GOAL_COLOUR: RGBColor = RGBColor(0, 140, 70);
pub const POINT_COLOUR: RGBColor = RGBColor(40, 80, 160);
pub const FIT_COLOUR: RGBColor = RGBColor(200, 0, 32);
const FRAME_COLOUR: RGBColor = RGBColor(215, 215, 215);

/// One axis: the values it spans (with a margin) onto a pixel range.
#[derive(Debug, Clone, Copy)]
pub struct Axis {
    lo: f64,
    hi: f64,
    from: i32,
    to: i32,
}

impl Axis {
    fn new(values: impl Iterator<Item = f64>, from: i32, to: i32) -> Axis {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        let pad = if hi > lo {
            (hi - lo) * 0.1
        } else {
            lo.abs().max(1.0) * 0.1
        };
        Axis {
            lo: lo - pad,
            hi: hi + pad,
            from,
            to,
        }
    }

    /// The pixel of `v` on this axis.
    pub fn pixel(&self, v: f64) -> i32 {
        let f = (v - self.lo) / (self.hi - self.lo);
        self.from + (f * f64::from(self.to - self.from)).round() as i32
    }
}

/// The vertical axis [`trend_png`] draws `values` and `goal` on.
pub fn trend_axis(values: &[Option<f64>], goal: Option<f64>) -> Axis {
    // Rows grow downwards: the axis runs from the bottom to the top.
    Axis::new(values.iter().flatten().copied().chain(goal), BOTTOM, TOP)
}

/// The PNG of `values` (oldest period first) against `goal`; a period
/// without a value leaves a gap in the line.
pub fn trend_png(values: &[Option<f64>], goal: Option<f64>) -> Vec<u8> {
    render(|root| {
        let y = trend_axis(values, goal);
        if let Some(g) = goal.filter(|g| g.is_finite()) {
            let row = y.pixel(g);
            root.draw(&Rectangle::new(
                [(LEFT + 1, row), (RIGHT - 1, row + 1)],
                GOAL_COLOUR.filled(),
            ))?;
        }
        let n = values.len().max(2) as i32 - 1;
        let x = |i: usize| LEFT + 12 + (i as i32) * (RIGHT - LEFT - 24) / n;
        let points: Vec<Option<(i32, i32)>> = values
            .iter()
            .enumerate()
            .map(|(i, v)| v.filter(|v| v.is_finite()).map(|v| (x(i), y.pixel(v))))
            .collect();
        for run in points.split(Option::is_none) {
            let run: Vec<(i32, i32)> = run.iter().flatten().copied().collect();
            if run.len() > 1 {
                root.draw(&PathElement::new(run, POINT_COLOUR.stroke_width(2)))?;
            }
        }
        for p in points.into_iter().flatten() {
            root.draw(&Circle::new(p, 4, POINT_COLOUR.filled()))?;
        }
        Ok(())
    })
}

/// The axes [`scatter_png`] draws `points` on: x across, y up.
pub fn scatter_axes(points: &[(f64, f64)]) -> (Axis, Axis) {
    (
        Axis::new(points.iter().map(|p| p.0), LEFT, RIGHT),
        Axis::new(points.iter().map(|p| p.1), BOTTOM, TOP),
    )
}

/// The PNG of `points` (x, y) with the line `y = slope·x + intercept`
/// across the plot when `fit` is given.
pub fn scatter_png(points: &[(f64, f64)], fit: Option<(f64, f64)>) -> Vec<u8> {
    render(|root| {
        let (x, y) = scatter_axes(points);
        if let Some((slope, intercept)) = fit.filter(|(s, i)| s.is_finite() && i.is_finite()) {
            // Across the plot, cut where it would leave the frame.
            let (mut from, mut to) = (x.lo, x.hi);
            if slope != 0.0 {
                let (a, b) = ((y.lo - intercept) / slope, (y.hi - intercept) / slope);
                from = from.max(a.min(b));
                to = to.min(a.max(b));
            }
            if from < to {
                let ends = [from, to].map(|v| (x.pixel(v), y.pixel(slope * v + intercept)));
                root.draw(&PathElement::new(ends.to_vec(), FIT_COLOUR.stroke_width(2)))?;
            }
        }
        for &(px, py) in points
            .iter()
            .filter(|(a, b)| a.is_finite() && b.is_finite())
        {
            root.draw(&Circle::new(
                (x.pixel(px), y.pixel(py)),
                4,
                POINT_COLOUR.filled(),
            ))?;
        }
        Ok(())
    })
}

type Root<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// A white frame, `draw` inside it, the pixels as a PNG.
fn render(draw: impl FnOnce(&Root) -> Result<(), Box<dyn std::error::Error>>) -> Vec<u8> {
    let mut rgb = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        let framed = root.fill(&WHITE).map_err(Into::into).and_then(|()| {
            root.draw(&Rectangle::new(
                [(LEFT, TOP), (RIGHT, BOTTOM)],
                FRAME_COLOUR.stroke_width(1),
            ))
            .map_err(Into::into)
        });
        framed
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(Into::into))
            .expect("drawing in memory does not fail");
    }
    crate::outbox::chart::encode(&rgb, WIDTH, HEIGHT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::chart::tests::decode;

    /// The share of row `y` (within the plot) that is `colour`.
    fn row_share(img: &(u32, u32, Vec<u8>), y: i32, colour: RGBColor) -> f64 {
        let (w, _, px) = img;
        let row = &px[(y as usize * *w as usize * 3)..((y as usize + 1) * *w as usize * 3)];
        let hits = row
            .chunks(3)
            .filter(|p| p == &[colour.0, colour.1, colour.2])
            .count();
        hits as f64 / f64::from(RIGHT - LEFT)
    }

    fn pixel(img: &(u32, u32, Vec<u8>), x: i32, y: i32) -> [u8; 3] {
        let i = (y as usize * img.0 as usize + x as usize) * 3;
        [img.2[i], img.2[i + 1], img.2[i + 2]]
    }

    #[test]
    fn a_trend_is_a_png_of_its_size_with_the_goal_across_it() {
        let values = [Some(4.0), Some(4.3), None, Some(4.5), Some(4.1)];
        let png = trend_png(&values, Some(4.2));
        if let Ok(dir) = std::env::var("CONVEYOR_REPORT_PNG_DIR") {
            std::fs::write(format!("{dir}/trend.png"), &png).unwrap();
        }
        let img = decode(&png);
        assert_eq!((img.0, img.1), (WIDTH, HEIGHT));
        let goal_row = trend_axis(&values, Some(4.2)).pixel(4.2);
        assert!(row_share(&img, goal_row, GOAL_COLOUR) > 0.75);
        // No goal, no goal line anywhere.
        let img = decode(&trend_png(&values, None));
        assert!((TOP..BOTTOM).all(|y| row_share(&img, y, GOAL_COLOUR) == 0.0));
    }

    #[test]
    fn a_scatter_puts_each_point_where_its_values_say_and_draws_the_fit() {
        let points = [(300.0, 4.6), (420.0, 4.1), (540.0, 3.7), (660.0, 3.2)];
        let fit = (-0.0039, 5.78);
        let png = scatter_png(&points, Some(fit));
        if let Ok(dir) = std::env::var("CONVEYOR_REPORT_PNG_DIR") {
            std::fs::write(format!("{dir}/scatter.png"), &png).unwrap();
        }
        let img = decode(&png);
        assert_eq!((img.0, img.1), (WIDTH, HEIGHT));
        let (x, y) = scatter_axes(&points);
        for (px, py) in points {
            let at = pixel(&img, x.pixel(px), y.pixel(py));
            assert_eq!(
                at,
                [POINT_COLOUR.0, POINT_COLOUR.1, POINT_COLOUR.2],
                "({px}, {py})"
            );
        }
        // The fit line runs from upper left to lower right: a falling slope.
        let colour = [FIT_COLOUR.0, FIT_COLOUR.1, FIT_COLOUR.2];
        let line: Vec<(i32, i32)> = (LEFT..RIGHT)
            .filter_map(|c| {
                let row = (TOP..=BOTTOM).find(|&r| pixel(&img, c, r) == colour)?;
                Some((c, row))
            })
            .collect();
        let (first, last) = (line[0], line[line.len() - 1]);
        assert!(last.0 - first.0 > (RIGHT - LEFT) / 2, "{first:?} {last:?}");
        assert!(first.1 < last.1, "falling: {first:?} {last:?}");
    }
}
