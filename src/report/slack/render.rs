//! Block Kit payloads for one notification or a digest, within Slack's limits: at most 50
//! blocks, a section's text at most 3,000 characters, a header's at most 150.

use serde_json::{Value, json};

use super::{Notification, Transition};

pub(super) const MAX_BLOCKS: usize = 50;
pub(super) const MAX_SECTION_CHARS: usize = 3000;
pub(super) const MAX_HEADER_CHARS: usize = 150;
// Room for each of desired and observed in a check line, before escaping, so that one
// long value does not push the other out.
const MAX_VALUE_CHARS: usize = 1200;
const MAX_NAME_CHARS: usize = 200;
const MAX_URL_CHARS: usize = 2000;
// A digest lists this many objects at most, then says how many more.
const DIGEST_MAX_LISTED: usize = 100;
const DIGEST_LINES_PER_SECTION: usize = 20;

/// The message for one notification.
pub(super) fn message(n: &Notification) -> Value {
    let headline = headline(n);
    let mut blocks = vec![header(&headline)];
    let link = n
        .link
        .as_ref()
        .map(|(label, url)| section(&link_text(label, url)));
    let room = MAX_BLOCKS - blocks.len() - usize::from(link.is_some());
    blocks.extend(check_sections(n, room));
    blocks.extend(link);
    let names: Vec<&str> = n.checks.iter().map(|c| c.check.as_str()).collect();
    let fallback = if names.is_empty() {
        headline
    } else {
        format!("{headline}: {}", names.join(", "))
    };
    payload(&fallback, blocks)
}

/// One message listing many notifications: kind, namespace/name, transition and how many
/// checks, with "and N more" past what fits.
pub(super) fn digest(batch: &[Notification]) -> Value {
    let count = |t| batch.iter().filter(|n| n.transition == t).count();
    let (drifted, resolved, healed) = (
        count(Transition::Drift),
        count(Transition::Resolved),
        count(Transition::Healed),
    );
    let summary = if healed == 0 {
        format!(
            "{} backup policy changes: {drifted} drifted, {resolved} compliant again",
            batch.len()
        )
    } else {
        format!(
            "{} backup policy changes: {drifted} drifted, {resolved} compliant again, {healed} drifted and were fixed",
            batch.len()
        )
    };
    let mut blocks = vec![header(&format!(":bell: {summary}"))];
    let lines: Vec<String> = batch.iter().take(DIGEST_MAX_LISTED).map(digest_line).collect();
    // Keep one block for "and N more".
    let (sections, listed) = pack_lines(&lines, MAX_BLOCKS - blocks.len() - 1);
    blocks.extend(sections.iter().map(|text| section(text)));
    let more = batch.len() - listed;
    if more > 0 {
        blocks.push(section(&format!("…and {more} more")));
    }
    payload(&summary, blocks)
}

fn headline(n: &Notification) -> String {
    let (emoji, what) = match n.transition {
        Transition::Drift => (":warning:", "drifted"),
        Transition::Resolved => (":white_check_mark:", "compliant again"),
        Transition::Healed => (":wrench:", "drifted and was fixed"),
    };
    format!("{emoji} {} {}/{} {what}", n.kind, n.namespace, n.name)
}

fn check_sections(n: &Notification, room: usize) -> Vec<Value> {
    let lines = n.checks.iter().map(|c| {
        format!(
            "*{}* — desired: {}, observed: {}",
            escape(&clip(&c.check, MAX_NAME_CHARS)),
            escape(&clip(&c.desired, MAX_VALUE_CHARS)),
            escape(&clip(&c.observed, MAX_VALUE_CHARS)),
        )
    });
    if n.checks.len() <= room {
        return lines.map(|l| section(&l)).collect();
    }
    let shown = room.saturating_sub(1);
    let mut sections: Vec<Value> = lines.take(shown).map(|l| section(&l)).collect();
    sections.push(section(&format!("…and {} more checks", n.checks.len() - shown)));
    sections
}

fn digest_line(n: &Notification) -> String {
    let what = match n.transition {
        Transition::Drift => "drifted",
        Transition::Resolved => "compliant again",
        Transition::Healed => "drifted and was fixed",
    };
    let checks = n.checks.len();
    let plural = if checks == 1 { "" } else { "s" };
    format!(
        "• {} `{}/{}` {what} ({checks} check{plural})",
        n.kind,
        escape(&clip(&n.namespace, MAX_NAME_CHARS)),
        escape(&clip(&n.name, MAX_NAME_CHARS)),
    )
}

