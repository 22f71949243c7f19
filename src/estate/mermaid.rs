//! The map as Mermaid flowchart text (placeholder).

use super::Estate;

pub fn render(_estate: &Estate) -> String {
    String::from("flowchart LR\n")
}
