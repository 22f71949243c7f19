//! The report's charts as inline SVG: the compliance timeline across all resources, and a
//! one-row strip per resource. Pure: strings in, one `<svg>` element out, nothing fetched.

use std::fmt::Write as _;

use k8s_openapi::jiff::civil::Date;

use super::model::{DayState, DayTotals};

const SVG_NS: &str = "http://www.w3.org/2000/svg";

/// Colours shared with the HTML legend and badges, so chart and text agree.
pub(crate) const COMPLIANT: &str = "#2e7d32";
pub(crate) const DRIFT: &str = "#c62828";
pub(crate) const SUSPENDED: &str = "#f2a900";
pub(crate) const NO_EVIDENCE: &str = "#9e9e9e";
pub(crate) const ABSENT: &str = "#e6e8eb";

// The timeline's drawing area (viewBox units; the SVG scales to its container's width).
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 272.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 44.0;
const TOP: f64 = 16.0;
const PLOT_HEIGHT: f64 = 200.0;
/// At most this many date labels under the bars: more would overlap.
const MAX_X_LABELS: usize = 12;
/// At most this many gridlines (plus the baseline).
const MAX_Y_TICKS: usize = 5;

// The strip's cells.
const CELL: f64 = 8.0;
const CELL_HEIGHT: f64 = 14.0;
const STRIP_MAX_WIDTH: f64 = 240.0;
/// Beyond this many days a gap between cells would be thinner than a pixel: drop it.
const STRIP_GAPS_UP_TO: usize = 31;

/// Escapes text for XML and HTML, in content and in quoted attributes alike.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The fill of a day's state.
pub(crate) fn state_colour(state: DayState) -> &'static str {
    match state {
        DayState::Compliant => COMPLIANT,
        DayState::Drift => DRIFT,
        DayState::Suspended => SUSPENDED,
        DayState::NoEvidence => NO_EVIDENCE,
        DayState::Absent => ABSENT,
    }
}

/// The stacked bar chart of the period: one bar per day, the number of resources in each
/// state, bottom to top compliant, drift, suspended, no evidence.
pub fn compliance_timeline(days: &[DayTotals]) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="{SVG_NS}" class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" aria-label="{}" font-family="system-ui, sans-serif" font-size="11">"#,
        escape(&timeline_summary(days))
    );
    if days.is_empty() {
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">No days in the period.</text>"##,
            WIDTH / 2.0,
            TOP + PLOT_HEIGHT / 2.0
        );
        svg.push_str("</svg>");
        return svg;
    }
    let max = days.iter().map(day_total).max().unwrap_or(0);
    let (step, top) = y_scale(max);
    y_axis(&mut svg, step, top);
    let slot = (WIDTH - LEFT - RIGHT) / days.len() as f64;
    for (i, day) in days.iter().enumerate() {
        bar(&mut svg, day, LEFT + slot * i as f64, slot, top);
    }
    x_labels(&mut svg, days, slot);
    legend(&mut svg);
    svg.push_str("</svg>");
    svg
}

