//! The map as SVG, laid out by hand: three columns left to right (sources, workflows,
//! destinations), groups as labelled boxes stacked down each column, nodes as boxes coloured
//! by compliance, edges as curves with an arrowhead and their label at the middle.
//!
//! One `<svg>` element without an XML prolog: the HTML report embeds it as is, and the CLI
//! writes it to a .svg file. Presentation attributes only (no `<style>`), so nothing leaks
//! into the page that embeds it. Each node is a `<g class="node">` with `data-node`,
//! `data-kind`, `data-compliance` and `data-object`, and a `<title>` with its full text.

use std::{collections::BTreeSet, fmt::Write};

use super::{
    Compliance, Estate,
    layout::{self, Graph, Node},
};

const MARGIN: i64 = 16;
const LEGEND_HEIGHT: i64 = 30;
/// About 7 px a character at 12 px.
const CHAR_WIDTH: i64 = 7;
const NODE_HEIGHT: i64 = 40;
const NODE_MIN_WIDTH: i64 = 140;
const NODE_MAX_WIDTH: i64 = 280;
const NODE_PADDING: i64 = 10;
const ROW_GAP: i64 = 12;
/// Room between columns for the edges' labels.
const COLUMN_GAP: i64 = 190;
const GROUP_PADDING: i64 = 14;
const GROUP_HEADING: i64 = 28;
const GROUP_GAP: i64 = 18;
const EDGE_LABEL_CHARS: usize = 30;
const COLUMNS: usize = 3;
const ARROW_ID: &str = "estate-map-arrow";

/// The map as one `<svg>` element (no XML prolog, so it embeds in HTML as is).
pub fn render(estate: &Estate) -> String {
    let graph = layout::build(estate);
    if graph.is_empty() {
        return nothing_declared();
    }
    let plan = Plan::of(&graph);
    let mut out = String::with_capacity(1024 + graph.nodes.len() * 700);
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" \
         font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\" role=\"img\" \
         aria-label=\"Data-flow map\" style=\"max-width:100%;height:auto\">",
        w = plan.width,
        h = plan.height
    );
    out.push_str(&defs());
    out.push_str(&legend());
    for (i, group) in graph.groups.iter().enumerate() {
        if let Some(frame) = plan.groups.get(i) {
            draw_group(&mut out, &group.id, &group.label, frame);
        }
    }
    for (edge, place) in graph.edges.iter().zip(&plan.labels) {
        if let (Some(from), Some(to)) = (plan.nodes.get(edge.from), plan.nodes.get(edge.to)) {
            let ids = (
                graph.nodes[edge.from].id.as_str(),
                graph.nodes[edge.to].id.as_str(),
            );
            draw_edge(&mut out, ids, &edge.label, ends(from, to), *place);
        }
    }
    for (node, frame) in graph.nodes.iter().zip(&plan.nodes) {
        draw_node(&mut out, node, frame);
    }
    out.push_str("</svg>");
    out
}

fn nothing_declared() -> String {
    String::from(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 240 48\" width=\"240\" height=\"48\" \
         font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\" role=\"img\" aria-label=\"Data-flow map\">\
         <text x=\"120\" y=\"28\" text-anchor=\"middle\" fill=\"#555555\">nothing declared</text></svg>",
    )
}

/// A box's place, in whole pixels so the output is the same on every machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Frame {
    x: i64,
    y: i64,
    width: i64,
    height: i64,
}

/// Where everything goes.
struct Plan {
    groups: Vec<Frame>,
    nodes: Vec<Frame>,
    /// The middle of each edge's label, in the graph's edge order.
    labels: Vec<(i64, i64)>,
    width: i64,
    height: i64,
}

/// A row of groups side by side, top-aligned.
struct Band {
    top: i64,
    height: i64,
    used: [bool; COLUMNS],
    /// Some group in it is reached by an edge from a band above.
    fed_from_above: bool,
}

