//! Report settings from `dealledger.toml`: cost rates per owner, flag thresholds, exit criteria.
//!
//! ```toml
//! [costs]                      # the defaults, for every owner
//! currency = "USD"             # the currency quotas are in
//! quota = 1000000              # annual quota
//! selling_hours = 500          # selling hours per year
//! working_days = 250
//! working_hours = 8            # hours of a working day
//! commission_rate = 0.10
//! [costs.owners.alice]         # any of the above, for one owner
//! quota = 1200000
//! [costs.spend]                # sales and marketing spend by month, for `cac`
//! "2025-01" = 42000
//!
//! [flags]
//! gone_dark_days = 14
//! no_activity_days = 10
//! min_contacts = 2
//! contacts_by_stage = "quote"
//! late_stages = ["quote", "closing"]
//! late_stage_deals_max = 15
//!
//! [exit_criteria]              # fields a stage expects before a deal leaves it
//! qualifying = ["budget_confirmed", "decision_maker"]
//! ```

use dealledger_config::{Config, ConfigError, RatesSection};
use dealledger_events::money::Decimal;
use dealledger_events::pipeline::{pipeline_from_config, probability_to_bp};
use dealledger_events::{Currency, Date, Pipeline, Timestamp};
use std::collections::BTreeMap;

/// What one owner's time is worth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rates {
    /// Annual quota in minor units of [`Settings::currency`].
    pub quota_minor: i64,
    pub selling_hours: u32,
    pub working_days: u32,
    /// Hours of a working day.
    pub working_hours: u32,
    /// Commission rate in basis points (0.10 is 1000).
    pub commission_bp: u32,
}

