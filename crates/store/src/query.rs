use klaxon_core::{Incident, Phase};
use serde::{Deserialize, Serialize};
use sqlx::{Database, Encode, QueryBuilder, Type};

/// Filters for the incident list. Every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IncidentQuery {
    /// Any of these statuses.
    pub statuses: Vec<String>,
    /// Open (not yet resolved) or not.
    pub open: Option<bool>,
    /// Any of these severities (a caller turns "at least SEV2" into the list).
    pub severities: Vec<String>,
    pub service: Option<String>,
    /// `(key, value)`.
    pub label: Option<(String, String)>,
    /// Words that must all appear in the title, summary, impact or timeline text; each
    /// matches as a prefix (`check` finds "checkout").
    pub text: Option<String>,
    /// Every private incident (an admin's view).
    pub include_private: bool,
    /// The private incidents this person is a member of, beside the public ones.
    pub member: Option<klaxon_core::PersonId>,
    pub include_drills: bool,
    /// Keyset pagination: incidents numbered below this one.
    pub before: Option<u64>,
    /// 1 to 200; 50 when 0.
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentPage {
    /// Newest first.
    pub incidents: Vec<Incident>,
    /// Pass as `before` for the next page; `None` on the last.
    pub next: Option<u64>,
}

impl IncidentQuery {
    pub(crate) fn effective_limit(&self) -> u32 {
        match self.limit {
            0 => 50,
            n => n.min(200),
        }
    }

    /// The words of the text filter, lowercased: letters and digits only, so they are safe in
    /// either database's full-text syntax. At most 8, which is plenty for a search box.
    pub(crate) fn words(&self) -> Vec<String> {
        self.text
            .as_deref()
            .unwrap_or("")
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .take(8)
            .map(str::to_lowercase)
            .collect()
    }
}

/// A slice of the incidents by number, `from..before`: where a search looks at one time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slice {
    pub from: u64,
    pub before: u64,
}

/// The slices a search looks in, newest first, below `top`: the first holds four pages' worth
/// of incidents, each next one is four times as wide, the last reaches incident 1. A common
/// word fills its page in the first; a rare one is looked for in a handful, each a small query.
pub(crate) fn slices(top: u64, limit: u32) -> impl Iterator<Item = Slice> {
    let mut before = top;
    let mut width = 4 * (u64::from(limit) + 1);
    std::iter::from_fn(move || {
        if before <= 1 {
            return None;
        }
        let from = before.saturating_sub(width).max(1);
        let slice = Slice { from, before };
        before = from;
        width = width.saturating_mul(4);
        Some(slice)
    })
}

/// The incident list's query, the same SQL on both databases but for text search, which
/// `text` writes for each of `matches` (the database's query for one searched word), within
/// `slice` when given. With a service, the query walks that service's incidents in the
/// `(service, incident_number)` key's order, newest first, and stops at the page size;
/// otherwise it walks the incidents themselves the same way. One row more than the page is
/// fetched, to know whether there is a next page.
pub(crate) fn select<'a, DB, F>(
    q: &'a IncidentQuery,
    slice: Option<Slice>,
    matches: &[String],
    text: F,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
    F: Fn(&mut QueryBuilder<'a, DB>, &str, Option<Slice>),
{
    let mut qb = QueryBuilder::new("SELECT i.state FROM ");
    let order = match &q.service {
        Some(service) => {
            qb.push("incident_services s JOIN incidents i ON i.number = s.incident_number WHERE s.service = ")
                .push_bind(service.clone());
            "s.incident_number"
        }
        None => {
            qb.push("incidents i WHERE 1 = 1");
            "i.number"
        }
    };
    let push_list = |qb: &mut QueryBuilder<'a, DB>, column: &str, values: &'a [String]| {
        if values.is_empty() {
            return;
        }
        qb.push(format!(" AND {column} IN ("));
        let mut sep = qb.separated(", ");
        for v in values {
            sep.push_bind(v.clone());
        }
        qb.push(")");
    };
    push_list(&mut qb, "i.status", &q.statuses);
    push_list(&mut qb, "i.severity", &q.severities);
    match q.open {
        Some(true) => {
            // A literal, not a parameter: the planner then walks the open incidents' partial
            // index (migration 6) instead of every incident.
            qb.push(format!(" AND i.phase < {}", Phase::Resolved as i64));
        }
        Some(false) => {
            qb.push(" AND i.phase >= ")
                .push_bind(Phase::Resolved as i64);
        }
        None => {}
    }
    if let Some((key, value)) = &q.label {
        qb.push(" AND EXISTS (SELECT 1 FROM incident_labels l WHERE l.incident_number = i.number AND l.key = ")
            .push_bind(key.clone())
            .push(" AND l.value = ")
            .push_bind(value.clone())
            .push(")");
    }
    for m in matches {
        text(&mut qb, m, slice);
    }
    match (q.include_private, q.member) {
        (true, _) => {}
        (false, None) => {
            qb.push(" AND NOT i.private");
        }
        (false, Some(person)) => {
            // A person is a member of few incidents: the set is small.
            qb.push(" AND (NOT i.private OR i.number IN (SELECT m.incident_number FROM incident_members m WHERE m.person_id = ")
                .push_bind(person.0)
                .push("))");
        }
    }
    if !q.include_drills {
        qb.push(" AND NOT i.drill");
    }
    let before = match (q.before, slice) {
        (Some(b), Some(s)) => Some(b.min(s.before)),
        (b, s) => b.or(s.map(|s| s.before)),
    };
    if let Some(before) = before {
        qb.push(format!(" AND {order} < ")).push_bind(before as i64);
    }
    if let Some(s) = slice {
        qb.push(format!(" AND {order} >= "))
            .push_bind(s.from as i64);
    }
    qb.push(format!(" ORDER BY {order} DESC LIMIT "))
        .push_bind(i64::from(q.effective_limit()) + 1);
    qb
}

pub(crate) fn page(mut incidents: Vec<Incident>, q: &IncidentQuery) -> IncidentPage {
    let limit = q.effective_limit() as usize;
    let next = if incidents.len() > limit {
        incidents.truncate(limit);
        incidents.last().map(|i| i.reference.number())
    } else {
        None
    };
    IncidentPage { incidents, next }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_every_incident_below_the_top_once_newest_first() {
        let all: Vec<Slice> = slices(1000, 9).collect();
        assert_eq!(
            all,
            [
                Slice {
                    from: 960,
                    before: 1000
                },
                Slice {
                    from: 800,
                    before: 960
                },
                Slice {
                    from: 160,
                    before: 800
                },
                Slice {
                    from: 1,
                    before: 160
                },
            ]
        );
        assert_eq!(slices(1, 50).count(), 0, "no incident yet");
        assert_eq!(
            slices(2, 50).collect::<Vec<_>>(),
            [Slice { from: 1, before: 2 }]
        );
        let many: Vec<Slice> = slices(1 << 40, 200).collect();
        assert_eq!(many.last().unwrap().from, 1);
        assert!(many.windows(2).all(|w| w[0].from == w[1].before));
    }

    #[test]
    fn words_are_sanitised() {
        let q = IncidentQuery {
            text: Some("Checkout\" OR 1=1; café-down*".into()),
            ..Default::default()
        };
        assert_eq!(q.words(), vec!["checkout", "or", "1", "1", "café", "down"]);
        assert_eq!(IncidentQuery::default().effective_limit(), 50);
        assert_eq!(
            IncidentQuery {
                limit: 1000,
                ..Default::default()
            }
            .effective_limit(),
            200
        );
    }
}