impl Plan {
    fn of(graph: &Graph) -> Self {
        let widths: Vec<i64> = graph.nodes.iter().map(node_width).collect();
        let mut column_widths = [0; COLUMNS];
        for (node, width) in graph.nodes.iter().zip(&widths) {
            let c = column_of(node);
            column_widths[c] = column_widths[c].max(*width);
        }
        let column_x = column_starts(&column_widths);
        let feeders = feeders(graph);
        let mut bands: Vec<Band> = Vec::new();
        let mut band_of: Vec<Option<usize>> = vec![None; graph.groups.len()];
        let mut groups = Vec::with_capacity(graph.groups.len());
        let mut nodes = vec![Frame::default(); graph.nodes.len()];
        for (g, group) in graph.groups.iter().enumerate() {
            let columns: Vec<usize> = group
                .nodes
                .iter()
                .filter_map(|&i| graph.nodes.get(i))
                .map(column_of)
                .collect();
            let (Some(&first), Some(&last)) = (columns.iter().min(), columns.iter().max()) else {
                // Never: a group has nodes. Kept in step with the groups all the same.
                groups.push(Frame::default());
                continue;
            };
            let mut rows = [0i64; COLUMNS];
            for c in &columns {
                rows[*c] += 1;
            }
            let deepest = rows.iter().copied().max().unwrap_or(0);
            let height = GROUP_HEADING + deepest * (NODE_HEIGHT + ROW_GAP) - ROW_GAP + GROUP_PADDING;
            let band = place(&mut bands, &band_of, &feeders[g], first..=last, height);
            band_of[g] = Some(band);
            let y = bands.get(band).map_or(MARGIN + LEGEND_HEIGHT, |b| b.top);
            let x = column_x[first] - GROUP_PADDING;
            let right = column_x[last] + column_widths[last] + GROUP_PADDING;
            groups.push(Frame {
                x,
                y,
                width: right - x,
                height,
            });
            // Down each column, in the graph's order, centred in the column.
            let mut row = [0i64; COLUMNS];
            for (&i, &c) in group.nodes.iter().zip(&columns) {
                let width = widths.get(i).copied().unwrap_or(NODE_MIN_WIDTH);
                if let Some(frame) = nodes.get_mut(i) {
                    *frame = Frame {
                        x: column_x[c] + (column_widths[c] - width) / 2,
                        y: y + GROUP_HEADING + row[c] * (NODE_HEIGHT + ROW_GAP),
                        width,
                        height: NODE_HEIGHT,
                    };
                }
                row[c] += 1;
            }
        }
        let right = groups.iter().map(|g| g.x + g.width).max().unwrap_or(0);
        let bottom = bands.last().map_or(MARGIN + LEGEND_HEIGHT, |b| b.top + b.height);
        let labels = label_places(graph, &nodes);
        Self {
            groups,
            nodes,
            labels,
            width: (right + MARGIN).max(LEGEND_WIDTH),
            height: bottom + MARGIN,
        }
    }
}

fn column_of(node: &Node) -> usize {
    node.column().min(COLUMNS - 1)
}

/// For each group, the other groups with an edge into it.
fn feeders(graph: &Graph) -> Vec<BTreeSet<usize>> {
    let mut feeders = vec![BTreeSet::new(); graph.groups.len()];
    for edge in &graph.edges {
        if let (Some(from), Some(to)) = (graph.nodes.get(edge.from), graph.nodes.get(edge.to))
            && from.group != to.group
            && let Some(set) = feeders.get_mut(to.group)
        {
            set.insert(from.group);
        }
    }
    feeders
}

/// The band a group goes in: beside the last band's groups when its columns are free there
/// and no edge comes down into that band or this group (it would cross the neighbours);
/// else a new band below.
fn place(
    bands: &mut Vec<Band>,
    band_of: &[Option<usize>],
    feeders: &BTreeSet<usize>,
    columns: std::ops::RangeInclusive<usize>,
    height: i64,
) -> usize {
    let current = bands.len().saturating_sub(1);
    let from_above = |band: usize| {
        feeders
            .iter()
            .any(|f| band_of.get(*f).copied().flatten().is_some_and(|b| b < band))
    };
    if let Some(last) = bands.last_mut()
        && columns.clone().all(|c| !last.used[c])
        && !last.fed_from_above
        && !from_above(current)
    {
        columns.for_each(|c| last.used[c] = true);
        last.height = last.height.max(height);
        return current;
    }
    let top = bands
        .last()
        .map_or(MARGIN + LEGEND_HEIGHT, |b| b.top + b.height + GROUP_GAP);
    let mut used = [false; COLUMNS];
    columns.for_each(|c| used[c] = true);
    let new = bands.len();
    bands.push(Band {
        top,
        height,
        used,
        fed_from_above: from_above(new),
    });
    new
}

