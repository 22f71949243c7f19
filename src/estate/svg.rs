//! The map as SVG (placeholder until drawn).

use super::Estate;

/// The map as one `<svg>` element (no XML prolog, so it embeds in HTML as is).
pub fn render(_estate: &Estate) -> String {
    String::from("<svg xmlns=\"http://www.w3.org/2000/svg\"/>")
}
