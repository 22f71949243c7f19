//! `backup-warden report`: the evidence log read back and turned into what an auditor asks
//! for, as one self-contained HTML file and as JSON.

pub mod build;
pub mod chart;
pub mod command;
pub mod html;
pub mod model;
