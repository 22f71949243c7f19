//! The compliance timeline as an inline SVG chart (placeholder).
