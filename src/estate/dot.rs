//! The map as Graphviz DOT (placeholder).

use super::Estate;

pub fn render(_estate: &Estate) -> String {
    String::from("digraph estate {}\n")
}