/// Each edge's label at the middle of its curve, moved up or down a line at a time when it
/// would cover a node or an earlier label.
fn label_places(graph: &Graph, nodes: &[Frame]) -> Vec<(i64, i64)> {
    const LINE: i64 = 14;
    let mut taken: Vec<Frame> = nodes.to_vec();
    let mut places = Vec::with_capacity(graph.edges.len());
    for edge in &graph.edges {
        let (Some(from), Some(to)) = (nodes.get(edge.from), nodes.get(edge.to)) else {
            places.push((0, 0));
            continue;
        };
        let (x, y) = middle(from, to);
        let chars = i64::try_from(fit(&edge.label, EDGE_LABEL_CHARS).chars().count()).unwrap_or(0);
        let width = chars * LABEL_CHAR_WIDTH + 6;
        let frame_at = |y: i64| Frame {
            x: x - width / 2,
            y: y - LINE + 3,
            width,
            height: LINE,
        };
        let shifts = [0, 1, -1, 2, -2, 3, -3].map(|k| k * LINE);
        let free = shifts
            .iter()
            .map(|dy| y + dy)
            .find(|y| !taken.iter().any(|t| overlaps(t, &frame_at(*y))));
        let y = free.unwrap_or(y);
        taken.push(frame_at(y));
        places.push((x, y));
    }
    places
}

/// About 6 px a character at 11 px.
const LABEL_CHAR_WIDTH: i64 = 6;

fn overlaps(a: &Frame, b: &Frame) -> bool {
    a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height
}

/// Where an edge leaves, where it arrives, and its curve's middle (with symmetric control
/// points, the ends' middle); the label sits a little above it.
fn ends(from: &Frame, to: &Frame) -> ((i64, i64), (i64, i64)) {
    (
        (from.x + from.width, from.y + from.height / 2),
        (to.x - 1, to.y + to.height / 2),
    )
}

fn middle(from: &Frame, to: &Frame) -> (i64, i64) {
    let ((x1, y1), (x2, y2)) = ends(from, to);
    ((x1 + x2) / 2, (y1 + y2) / 2 - 4)
}

/// Where each column starts; an empty column takes no room.
fn column_starts(widths: &[i64; COLUMNS]) -> [i64; COLUMNS] {
    let mut starts = [0; COLUMNS];
    let mut x = MARGIN + GROUP_PADDING;
    for (start, width) in starts.iter_mut().zip(widths) {
        *start = x;
        if *width > 0 {
            x += width + COLUMN_GAP;
        }
    }
    starts
}

/// Wide enough for the longer line, within bounds (longer text is cut).
fn node_width(node: &Node) -> i64 {
    let chars = node.label.chars().count().max(node.detail.chars().count());
    let text = i64::try_from(chars)
        .unwrap_or(i64::MAX / 2)
        .saturating_mul(CHAR_WIDTH);
    (text + 2 * NODE_PADDING).clamp(NODE_MIN_WIDTH, NODE_MAX_WIDTH)
}

/// How many characters fit in a box `width` wide.
fn chars_in(width: i64) -> usize {
    usize::try_from((width - 2 * NODE_PADDING) / CHAR_WIDTH)
        .unwrap_or(1)
        .max(1)
}

/// `text` cut to `max` characters, an ellipsis marking the cut.
fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Text safe in XML content and attribute values; characters XML 1.0 forbids are replaced.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Fill, stroke.
fn colours(compliance: Compliance) -> (&'static str, &'static str) {
    match compliance {
        Compliance::Compliant => ("#e6f4ea", "#2e7d32"),
        Compliance::Drift => ("#fdecea", "#c62828"),
        Compliance::Unknown => ("#eeeeee", "#757575"),
    }
}

