//! HubSpot deals: one change of one deal as a ledger event, for the webhook path (the daemon)
//! and for the backfill from HubSpot's CRM v3 deals endpoint (`ingest --format hubspot-deals`).
//!
//! Both paths describe a change the same way ([`Change`]: the deal's object id, the property
//! and its value, the moment in milliseconds) and go through [`Change::event`], so the same
//! change gets the same event with the same `source_id`, whichever path saw it first: a backfill
//! after webhooks, or webhooks after a backfill, stores each change once.
//!
//! The `source_id` is a hash of what the change says, not of HubSpot's `eventId`: HubSpot may
//! deliver one change under several eventIds (one per subscription, again on retry), and a
//! backfill has no eventId at all. The value is hashed as the ledger stores it (a `closedate` as
//! its date), because the webhook sends milliseconds where the deals endpoint sends ISO text.
//!
//! Backfill input: the JSON pages of `GET /crm/v3/objects/deals?propertiesWithHistory=
//! dealstage,amount,closedate,hubspot_owner_id,createdate`, saved as they come (one page per
//! file; a file may also hold a JSON array of pages or of deals). Each deal opens at its
//! `createdate` like a `deal.creation` webhook (the default owner, amount 0, the pipeline's
//! first stage), then every history entry of the four properties, oldest first, is a
//! `deal.propertyChange`. Mapping rules: docs/importers.md.

use crate::{ImportError, Imported, Target};
use dealledger_events::{Pipeline, Rejection, Rule, Timestamp};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The properties that become events. Everything else is ignored.
pub const PROPERTIES: [&str; 4] = ["dealstage", "amount", "closedate", "hubspot_owner_id"];
/// Bytes of one backfill file, at most (a page of 100 deals with history is well under 10 MiB).
pub const FILE_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// What HubSpot's stages mean, and who owns a deal HubSpot opened.
#[derive(Clone, Debug, Default)]
pub struct Mapping {
    /// HubSpot `dealstage` ids to targets (`[hubspot.stages]` of dealledger.toml).
    pub stages: BTreeMap<String, Target>,
    /// The owner of a deal at its opening (HubSpot's creation says none; a `hubspot_owner_id`
    /// change follows).
    pub default_owner: String,
}

/// What happened to a deal, as HubSpot says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What<'a> {
    Creation,
    Property { name: &'a str, value: &'a str },
}

/// One change of one deal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change<'a> {
    pub object_id: u64,
    pub what: What<'a>,
    /// Milliseconds since the epoch: the webhook's `occurredAt`, a history entry's `timestamp`.
    pub at_ms: i64,
}

/// The ledger's id of a HubSpot deal.
pub fn deal_id(object_id: u64) -> String {
    format!("hubspot-{object_id}")
}

/// A `closedate` value: milliseconds since the epoch (webhooks), or a date or an ISO instant
/// (the deals endpoint), as the date it names.
pub fn close_date(value: &str) -> Option<String> {
    if let Ok(ms) = value.trim().parse::<i64>() {
        let at = Timestamp(ms.checked_mul(1000)?);
        // Beyond what an RFC 3339 date can say, the ledger has no date for it.
        dealledger_events::time::Date::parse(at.to_string().get(..10)?).ok()?;
        return at.to_string().get(..10).map(str::to_string);
    }
    value.get(..10).filter(|d| dealledger_events::time::Date::parse(d).is_ok()).map(str::to_string)
}

/// A moment of the deals endpoint: ISO 8601 text, or milliseconds since the epoch.
pub fn instant_ms(value: &str) -> Option<i64> {
    let value = value.trim();
    if let Ok(ms) = value.parse::<i64>() {
        return Some(ms);
    }
    let at = Timestamp::parse_rfc3339(value).ok()?;
    Some(at.0.div_euclid(1000))
}

