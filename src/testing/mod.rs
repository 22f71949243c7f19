//! Test support (feature `test-util`).