fn defs() -> String {
    format!(
        "<defs><marker id=\"{ARROW_ID}\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" \
         markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#6b7280\"/>\
         </marker></defs>"
    )
}

const LEGEND_WIDTH: i64 = 2 * MARGIN + 3 * LEGEND_STEP;
const LEGEND_STEP: i64 = 110;

fn legend() -> String {
    let mut out = String::from("<g class=\"legend\">");
    let entries = [
        (Compliance::Compliant, "compliant"),
        (Compliance::Drift, "in drift"),
        (Compliance::Unknown, "unknown"),
    ];
    for (i, (compliance, text)) in (0i64..).zip(entries) {
        let (fill, stroke) = colours(compliance);
        let x = MARGIN + i * LEGEND_STEP;
        let _ = write!(
            out,
            "<rect x=\"{x}\" y=\"{MARGIN}\" width=\"14\" height=\"14\" rx=\"3\" fill=\"{fill}\" stroke=\"{stroke}\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"#1b1b1b\">{text}</text>",
            x + 20,
            MARGIN + 11
        );
    }
    out.push_str("</g>");
    out
}

fn draw_group(out: &mut String, id: &str, label: &str, frame: &Frame) {
    let Frame { x, y, width, height } = *frame;
    let shown = fit(label, chars_in(width));
    let _ = write!(
        out,
        "<g class=\"group\" data-group=\"{id}\"><title>{title}</title>\
         <rect x=\"{x}\" y=\"{y}\" width=\"{width}\" height=\"{height}\" rx=\"10\" fill=\"#f7f9fb\" \
         stroke=\"#9aa5b1\"/><text x=\"{tx}\" y=\"{ty}\" font-weight=\"600\" fill=\"#334155\">{text}</text></g>",
        id = escape(id),
        title = escape(label),
        tx = x + GROUP_PADDING,
        ty = y + 19,
        text = escape(&shown),
    );
}

fn draw_edge(out: &mut String, ids: (&str, &str), label: &str, ends: Ends, place: (i64, i64)) {
    let ((x1, y1), (x2, y2)) = ends;
    let bend = ((x2 - x1) / 2).max(30);
    let _ = write!(
        out,
        "<g class=\"edge\" data-from=\"{from_id}\" data-to=\"{to_id}\"><title>{title}</title>\
         <path d=\"M{x1},{y1} C{c1},{y1} {c2},{y2} {x2},{y2}\" fill=\"none\" stroke=\"#6b7280\" \
         stroke-width=\"1.4\" marker-end=\"url(#{ARROW_ID})\"/>\
         <text x=\"{mx}\" y=\"{my}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#333333\" stroke=\"#ffffff\" \
         stroke-width=\"4\" stroke-linejoin=\"round\" paint-order=\"stroke\">{text}</text></g>",
        from_id = escape(ids.0),
        to_id = escape(ids.1),
        title = escape(label),
        c1 = x1 + bend,
        c2 = x2 - bend,
        mx = place.0,
        my = place.1,
        text = escape(&fit(label, EDGE_LABEL_CHARS)),
    );
}

type Ends = ((i64, i64), (i64, i64));

fn draw_node(out: &mut String, node: &Node, frame: &Frame) {
    let Frame { x, y, width, height } = *frame;
    let (fill, stroke) = colours(node.compliance);
    // An aggregate's dashed border says it stands for many.
    let (dashes, count) = match node.aggregate {
        Some(counts) => (
            " stroke-dasharray=\"5 3\"",
            format!(" data-count=\"{}\"", counts.total()),
        ),
        None => ("", String::new()),
    };
    let _ = write!(
        out,
        "<g class=\"node\" data-node=\"{id}\" data-kind=\"{kind}\" data-compliance=\"{compliance}\" \
         data-object=\"{object}\"{count}><title>{title}</title>\
         <rect x=\"{x}\" y=\"{y}\" width=\"{width}\" height=\"{height}\" rx=\"6\" fill=\"{fill}\" \
         stroke=\"{stroke}\" stroke-width=\"1.5\"{dashes}/>",
        id = escape(&node.id),
        kind = node.data_kind(),
        compliance = node.compliance.as_str(),
        object = escape(&node.object),
        title = escape(&node.title),
    );
    let centre = x + width / 2;
    let max = chars_in(width);
    if node.detail.is_empty() {
        text_line(out, centre, y + 25, "", &fit(&node.label, max));
    } else {
        text_line(out, centre, y + 17, "", &fit(&node.label, max));
        text_line(
            out,
            centre,
            y + 32,
            " font-size=\"11\" fill=\"#444444\"",
            &fit(&node.detail, max),
        );
    }
    out.push_str("</g>");
}