impl Change<'_> {
    /// The event's `source_id`: a hash of the change as the ledger stores it.
    pub fn source_id(&self) -> String {
        let (kind, name, value) = match self.what {
            What::Creation => ("deal.creation", "", String::new()),
            What::Property { name: "closedate", value } => {
                ("deal.propertyChange", "closedate", close_date(value).unwrap_or_else(|| value.to_string()))
            }
            What::Property { name, value } => ("deal.propertyChange", name, value.to_string()),
        };
        let mut hash = Sha256::new();
        for part in [kind, &self.object_id.to_string(), name, &value, &self.at_ms.to_string()] {
            hash.update(part.as_bytes());
            hash.update([0u8]);
        }
        let digest = hash.finalize();
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("hubspot:{hex}")
    }

    /// The webhook notification that says this change (`deal.creation`, `deal.propertyChange`):
    /// the form in which a change the ledger refuses waits in the daemon's quarantine, whichever
    /// path brought it.
    pub fn notification(&self) -> serde_json::Value {
        match self.what {
            What::Creation => json!({
                "subscriptionType": "deal.creation", "objectId": self.object_id, "occurredAt": self.at_ms,
            }),
            What::Property { name, value } => json!({
                "subscriptionType": "deal.propertyChange", "objectId": self.object_id,
                "propertyName": name, "propertyValue": value, "occurredAt": self.at_ms,
            }),
        }
    }

    /// The event this change stands for, as JSON in the contract of docs/events.md; `None` when
    /// it maps to none (another property, an emptied value). A stage move to the stage the deal
    /// is in is the caller's to skip (it knows the deal's state).
    pub fn event(&self, mapping: &Mapping) -> Result<Option<serde_json::Value>, Rejection> {
        let Some(at) = self.at_ms.checked_mul(1000).map(Timestamp) else {
            return Err(Rejection::field(
                Rule::InvalidValue,
                "occurredAt",
                format!("{} ms is out of range", self.at_ms),
            ));
        };
        // HubSpot's time of a change (a property history's timestamp, a notification's
        // occurredAt) is when HubSpot recorded it: `recorded_at`, by whichever path it comes.
        let mut event = json!({
            "deal": deal_id(self.object_id), "at": at.to_string(), "recorded_at": at.to_string(),
            "actor": "hubspot", "source_id": self.source_id(),
        });
        let fields = event.as_object_mut().expect("an object");
        match self.what {
            What::Creation => {
                fields.insert("type".into(), "opened".into());
                fields.insert("owner".into(), mapping.default_owner.clone().into());
                fields.insert("amount".into(), 0.into());
            }
            What::Property { name: "dealstage", value } => {
                let target = mapping.stages.get(value).ok_or_else(|| {
                    Rejection::field(
                        Rule::UnknownStage,
                        "propertyValue",
                        format!("HubSpot deal stage `{value}` is not mapped in [hubspot.stages] of dealledger.toml"),
                    )
                })?;
                match target {
                    Target::Stage(stage) => {
                        fields.insert("type".into(), "stage_moved".into());
                        fields.insert("to".into(), stage.clone().into());
                    }
                    Target::Won => {
                        fields.insert("type".into(), "won".into());
                    }
                    Target::Lost => {
                        fields.insert("type".into(), "lost".into());
                        fields.insert("reason".into(), "closed lost in HubSpot".into());
                    }
                }
            }
            What::Property { value, .. } if value.trim().is_empty() => return Ok(None),
            What::Property { name: "amount", value } => {
                fields.insert("type".into(), "amount_changed".into());
                fields.insert("amount".into(), value.trim().into());
            }
            What::Property { name: "closedate", value } => {
                let date = close_date(value).ok_or_else(|| {
                    Rejection::field(
                        Rule::InvalidValue,
                        "propertyValue",
                        format!("closedate `{value}` is neither milliseconds since the epoch nor a date"),
                    )
                })?;
                fields.insert("type".into(), "close_date_changed".into());
                fields.insert("close_date".into(), date.into());
            }
            What::Property { name: "hubspot_owner_id", value } => {
                fields.insert("type".into(), "owner_changed".into());
                fields.insert("owner".into(), value.trim().into());
            }
            What::Property { .. } => return Ok(None),
        }
        Ok(Some(event))
    }
}

/// A page of the deals endpoint, a list of pages, or a list of deals.
#[derive(Deserialize)]
#[serde(untagged)]
enum File {
    Page(Page),
    Pages(Vec<Page>),
    Deals(Vec<Deal>),
}

#[derive(Deserialize)]
struct Page {
    results: Vec<Deal>,
}

/// A deal as HubSpot's CRM v3 objects endpoints give it (list, batch read), with the fields the
/// mapping reads. Property values are text or null.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deal {
    pub id: String,
    #[serde(default)]
    pub properties: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub properties_with_history: BTreeMap<String, Vec<HistoryEntry>>,
    #[serde(default)]
    pub created_at: Option<String>,
}

impl Deal {
    /// A property's current value, when set.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(|v| v.as_deref())
    }
}

/// One entry of a property's history.
#[derive(Clone, Debug, Deserialize)]
pub struct HistoryEntry {
    #[serde(default)]
    pub value: Option<String>,
    pub timestamp: String,
}

