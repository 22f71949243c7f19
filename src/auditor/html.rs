//! The report as one self-contained HTML file (placeholder).

use super::model::Report;

pub fn render(_report: &Report) -> String {
    String::from("<!doctype html><html><body></body></html>")
}
