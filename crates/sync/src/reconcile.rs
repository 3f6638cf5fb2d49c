//! Reconciliation: each deal's current stage, amount, close date and owner in the CRM against
//! the ledger's view now, and for every difference the likely cause.
//!
//! A run reconciles after it syncs: it lists the CRM's deals, compares, reads the history of
//! every deal that differs and stores what that history shows (each change at its own time, as
//! the sync stores every change), then compares again. What still differs is listed, never
//! patched: the ledger does not invent an event to make a figure match.
//!
//! Only the ledger's open deals are compared (a closed deal's figures are settled), plus the
//! CRM's deals the ledger never saw. Values are compared in the ledger's terms: a stage through
//! the stage map, an amount in the deal's currency's minor units, a close date as a date, an
//! owner as the CRM's owner id (the default owner where the CRM names none).

use dealledger_events::money::Decimal;
use dealledger_events::{Currency, Status};
use dealledger_import::Target;
use dealledger_projections::{Timeline, View};
use std::collections::{BTreeMap, BTreeSet};

/// A deal as the ledger sees it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerDeal {
    pub status: Status,
    /// The current stage (for a closed deal, the one it closed in).
    pub stage: String,
    pub amount_minor: i64,
    pub currency: Currency,
    /// `YYYY-MM-DD`.
    pub close_date: Option<String>,
    pub owner: String,
}

/// Every deal of `timeline` as it stands with everything it holds: what a sink's
/// [`crate::Sink::deals_now`] answers.
pub fn ledger_deals(timeline: &Timeline) -> BTreeMap<String, LedgerDeal> {
    let mut out = BTreeMap::new();
    timeline.each_folded(View::ALL, false, |deal, folded| {
        let name = |n| timeline.names.resolve(n).to_string();
        out.insert(
            deal.id.to_string(),
            LedgerDeal {
                status: folded.status(),
                stage: name(folded.stage),
                amount_minor: folded.amount_minor,
                currency: deal.currency,
                close_date: folded.close_date.map(|d| d.to_string()),
                owner: name(folded.owner),
            },
        );
    });
    out
}

/// A deal as the CRM says it is now, its values as the CRM gives them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrmDeal {
    /// The ledger's id of the deal.
    pub deal: String,
    pub stage: Option<String>,
    pub amount: Option<String>,
    /// `YYYY-MM-DD`.
    pub close_date: Option<String>,
    pub owner: Option<String>,
}

/// How the CRM's values read in the ledger's terms.
pub struct Terms<'a> {
    /// The CRM's stage ids to what they mean (`[hubspot.stages]`).
    pub stages: &'a BTreeMap<String, Target>,
    /// The ledger's owner of a deal the CRM names no owner for.
    pub default_owner: &'a str,
}

/// One value that differs, and its likely cause.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Difference {
    pub deal: String,
    /// `stage`, `amount`, `close_date`, `owner`, or `deal` (one side has no such deal).
    pub field: &'static str,
    pub crm: String,
    pub ledger: String,
    /// `not_in_history`, `unmapped_stage`, `never_seen` or `not_in_crm`.
    pub cause: &'static str,
}

impl Difference {
    /// The cause, said for people.
    pub fn why(&self) -> &'static str {
        match self.cause {
            "unmapped_stage" => {
                "the CRM's stage has no mapping: add it to [hubspot.stages] (then `dealledger quarantine retry`) or, for Salesforce, [import.stages] (the next sync stores it)"
            }
            "never_seen" => {
                "a deal the ledger never saw: its creation was refused or held (see `dealledger audit quarantine`), or its pipeline is not synced"
            }
            "not_in_crm" => "the CRM no longer lists this deal: deleted, merged, or moved to a pipeline not synced",
            _ => {
                "a change the CRM's history does not show (a property written without history, or an event the ledger took from elsewhere); left as it is"
            }
        }
    }

    /// One line for people.
    pub fn line(&self) -> String {
        format!(
            "{} {}: CRM {}, ledger {} [{}]: {}",
            self.deal,
            self.field,
            shown(&self.crm),
            shown(&self.ledger),
            self.cause,
            self.why()
        )
    }
}

fn shown(value: &str) -> &str {
    if value.is_empty() {
        "(none)"
    } else {
        value
    }
}

/// What a reconciliation found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Reconciled {
    /// Deals compared: the ledger's open deals the CRM lists, and the CRM's deals the ledger
    /// never saw.
    pub compared: u64,
    /// Deals that differed before their history was read.
    pub differed: u64,
    /// Events their history gave that the ledger did not have, stored at their own time.
    pub stored_from_history: u64,
    /// What still differs, by deal and field: how many, and the first of them (at most
    /// `hubspot::DIFFERENCES_MAX`).
    pub differences_total: u64,
    pub differences: Vec<Difference>,
}

/// The differences between the CRM's deals `crm` (those of the synced pipelines) and the ledger's
/// `ledger`; `listed` holds every deal the CRM listed, in any pipeline. Ordered by deal, then
/// field. `prefix` picks the ledger's deals that came from this CRM.
pub fn compare(
    crm: &[CrmDeal],
    listed: &BTreeSet<String>,
    ledger: &BTreeMap<String, LedgerDeal>,
    terms: &Terms<'_>,
    prefix: &str,
) -> (u64, Vec<Difference>) {
    let mut differences = Vec::new();
    let mut compared = 0u64;
    for deal in crm {
        match ledger.get(&deal.deal) {
            None => {
                compared += 1;
                differences.push(Difference {
                    deal: deal.deal.clone(),
                    field: "deal",
                    crm: deal.stage.clone().unwrap_or_default(),
                    ledger: String::new(),
                    cause: "never_seen",
                });
            }
            Some(known) if known.status == Status::Open => {
                compared += 1;
                differences.extend(fields(deal, known, terms));
            }
            Some(_) => {}
        }
    }
    for (id, known) in ledger.range(prefix.to_string()..) {
        if !id.starts_with(prefix) {
            break;
        }
        if known.status == Status::Open && !listed.contains(id) {
            compared += 1;
            differences.push(Difference {
                deal: id.clone(),
                field: "deal",
                crm: String::new(),
                ledger: known.stage.clone(),
                cause: "not_in_crm",
            });
        }
    }
    differences.sort_by(|a, b| (&a.deal, a.field).cmp(&(&b.deal, b.field)));
    (compared, differences)
}