/// Packs lines into at most `max_sections` section texts; returns them and how many lines
/// they hold.
fn pack_lines(lines: &[String], max_sections: usize) -> (Vec<String>, usize) {
    let mut sections: Vec<String> = Vec::new();
    let mut in_current = 0;
    let mut listed = 0;
    for line in lines {
        let fits = sections.last().is_some_and(|text| {
            in_current < DIGEST_LINES_PER_SECTION
                && text.chars().count() + 1 + line.chars().count() <= MAX_SECTION_CHARS
        });
        if let (true, Some(text)) = (fits, sections.last_mut()) {
            text.push('\n');
            text.push_str(line);
            in_current += 1;
        } else if sections.len() < max_sections {
            sections.push(line.clone());
            in_current = 1;
        } else {
            break;
        }
        listed += 1;
    }
    (sections, listed)
}

fn link_text(label: &str, url: &str) -> String {
    let label = escape(&clip(label, MAX_NAME_CHARS));
    if url.chars().count() > MAX_URL_CHARS {
        return format!(":link: {label}");
    }
    format!(":link: <{}|{label}>", link_url(url))
}

// Inside `<url|label>`, `|` and `>` end the URL; Slack unescapes `&amp;` back to `&`.
fn link_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            '|' => out.push_str("%7C"),
            ' ' => out.push_str("%20"),
            c => out.push(c),
        }
    }
    out
}

fn header(text: &str) -> Value {
    json!({
        "type": "header",
        "text": {"type": "plain_text", "text": clip(text, MAX_HEADER_CHARS), "emoji": true},
    })
}

fn section(mrkdwn: &str) -> Value {
    json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": truncate(mrkdwn, MAX_SECTION_CHARS)},
    })
}

fn payload(fallback: &str, blocks: Vec<Value>) -> Value {
    json!({
        "text": truncate(&escape(fallback), MAX_SECTION_CHARS),
        "blocks": blocks,
    })
}