impl Default for Rates {
    /// A mid-market account executive's figures: $1,000,000 over 500 selling hours ($2,000 an hour) and 250
    /// working days ($4,000 a day) of 8 hours, 10% commission.
    fn default() -> Rates {
        Rates {
            quota_minor: 100_000_000,
            selling_hours: 500,
            working_days: 250,
            working_hours: 8,
            commission_bp: 1000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagSettings {
    pub gone_dark_days: u32,
    pub no_activity_days: u32,
    pub min_contacts: u32,
    pub contacts_by_stage: String,
    pub late_stages: Vec<String>,
    pub late_stage_deals_max: u32,
}

impl Default for FlagSettings {
    fn default() -> FlagSettings {
        FlagSettings {
            gone_dark_days: 14,
            no_activity_days: 10,
            min_contacts: 2,
            contacts_by_stage: "quote".into(),
            late_stages: vec!["quote".into(), "closing".into()],
            late_stage_deals_max: 15,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub pipeline: Pipeline,
    /// The currency of quotas and of costs.
    pub currency: Currency,
    pub rates: Rates,
    pub owner_rates: BTreeMap<String, Rates>,
    pub flags: FlagSettings,
    /// Stage name to the fields it expects, in file order.
    pub exit_criteria: Vec<(String, Vec<String>)>,
    /// Sales and marketing spend by month, in [`Settings::currency`], in month order.
    pub spend: Vec<MonthSpend>,
}

/// One month's spend: `[from, to)` is the calendar month (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonthSpend {
    pub from: Timestamp,
    pub to: Timestamp,
    pub minor: i64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            pipeline: Pipeline::default(),
            currency: Currency::USD,
            rates: Rates::default(),
            owner_rates: BTreeMap::new(),
            flags: FlagSettings::default(),
            exit_criteria: Vec::new(),
            spend: Vec::new(),
        }
    }
}

impl Settings {
    pub fn rates(&self, owner: &str) -> Rates {
        self.owner_rates.get(owner).copied().unwrap_or(self.rates)
    }
}

/// The report settings of a dealledger.toml (its pipeline and the sections above). Errors name
/// the section and key.
pub fn settings_from_config(config: &Config) -> Result<Settings, ConfigError> {
    let pipeline = pipeline_from_config(config)?;
    settings_with(config, pipeline).map_err(|why| config.refused(why))
}

fn settings_with(config: &Config, pipeline: Pipeline) -> Result<Settings, String> {
    let mut settings = Settings { pipeline, ..Settings::default() };
    if let Some(costs) = &config.costs {
        if let Some(code) = &costs.currency {
            settings.currency = Currency::parse(code).map_err(|why| format!("[costs] currency: {why}"))?;
        }
        let base = apply_rates(Rates::default(), &costs.rates(), settings.currency, "[costs]")?;
        settings.rates = base;
        for (owner, section) in &costs.owners {
            let rates = apply_rates(base, section, settings.currency, &format!("[costs.owners.{owner}]"))?;
            settings.owner_rates.insert(owner.clone(), rates);
        }
        for (month, amount) in &costs.spend {
            let (from, to) = month_of(month).map_err(|why| format!("[costs.spend] `{month}`: {why}"))?;
            let minor = Decimal::parse(&amount.0)
                .and_then(|d| d.to_minor(settings.currency))
                .map_err(|why| format!("[costs.spend] `{month}`: {why}"))?;
            settings.spend.push(MonthSpend { from, to, minor });
        }
    }
    if let Some(flags) = config.flags.clone() {
        let f = &mut settings.flags;
        f.gone_dark_days = flags.gone_dark_days.unwrap_or(f.gone_dark_days);
        f.no_activity_days = flags.no_activity_days.unwrap_or(f.no_activity_days);
        f.min_contacts = flags.min_contacts.unwrap_or(f.min_contacts);
        f.late_stage_deals_max = flags.late_stage_deals_max.unwrap_or(f.late_stage_deals_max);
        if let Some(stage) = flags.contacts_by_stage {
            f.contacts_by_stage = stage;
        }
        if let Some(stages) = flags.late_stages {
            f.late_stages = stages;
        }
        for stage in std::iter::once(&f.contacts_by_stage).chain(&f.late_stages) {
            if settings.pipeline.index(stage).is_none() {
                return Err(format!(
                    "[flags]: `{stage}` is not a stage of the pipeline ({})",
                    settings.pipeline.names()
                ));
            }
        }
    }
    for (stage, fields) in &config.exit_criteria {
        if settings.pipeline.index(stage).is_none() {
            return Err(format!(
                "[exit_criteria]: `{stage}` is not a stage of the pipeline ({})",
                settings.pipeline.names()
            ));
        }
        settings.exit_criteria.push((stage.clone(), fields.clone()));
    }
    Ok(settings)
}

/// The calendar month `YYYY-MM` as [start, end).
fn month_of(text: &str) -> Result<(Timestamp, Timestamp), String> {
    let shaped = text.len() == 7 && text.as_bytes().get(4) == Some(&b'-');
    let parts = shaped.then(|| {
        (text.get(..4).and_then(|y| y.parse::<u32>().ok()), text.get(5..).and_then(|m| m.parse::<u32>().ok()))
    });
    let Some((Some(year), Some(month))) = parts else {
        return Err("a month is written YYYY-MM".into());
    };
    if !(1..=12).contains(&month) {
        return Err("a month is written YYYY-MM".into());
    }
    let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    let start = Date::parse(&format!("{year:04}-{month:02}-01")).map_err(|why| why.to_string())?;
    let end = Date::parse(&format!("{next_year:04}-{next_month:02}-01"))
        .map_err(|_| "a month before 9999-12".to_string())?;
    Ok((start.start(), end.start()))
}

fn apply_rates(base: Rates, section: &RatesSection, currency: Currency, at: &str) -> Result<Rates, String> {
    let mut rates = base;
    if let Some(quota) = &section.quota {
        rates.quota_minor = Decimal::parse(&quota.0)
            .and_then(|d| d.to_minor(currency))
            .map_err(|why| format!("{at} quota: {why}"))?;
    }
    if let Some(hours) = section.selling_hours {
        if hours == 0 {
            return Err(format!("{at} selling_hours: must be at least 1"));
        }
        rates.selling_hours = hours;
    }
    if let Some(days) = section.working_days {
        if days == 0 {
            return Err(format!("{at} working_days: must be at least 1"));
        }
        rates.working_days = days;
    }
    if let Some(hours) = section.working_hours {
        if !(1..=24).contains(&hours) {
            return Err(format!("{at} working_hours: hours of a working day, 1 to 24"));
        }
        rates.working_hours = hours;
    }
    if let Some(rate) = &section.commission_rate {
        rates.commission_bp =
            probability_to_bp(rate).map_err(|why| format!("{at} commission_rate: {why}"))?;
    }
    Ok(rates)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings, or the error's text (for a refusal, its reason without the file).
    fn parse_settings_toml(text: &str) -> Result<Settings, String> {
        let config = Config::parse(text, "dealledger.toml").map_err(|e| e.to_string())?;
        settings_from_config(&config).map_err(|e| e.reason())
    }

    #[test]
    fn defaults_and_overrides() {
        let s = parse_settings_toml("").unwrap();
        assert_eq!(s.rates("anyone"), Rates::default());
        let s = parse_settings_toml(
            "[costs]\nquota = 2000000\ncommission_rate = 0.08\n[costs.owners.alice]\nselling_hours = 400\n\
             [flags]\ngone_dark_days = 21\n[exit_criteria]\nqualifying = [\"budget_confirmed\"]\n",
        )
        .unwrap();
        assert_eq!(s.rates.quota_minor, 200_000_000);
        assert_eq!(s.rates.commission_bp, 800);
        assert_eq!(
            s.rates("alice"),
            Rates {
                quota_minor: 200_000_000,
                selling_hours: 400,
                working_days: 250,
                working_hours: 8,
                commission_bp: 800
            }
        );
        assert_eq!(s.flags.gone_dark_days, 21);
        assert_eq!(s.exit_criteria, vec![("qualifying".to_string(), vec!["budget_confirmed".to_string()])]);
    }

    #[test]
    fn exit_criteria_keep_the_order_of_the_file() {
        let s = parse_settings_toml(
            "[exit_criteria]\nquote = [\"pricing_approved\"]\nqualifying = [\"budget_confirmed\"]\n",
        )
        .unwrap();
        let stages: Vec<&str> = s.exit_criteria.iter().map(|(stage, _)| stage.as_str()).collect();
        assert_eq!(stages, ["quote", "qualifying"], "exit criteria in file order");
    }

    #[test]
    fn errors_name_the_place() {
        let e = parse_settings_toml("[costs]\nquota = \"lots\"\n").unwrap_err();
        assert!(e.starts_with("[costs] quota:"), "{e}");
        let e = parse_settings_toml("[costs.owners.bob]\nselling_hours = 0\n").unwrap_err();
        assert_eq!(e, "[costs.owners.bob] selling_hours: must be at least 1");
        let e = parse_settings_toml("[costs.spend]\n\"2024-13\" = 1\n").unwrap_err();
        assert_eq!(e, "[costs.spend] `2024-13`: a month is written YYYY-MM");
        let e = parse_settings_toml("[costs.spend]\n\"2024-1\" = 1\n").unwrap_err();
        assert_eq!(e, "[costs.spend] `2024-1`: a month is written YYYY-MM");
        let e = parse_settings_toml("[costs.spend]\n\"2024-02\" = -5\n").unwrap_err();
        assert_eq!(e, "[costs.spend] `2024-02`: `-5` is negative; amounts must be >= 0");
        let e = parse_settings_toml("[costs.spend]\n\"9999-12\" = 5\n").unwrap_err();
        assert_eq!(e, "[costs.spend] `9999-12`: a month before 9999-12");
        let e = parse_settings_toml("[costs]\nworking_hours = 25\n").unwrap_err();
        assert_eq!(e, "[costs] working_hours: hours of a working day, 1 to 24");
        let s = parse_settings_toml("[costs.spend]\n\"2024-12\" = \"10.5\"\n").unwrap();
        assert_eq!(
            s.spend,
            vec![MonthSpend {
                from: Timestamp::parse_rfc3339("2024-12-01T00:00:00Z").unwrap(),
                to: Timestamp::parse_rfc3339("2025-01-01T00:00:00Z").unwrap(),
                minor: 1050
            }]
        );
        let e = parse_settings_toml("[exit_criteria]\nnegotiation = [\"x\"]\n").unwrap_err();
        assert!(e.starts_with("[exit_criteria]: `negotiation` is not a stage"), "{e}");
        let e = parse_settings_toml("[flags]\ngone_dark = 3\n").unwrap_err();
        assert!(e.contains("unknown key `gone_dark` in [flags]; did you mean `gone_dark_days`?"), "{e}");
    }
}
