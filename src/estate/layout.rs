//! Where each node of the map goes (placeholder).
