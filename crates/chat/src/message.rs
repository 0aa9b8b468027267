//! A message as Klaxon means it, before a platform renders it (Slack blocks, Matrix HTML): a
//! title, labelled fields, a body, links and buttons, with a plain-text fallback.

use klaxon_core::{Catalog, Incident};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// The whole message as plain text: notifications and clients that show no formatting.
    pub text: String,
    pub title: Option<String>,
    pub fields: Vec<(String, String)>,
    pub body: Option<String>,
    pub links: Vec<(String, String)>,
    pub buttons: Vec<Button>,
    /// A key that identifies this message among the bot's own, so that a job run again after
    /// a crash can find the message it already posted instead of posting it twice.
    pub marker: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    /// What pressing it asks for: `ack`, `lead`, `resolve`.
    pub action: String,
    pub label: String,
    /// Carried back with the press: the incident reference.
    pub value: String,
    pub primary: bool,
}

impl Message {
    /// A digest of everything the message shows, to tell whether a new rendering differs from
    /// the one posted.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let all = format!("{self:?}");
        Sha256::digest(all.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn text(text: impl Into<String>) -> Message {
        Message {
            text: text.into(),
            ..Default::default()
        }
    }
}

/// The names of the people a headline mentions.
pub type NameOf<'a> = &'a dyn Fn(klaxon_core::PersonId) -> String;

/// The headline pinned in an incident's channel: what anyone joining needs first.
pub fn headline(i: &Incident, catalog: &Catalog, name_of: NameOf<'_>, page_url: &str) -> Message {
    let severity = i.severity.clone().unwrap_or_else(|| "not set".into());
    let lead = i.lead().map(name_of).unwrap_or_else(|| "nobody yet".into());
    let mut fields = vec![
        ("Severity".to_string(), severity.clone()),
        ("Status".to_string(), i.status.clone()),
        ("Lead".to_string(), lead.clone()),
    ];
    for role in catalog
        .roles
        .all()
        .iter()
        .filter(|r| r.key != klaxon_core::LEAD_ROLE)
    {
        if let Some(p) = i.roles.get(&role.key) {
            fields.push((role.name.clone(), name_of(*p)));
        }
    }
    if !i.services.is_empty() {
        fields.push(("Services".to_string(), i.services.join(", ")));
    }
    let mut links = vec![("Incident page".to_string(), page_url.to_string())];
    // What the incident's actions linked to (a ticket, the status page), but not the chat's
    // own: a headline needs no link to the room it is pinned in, nor to its announcement.
    links.extend(
        i.links
            .iter()
            .filter(|(action, _)| !is_chat_action(action))
            .map(|(_, l)| (l.label.clone(), l.url.clone())),
    );
    let reference = i.reference.to_string();
    let mut buttons = Vec::new();
    if i.is_open() {
        if i.acknowledged_at.is_none() {
            buttons.push(Button {
                action: "ack".into(),
                label: "Acknowledge".into(),
                value: reference.clone(),
                primary: true,
            });
        }
        buttons.push(Button {
            action: "lead".into(),
            label: "I'm the lead".into(),
            value: reference.clone(),
            primary: false,
        });
        buttons.push(Button {
            action: "severity".into(),
            label: "Change severity".into(),
            value: reference.clone(),
            primary: false,
        });
        buttons.push(Button {
            action: "resolve".into(),
            label: "Resolve".into(),
            value: reference.clone(),
            primary: false,
        });
    }
    Message {
        text: format!(
            "{reference} {}: {severity}, {}, lead {lead}",
            i.title, i.status
        ),
        title: Some(format!("{reference}: {}", i.title)),
        body: (!i.summary.is_empty()).then(|| i.summary.clone()),
        fields,
        links,
        buttons,
        marker: Some(format!("{reference}:headline")),
    }
}

/// The announcement in the shared incidents channel.
pub fn announcement(i: &Incident, channel_name: Option<&str>, page_url: &str) -> Message {
    let sev = i
        .severity
        .as_deref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    let where_ = channel_name
        .map(|c| format!(" Join #{c}."))
        .unwrap_or_default();
    Message {
        text: format!(
            "{} declared: {}{sev}.{where_} {page_url}",
            i.reference, i.title
        ),
        title: Some(format!("{} declared: {}{sev}", i.reference, i.title)),
        body: channel_name.map(|c| format!("Join #{c} to help.")),
        links: vec![("Incident page".into(), page_url.into())],
        marker: Some(format!("{}:announcement", i.reference)),
        ..Default::default()
    }
}

/// The channel's name: `inc-42-checkout-is-down`, within the platform-neutral rules Slack
/// sets (lowercase letters, digits, `-` and `_`, at most 80 characters).
pub fn channel_name(i: &Incident) -> String {
    let mut slug = String::new();
    for c in i.title.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let prefix = format!("inc-{}", i.reference.number());
    let slug = slug.trim_matches('-');
    // Leave room for a `-NN` suffix should the name be taken.
    let room = 76usize.saturating_sub(prefix.len() + 1);
    let slug: String = slug.chars().take(room).collect();
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        prefix
    } else {
        format!("{prefix}-{slug}")
    }
}