/// The fields of one open deal that differ.
fn fields(crm: &CrmDeal, ledger: &LedgerDeal, terms: &Terms<'_>) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut differ = |field, crm_value: String, ledger_value: String, cause| {
        if crm_value != ledger_value {
            out.push(Difference {
                deal: crm.deal.clone(),
                field,
                crm: crm_value,
                ledger: ledger_value,
                cause,
            });
        }
    };
    // A stage: its target's name (a stage, `won` or `lost`) against the ledger's stage while
    // open. A stage the CRM gives none for is not compared.
    if let Some(raw) = crm.stage.as_deref() {
        match terms.stages.get(raw) {
            Some(Target::Stage(stage)) => {
                differ("stage", stage.clone(), ledger.stage.clone(), "not_in_history")
            }
            Some(Target::Won) => differ("stage", "won".into(), ledger.stage.clone(), "not_in_history"),
            Some(Target::Lost) => differ("stage", "lost".into(), ledger.stage.clone(), "not_in_history"),
            None => differ("stage", raw.to_string(), ledger.stage.clone(), "unmapped_stage"),
        }
    }
    // An amount in the deal's currency; none in the CRM reads as the ledger's opening 0.
    let amount = match crm.amount.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        None => ledger.currency.format_minor(0),
        Some(text) => match Decimal::parse(text).and_then(|d| d.to_minor(ledger.currency)) {
            Ok(minor) => ledger.currency.format_minor(minor),
            Err(_) => text.to_string(),
        },
    };
    differ("amount", amount, ledger.currency.format_minor(ledger.amount_minor), "not_in_history");
    differ(
        "close_date",
        crm.close_date.clone().unwrap_or_default(),
        ledger.close_date.clone().unwrap_or_default(),
        "not_in_history",
    );
    let owner = crm.owner.as_deref().map(str::trim).filter(|o| !o.is_empty()).unwrap_or(terms.default_owner);
    differ("owner", owner.to_string(), ledger.owner.clone(), "not_in_history");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(stage: &str, amount_minor: i64) -> LedgerDeal {
        LedgerDeal {
            status: Status::Open,
            stage: stage.into(),
            amount_minor,
            currency: Currency::USD,
            close_date: Some("2025-03-01".into()),
            owner: "7".into(),
        }
    }

    fn crm(id: &str, stage: &str, amount: &str) -> CrmDeal {
        CrmDeal {
            deal: id.into(),
            stage: Some(stage.into()),
            amount: Some(amount.into()),
            close_date: Some("2025-03-01".into()),
            owner: Some("7".into()),
        }
    }

    #[test]
    fn values_compare_in_the_ledgers_terms_and_each_difference_names_its_cause() {
        let stages: BTreeMap<String, Target> =
            [("a".to_string(), Target::Stage("qualifying".into())), ("w".to_string(), Target::Won)].into();
        let terms = Terms { stages: &stages, default_owner: "hubspot" };
        let mut known = BTreeMap::new();
        known.insert("hubspot-1".to_string(), ledger("qualifying", 150_050));
        known.insert("hubspot-2".to_string(), ledger("qualifying", 0));
        known.insert("hubspot-3".to_string(), ledger("qualifying", 0));
        known.insert("hubspot-4".to_string(), ledger("qualifying", 0));
        known.insert("hubspot-5".to_string(), LedgerDeal { status: Status::Won, ..ledger("qualifying", 9) });
        known.insert("other-1".to_string(), ledger("qualifying", 0));
        let deals = vec![
            // Equal: "1500.5" is 150,050 cents.
            crm("hubspot-1", "a", "1500.5"),
            // Won in the CRM, open in the ledger; and no amount in the CRM is 0.
            CrmDeal { amount: None, ..crm("hubspot-2", "w", "") },
            // An unmapped stage, and an owner the CRM does not name.
            CrmDeal { owner: None, ..crm("hubspot-3", "z", "0") },
            // Closed in the ledger: not compared.
            crm("hubspot-5", "a", "1"),
            crm("hubspot-6", "a", "1"),
        ];
        let listed: BTreeSet<String> = deals.iter().map(|d| d.deal.clone()).collect();
        let (compared, found) = compare(&deals, &listed, &known, &terms, "hubspot-");
        let got: Vec<(&str, &str, &str, &str, &str)> = found
            .iter()
            .map(|d| (d.deal.as_str(), d.field, d.crm.as_str(), d.ledger.as_str(), d.cause))
            .collect();
        assert_eq!(
            got,
            vec![
                ("hubspot-2", "stage", "won", "qualifying", "not_in_history"),
                ("hubspot-3", "owner", "hubspot", "7", "not_in_history"),
                ("hubspot-3", "stage", "z", "qualifying", "unmapped_stage"),
                ("hubspot-4", "deal", "", "qualifying", "not_in_crm"),
                ("hubspot-6", "deal", "a", "", "never_seen"),
            ]
        );
        assert_eq!(compared, 5);
        assert!(found[2].line().contains("[hubspot.stages]"), "{}", found[2].line());
    }
}