/// Escapes the three characters Slack's mrkdwn treats as control characters.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Plain text cut to `max` characters, the last one "…" when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Escaped text cut to `max` characters without splitting an entity such as `&amp;`.
pub(super) fn truncate(escaped: &str, max: usize) -> String {
    if escaped.chars().count() <= max {
        return escaped.to_string();
    }
    let mut out: String = escaped.chars().take(max.saturating_sub(1)).collect();
    if let Some(amp) = out.rfind('&')
        && !out[amp..].contains(';')
    {
        out.truncate(amp);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::super::CheckLine;
    use super::*;

    fn check(name: &str, desired: &str, observed: &str) -> CheckLine {
        CheckLine {
            check: name.into(),
            desired: desired.into(),
            observed: observed.into(),
        }
    }

    fn notification(transition: Transition, checks: Vec<CheckLine>) -> Notification {
        Notification {
            kind: "BackedUpDatabase",
            namespace: "data-platform".into(),
            name: "marketplace-db".into(),
            transition,
            checks,
            link: None,
        }
    }

    fn texts(payload: &Value) -> Vec<String> {
        payload["blocks"]
            .as_array()
            .expect("blocks")
            .iter()
            .map(|b| b["text"]["text"].as_str().expect("text").to_string())
            .collect()
    }

    fn assert_within_limits(payload: &Value) {
        let blocks = payload["blocks"].as_array().expect("blocks");
        assert!(blocks.len() <= MAX_BLOCKS, "{} blocks", blocks.len());
        for block in blocks {
            let text = block["text"]["text"].as_str().expect("text");
            let max = match block["type"].as_str() {
                Some("header") => MAX_HEADER_CHARS,
                _ => MAX_SECTION_CHARS,
            };
            assert!(text.chars().count() <= max, "{} chars", text.chars().count());
        }
        let fallback = payload["text"].as_str().expect("fallback text");
        assert!(!fallback.is_empty() && fallback.chars().count() <= MAX_SECTION_CHARS);
    }

    #[test]
    fn a_drift_message_has_a_header_a_section_per_check_and_the_link() {
        let mut n = notification(
            Transition::Drift,
            vec![
                check("RetentionCompliant", "7 days", "1 day"),
                check("EncryptedAtRest", "true", "false"),
            ],
        );
        n.link = Some((
            "RDS console".into(),
            "https://console.aws.amazon.com/rds/home?region=eu-west-1#database:id=marketplace-db".into(),
        ));
        let payload = message(&n);
        assert_eq!(payload["blocks"][0]["type"], "header");
        assert_eq!(
            texts(&payload),
            [
                ":warning: BackedUpDatabase data-platform/marketplace-db drifted",
                "*RetentionCompliant* — desired: 7 days, observed: 1 day",
                "*EncryptedAtRest* — desired: true, observed: false",
                ":link: <https://console.aws.amazon.com/rds/home?region=eu-west-1#database:id=marketplace-db|RDS console>",
            ]
        );
        assert_eq!(
            payload["text"],
            ":warning: BackedUpDatabase data-platform/marketplace-db drifted: RetentionCompliant, EncryptedAtRest"
        );
        assert_within_limits(&payload);
    }

    #[test]
    fn a_resolved_message_says_compliant_again() {
        let n = notification(
            Transition::Resolved,
            vec![check("RetentionCompliant", "7 days", "7 days")],
        );
        let payload = message(&n);
        assert_eq!(
            texts(&payload),
            [
                ":white_check_mark: BackedUpDatabase data-platform/marketplace-db compliant again",
                "*RetentionCompliant* — desired: 7 days, observed: 7 days",
            ]
        );
    }

    #[test]
    fn user_text_is_escaped_and_links_cannot_break_out() {
        let mut n = notification(
            Transition::Drift,
            vec![check("Odd<check>", "a & b", "<!channel> <https://evil|click>")],
        );
        n.link = Some((
            "PR <#1> & co".into(),
            "https://github.com/acme/api/pull/1?a=1&b=<2>|x".into(),
        ));
        let t = texts(&message(&n));
        assert_eq!(
            t[1],
            "*Odd&lt;check&gt;* — desired: a &amp; b, observed: &lt;!channel&gt; &lt;https://evil|click&gt;"
        );
        assert_eq!(
            t[2],
            ":link: <https://github.com/acme/api/pull/1?a=1&amp;b=%3C2%3E%7Cx|PR &lt;#1&gt; &amp; co>"
        );
    }

    #[test]
    fn eighty_checks_and_huge_values_stay_within_limits() {
        let huge = "x".repeat(10_000);
        let checks = (0..80)
            .map(|i| check(&format!("Check{i}"), &huge, &"&".repeat(10_000)))
            .collect();
        let mut n = notification(Transition::Drift, checks);
        n.link = Some(("run".into(), "https://example.com/run/1".into()));
        let payload = message(&n);
        assert_within_limits(&payload);
        let t = texts(&payload);
        assert_eq!(t.len(), MAX_BLOCKS);
        assert_eq!(t[MAX_BLOCKS - 2], "…and 33 more checks");
        assert!(t[MAX_BLOCKS - 1].starts_with(":link: "));
        assert!(t[1].starts_with("*Check0* — desired: xxx"));
        assert!(t[1].contains("…, observed: &amp;"), "both values show");
        assert!(t[1].ends_with('…'));
    }

    #[test]
    fn truncation_never_splits_an_entity() {
        for cut in 1..12 {
            let text = truncate(&escape("a&&&&&&&&&&&&"), cut);
            assert!(text.chars().count() <= cut, "{text}");
            let body = text.trim_end_matches('…');
            assert!(
                body.split('&').skip(1).all(|e| e.starts_with("amp;")),
                "{cut}: {text}"
            );
        }
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }

    #[test]
    fn a_digest_lists_objects_and_counts_the_rest() {
        let batch: Vec<Notification> = (0..300)
            .map(|i| {
                let mut n = notification(
                    if i % 3 == 0 {
                        Transition::Resolved
                    } else {
                        Transition::Drift
                    },
                    vec![check("RetentionCompliant", "7", "1"); i % 4],
                );
                n.name = format!("db-{i}");
                n
            })
            .collect();
        let payload = digest(&batch);
        assert_within_limits(&payload);
        let t = texts(&payload);
        assert_eq!(
            t[0],
            ":bell: 300 backup policy changes: 200 drifted, 100 compliant again"
        );
        assert!(t[1].starts_with(
            "• BackedUpDatabase `data-platform/db-0` compliant again (0 checks)\n\
             • BackedUpDatabase `data-platform/db-1` drifted (1 check)\n\
             • BackedUpDatabase `data-platform/db-2` drifted (2 checks)\n"
        ));
        let listed: usize = t[1..t.len() - 1].iter().map(|s| s.lines().count()).sum();
        assert_eq!(listed, DIGEST_MAX_LISTED);
        assert_eq!(t.last().map(String::as_str), Some("…and 200 more"));
    }

    #[test]
    fn a_digest_of_long_names_still_fits() {
        let batch: Vec<Notification> = (0..100)
            .map(|i| {
                let mut n = notification(Transition::Drift, vec![]);
                n.namespace = "<&>".repeat(100);
                n.name = format!("{i}-{}", "n".repeat(300));
                n
            })
            .collect();
        let payload = digest(&batch);
        assert_within_limits(&payload);
        // Two such lines fill a section, and the sections run out of blocks first.
        let t = texts(&payload);
        assert_eq!(t.len(), MAX_BLOCKS);
        assert_eq!(t.last().map(String::as_str), Some("…and 4 more"));
    }

    #[test]
    fn a_healed_drift_reads_as_drifted_and_fixed() {
        let n = notification(Transition::Healed, vec![]);
        let text = message(&n).to_string();
        assert!(text.contains("drifted and was fixed"), "{text}");
        assert!(!text.contains("compliant again"), "{text}");
    }
}