/// Whether an action (a job kind) is one of the chat's own (`chat.create_channel`, …).
pub fn is_chat_action(action: &str) -> bool {
    action.starts_with("chat.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_core::{from_millis, Actor, Declare, Event, EventKind, IncidentRef, PersonId};

    fn incident(title: &str) -> Incident {
        let kinds = klaxon_core::decide_declare(
            &Catalog::default(),
            &Declare {
                title: title.into(),
                lead: Some(PersonId(3)),
                ..Default::default()
            },
        )
        .unwrap();
        let events: Vec<Event> = kinds
            .into_iter()
            .zip(1..)
            .map(|(kind, seq)| Event {
                incident: IncidentRef::new(42).unwrap(),
                seq,
                at: from_millis(0),
                actor: Actor::person(PersonId(3)),
                kind,
            })
            .collect();
        assert!(matches!(events[0].kind, EventKind::Declared(_)));
        Incident::replay(&events).unwrap()
    }

    #[test]
    fn channel_names_follow_the_rules() {
        assert_eq!(
            channel_name(&incident("Checkout is down!")),
            "inc-42-checkout-is-down"
        );
        assert_eq!(
            channel_name(&incident("Écoute: DB — lag 😱")),
            "inc-42-coute-db-lag"
        );
        assert_eq!(channel_name(&incident("!!!")), "inc-42");
        let long = channel_name(&incident(&"word ".repeat(39)));
        assert!(
            long.len() <= 76 && long.starts_with("inc-42-word-") && !long.ends_with('-'),
            "{long}"
        );
        assert!(long
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
    }

    #[test]
    fn the_headline_says_what_matters() {
        let i = incident("Checkout is down");
        let h = headline(
            &i,
            &Catalog::default(),
            &|p| format!("person {}", p.0),
            "https://k/incidents/INC-42",
        );
        assert_eq!(h.title.as_deref(), Some("INC-42: Checkout is down"));
        assert_eq!(
            h.fields[..3],
            [
                ("Severity".to_string(), "not set".to_string()),
                ("Status".to_string(), "triage".to_string()),
                ("Lead".to_string(), "person 3".to_string()),
            ]
        );
        assert_eq!(
            h.buttons
                .iter()
                .map(|b| b.action.as_str())
                .collect::<Vec<_>>(),
            vec!["ack", "lead", "severity", "resolve"]
        );
        assert_eq!(h.marker.as_deref(), Some("INC-42:headline"));
        assert!(h.text.contains("Checkout is down") && h.text.contains("person 3"));
    }
    #[test]
    fn the_headline_links_to_what_actions_made_but_not_to_the_chat_itself() {
        let mut i = incident("Checkout is down");
        for (action, label) in [
            ("jira.ticket", "OPS-7"),
            ("chat.create_channel", "#inc-42-checkout-is-down"),
            ("chat.announce", "Announcement"),
        ] {
            i.links.insert(
                action.into(),
                klaxon_core::Link {
                    label: label.into(),
                    url: format!("https://example.test/{action}"),
                },
            );
        }
        let h = headline(&i, &Catalog::default(), &|p| p.0.to_string(), "https://k/i");
        let labels: Vec<&str> = h.links.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["Incident page", "OPS-7"]);
    }
}
