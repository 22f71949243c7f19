//! The map as Graphviz DOT: one cluster per group, nodes filled by compliance, every edge
//! labelled with its retention. Ids and labels are always quoted and escaped.

use std::fmt::Write;

use super::{
    Compliance, Estate,
    layout::{self, Node},
};

pub fn render(estate: &Estate) -> String {
    let graph = layout::build(estate);
    let mut out = String::from(
        "digraph estate {\n  rankdir=LR;\n  graph [fontname=\"Helvetica\", fontsize=12, ranksep=1.2];\n  \
         node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=11];\n  \
         edge [fontname=\"Helvetica\", fontsize=10, color=\"#6b7280\"];\n",
    );
    if graph.is_empty() {
        out.push_str("  label=\"nothing declared\";\n}\n");
        return out;
    }
    for group in &graph.groups {
        let _ = writeln!(out, "  subgraph {} {{", quote(&format!("cluster_{}", group.id)));
        let _ = writeln!(
            out,
            "    label={};\n    style=\"rounded,filled\";\n    fillcolor=\"#f7f9fb\";\n    color=\"#9aa5b1\";",
            quote(&group.label)
        );
        for node in group.nodes.iter().filter_map(|&i| graph.nodes.get(i)) {
            let _ = writeln!(out, "    {}", declaration(node));
        }
        out.push_str("  }\n");
    }
    for edge in &graph.edges {
        if let (Some(from), Some(to)) = (graph.nodes.get(edge.from), graph.nodes.get(edge.to)) {
            let _ = writeln!(
                out,
                "  {} -> {} [label={}];",
                quote(&from.id),
                quote(&to.id),
                quote(&edge.label)
            );
        }
    }
    out.push_str("}\n");
    out
}

fn declaration(node: &Node) -> String {
    let (fill, stroke) = colours(node.compliance);
    let label = match node.detail.is_empty() {
        true => escape(&node.label),
        // DOT's own line break, between two escaped lines.
        false => format!("{}\\n{}", escape(&node.label), escape(&node.detail)),
    };
    // An aggregate's dashed border says it stands for many.
    let style = match node.aggregate {
        Some(_) => "rounded,filled,dashed",
        None => "rounded,filled",
    };
    format!(
        "{} [label=\"{label}\", tooltip={}, style=\"{style}\", fillcolor=\"{fill}\", color=\"{stroke}\", class={}];",
        quote(&node.id),
        quote(&node.title),
        quote(node.compliance.as_str()),
    )
}

/// Fill, border.
fn colours(compliance: Compliance) -> (&'static str, &'static str) {
    match compliance {
        Compliance::Compliant => ("#e6f4ea", "#2e7d32"),
        Compliance::Drift => ("#fdecea", "#c62828"),
        Compliance::Unknown => ("#eeeeee", "#757575"),
    }
}

fn quote(text: &str) -> String {
    format!("\"{}\"", escape(text))
}