/// One resource's period as a row of small cells, one per day, coloured by its state.
/// `from` is the period's first day (`YYYY-MM-DD`); each cell's title names its date.
pub fn resource_strip(days: &[DayState], from: &str) -> String {
    let gap = if days.len() <= STRIP_GAPS_UP_TO { 1.0 } else { 0.0 };
    let pitch = CELL + gap;
    let view_width = (pitch * days.len() as f64 - gap).max(1.0);
    let width = view_width.min(STRIP_MAX_WIDTH);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="{SVG_NS}" class="strip" viewBox="0 0 {} {CELL_HEIGHT}" width="{}" height="{CELL_HEIGHT}" preserveAspectRatio="none" role="img" aria-label="{}">"#,
        num(view_width),
        num(width),
        escape(&strip_summary(days))
    );
    let labels: Vec<String> = dates(from, days.len())
        .enumerate()
        .map(|(i, date)| date.unwrap_or_else(|| format!("day {}", i + 1)))
        .collect();
    if gap > 0.0 {
        for (i, state) in days.iter().enumerate() {
            let _ = write!(
                svg,
                r#"<rect class="cell" x="{}" y="0" width="{CELL}" height="{CELL_HEIGHT}" fill="{}"><title>{}: {}</title></rect>"#,
                num(pitch * i as f64),
                state_colour(*state),
                escape(&labels[i]),
                state.as_str()
            );
        }
    } else {
        // A long period: one bar per run of days in the same state, so that a year of
        // 10,000 resources stays a page, not a million rectangles.
        for (start, len, state) in runs(days) {
            let last = start + len - 1;
            let span = if len == 1 {
                labels[start].clone()
            } else {
                format!("{} – {} ({len} days)", labels[start], labels[last])
            };
            let _ = write!(
                svg,
                r#"<rect class="run" x="{}" y="0" width="{}" height="{CELL_HEIGHT}" fill="{}"><title>{}: {}</title></rect>"#,
                num(pitch * start as f64),
                num(pitch * len as f64),
                state_colour(state),
                escape(&span),
                state.as_str()
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Consecutive days in one state: (first index, length, state).
fn runs(days: &[DayState]) -> Vec<(usize, usize, DayState)> {
    let mut runs: Vec<(usize, usize, DayState)> = Vec::new();
    for (i, state) in days.iter().enumerate() {
        match runs.last_mut() {
            Some((_, len, last)) if last == state => *len += 1,
            _ => runs.push((i, 1, *state)),
        }
    }
    runs
}

/// The `n` dates from `from` on, as `YYYY-MM-DD`; None for each when `from` is no date
/// (or past the calendar's end), so a bad period still draws.
fn dates(from: &str, n: usize) -> impl Iterator<Item = Option<String>> {
    let mut next = from.parse::<Date>().ok();
    (0..n).map(move |_| {
        let current = next;
        next = current.and_then(|d| d.tomorrow().ok());
        current.map(|d| d.to_string())
    })
}

fn day_total(day: &DayTotals) -> usize {
    day.compliant + day.drift + day.suspended + day.no_evidence
}

/// A gridline step of 1, 2 or 5 times a power of ten giving at most `MAX_Y_TICKS` lines,
/// and the axis top (a multiple of the step, at least one step).
fn y_scale(max: usize) -> (usize, usize) {
    let mut magnitude = 1usize;
    loop {
        for factor in [1, 2, 5] {
            let Some(step) = magnitude.checked_mul(factor) else {
                break;
            };
            let top = max.div_ceil(step).max(1).saturating_mul(step);
            if top / step <= MAX_Y_TICKS {
                return (step, top);
            }
        }
        match magnitude.checked_mul(10) {
            Some(next) => magnitude = next,
            // Only for counts no estate has: one gridline at the top.
            None => return (max.max(1), max.max(1)),
        }
    }
}

/// The y coordinate of `value` resources on an axis topped at `top`.
fn y_of(value: usize, top: usize) -> f64 {
    TOP + PLOT_HEIGHT - PLOT_HEIGHT * value as f64 / top.max(1) as f64
}

fn y_axis(svg: &mut String, step: usize, top: usize) {
    svg.push_str(r#"<g class="y-axis">"#);
    for value in (0..=top).step_by(step.max(1)) {
        let y = num(y_of(value, top));
        let stroke = if value == 0 { "#555" } else { "#ddd" };
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{y}" y2="{y}" stroke="{stroke}" stroke-width="1"/><text class="y-label" x="{}" y="{y}" dy="0.32em" text-anchor="end" fill="#444">{value}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{LEFT}" y="{}" fill="#444">resources</text></g>"##,
        TOP - 5.0
    );
}

/// One day's bar: its segments stacked, and a title with the day's numbers for hover.
fn bar(svg: &mut String, day: &DayTotals, x: f64, slot: f64, top: usize) {
    // A gap between bars; few days should not make slabs.
    let width = (slot * 0.8).clamp(0.5, 80.0);
    let x = x + (slot - width) / 2.0;
    let _ = write!(
        svg,
        r#"<g class="bar" data-date="{}"><title>{}</title>"#,
        escape(&day.date),
        escape(&day_title(day))
    );
    let mut base = 0;
    for (count, colour) in [
        (day.compliant, COMPLIANT),
        (day.drift, DRIFT),
        (day.suspended, SUSPENDED),
        (day.no_evidence, NO_EVIDENCE),
    ] {
        if count == 0 {
            continue;
        }
        let y_top = y_of(base + count, top);
        let _ = write!(
            svg,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{colour}"/>"#,
            num(x),
            num(y_top),
            num(width),
            num(y_of(base, top) - y_top)
        );
        base += count;
    }
    // An invisible full-height target, so a day with few resources is still easy to hover.
    let _ = write!(
        svg,
        r#"<rect x="{}" y="{TOP}" width="{}" height="{PLOT_HEIGHT}" fill="transparent"/></g>"#,
        num(x),
        num(width)
    );
}

fn day_title(day: &DayTotals) -> String {
    format!(
        "{}: {} compliant, {} drift, {} suspended, {} no evidence",
        day.date, day.compliant, day.drift, day.suspended, day.no_evidence
    )
}

/// Every k-th date under its bar, k chosen so at most `MAX_X_LABELS` show.
fn x_labels(svg: &mut String, days: &[DayTotals], slot: f64) {
    let every = days.len().div_ceil(MAX_X_LABELS).max(1);
    let baseline = TOP + PLOT_HEIGHT;
    svg.push_str(r#"<g class="x-axis">"#);
    for (i, day) in days.iter().enumerate().step_by(every) {
        let x = num(LEFT + slot * (i as f64 + 0.5));
        let _ = write!(
            svg,
            r##"<line x1="{x}" x2="{x}" y1="{baseline}" y2="{}" stroke="#555"/><text class="x-label" x="{x}" y="{}" text-anchor="middle" fill="#444">{}</text>"##,
            baseline + 4.0,
            baseline + 16.0,
            escape(&day.date)
        );
    }
    svg.push_str("</g>");
}

fn legend(svg: &mut String) {
    let y = TOP + PLOT_HEIGHT + 40.0;
    svg.push_str(r#"<g class="legend">"#);
    let mut x = LEFT;
    for (label, colour) in [
        ("compliant", COMPLIANT),
        ("drift", DRIFT),
        ("suspended", SUSPENDED),
        ("no evidence", NO_EVIDENCE),
    ] {
        let _ = write!(
            svg,
            r##"<rect x="{x}" y="{}" width="12" height="12" fill="{colour}"/><text x="{}" y="{y}" dy="0.32em" fill="#222">{label}</text>"##,
            y - 6.0,
            x + 16.0
        );
        x += 30.0 + 7.0 * label.len() as f64;
    }
    svg.push_str("</g>");
}

/// What a screen reader says instead of the chart.
fn timeline_summary(days: &[DayTotals]) -> String {
    let (Some(first), Some(last)) = (days.first(), days.last()) else {
        return String::from("Compliance per day: no days in the period.");
    };
    let with_drift = days.iter().filter(|d| d.drift > 0).count();
    let without_evidence = days.iter().filter(|d| d.no_evidence > 0).count();
    format!(
        "Compliance per day, {} to {} ({} days): {} of them with drift, {} with a resource \
         without evidence; on the last day {} of {} resources compliant.",
        first.date,
        last.date,
        days.len(),
        with_drift,
        without_evidence,
        last.compliant,
        day_total(last)
    )
}

fn strip_summary(days: &[DayState]) -> String {
    let count = |state: DayState| days.iter().filter(|d| **d == state).count();
    format!(
        "{} days: {} compliant, {} drift, {} suspended, {} no evidence, {} absent",
        days.len(),
        count(DayState::Compliant),
        count(DayState::Drift),
        count(DayState::Suspended),
        count(DayState::NoEvidence),
        count(DayState::Absent)
    )
}

/// A coordinate with at most two decimals and no trailing zeros, to keep the SVG small.
fn num(value: f64) -> String {
    let rounded = (value * 100.0).round() / 100.0;
    // -0 prints as "-0".
    if rounded == 0.0 {
        String::from("0")
    } else {
        format!("{rounded}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(n: usize, from: &str) -> Vec<DayTotals> {
        dates(from, n)
            .enumerate()
            .map(|(i, date)| DayTotals {
                date: date.unwrap(),
                compliant: 3 + i % 2,
                drift: i % 3,
                no_evidence: usize::from(i == 0),
                suspended: usize::from(i == 1),
            })
            .collect()
    }

    #[test]
    fn timeline_has_one_bar_group_per_day() {
        let svg = compliance_timeline(&totals(5, "2026-01-01"));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert_eq!(svg.matches(r#"<g class="bar""#).count(), 5);
        for date in ["2026-01-01", "2026-01-03", "2026-01-05"] {
            assert!(svg.contains(&format!(r#"data-date="{date}""#)), "{date}");
        }
    }

    #[test]
    fn timeline_bars_have_titles_with_the_days_numbers() {
        let day = DayTotals {
            date: "2026-02-01".into(),
            compliant: 7,
            drift: 2,
            no_evidence: 1,
            suspended: 0,
        };
        let svg = compliance_timeline(&[day]);
        assert!(svg.contains("<title>2026-02-01: 7 compliant, 2 drift, 0 suspended, 1 no evidence</title>"));
        // Three segments drawn, the empty one left out, plus the hover target.
        let group = svg.split(r#"<g class="bar""#).nth(1).unwrap();
        let group = group.split("</g>").next().unwrap();
        assert_eq!(group.matches("<rect").count(), 4);
        assert!(group.contains(COMPLIANT) && group.contains(DRIFT) && group.contains(NO_EVIDENCE));
        assert!(!group.contains(SUSPENDED));
    }

    #[test]
    fn timeline_is_accessible_with_a_legend() {
        let svg = compliance_timeline(&totals(5, "2026-01-01"));
        assert!(svg.contains(r#"role="img""#));
        assert!(svg.contains(r#"aria-label="Compliance per day, 2026-01-01 to 2026-01-05 (5 days)"#));
        let legend = svg.split(r#"<g class="legend">"#).nth(1).unwrap();
        for label in ["compliant", "drift", "suspended", "no evidence"] {
            assert!(legend.contains(&format!(">{label}</text>")), "{label}");
        }
    }

    #[test]
    fn timeline_of_a_year_thins_its_date_labels() {
        let year = totals(366, "2028-01-01");
        assert_eq!(year.last().unwrap().date, "2028-12-31");
        let svg = compliance_timeline(&year);
        assert_eq!(svg.matches(r#"<g class="bar""#).count(), 366);
        let labels = svg.matches(r#"class="x-label""#).count();
        assert!((6..=13).contains(&labels), "{labels} labels");
        assert!(svg.contains(">2028-01-01</text>"));
    }

    #[test]
    fn timeline_of_a_short_period_labels_every_day() {
        let svg = compliance_timeline(&totals(5, "2026-01-01"));
        assert_eq!(svg.matches(r#"class="x-label""#).count(), 5);
    }

    #[test]
    fn timeline_y_axis_has_a_few_ticks_covering_the_tallest_bar() {
        assert_eq!(y_scale(0), (1, 1));
        assert_eq!(y_scale(3), (1, 3));
        assert_eq!(y_scale(7), (2, 8));
        assert_eq!(y_scale(10), (2, 10));
        assert_eq!(y_scale(11), (5, 15));
        assert_eq!(y_scale(240), (50, 250));
        let day = DayTotals {
            date: "2026-01-01".into(),
            compliant: 7,
            ..Default::default()
        };
        let svg = compliance_timeline(&[day]);
        let ticks: Vec<&str> = svg
            .split(r#"class="y-label""#)
            .skip(1)
            .filter_map(|t| t.split('>').nth(1)?.split('<').next())
            .collect();
        assert_eq!(ticks, ["0", "2", "4", "6", "8"]);
    }

    #[test]
    fn timeline_escapes_its_text() {
        let day = DayTotals {
            date: "<b>&\"".into(),
            compliant: 1,
            ..Default::default()
        };
        let svg = compliance_timeline(&[day]);
        assert!(!svg.contains("<b>"));
        assert!(svg.contains("&lt;b&gt;&amp;&quot;"));
    }

    #[test]
    fn timeline_of_no_days_still_draws() {
        let svg = compliance_timeline(&[]);
        assert!(svg.contains("No days in the period."));
        assert!(svg.ends_with("</svg>"));
        assert_eq!(svg.matches("class=\"bar\"").count(), 0);
    }

    #[test]
    fn strip_has_one_cell_per_day_with_its_date_and_state() {
        use DayState::*;
        let days = [Compliant, Drift, Suspended, NoEvidence, Absent];
        let svg = resource_strip(&days, "2025-12-30");
        assert_eq!(svg.matches(r#"class="cell""#).count(), 5);
        for title in [
            "2025-12-30: compliant",
            "2025-12-31: drift",
            "2026-01-01: suspended",
            "2026-01-02: no evidence",
            "2026-01-03: absent",
        ] {
            assert!(svg.contains(&format!("<title>{title}</title>")), "{title}");
        }
        assert!(svg.contains(r#"role="img""#));
        assert!(svg.contains("5 days: 1 compliant, 1 drift, 1 suspended, 1 no evidence, 1 absent"));
    }

    #[test]
    fn strip_of_a_year_draws_one_bar_per_run_in_a_bounded_width() {
        let mut days = vec![DayState::Compliant; 366];
        days[59] = DayState::Drift; // 2028-02-29
        let svg = resource_strip(&days, "2028-01-01");
        assert_eq!(
            svg.matches(r#"class="run""#).count(),
            3,
            "before, the drift day, after"
        );
        assert!(svg.contains(r#"width="240""#));
        assert!(svg.contains("<title>2028-01-01 – 2028-02-28 (59 days): compliant</title>"));
        assert!(svg.contains("<title>2028-02-29: drift</title>"));
        assert!(svg.contains("<title>2028-03-01 – 2028-12-31 (306 days): compliant</title>"));
    }

    #[test]
    fn strip_with_a_bad_start_date_numbers_its_days() {
        let svg = resource_strip(&[DayState::Drift, DayState::Compliant], "<not a date>");
        assert!(svg.contains("<title>day 1: drift</title>"));
        assert!(svg.contains("<title>day 2: compliant</title>"));
        assert!(!svg.contains("<not"));
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(escape(r#"<a href='x'>&"#), "&lt;a href=&#39;x&#39;&gt;&amp;");
        assert_eq!(escape("\"plain\""), "&quot;plain&quot;");
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(12.0), "12");
        assert_eq!(num(2.456), "2.46");
        assert_eq!(num(-0.001), "0");
    }
}