/// Reads backfill files into events: each deal's opening, then its changes, oldest first.
/// The caller admits them as one all-or-nothing batch; a change that does not map (an unmapped
/// stage) is a row the batch refuses, so `--skip-invalid` can leave it out.
pub fn import(files: &[PathBuf], pipeline: &Pipeline, mapping: &Mapping) -> Result<Imported, ImportError> {
    let mut out = Imported::default();
    for path in files {
        let name = path.display().to_string();
        let read = |why: String| ImportError::Read { path: name.clone(), why };
        let file = std::fs::File::open(path).map_err(|e| read(e.to_string()))?;
        let length = file.metadata().map_err(|e| read(e.to_string()))?.len();
        if length > FILE_BYTES_MAX {
            return Err(read(format!(
                "{length} bytes; at most {FILE_BYTES_MAX} per file (save one page per file)"
            )));
        }
        let parsed: File = serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| {
            read(format!("not a page of HubSpot's CRM v3 deals endpoint (`results` of deals with `propertiesWithHistory`): {e}"))
        })?;
        let deals = match parsed {
            File::Page(page) => page.results,
            File::Pages(pages) => pages.into_iter().flat_map(|p| p.results).collect(),
            File::Deals(deals) => deals,
        };
        for (index, deal) in deals.iter().enumerate() {
            import_deal(
                &mut out,
                &format!("{name}: deal {} (results[{index}])", deal.id),
                deal,
                pipeline,
                mapping,
            )?;
        }
    }
    Ok(out)
}

/// One deal's events: its opening, then its changes oldest first (the mapping above); `location`
/// names the deal in errors and skips.
pub fn import_deal(
    out: &mut Imported,
    location: &str,
    deal: &Deal,
    pipeline: &Pipeline,
    mapping: &Mapping,
) -> Result<(), ImportError> {
    let invalid = |why: String| ImportError::Invalid { location: location.to_string(), why };
    let object_id: u64 = deal
        .id
        .trim()
        .parse()
        .map_err(|_| invalid(format!("id `{}` is not a HubSpot object id (a whole number)", deal.id)))?;
    // The creation moment: `createdate`, else its oldest history entry, else `createdAt`.
    let oldest_createdate = deal
        .properties_with_history
        .get("createdate")
        .and_then(|h| h.iter().filter_map(|e| e.value.as_deref()).filter_map(instant_ms).min());
    let created = deal
        .properties
        .get("createdate")
        .and_then(|v| v.as_deref())
        .and_then(instant_ms)
        .or(oldest_createdate)
        .or_else(|| deal.created_at.as_deref().and_then(instant_ms))
        .ok_or_else(|| {
            invalid("no createdate: ask for it in `properties` or `propertiesWithHistory`".into())
        })?;
    let mut changes: Vec<(i64, usize, &str, &str)> = Vec::new();
    for (order, name) in PROPERTIES.iter().enumerate() {
        for entry in deal.properties_with_history.get(*name).into_iter().flatten() {
            let at = instant_ms(&entry.timestamp).ok_or_else(|| {
                invalid(format!(
                    "{name}: history timestamp `{}` is not ISO 8601 or milliseconds",
                    entry.timestamp
                ))
            })?;
            changes.push((at, order, name, entry.value.as_deref().unwrap_or("")));
        }
    }
    // Oldest first (HubSpot lists history newest first); at one moment, in PROPERTIES order.
    changes.sort_by_key(|&(at, order, ..)| (at, order));
    changes.dedup();
    let opening = Change { object_id, what: What::Creation, at_ms: created };
    push(out, format!("{location}: createdate"), &opening, opening.event(mapping));
    // Where the deal is as these events leave it: None once closed.
    let mut stage = Some(pipeline.first().to_string());
    for (at, _, name, value) in changes {
        let change = Change { object_id, what: What::Property { name, value }, at_ms: at };
        let mapped = change.event(mapping);
        if let Ok(Some(event)) = &mapped {
            match event["type"].as_str() {
                Some("stage_moved") => {
                    let to = event["to"].as_str().map(str::to_string);
                    if to == stage {
                        // HubSpot records the stage a deal is created in: the opening says it.
                        out.skip(
                            format!("{location}: {name} at {at} ms"),
                            "same_stage",
                            "the stage the deal is already in",
                        );
                        continue;
                    }
                    stage = to;
                }
                Some("won" | "lost") => stage = None,
                _ => {}
            }
        }
        push(out, format!("{location}: {name} at {at} ms"), &change, mapped);
    }
    Ok(())
}

