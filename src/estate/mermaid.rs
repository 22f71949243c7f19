//! The map as a Mermaid `flowchart LR`: one `subgraph` per group, quoted labels (Mermaid's
//! entity codes for the characters its syntax or HTML would read), every edge labelled, and
//! each node in a `compliant`, `drift` or `unknown` class.

use std::fmt::Write;

use super::{Compliance, Estate, layout};

pub fn render(estate: &Estate) -> String {
    let graph = layout::build(estate);
    let mut out = String::from("flowchart LR\n");
    if graph.is_empty() {
        out.push_str("  empty[\"nothing declared\"]\n");
        out.push_str(CLASS_DEFS);
        out.push_str("  class empty unknown\n");
        return out;
    }
    for group in &graph.groups {
        let _ = writeln!(out, "  subgraph {}[\"{}\"]", group.id, escape(&group.label));
        for node in group.nodes.iter().filter_map(|&i| graph.nodes.get(i)) {
            let label = match node.detail.is_empty() {
                true => escape(&node.label),
                false => format!("{}<br/>{}", escape(&node.label), escape(&node.detail)),
            };
            let _ = writeln!(out, "    {}[\"{label}\"]", node.id);
        }
        out.push_str("  end\n");
    }
    for edge in &graph.edges {
        if let (Some(from), Some(to)) = (graph.nodes.get(edge.from), graph.nodes.get(edge.to)) {
            let _ = writeln!(out, "  {} -->|\"{}\"| {}", from.id, escape(&edge.label), to.id);
        }
    }
    out.push_str(CLASS_DEFS);
    for compliance in [Compliance::Compliant, Compliance::Drift, Compliance::Unknown] {
        let ids: Vec<&str> = graph
            .nodes
            .iter()
            .filter(|n| n.compliance == compliance)
            .map(|n| n.id.as_str())
            .collect();
        if !ids.is_empty() {
            let _ = writeln!(out, "  class {} {}", ids.join(","), compliance.as_str());
        }
    }
    let aggregates: Vec<&str> = graph
        .nodes
        .iter()
        .filter(|n| n.aggregate.is_some())
        .map(|n| n.id.as_str())
        .collect();
    if !aggregates.is_empty() {
        let _ = writeln!(out, "  class {} aggregate", aggregates.join(","));
    }
    out
}

const CLASS_DEFS: &str = "  classDef compliant fill:#e6f4ea,stroke:#2e7d32,color:#1b1b1b\n  \
     classDef drift fill:#fdecea,stroke:#c62828,color:#1b1b1b\n  \
     classDef unknown fill:#eeeeee,stroke:#757575,color:#1b1b1b\n  \
     classDef aggregate stroke-dasharray:5 3\n";

/// Text for inside a quoted Mermaid label: `"` as `#quot;`, and the characters Mermaid's
/// syntax or its HTML labels would read (`#`, `<`, `>`, `&`, `|`, backticks) as entity
/// codes; line breaks and other control characters become spaces.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '|' => out.push_str("#124;"),
            '`' => out.push_str("#96;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::estate::layout::fixtures;

    /// Node id → its label, from the declarations inside subgraphs.
    fn declared(text: &str) -> BTreeMap<String, String> {
        let mut nodes = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with("subgraph ") || line.contains("-->") {
                continue;
            }
            if let Some((id, rest)) = line.split_once("[\"")
                && let Some(label) = rest.strip_suffix("\"]")
            {
                let previous = nodes.insert(id.to_string(), label.to_string());
                assert!(previous.is_none(), "{id} declared twice");
            }
        }
        nodes
    }

    /// Node id → the compliance classes given to it.
    fn classes(text: &str) -> BTreeMap<String, Vec<String>> {
        let mut given: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("class ") else {
                continue;
            };
            let Some((ids, class)) = rest.split_once(' ') else {
                continue;
            };
            if class == "aggregate" {
                continue;
            }
            for id in ids.split(',') {
                given.entry(id.to_string()).or_default().push(class.to_string());
            }
        }
        given
    }

    #[test]
    fn every_edge_has_a_label_and_every_node_a_class() {
        let estate = fixtures::small();
        let text = render(&estate);
        assert!(text.starts_with("flowchart LR\n"));
        let graph = layout::build(&estate);
        let nodes = declared(&text);
        assert_eq!(nodes.len(), graph.nodes.len());
        let edges: Vec<&str> = text.lines().filter(|l| l.contains("-->")).collect();
        assert_eq!(edges.len(), graph.edges.len());
        for edge in &edges {
            let (from, rest) = edge
                .trim()
                .split_once(" -->|\"")
                .unwrap_or_else(|| panic!("unlabelled: {edge}"));
            let (label, to) = rest
                .split_once("\"| ")
                .unwrap_or_else(|| panic!("unlabelled: {edge}"));
            assert!(!label.is_empty());
            assert!(nodes.contains_key(from) && nodes.contains_key(to), "{edge}");
        }
        assert!(text.contains("  workflow-1 -->|\"kept 90 days · acme/api/\"| bucket-2\n"));
        let given = classes(&text);
        for node in &graph.nodes {
            assert_eq!(
                given.get(&node.id),
                Some(&vec![node.compliance.as_str().to_string()]),
                "{}",
                node.id
            );
        }
        assert_eq!(given.len(), graph.nodes.len());
        for class in ["compliant", "drift", "unknown"] {
            assert!(text.contains(&format!("classDef {class} ")));
        }
    }

    #[test]
    fn one_subgraph_per_group_each_closed() {
        let text = render(&fixtures::small());
        let opened = text
            .lines()
            .filter(|l| l.trim_start().starts_with("subgraph "))
            .count();
        let closed = text.lines().filter(|l| l.trim() == "end").count();
        assert_eq!((opened, closed), (4, 4));
        assert!(text.contains("  subgraph group-1[\"account 123456789012 · us-east-1\"]\n"));
        assert!(text.contains("    db-1[\"orders-db<br/>RDS instance\"]\n"));
    }

    #[test]
    fn quotes_and_markup_in_names_are_escaped() {
        let mut estate = fixtures::small();
        estate.databases[0].instance = "say \"hi\" <b>#1</b> | a&b".to_string();
        let text = render(&estate);
        // Now after payments-db in name order.
        let label = declared(&text).get("db-2").cloned().unwrap_or_default();
        assert_eq!(
            label,
            "say #quot;hi#quot; #lt;b#gt;#35;1#lt;/b#gt; #124; a#amp;b<br/>RDS instance"
        );
        assert!(!text.contains("<b>"));
    }

    #[test]
    fn large_estates_are_folded_and_aggregates_marked() {
        let text = render(&fixtures::large(300));
        assert!(text.len() < 20 * 1024, "{} bytes", text.len());
        assert!(text.contains("agg-db-1[\"288 RDS instances<br/>272 compliant, 8 in drift, 8 unknown\"]"));
        assert!(text.contains("  class agg-db-1,agg-replica-1 aggregate\n"));
        assert!(text.contains("agg-db-1 -->|\"retention 7–14 days\"| agg-replica-1"));
    }

    #[test]
    fn an_empty_estate_says_nothing_is_declared() {
        let text = render(&Estate::default());
        assert_eq!(declared(&text).len(), 1);
        assert!(text.contains("empty[\"nothing declared\"]"));
        assert_eq!(classes(&text).len(), 1);
    }

    #[test]
    fn the_same_estate_renders_the_same_text() {
        assert_eq!(render(&fixtures::small()), render(&fixtures::small()));
        assert_eq!(render(&fixtures::large(300)), render(&fixtures::large(300)));
    }
}
