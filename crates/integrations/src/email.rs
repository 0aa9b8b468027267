//! Stakeholder email: on declaration, on a severity change and on resolve, to the recipients
//! whose severity and services match, as HTML with a plain-text part, sent over SMTP by our
//! own client (`smtp`). The `Message-ID` comes from the job's key, so a message sent twice
//! after a crash in the middle of the SMTP conversation is recognisably the same message.

use async_trait::async_trait;
use base64::Engine;
use klaxon_core::{Catalog, Incident};
use klaxon_jobs::{Done, Handler, JobContext, JobError};
use serde_json::json;

use crate::config::SmtpConfig;
use crate::{done, skipped, Context};

/// The bare address in `a@b.c` or `Name <a@b.c>`; `None` when it is not one.
pub fn address(s: &str) -> Option<String> {
    let s = s.trim();
    let addr = match (s.find('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b && b == s.len() - 1 => &s[a + 1..b],
        (None, None) => s,
        _ => return None,
    };
    let (local, domain) = addr.split_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !addr
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>' || c == ',')
        && !domain.contains('@');
    ok.then(|| addr.to_string())
}

/// Who hears about this incident: every recipient group whose severity and services match.
pub fn recipients(cfg: &SmtpConfig, c: &Catalog, i: &Incident) -> Vec<String> {
    let mut to: Vec<String> = Vec::new();
    for g in &cfg.recipients {
        let severe = g.severity_at_least.is_empty()
            || i.severity
                .as_deref()
                .is_some_and(|s| c.severities.at_least(s, &g.severity_at_least));
        let service = g.services.is_empty() || g.services.iter().any(|s| i.services.contains(s));
        if severe && service {
            for a in &g.to {
                if !to.iter().any(|t| t.eq_ignore_ascii_case(a)) {
                    to.push(a.clone());
                }
            }
        }
    }
    to
}

/// A header value, encoded (RFC 2047) when it is not plain ASCII.
fn header_text(s: &str) -> String {
    let clean: String = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    if clean.is_ascii() {
        clean
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(clean)
        )
    }
}

/// Base64 in lines of 76 characters, as MIME wants.
fn base64_lines(s: &str) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(s);
    b.as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What one email says.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The email about `what` (declared, severity, resolved).
pub fn mail(cx: &Context, i: &Incident, what: &str) -> Mail {
    let r = i.reference;
    let sev = i.severity.as_deref().unwrap_or("severity not set");
    let subject = match what {
        "declared" => format!("[{sev}] {r} declared: {}", i.title),
        "severity" => format!("[{sev}] {r} is now {sev}: {}", i.title),
        _ => format!("[resolved] {r}: {}", i.title),
    };
    let page = cx.page(r);
    let mut rows = vec![
        ("Incident", r.to_string()),
        ("Title", i.title.clone()),
        ("Severity", sev.to_string()),
        ("Status", i.status.clone()),
    ];
    if !i.summary.is_empty() {
        rows.push(("Summary", i.summary.clone()));
    }
    if !i.impact.is_empty() {
        rows.push(("Impact", i.impact.clone()));
    }
    if !i.services.is_empty() {
        rows.push(("Services", i.services.join(", ")));
    }
    let mut text = String::new();
    for (k, v) in &rows {
        text.push_str(&format!("{k}: {v}\n"));
    }
    text.push_str(&format!("\nFollow it at {page}\n"));
    let mut html =
        String::from("<!doctype html><html><body style=\"font-family:sans-serif\"><table>");
    for (k, v) in &rows {
        html.push_str(&format!(
            "<tr><th align=\"left\" style=\"padding-right:1em\">{}</th><td>{}</td></tr>",
            html_escape(k),
            html_escape(v)
        ));
    }
    html.push_str(&format!(
        "</table><p><a href=\"{}\">Follow {r} in Klaxon</a></p></body></html>",
        html_escape(&page)
    ));
    Mail {
        subject,
        text,
        html,
    }
}