/// The change's row, which carries the notification that says it (for the quarantine).
fn push(
    out: &mut Imported,
    location: String,
    change: &Change<'_>,
    mapped: Result<Option<serde_json::Value>, Rejection>,
) {
    let result = match mapped {
        Ok(Some(event)) => dealledger_events::parse_line(&event.to_string()),
        Ok(None) => return out.skip(location, "ignored", "an emptied value maps to no event"),
        Err(rejection) => Err(rejection),
    };
    out.rows.push(crate::Row { location, result, notification: Some(change.notification()) });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn close_dates_and_instants() {
        assert_eq!(close_date("1735689600000").as_deref(), Some("2025-01-01"));
        assert_eq!(close_date("2025-03-04").as_deref(), Some("2025-03-04"));
        assert_eq!(close_date("2025-03-04T10:00:00Z").as_deref(), Some("2025-03-04"));
        assert_eq!(close_date("soon"), None);
        assert_eq!(close_date(&i64::MAX.to_string()), None);
        assert_eq!(instant_ms("2025-01-10T09:06:40.500Z"), Some(1_736_500_000_500));
        assert_eq!(instant_ms("1736500000500"), Some(1_736_500_000_500));
        assert_eq!(instant_ms("yesterday"), None);
    }

    #[test]
    fn source_ids_are_what_the_webhook_path_made_before() {
        // The hash webhooks stored before the backfill existed: type, object, property, raw value,
        // occurredAt, each followed by a zero byte. Unchanged for every property but closedate
        // (whose value is now hashed as its date, so both paths agree).
        let old = |parts: [&str; 5]| {
            let mut hash = Sha256::new();
            for part in parts {
                hash.update(part.as_bytes());
                hash.update([0u8]);
            }
            let hex: String = hash.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect();
            format!("hubspot:{hex}")
        };
        let amount = Change { object_id: 42, what: What::Property { name: "amount", value: "10" }, at_ms: 7 };
        assert_eq!(amount.source_id(), old(["deal.propertyChange", "42", "amount", "10", "7"]));
        let creation = Change { object_id: 42, what: What::Creation, at_ms: 7 };
        assert_eq!(creation.source_id(), old(["deal.creation", "42", "", "", "7"]));
        let by_ms = Change {
            object_id: 1,
            what: What::Property { name: "closedate", value: "1740787200000" },
            at_ms: 3,
        };
        let by_iso = Change {
            object_id: 1,
            what: What::Property { name: "closedate", value: "2025-03-01T00:00:00Z" },
            at_ms: 3,
        };
        assert_eq!(by_ms.source_id(), by_iso.source_id());
    }

    fn mapping() -> Mapping {
        Mapping {
            stages: [("a".to_string(), Target::Stage("qualifying".into())), ("w".to_string(), Target::Won)]
                .into(),
            default_owner: "hubspot".into(),
        }
    }

    const PAGE: &str = r#"{"results":[{"id":"5","properties":{"createdate":"2025-01-01T00:00:00Z"},
        "propertiesWithHistory":{"dealstage":[{"value":"w","timestamp":"2025-01-03T00:00:00Z"},
        {"value":"a","timestamp":"2025-01-02T00:00:00Z"}],"amount":[{"value":"12.5","timestamp":"2025-01-01T00:00:00Z"}]}}]}"#;

    fn import_bytes(bytes: &[u8]) -> Result<Imported, ImportError> {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("page.json");
        std::fs::write(&path, bytes).expect("written");
        import(&[path], &Pipeline::default(), &mapping())
    }

    #[test]
    fn a_page_in_history_order() {
        let imported = import_bytes(PAGE.as_bytes()).unwrap();
        let kinds: Vec<String> = imported
            .rows
            .iter()
            .map(|r| r.result.as_ref().unwrap().event.body.kind().as_str().to_string())
            .collect();
        assert_eq!(kinds, ["opened", "amount_changed", "stage_moved", "won"]);
        assert!(
            imported.rows[0].location.contains("deal 5 (results[0]): createdate"),
            "{}",
            imported.rows[0].location
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::default())]

        /// Any file, and the page with any byte changed or cut: an import or an error, never a
        /// panic.
        #[test]
        fn fuzz_hubspot_deals_file(
            bytes in prop::collection::vec(any::<u8>(), 0..512),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<bool>(),
        ) {
            let _ = import_bytes(&bytes);
            let mut page = PAGE.as_bytes().to_vec();
            let i = at.index(page.len());
            if cut { page.truncate(i) } else { page[i] = byte }
            let _ = import_bytes(&page);
        }
    }
}