/// Text for inside a quoted DOT string: a backslash is doubled (so "\l" stays literal), a
/// quote escaped, a line break is DOT's `\n`, other control characters dropped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
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

    /// The output's statements outside quoted strings, with the strings as placeholders, and
    /// whether every string was closed.
    fn unquoted(dot: &str) -> (String, Vec<String>) {
        let mut outside = String::new();
        let mut strings = Vec::new();
        let mut chars = dot.chars();
        while let Some(c) = chars.next() {
            if c != '"' {
                outside.push(c);
                continue;
            }
            let mut string = String::new();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        string.push(c);
                        string.extend(chars.next());
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => string.push(c),
                }
            }
            assert!(closed, "an unclosed string in\n{dot}");
            outside.push_str(&format!("\u{1}{}\u{1}", strings.len()));
            strings.push(string);
        }
        (outside, strings)
    }

    fn assert_balanced(dot: &str) {
        let (outside, _) = unquoted(dot);
        let mut depth = 0i32;
        for c in outside.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            assert!(depth >= 0, "a brace closed before it opened\n{dot}");
        }
        assert_eq!(depth, 0, "unbalanced braces\n{dot}");
    }

    /// Declared node ids → how many times; edges as (from, to).
    fn parts_of(dot: &str) -> (BTreeMap<String, usize>, Vec<(String, String)>) {
        let (outside, strings) = unquoted(dot);
        let string = |token: &str| -> Option<String> {
            let index: usize = token
                .trim()
                .strip_prefix('\u{1}')?
                .strip_suffix('\u{1}')?
                .parse()
                .ok()?;
            strings.get(index).cloned()
        };
        let mut declared = BTreeMap::new();
        let mut edges = Vec::new();
        for line in outside.lines().map(str::trim) {
            if let Some((head, _)) = line.split_once(" [")
                && !head.contains("->")
                && let Some(id) = string(head)
            {
                *declared.entry(id).or_insert(0) += 1;
            }
            if let Some((from, rest)) = line.split_once(" -> ")
                && let Some((to, _)) = rest.split_once(" [")
                && let (Some(from), Some(to)) = (string(from), string(to))
            {
                edges.push((from, to));
            }
        }
        (declared, edges)
    }

    #[test]
    fn braces_balance_and_every_node_is_declared_once() {
        let estate = fixtures::small();
        let dot = render(&estate);
        assert!(dot.starts_with("digraph estate {\n  rankdir=LR;\n"));
        assert_balanced(&dot);
        let graph = layout::build(&estate);
        let (declared, edges) = parts_of(&dot);
        let expected: BTreeMap<String, usize> = graph.nodes.iter().map(|n| (n.id.clone(), 1)).collect();
        assert_eq!(declared, expected);
        assert_eq!(edges.len(), graph.edges.len());
        assert!(
            edges
                .iter()
                .all(|(from, to)| declared.contains_key(from) && declared.contains_key(to))
        );
    }

    #[test]
    fn one_cluster_per_group_with_its_label() {
        let dot = render(&fixtures::small());
        let clusters: Vec<&str> = dot
            .lines()
            .filter(|l| l.trim_start().starts_with("subgraph \"cluster_"))
            .collect();
        assert_eq!(clusters.len(), 4);
        assert!(dot.contains("label=\"account 123456789012 · us-east-1\";"));
        assert!(dot.contains("label=\"S3 · us-east-1\";"));
    }

    #[test]
    fn every_edge_is_labelled_and_nodes_are_filled_by_compliance() {
        let dot = render(&fixtures::small());
        let edge_lines: Vec<&str> = dot.lines().filter(|l| l.contains(" -> ")).collect();
        assert_eq!(edge_lines.len(), 8);
        assert!(
            edge_lines
                .iter()
                .all(|l| l.contains("[label=\"") && !l.contains("[label=\"\"]"))
        );
        assert!(dot.contains("\"db-1\" -> \"replica-1\" [label=\"7 days\"];"));
        assert!(dot.contains("\"db-2\" -> \"replica-2\" [label=\"retention unknown\"];"));
        let line = |id: &str| {
            dot.lines()
                .find(|l| l.trim_start().starts_with(&format!("\"{id}\" [")))
                .unwrap_or_default()
        };
        assert!(line("db-1").contains(&format!("fillcolor=\"{}\"", colours(Compliance::Compliant).0)));
        assert!(line("db-2").contains(&format!("fillcolor=\"{}\"", colours(Compliance::Drift).0)));
        assert!(line("bucket-2").contains(&format!("fillcolor=\"{}\"", colours(Compliance::Unknown).0)));
        assert!(line("db-1").contains("label=\"orders-db\\nRDS instance\""));
    }

    #[test]
    fn quotes_and_backslashes_in_names_are_escaped() {
        let mut estate = fixtures::small();
        estate.databases[0].instance = "say \"hi\" \\l {x}".to_string();
        let dot = render(&estate);
        assert_balanced(&dot);
        assert!(
            dot.contains("label=\"say \\\"hi\\\" \\\\l {x}\\nRDS instance\""),
            "{dot}"
        );
        let (declared, _) = parts_of(&dot);
        assert_eq!(declared.len(), layout::build(&estate).nodes.len());
    }

    #[test]
    fn large_estates_stay_small_and_aggregates_are_dashed() {
        let dot = render(&fixtures::large(300));
        assert_balanced(&dot);
        assert!(dot.len() < 50 * 1024, "{} bytes", dot.len());
        let line = dot
            .lines()
            .find(|l| l.contains("\"agg-db-1\" ["))
            .unwrap_or_default();
        assert!(line.contains("label=\"288 RDS instances\\n272 compliant, 8 in drift, 8 unknown\""));
        assert!(line.contains("dashed"));
    }

    #[test]
    fn an_empty_estate_is_a_valid_empty_graph() {
        let dot = render(&Estate::default());
        assert_balanced(&dot);
        assert!(dot.contains("label=\"nothing declared\";"));
        assert!(parts_of(&dot).0.is_empty());
    }

    #[test]
    fn the_same_estate_renders_the_same_text() {
        assert_eq!(render(&fixtures::small()), render(&fixtures::small()));
        assert_eq!(render(&fixtures::large(300)), render(&fixtures::large(300)));
    }
}