fn text_line(out: &mut String, x: i64, y: i64, attributes: &str, text: &str) {
    let fill = if attributes.contains("fill") {
        ""
    } else {
        " fill=\"#1b1b1b\""
    };
    let _ = write!(
        out,
        "<text x=\"{x}\" y=\"{y}\" text-anchor=\"middle\"{fill}{attributes}>{}</text>",
        escape(text)
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::estate::layout::{AGGREGATE_ABOVE, NodeKind, fixtures};

    fn parse(svg: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not XML: {e}\n{svg}"))
    }

    fn is(element: &roxmltree::Node, class: &str) -> bool {
        element.has_tag_name("g") && element.attribute("class") == Some(class)
    }

    /// data-node → (data-kind, data-compliance, data-object).
    fn nodes_of(svg: &str) -> BTreeMap<String, (String, String, String)> {
        let doc = parse(svg);
        let mut found = BTreeMap::new();
        for g in doc.descendants().filter(|e| is(e, "node")) {
            let attr = |name: &str| {
                g.attribute(name)
                    .unwrap_or_else(|| panic!("no {name}"))
                    .to_string()
            };
            let previous = found.insert(
                attr("data-node"),
                (attr("data-kind"), attr("data-compliance"), attr("data-object")),
            );
            assert!(previous.is_none(), "two elements for {}", attr("data-node"));
        }
        found
    }

    fn title_of<'a>(g: &roxmltree::Node<'a, 'a>) -> &'a str {
        let title = g.children().find(|c| c.has_tag_name("title"));
        title.and_then(|t| t.text()).unwrap_or_default()
    }

    #[test]
    fn the_svg_parses_and_has_one_node_element_per_node_of_the_estate() {
        let estate = fixtures::small();
        let svg = render(&estate);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 "));
        let doc = parse(&svg);
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(root.tag_name().namespace(), Some("http://www.w3.org/2000/svg"));
        let view_box = format!(
            "0 0 {} {}",
            root.attribute("width").unwrap_or("?"),
            root.attribute("height").unwrap_or("?")
        );
        assert_eq!(root.attribute("viewBox"), Some(view_box.as_str()));

        let nodes = nodes_of(&svg);
        let seen: Vec<(&str, &str, &str, &str)> = nodes
            .iter()
            .map(|(id, (kind, compliance, object))| {
                (id.as_str(), kind.as_str(), compliance.as_str(), object.as_str())
            })
            .collect();
        let expected = vec![
            ("bucket-1", "bucket", "compliant", "audit/main"),
            ("bucket-2", "bucket", "unknown", ""),
            ("db-1", "database", "compliant", "shop/orders"),
            ("db-2", "database", "drift", "shop/payments"),
            ("log-group-1", "log-group", "compliant", "audit/main"),
            ("replica-1", "replica", "compliant", "shop/orders"),
            ("replica-2", "replica", "drift", "shop/payments"),
            ("repo-1", "repository", "compliant", "ci/api"),
            ("repo-2", "repository", "unknown", "ci/web"),
            ("trail-1", "trail", "compliant", "audit/main"),
            ("workflow-1", "workflow", "compliant", "ci/api"),
            ("workflow-2", "workflow", "unknown", "ci/web"),
        ];
        assert_eq!(seen, expected);
        // Each object's nodes carry its compliance.
        for db in &estate.databases {
            let mine: Vec<_> = nodes
                .values()
                .filter(|(_, _, object)| *object == db.object)
                .collect();
            assert_eq!(mine.len(), 2);
            assert!(mine.iter().all(|(_, c, _)| c == db.compliance.as_str()));
        }
    }

    #[test]
    fn groups_edges_arrowheads_and_the_legend_are_drawn() {
        let svg = render(&fixtures::small());
        let doc = parse(&svg);
        let groups: Vec<&str> = doc
            .descendants()
            .filter(|e| is(e, "group"))
            .map(|g| title_of(&g))
            .collect();
        assert_eq!(
            groups,
            [
                "account 123456789012 · us-east-1",
                "account 123456789012 · us-west-2",
                "GitHub",
                "S3 · us-east-1"
            ]
        );
        let marker = doc.descendants().find(|e| e.has_tag_name("marker"));
        assert_eq!(marker.and_then(|m| m.attribute("id")), Some(ARROW_ID));
        let edges: Vec<_> = doc.descendants().filter(|e| is(e, "edge")).collect();
        assert_eq!(edges.len(), 8);
        let ids = nodes_of(&svg);
        for edge in &edges {
            let path = edge.children().find(|c| c.has_tag_name("path"));
            let arrow = format!("url(#{ARROW_ID})");
            assert_eq!(path.and_then(|p| p.attribute("marker-end")), Some(arrow.as_str()));
            let label = edge
                .children()
                .find(|c| c.has_tag_name("text"))
                .and_then(|t| t.text());
            assert!(label.is_some_and(|l| !l.is_empty()), "an edge without a label");
            for end in ["data-from", "data-to"] {
                assert!(ids.contains_key(edge.attribute(end).unwrap_or_default()));
            }
        }
        let legend: Vec<&str> = doc
            .descendants()
            .filter(|e| is(e, "legend"))
            .flat_map(|g| g.children().filter_map(|c| c.text()).collect::<Vec<_>>())
            .collect();
        assert_eq!(legend, ["compliant", "in drift", "unknown"]);
        // The colours follow compliance.
        let fill_of = |id: &str| {
            let g = doc
                .descendants()
                .find(|e| is(e, "node") && e.attribute("data-node") == Some(id));
            let rect = g.and_then(|g| g.children().find(|c| c.has_tag_name("rect")));
            rect.and_then(|r| r.attribute("fill")).map(str::to_string)
        };
        assert_eq!(fill_of("db-1").as_deref(), Some(colours(Compliance::Compliant).0));
        assert_eq!(fill_of("db-2").as_deref(), Some(colours(Compliance::Drift).0));
        assert_eq!(fill_of("repo-2").as_deref(), Some(colours(Compliance::Unknown).0));
    }

    #[test]
    fn nodes_sit_inside_their_group_and_do_not_overlap() {
        let graph = layout::build(&fixtures::small());
        let plan = Plan::of(&graph);
        let inside = |inner: &Frame, outer: &Frame| {
            inner.x >= outer.x
                && inner.y >= outer.y
                && inner.x + inner.width <= outer.x + outer.width
                && inner.y + inner.height <= outer.y + outer.height
        };
        for (node, frame) in graph.nodes.iter().zip(&plan.nodes) {
            assert!(
                inside(frame, &plan.groups[node.group]),
                "{} outside its group",
                node.id
            );
            assert!(inside(
                frame,
                &Frame {
                    x: 0,
                    y: 0,
                    width: plan.width,
                    height: plan.height
                }
            ));
        }
        for (i, a) in plan.nodes.iter().enumerate() {
            for b in &plan.nodes[i + 1..] {
                assert!(!overlaps(a, b), "{a:?} overlaps {b:?}");
            }
        }
        for (i, a) in plan.groups.iter().enumerate() {
            for b in &plan.groups[i + 1..] {
                assert!(!overlaps(a, b), "{a:?} overlaps {b:?}");
            }
        }
        // Sources left of workflows, left of destinations.
        let x_of = |kind: NodeKind| {
            let i = graph
                .nodes
                .iter()
                .position(|n| n.kind == kind)
                .unwrap_or_else(|| panic!("no {kind:?}"));
            plan.nodes[i].x
        };
        assert!(x_of(NodeKind::Repository) < x_of(NodeKind::Workflow));
        assert!(x_of(NodeKind::Workflow) < x_of(NodeKind::Bucket));
        assert!(x_of(NodeKind::Database) < x_of(NodeKind::Replica));
    }

    #[test]
    fn a_destination_group_fed_only_from_its_band_sits_beside_its_sources() {
        // Databases only: the destination region's group goes beside the source's.
        let mut estate = fixtures::small();
        estate.repositories.clear();
        estate.trails.clear();
        let graph = layout::build(&estate);
        let plan = Plan::of(&graph);
        assert_eq!(plan.groups.len(), 2);
        assert_eq!(plan.groups[0].y, plan.groups[1].y);
        assert!(plan.groups[0].x + plan.groups[0].width < plan.groups[1].x);
        // With the trail's bucket in the source group's last column, it goes below; and
        // GitHub, though its columns are free beside it, does not sit where those edges run.
        let graph = layout::build(&fixtures::small());
        let plan = Plan::of(&graph);
        let tops: Vec<i64> = plan.groups.iter().map(|g| g.y).collect();
        assert!(tops[0] < tops[1] && tops[1] < tops[2], "{tops:?}");
        assert_eq!(tops[2], tops[3], "GitHub and S3 side by side");
    }

    #[test]
    fn edge_labels_do_not_cover_nodes_or_each_other() {
        let mut mixed = fixtures::large(300);
        mixed.repositories = fixtures::small().repositories;
        mixed.trails = fixtures::small().trails;
        // Two regions replicating to each other: both edges' middles are (nearly) the same point.
        let mut crossing = fixtures::small();
        let mut west = fixtures::database("shop/west", "west-db", Compliance::Compliant);
        (west.region, west.destination_region) = ("us-west-2".to_string(), "us-east-1".to_string());
        crossing.databases = vec![crossing.databases[0].clone(), west];
        let graph = layout::build(&crossing);
        let plan = Plan::of(&graph);
        let ends_of = |from: &str| {
            let i = graph
                .edges
                .iter()
                .position(|e| graph.nodes[e.from].id == from)
                .unwrap_or(usize::MAX);
            let e = &graph.edges[i];
            (middle(&plan.nodes[e.from], &plan.nodes[e.to]), plan.labels[i])
        };
        let ((east_middle, east_label), (west_middle, west_label)) = (ends_of("db-1"), ends_of("db-2"));
        assert_eq!(east_middle.1, west_middle.1);
        assert!(
            (east_middle.0 - west_middle.0).abs() < 20,
            "{east_middle:?} {west_middle:?}"
        );
        assert_ne!(east_label, west_label);
        for estate in [fixtures::small(), mixed, crossing] {
            labels_stay_clear(&estate);
        }
    }

    fn labels_stay_clear(estate: &Estate) {
        let graph = layout::build(estate);
        let plan = Plan::of(&graph);
        let boxes: Vec<Frame> = graph
            .edges
            .iter()
            .zip(&plan.labels)
            .map(|(edge, (x, y))| {
                let width = i64::try_from(fit(&edge.label, EDGE_LABEL_CHARS).chars().count()).unwrap_or(0)
                    * LABEL_CHAR_WIDTH
                    + 6;
                Frame {
                    x: x - width / 2,
                    y: y - 11,
                    width,
                    height: 14,
                }
            })
            .collect();
        for (i, a) in boxes.iter().enumerate() {
            assert!(
                !plan.nodes.iter().any(|n| overlaps(n, a)),
                "label {i} covers a node"
            );
            assert!(
                !boxes[i + 1..].iter().any(|b| overlaps(a, b)),
                "label {i} covers another"
            );
        }
    }

    #[test]
    fn markup_in_names_is_escaped() {
        let mut estate = fixtures::small();
        let nasty = "<b>&\"o'k\"</b>";
        estate.databases[0].object = format!("shop/{nasty}");
        estate.databases[0].instance = nasty.to_string();
        estate.repositories[0].repository = "acme/<script>alert('x')</script>".to_string();
        estate.trails[0].log_group = Some("group\u{1}with a control character".to_string());
        let svg = render(&estate);
        assert!(!svg.contains("<b>") && !svg.contains("<script>"));
        let doc = parse(&svg);
        let g = doc
            .descendants()
            .find(|e| is(e, "node") && e.attribute("data-node") == Some("db-1"))
            .unwrap_or_else(|| panic!("no db-1"));
        assert_eq!(g.attribute("data-object"), Some(format!("shop/{nasty}").as_str()));
        let texts: Vec<&str> = g
            .children()
            .filter(|c| c.has_tag_name("text"))
            .filter_map(|t| t.text())
            .collect();
        assert_eq!(texts, [nasty, "RDS instance"]);
        assert!(title_of(&g).starts_with(nasty));
        assert_eq!(nodes_of(&svg).len(), 12);
    }

    #[test]
    fn long_labels_are_cut_and_the_title_keeps_them_whole() {
        let mut estate = fixtures::small();
        let long = format!("orders-{}", "x".repeat(200));
        estate.databases[0].instance = long.clone();
        let svg = render(&estate);
        let doc = parse(&svg);
        let g = doc
            .descendants()
            .find(|e| is(e, "node") && e.attribute("data-node") == Some("db-1"))
            .unwrap_or_else(|| panic!("no db-1"));
        let shown = g
            .children()
            .find(|c| c.has_tag_name("text"))
            .and_then(|t| t.text())
            .unwrap_or_default();
        assert!(shown.ends_with('…'), "{shown}");
        assert!(shown.chars().count() < 40);
        assert!(title_of(&g).starts_with(&long));
        let width: i64 = g
            .children()
            .find(|c| c.has_tag_name("rect"))
            .and_then(|r| r.attribute("width"))
            .and_then(|w| w.parse().ok())
            .unwrap_or_default();
        assert_eq!(width, NODE_MAX_WIDTH);
    }

    #[test]
    fn three_hundred_databases_fold_into_a_bounded_svg_whose_counts_add_up() {
        let estate = fixtures::large(300);
        let svg = render(&estate);
        assert!(svg.len() < 200 * 1024, "{} bytes", svg.len());
        let doc = parse(&svg);
        let mut databases = 0;
        let mut aggregates = 0;
        for g in doc.descendants().filter(|e| is(e, "node")) {
            let title = title_of(&g);
            match g.attribute("data-kind") {
                Some("database") => databases += 1,
                Some("aggregate") if title.contains("RDS instances") => {
                    aggregates += 1;
                    // "288 RDS instances (272 compliant, 8 in drift, 8 unknown)".
                    let count = |text: &str| -> usize {
                        text.trim_matches(|c: char| !c.is_ascii_digit())
                            .parse()
                            .unwrap_or_else(|_| panic!("{text}"))
                    };
                    let first = title.lines().next().unwrap_or_default();
                    let (total, parts) = first
                        .split_once(" RDS instances (")
                        .unwrap_or_else(|| panic!("{first}"));
                    let parts: usize = parts.split(", ").map(count).sum();
                    assert_eq!(count(total), parts, "{first}");
                    databases += parts;
                    assert_eq!(g.attribute("data-object"), Some(""));
                    assert_eq!(g.attribute("data-count"), Some(parts.to_string().as_str()));
                }
                _ => {}
            }
        }
        assert_eq!(aggregates, 1);
        assert_eq!(databases, 300);
        let individual = nodes_of(&svg)
            .values()
            .filter(|(kind, _, _)| kind == "database")
            .count();
        assert_eq!(individual, AGGREGATE_ABOVE);
    }

    #[test]
    fn an_empty_estate_says_nothing_is_declared() {
        let svg = render(&Estate::default());
        let doc = parse(&svg);
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(doc.descendants().any(|e| e.text() == Some("nothing declared")));
        assert!(nodes_of(&svg).is_empty());
    }

    #[test]
    fn the_same_estate_renders_the_same_bytes() {
        assert_eq!(render(&fixtures::small()), render(&fixtures::small()));
        assert_eq!(render(&fixtures::large(300)), render(&fixtures::large(300)));
    }

    #[test]
    fn fit_cuts_on_characters_not_bytes() {
        assert_eq!(fit("ééééé", 3), "éé…");
        assert_eq!(fit("abc", 3), "abc");
        assert_eq!(escape("a\u{0}b<'"), "a\u{FFFD}b&lt;&apos;");
    }
}
