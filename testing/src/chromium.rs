//! Headless Chromium (Debian's, installed by hack/chromium.sh) rendering a local HTML file:
//! the DOM after its scripts ran, every console message, and a screenshot.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// What Chromium made of a page.
pub struct Rendered {
    /// The DOM after the page's scripts ran.
    pub dom: String,
    /// Every console message and uncaught error the page produced.
    pub console: Vec<String>,
}

fn chromium() -> PathBuf {
    let found = Command::new("bash")
        .arg(crate::repo_root().join("hack/chromium.sh"))
        .output()
        .expect("hack/chromium.sh");
    assert!(
        found.status.success(),
        "{}",
        String::from_utf8_lossy(&found.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&found.stdout).trim())
}

/// Runs headless Chromium on `page` with `extra` arguments; returns stdout and the console
/// lines of its log.
fn run(page: &Path, extra: &[String]) -> (String, Vec<String>) {
    let profile = std::env::temp_dir().join(format!(
        "bw-chromium-{}-{}",
        std::process::id(),
        crate::unique_name("p")
    ));
    // The flags this machine's closed network needs (no background connections), a fresh
    // profile, and the log on stderr, where console messages appear as CONSOLE lines.
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium");
    let _ = std::fs::remove_dir_all(&profile);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {stderr}");
    let console = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

/// Renders `page`, and saves a screenshot of it (`width` × `height`) to `screenshot`.
pub fn render(page: &Path, screenshot: &Path, (width, height): (u32, u32)) -> Rendered {
    let (dom, mut console) = run(page, &["--dump-dom".to_string()]);
    let (_, more) = run(
        page,
        &[
            format!("--screenshot={}", screenshot.display()),
            format!("--window-size={width},{height}"),
            "--hide-scrollbars".to_string(),
        ],
    );
    console.extend(more);
    assert!(
        std::fs::metadata(screenshot).is_ok_and(|m| m.len() > 0),
        "no screenshot at {}",
        screenshot.display()
    );
    Rendered { dom, console }
}
