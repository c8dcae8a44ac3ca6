//! The picture of an order, as SVG drawn on the server: one time axis; lanes for the workflow
//! (runs, waits, condition checks, lookup and send with retries, settling); per channel the
//! count of sent, delivered and failed notifications over time, with each failure reason marked
//! where it first happened; delivery reports, webhook attempts and people's actions. Every
//! mark names itself on hover (`<title>`). Long idle stretches (a send time days away) are
//! drawn as a short break, so the sending stays readable.

use super::lanes::{Lane, Mark};
use super::view::OrderView;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use std::collections::BTreeMap;
use varsel_workflows::domain::{Channel, NotificationStatus};

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 140.0;
const RIGHT: f64 = 120.0;
const LANE: f64 = 22.0;
const CHART: f64 = 96.0;
const BREAK: f64 = 44.0;
const MIN_STRETCH: f64 = 6.0;
const SUB_ROWS: usize = 6;

fn secs(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

/// One piece of the axis: times `t0..t1` drawn at `x0..x1`; a break when idle.
#[derive(Debug, Clone, PartialEq)]
struct Piece {
    t0: f64,
    t1: f64,
    x0: f64,
    x1: f64,
    idle: bool,
}

/// A time axis over `points` from `x0` to `x1`, idle gaps (longer than a quarter of the whole
/// and than a minute) shown as a short break.
#[derive(Debug, Clone)]
struct Axis {
    pieces: Vec<Piece>,
}

impl Axis {
    fn new(mut points: Vec<f64>, x0: f64, x1: f64) -> Self {
        points.retain(|p| p.is_finite());
        points.sort_by(f64::total_cmp);
        points.dedup();
        let (first, last) = match (points.first(), points.last()) {
            (Some(f), Some(l)) if l > f => (*f, *l),
            (Some(f), _) => (*f - 0.5, *f + 0.5),
            _ => (0.0, 1.0),
        };
        let whole = last - first;
        let gap = (whole / 4.0).max(60.0);
        // Active stretches and the idle gaps between them.
        let mut spans: Vec<(f64, f64, bool)> = Vec::new();
        let mut start = first;
        for w in points.windows(2) {
            if w[1] - w[0] > gap {
                spans.push((start, w[0], false));
                spans.push((w[0], w[1], true));
                start = w[1];
            }
        }
        spans.push((start, last, false));
        // Idle gaps take a break's width; active stretches share the rest by their length, each
        // at least a few pixels (a stretch of one instant stays visible).
        let idle = spans.iter().filter(|s| s.2).count() as f64;
        let actives = spans.len() as f64 - idle;
        let active: f64 = spans.iter().filter(|s| !s.2).map(|s| s.1 - s.0).sum();
        let room = (x1 - x0 - idle * BREAK - actives * MIN_STRETCH).max(10.0);
        let mut x = x0;
        let pieces = spans
            .into_iter()
            .map(|(t0, t1, idle)| {
                let w = match (idle, active > 0.0) {
                    (true, _) => BREAK,
                    (false, true) => MIN_STRETCH + room * (t1 - t0) / active,
                    (false, false) => MIN_STRETCH + room / actives,
                };
                let p = Piece { t0, t1, x0: x, x1: x + w, idle };
                x += w;
                p
            })
            .collect();
        Self { pieces }
    }

    fn x(&self, t: f64) -> f64 {
        let first = &self.pieces[0];
        if t <= first.t0 {
            return first.x0;
        }
        for p in &self.pieces {
            if t <= p.t1 {
                let f = if p.t1 > p.t0 { (t - p.t0) / (p.t1 - p.t0) } else { 0.0 };
                return p.x0 + f * (p.x1 - p.x0);
            }
        }
        self.pieces.last().map(|p| p.x1).unwrap_or(0.0)
    }

    fn at(&self, t: DateTime<Utc>) -> f64 {
        self.x(secs(t))
    }

    fn end(&self) -> f64 {
        self.pieces.last().map(|p| p.t1).unwrap_or(0.0)
    }
}

fn clock(t: f64, fine: bool) -> String {
    let Some(t) = DateTime::from_timestamp_micros((t * 1e6) as i64) else { return String::new() };
    if fine { t.format("%H:%M:%S%.3f").to_string() } else { t.format("%H:%M:%S").to_string() }
}

fn duration(s: f64) -> String {
    match s {
        s if s >= 2.0 * 86400.0 => format!("{:.1} days", s / 86400.0),
        s if s >= 2.0 * 3600.0 => format!("{:.1} h", s / 3600.0),
        s if s >= 120.0 => format!("{:.0} min", s / 60.0),
        s => format!("{s:.1} s"),
    }
}

fn f(v: f64) -> String {
    format!("{v:.1}")
}

/// Cumulative sent, delivered and failed notifications of `channel`, at each bucket's end.
fn series(view: &OrderView, channel: Channel) -> Vec<(DateTime<Utc>, DateTime<Utc>, [i64; 3])> {
    let Some(b) = &view.buckets else { return Vec::new() };
    let mut by: BTreeMap<i64, [i64; 3]> = BTreeMap::new();
    for r in &b.rows {
        if r.status.channel() != channel {
            continue;
        }
        let slot = by.entry(r.bucket.max(0)).or_default();
        if r.source == "redrive" {
            // A redrive takes failed notifications back to New.
            slot[2] -= r.count;
        } else if matches!(
            r.status,
            NotificationStatus::EmailDelivered | NotificationStatus::SmsDelivered
        ) {
            slot[1] += r.count;
        } else if r.status.is_failure() {
            slot[2] += r.count;
        } else if r.status.is_success() && r.source == "provider" {
            slot[0] += r.count;
        }
    }
    let mut total = [0i64; 3];
    by.into_iter()
        .map(|(k, d)| {
            for i in 0..3 {
                total[i] += d[i];
            }
            (b.start(k), b.start(k + 1), total)
        })
        .collect()
}

/// Assigns overlapping spans of a lane to sub-rows, first free row first.
fn rows_of(marks: &[&Mark], end: DateTime<Utc>) -> Vec<usize> {
    let mut free_at: Vec<DateTime<Utc>> = Vec::new();
    marks
        .iter()
        .map(|m| {
            let stop = m.end.unwrap_or(end);
            let row = free_at.iter().position(|t| *t <= m.start).unwrap_or_else(|| {
                if free_at.len() < SUB_ROWS { free_at.len() } else { free_at.len() - 1 }
            });
            if row == free_at.len() {
                free_at.push(stop);
            } else {
                free_at[row] = free_at[row].max(stop);
            }
            row
        })
        .collect()
}

/// The order's picture.
pub fn render(view: &OrderView) -> Markup {
    let o = &view.order.order;
    let finished = !matches!(
        o.status,
        varsel_workflows::domain::OrderStatus::Registered
            | varsel_workflows::domain::OrderStatus::Processing
            | varsel_workflows::domain::OrderStatus::Processed
    );
    let channels = view.channels();
    let all_series: Vec<(Channel, Vec<_>)> =
        channels.iter().map(|c| (*c, series(view, *c))).collect();
    let mut points = vec![secs(o.created)];
    for m in &view.marks {
        points.push(secs(m.start));
        if let Some(e) = m.end {
            points.push(secs(e));
        }
    }
    for (_, s) in &all_series {
        for (a, b, _) in s {
            points.push(secs(*a));
            points.push(secs(*b));
        }
    }
    for r in &view.failures {
        points.push(secs(r.first));
    }
    if !finished {
        points.push(secs(view.now));
    } else {
        points.push(secs(view.order.status_changed));
    }
    let axis = Axis::new(points, LEFT, WIDTH - RIGHT);
    let end = DateTime::from_timestamp_micros((axis.end() * 1e6) as i64).unwrap_or(view.now);

    let lanes_always = [Lane::Runs, Lane::Waits, Lane::Condition, Lane::Sending, Lane::Settling];
    let lanes_if_any = [Lane::Reports, Lane::Webhooks, Lane::Actions];
    let of = |lane: Lane| view.marks.iter().filter(move |m| m.lane == lane).collect::<Vec<_>>();
    // Rows top to bottom: the workflow's lanes, each channel's chart, the other lanes.
    let mut y = 34.0;
    let mut lane_rows: Vec<LaneRow> = Vec::new();
    for lane in lanes_always {
        let marks = of(lane);
        let rows = rows_of(&marks, end);
        let n = rows.iter().max().map(|r| r + 1).unwrap_or(1);
        let h = if n > 1 { 8.0 + n as f64 * 8.0 } else { LANE };
        lane_rows.push((lane, y, h, marks, rows));
        y += h + 4.0;
    }
    let charts_y = y;
    y += all_series.len() as f64 * (CHART + 10.0);
    for lane in lanes_if_any {
        let marks = of(lane);
        if marks.is_empty() && !(lane == Lane::Reports && view.buckets.is_some()) {
            continue;
        }
        let rows = vec![0; marks.len()];
        lane_rows.push((lane, y, LANE, marks, rows));
        y += LANE + 4.0;
    }
    let height = y + 10.0;
    let plot_end = WIDTH - RIGHT;
    let failures_total: i64 = view.failures.iter().map(|r| r.count).sum();
    let summary = format!(
        "Order {}: {}; {} notifications, {} failed; {} workflow marks.",
        o.id,
        o.status.as_str(),
        view.counts.iter().map(|c| c.2).sum::<i64>(),
        failures_total,
        view.marks.len()
    );
    // Report counts per bucket, all channels.
    let mut reports: BTreeMap<i64, i64> = BTreeMap::new();
    if let Some(b) = &view.buckets {
        for r in b.rows.iter().filter(|r| r.source == "report") {
            *reports.entry(r.bucket.max(0)).or_default() += r.count;
        }
    }
    let report_max = reports.values().copied().max().unwrap_or(1).max(1) as f64;

    html! {
        svg.picture xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="picture-title picture-desc"
            viewBox=(format!("0 0 {WIDTH} {}", f(height))) width="100%" {
            title #picture-title { "The story of order " (o.id) }
            desc #picture-desc { (summary) }
            // The axis: ticks on active stretches, breaks over idle ones.
            g.axis {
                line x1=(f(LEFT)) x2=(f(plot_end)) y1="26" y2="26" {}
                @for p in &axis.pieces {
                    @if p.idle {
                        g.break {
                            rect x=(f(p.x0 + 4.0)) y="4" width=(f(p.x1 - p.x0 - 8.0)) height=(f(height - 8.0)) {}
                            text x=(f((p.x0 + p.x1) / 2.0)) y="18" text-anchor="middle" { "≈ " (duration(p.t1 - p.t0)) }
                            title { "idle for " (duration(p.t1 - p.t0)) ", drawn short" }
                        }
                    } @else {
                        @let n = (((p.x1 - p.x0) / 130.0).floor() as usize).max(1);
                        @let fine = p.t1 - p.t0 < 10.0;
                        @for i in 0..n {
                            @let t = p.t0 + (p.t1 - p.t0) * i as f64 / n as f64;
                            @let x = axis.x(t);
                            line.tick x1=(f(x)) x2=(f(x)) y1="22" y2=(f(height - 6.0)) {}
                            text x=(f(x + 3.0)) y="18" { (clock(t, fine)) }
                        }
                    }
                }
                text x="4" y="18" { (o.created.format("%Y-%m-%d")) " UTC" }
            }
            @for (lane, ly, lh, marks, rows) in &lane_rows {
                g class=(format!("lane lane-{}", lane.label().replace(' ', "-"))) {
                    rect.lane-bg x=(f(LEFT)) y=(f(*ly)) width=(f(plot_end - LEFT)) height=(f(*lh)) {}
                    text.lane-label x="4" y=(f(ly + 15.0)) { (lane.label()) }
                    @if *lane == Lane::Reports {
                        @if let Some(b) = &view.buckets {
                            @for (k, n) in &reports {
                                @let x0 = axis.at(b.start(*k));
                                @let x1 = axis.at(b.start(k + 1)).max(x0 + 1.5);
                                @let h = (lh - 4.0) * (*n as f64) / report_max;
                                rect.report x=(f(x0)) y=(f(ly + lh - 2.0 - h)) width=(f(x1 - x0)) height=(f(h)) {
                                    title { (n) " delivery reports from " (b.start(*k).format("%H:%M:%S%.3f")) }
                                }
                            }
                        }
                    }
                    @for (m, row) in marks.iter().zip(rows) {
                        @let x0 = axis.at(m.start);
                        @let cls = if m.failed { "mark failed" } else { "mark" };
                        @if m.span {
                            @let x1 = axis.at(m.end.unwrap_or(end)).max(x0 + 2.0);
                            @let (ry, rh) = if *lh > LANE { (ly + 4.0 + *row as f64 * 8.0, 6.0) } else { (ly + 5.0, lh - 10.0) };
                            rect class=(format!("{cls} span")) x=(f(x0)) y=(f(ry)) width=(f(x1 - x0)) height=(f(rh)) {
                                title { (m.start.format("%H:%M:%S%.3f")) " " (m.text) }
                            }
                        } @else {
                            @let cy = ly + lh / 2.0;
                            path class=(format!("{cls} point")) d=(format!("M{} {} l5 -6 l5 6 l-5 6 z", f(x0 - 5.0), f(cy))) {
                                title { (m.start.format("%H:%M:%S%.3f")) " " (m.text) }
                            }
                        }
                    }
                    @if marks.is_empty() && *lane != Lane::Reports {
                        text.none x=(f(LEFT + 6.0)) y=(f(ly + 15.0)) { "none" }
                    }
                }
            }
            @for (i, (channel, s)) in all_series.iter().enumerate() {
                @let cy = charts_y + i as f64 * (CHART + 10.0);
                @let total = view.total(*channel);
                @let top = s.iter().flat_map(|p| p.2).chain([total]).max().unwrap_or(1).max(1) as f64;
                @let yv = |v: i64| cy + CHART - 4.0 - (CHART - 12.0) * (v.max(0) as f64) / top;
                g class=(format!("chart chart-{}", channel.as_str().to_lowercase())) {
                    rect.lane-bg x=(f(LEFT)) y=(f(cy)) width=(f(plot_end - LEFT)) height=(f(CHART)) {}
                    text.lane-label x="4" y=(f(cy + 15.0)) { (channel.as_str()) " notifications" }
                    text.lane-note x="4" y=(f(cy + 31.0)) { (total) " in all" }
                    @for (k, name) in ["sent", "delivered", "failed"].iter().enumerate() {
                        @let last = s.last().map(|p| p.2[k]).unwrap_or(0);
                        path class=(format!("series s-{name}")) d=(series_path(&axis, s, k, yv)) {
                            title { (last) " " (name) }
                        }
                        text class=(format!("series-label s-{name}")) x=(f(plot_end + 6.0)) y=(f(cy + 16.0 + k as f64 * 16.0)) { (name) " " (last) }
                    }
                    @for (j, r) in view.failures.iter().filter(|r| r.status.channel() == *channel).enumerate() {
                        @let x = axis.at(r.first);
                        @let reason = super::view::reason(r);
                        g.failure {
                            path d=(format!("M{} {} l6 -10 l6 10 z", f(x - 6.0), f(cy + CHART - 2.0))) {}
                            @if j < 3 {
                                // Labels read away from the nearer edge, so they stay inside.
                                @let right = x > (LEFT + plot_end) / 2.0;
                                text x=(f(if right { x - 8.0 } else { x + 8.0 })) y=(f(cy + CHART - 8.0 - j as f64 * 14.0))
                                    text-anchor=(if right { "end" } else { "start" }) {
                                    (r.count) " × " (r.status.as_str()) ": " (truncate(&reason, 70))
                                }
                            }
                            title {
                                (r.count) " × " (r.status.as_str()) ": " (reason) " (first " (r.first.format("%H:%M:%S%.3f")) ", last " (r.last.format("%H:%M:%S%.3f")) ")"
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A lane as drawn: its top, its height, its marks and the sub-row of each.
type LaneRow<'a> = (Lane, f64, f64, Vec<&'a Mark>, Vec<usize>);

type Series = [(DateTime<Utc>, DateTime<Utc>, [i64; 3])];

/// The step line of series `k`, from the axis's start to its end.
fn series_path(axis: &Axis, s: &Series, k: usize, y: impl Fn(i64) -> f64) -> String {
    let mut d = format!("M{} {}", f(LEFT), f(y(0)));
    let mut prev = 0;
    for (a, b, v) in s {
        d.push_str(&format!(
            " L{} {} L{} {}",
            f(axis.at(*a)),
            f(y(prev)),
            f(axis.at(*b)),
            f(y(v[k]))
        ));
        prev = v[k];
    }
    d.push_str(&format!(" L{} {}", f(WIDTH - RIGHT), f(y(prev))));
    d
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_day_is_drawn_short_and_the_sending_keeps_the_room() {
        let day = 86400.0;
        let axis = Axis::new(vec![0.0, 1.0, day, day + 10.0, day + 20.0], 0.0, 1000.0);
        assert_eq!(axis.pieces.iter().filter(|p| p.idle).count(), 1, "{:?}", axis.pieces);
        let sending = axis.x(day + 20.0) - axis.x(day);
        assert!(sending > 800.0, "the 20 s of sending take {sending} of 1000");
        assert!(axis.x(day / 2.0) > axis.x(1.0) && axis.x(day / 2.0) < axis.x(day));
        assert_eq!(axis.x(-5.0), 0.0);
        assert!((axis.x(day + 20.0) - 1000.0).abs() < 0.01);
    }

    #[test]
    fn one_point_still_has_an_axis() {
        let axis = Axis::new(vec![5.0], 0.0, 100.0);
        assert!(axis.x(5.0) > 0.0 && axis.x(5.0) < 100.0);
        let none = Axis::new(Vec::new(), 0.0, 100.0);
        assert_eq!(none.x(0.0), 0.0);
    }
}