/// The whole message, headers and both parts, CRLF line ends.
pub fn compose(
    from: &str,
    to: &[String],
    message_id: &str,
    date: chrono::DateTime<chrono::Utc>,
    m: &Mail,
) -> String {
    let boundary = format!("klaxon-{}", message_id.len() * 7919 + m.subject.len());
    let mut s = String::new();
    s.push_str(&format!("From: {}\r\n", header_text(from)));
    s.push_str(&format!("To: {}\r\n", to.join(", ")));
    s.push_str(&format!("Subject: {}\r\n", header_text(&m.subject)));
    s.push_str(&format!("Date: {}\r\n", date.to_rfc2822()));
    s.push_str(&format!("Message-ID: <{message_id}>\r\n"));
    s.push_str("MIME-Version: 1.0\r\n");
    s.push_str("Auto-Submitted: auto-generated\r\n");
    s.push_str(&format!(
        "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"
    ));
    for (kind, body) in [("text/plain", &m.text), ("text/html", &m.html)] {
        s.push_str(&format!("--{boundary}\r\n"));
        s.push_str(&format!("Content-Type: {kind}; charset=utf-8\r\n"));
        s.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
        s.push_str(&base64_lines(body));
        s.push_str("\r\n");
    }
    s.push_str(&format!("--{boundary}--\r\n"));
    s
}

pub struct EmailHandler {
    pub cx: Context,
}

#[async_trait]
impl Handler for EmailHandler {
    async fn run(&self, ctx: &JobContext) -> Result<Done, JobError> {
        let cx = &self.cx;
        let cfg = &cx.settings.smtp;
        let i = cx.incident(ctx).await?;
        let what = ctx.payload()["what"].as_str().unwrap_or("declared");
        if i.drill && !cfg.drills && !crate::in_drills(ctx) {
            return Ok(skipped(format!(
                "email ({what}): {} is a drill ([smtp] drills = false)",
                i.reference
            )));
        }
        let custom = what == "custom";
        let to: Vec<String> = if custom {
            ctx.payload()["to"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(String::from))
                .collect()
        } else {
            recipients(cfg, &cx.catalog, &i)
        };
        if to.is_empty() {
            return Ok(crate::nothing("nobody is to hear about this incident"));
        }
        let from = address(&cfg.from).ok_or_else(|| {
            JobError::permanent(format!("[smtp] from `{}` is not an address", cfg.from))
        })?;
        let domain = from.split('@').nth(1).unwrap_or("klaxon");
        let id: String = ctx
            .job
            .key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '.'
                }
            })
            .collect();
        let message_id = format!("{id}@{domain}");
        let m = if custom {
            let text = ctx.payload()["text"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            Mail {
                subject: ctx.payload()["subject"].as_str().unwrap_or_default().to_string(),
                html: format!(
                    "<!doctype html><html><body style=\"font-family:sans-serif\"><p>{}</p></body></html>",
                    html_escape(&text).replace('\n', "<br>")
                ),
                text,
            }
        } else {
            mail(cx, &i, what)
        };
        let data = compose(&cfg.from, &to, &message_id, ctx.now(), &m);
        let rcpt: Vec<String> = to.iter().filter_map(|t| address(t)).collect();
        crate::smtp::send(cfg, &from, &rcpt, &data).await?;
        Ok(done(
            json!({ "to": to, "subject": m.subject, "message_id": message_id }),
            format!("emailed {} stakeholder(s): {}", to.len(), m.subject),
            None,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(address("a@b.co").as_deref(), Some("a@b.co"));
        assert_eq!(address("Klaxon <k@x.org>").as_deref(), Some("k@x.org"));
        for bad in [
            "",
            "nobody",
            "a@b",
            "a b@c.d",
            "<a@b.c",
            "a@b.c, d@e.f",
            "a@@b.c",
        ] {
            assert_eq!(address(bad), None, "{bad}");
        }
    }

    #[test]
    fn headers_are_encoded_and_cannot_be_injected() {
        assert_eq!(header_text("Plain"), "Plain");
        assert_eq!(header_text("a\r\nBcc: x@y.z"), "aBcc: x@y.z");
        assert!(header_text("Panne à Paris").starts_with("=?UTF-8?B?"));
    }
}
