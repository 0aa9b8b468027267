//! Messages as Slack Block Kit: a header, the fields, the body, the links and the buttons,
//! within Slack's limits (50 blocks, 10 fields a section, 150 characters a header).

use serde_json::{json, Value};

use crate::Message;

/// Slack's mrkdwn treats `&`, `<` and `>` as control characters.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

pub fn render(m: &Message) -> Value {
    let mut blocks = Vec::new();
    if let Some(title) = &m.title {
        blocks.push(json!({ "type": "header", "text": { "type": "plain_text", "text": truncate(title, 150), "emoji": true } }));
    }
    for chunk in m.fields.chunks(10) {
        let fields: Vec<Value> = chunk
            .iter()
            .map(|(label, value)| json!({ "type": "mrkdwn", "text": truncate(&format!("*{}*\n{}", escape(label), escape(value)), 2000) }))
            .collect();
        blocks.push(json!({ "type": "section", "fields": fields }));
    }
    let body = match &m.body {
        Some(b) => Some(b.clone()),
        None if m.title.is_none() && m.fields.is_empty() => Some(m.text.clone()),
        None => None,
    };
    if let Some(b) = body.filter(|b| !b.is_empty()) {
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": truncate(&escape(&b), 3000) } }));
    }
    if !m.links.is_empty() {
        let links: Vec<String> = m
            .links
            .iter()
            .map(|(label, url)| format!("<{}|{}>", url, escape(label)))
            .collect();
        blocks.push(json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": links.join("  ·  ") }] }));
    }
    if !m.buttons.is_empty() {
        let elements: Vec<Value> = m
            .buttons
            .iter()
            .map(|b| {
                let mut e = json!({
                    "type": "button",
                    "text": { "type": "plain_text", "text": truncate(&b.label, 75) },
                    "action_id": format!("klaxon:{}", b.action),
                    "value": b.value,
                });
                if b.primary {
                    e["style"] = json!("primary");
                }
                e
            })
            .collect();
        blocks.push(json!({ "type": "actions", "elements": elements }));
    }
    blocks.truncate(50);
    Value::Array(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Button;

    #[test]
    fn renders_within_limits() {
        let m = Message {
            text: "x".into(),
            title: Some("INC-1: <b>".into()),
            fields: (0..12).map(|i| (format!("f{i}"), "a & b".into())).collect(),
            body: None,
            links: vec![("Page".into(), "https://k/incidents/INC-1".into())],
            buttons: vec![Button {
                action: "ack".into(),
                label: "Acknowledge".into(),
                value: "INC-1".into(),
                primary: true,
            }],
            marker: None,
        };
        let b = render(&m);
        assert_eq!(
            b[0]["text"]["text"], "INC-1: <b>",
            "plain_text is not escaped"
        );
        assert_eq!(b[1]["fields"].as_array().unwrap().len(), 10);
        assert_eq!(b[2]["fields"].as_array().unwrap().len(), 2);
        assert_eq!(b[1]["fields"][0]["text"], "*f0*\na &amp; b");
        assert_eq!(
            b[3]["elements"][0]["text"],
            "<https://k/incidents/INC-1|Page>"
        );
        assert_eq!(b[4]["elements"][0]["action_id"], "klaxon:ack");
        assert_eq!(b[4]["elements"][0]["style"], "primary");
        assert_eq!(render(&Message::text("plain"))[0]["text"]["text"], "plain");
    }
}
