//! dealledger.toml: the one schema of the settings file, parsed once.
//!
//! Every section and key the ledger reads is declared here, once, with serde and
//! `deny_unknown_fields`. The file is parsed once and each library crate is handed its typed
//! part, which it turns into its own settings, checking what only it can (a stage name against
//! the pipeline): `[pipeline]` and `[ingest]` to events, `[costs]`, `[flags]` and
//! `[exit_criteria]` to reports, `[import]` to the importers, `[serve]`, `[hubspot]` and `[sync]`
//! to the daemon. Nothing is ignored: an unknown section or key, or a value of the wrong type, is one
//! error that names the file, the line and column, the table, and for an unknown name the
//! closest known one.
//!
//! The same reader serves other TOML files of the same kind ([`parse_toml`]: a what-if policy).
//!
//! Must not depend on any other dealledger crate: they depend on it.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_aux::serde_introspection::serde_introspect as fields_of;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

/// The name of the settings file in a data directory.
pub const CONFIG_FILE: &str = "dealledger.toml";

/// Largest settings file read: a pipeline, rates for a sales team and a stage map fit in far
/// less; anything bigger is not a settings file.
pub const CONFIG_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// The whole of dealledger.toml. Every section is optional; a missing file is all defaults.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub pipeline: Option<PipelineSection>,
    pub ingest: Option<IngestSection>,
    pub costs: Option<CostsSection>,
    pub flags: Option<FlagsSection>,
    /// Stage name to the fields a deal should have before it leaves the stage, in file order.
    #[serde(default, deserialize_with = "in_file_order")]
    pub exit_criteria: Vec<(String, Vec<String>)>,
    pub import: Option<ImportSection>,
    pub serve: Option<ServeSection>,
    pub hubspot: Option<HubSpotSection>,
    pub store: Option<StoreSection>,
    pub sync: Option<SyncSection>,
    pub salesforce: Option<SalesforceSection>,
    /// The file it was read from, for errors (empty for a config built in code).
    #[serde(skip)]
    pub file: Source,
}

/// Where a config was read from. Only errors use it: two configs that say the same are equal
/// wherever they came from.
#[derive(Clone, Debug, Default)]
pub struct Source(pub String);

impl PartialEq for Source {
    fn eq(&self, _: &Source) -> bool {
        true
    }
}

/// `[[pipeline.stages]]`, in order.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    pub stages: Vec<StageSection>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSection {
    pub name: String,
    /// 0 to 1.
    pub probability: DecimalText,
}

/// `[ingest]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSection {
    /// How far past the ledger's clock `at` and `recorded_at` may be: `"1d"`, `"36h"`, `"90m"`.
    pub max_future: Option<String>,
}

/// `[costs]`: what an owner's time is worth, for every owner, and per owner under `owners`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostsSection {
    /// The currency of quotas and costs.
    pub currency: Option<String>,
    pub quota: Option<DecimalText>,
    pub selling_hours: Option<u32>,
    pub working_days: Option<u32>,
    /// Hours of a working day.
    pub working_hours: Option<u32>,
    pub commission_rate: Option<DecimalText>,
    /// `[costs.owners.NAME]`: any of the rates above, for one owner.
    #[serde(default)]
    pub owners: BTreeMap<String, RatesSection>,
    /// `[costs.spend]`: sales and marketing spend by month (`"2025-01" = 42000`), in `currency`.
    #[serde(default)]
    pub spend: BTreeMap<String, DecimalText>,
}

impl CostsSection {
    /// The rates given for every owner.
    pub fn rates(&self) -> RatesSection {
        RatesSection {
            quota: self.quota.clone(),
            selling_hours: self.selling_hours,
            working_days: self.working_days,
            working_hours: self.working_hours,
            commission_rate: self.commission_rate.clone(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatesSection {
    pub quota: Option<DecimalText>,
    pub selling_hours: Option<u32>,
    pub working_days: Option<u32>,
    pub working_hours: Option<u32>,
    pub commission_rate: Option<DecimalText>,
}

/// `[flags]`: the thresholds of the flag rules.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagsSection {
    pub gone_dark_days: Option<u32>,
    pub no_activity_days: Option<u32>,
    pub min_contacts: Option<u32>,
    pub contacts_by_stage: Option<String>,
    pub late_stages: Option<Vec<String>>,
    pub late_stage_deals_max: Option<u32>,
}

/// `[import]`: how CRM exports map onto the ledger.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportSection {
    /// CRM stage name to a pipeline stage, `won` or `lost`.
    #[serde(default)]
    pub stages: BTreeMap<String, String>,
    /// An importer's key (`deal_id`) to the file's header.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
}

/// `[serve]`: the daemon's address, token and limits.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSection {
    pub listen: Option<String>,
    pub token: Option<String>,
    pub body_bytes_max: Option<usize>,
    pub request_events_max: Option<usize>,
    pub queue_requests_max: Option<usize>,
    pub queue_bytes_max: Option<usize>,
    pub request_timeout_ms: Option<u64>,
    pub body_read_timeout_ms: Option<u64>,
    pub header_read_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub connections_max: Option<usize>,
    pub connections_per_address_max: Option<usize>,
    pub shutdown_timeout_ms: Option<u64>,
    pub allowed_hosts: Option<Vec<String>>,
    pub whatif_timeout_ms: Option<u64>,
    pub whatifs_max: Option<usize>,
    pub streams_max: Option<usize>,
    /// `[[serve.tokens]]`: tokens with a name and a role each.
    pub tokens: Option<Vec<TokenSection>>,
}

/// One `[[serve.tokens]]` entry.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSection {
    /// What the token is for (`crm-integration`, `dashboard`): named in errors and, later, in
    /// the events it writes.
    pub name: String,
    pub token: Option<String>,
    /// A file holding the token (instead of `token`).
    pub token_file: Option<String>,
    /// `read`, `write` or `admin`.
    pub role: String,
}

/// `[store]`: where the log lives when it is not sled in the data directory (docs/scale-out.md).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `nats://HOST:PORT[,HOST:PORT...]/LEDGER` or `tls://...`; `--store` wins over it.
    pub url: Option<String>,
    /// A NATS credentials file (`.creds`); `DEALLEDGER_NATS_CREDS` wins over it.
    pub credentials: Option<String>,
    /// A CA certificate (PEM) for `tls://` servers no system root signs.
    pub tls_ca: Option<String>,
    /// Replicas of the stream and buckets this process creates (default 3).
    pub replicas: Option<usize>,
    /// The servers' monitoring URLs (`http://HOST:8222`), to check they sync before acknowledging.
    pub monitor: Option<Vec<String>>,
    /// The writer lease's time to live (default 10,000 ms).
    pub lease_ttl_ms: Option<u64>,
    /// How long one request to the servers may take (default 10,000 ms).
    pub request_timeout_ms: Option<u64>,
}

/// `[hubspot]`: the webhook's secret and how HubSpot's stages map onto the pipeline.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSpotSection {
    /// The webhooks' key; not needed by `sync hubspot`.
    pub app_secret: Option<String>,
    /// HubSpot stage id to a pipeline stage, `won` or `lost`.
    #[serde(default)]
    pub stages: BTreeMap<String, String>,
    pub public_url: Option<String>,
    pub default_owner: Option<String>,
    pub body_bytes_max: Option<usize>,
    pub unsigned_bytes_max: Option<usize>,
    pub open_unknown: Option<bool>,
    /// `sync hubspot`: the API's base URL (default `https://api.hubapi.com`).
    pub api_url: Option<String>,
    /// `sync hubspot`: the HubSpot pipelines whose deals are synced (default: all).
    pub pipelines: Option<Vec<String>>,
}

/// `[sync]`: CRM syncs `dealledger serve` runs on a schedule (docs/daemon.md).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    /// How often to run `sync hubspot`: `30s`, `5m`, `1h`.
    pub hubspot: Option<String>,
    /// A file holding the HubSpot token (else `DEALLEDGER_HUBSPOT_TOKEN`).
    pub hubspot_token_file: Option<String>,
    /// Failures of one request in a row (a 5xx, a cut connection) a run retries before it
    /// gives up until its next start (default 6).
    pub retries_max: Option<u32>,
    /// How often to run `sync salesforce`: `15m`.
    pub salesforce: Option<String>,
    /// A file holding the Salesforce access token (else `DEALLEDGER_SALESFORCE_TOKEN`).
    pub salesforce_token_file: Option<String>,
}

/// `[salesforce]`: where `sync salesforce` reads (docs/importers.md); stages map through
/// `[import.stages]`, as the `salesforce-history` importer's do.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceSection {
    /// `https://MyDomain.my.salesforce.com`.
    pub instance_url: Option<String>,
    /// `v62.0`.
    pub api_version: Option<String>,
    /// The share of the org's daily API requests left that one run may take (default 0.2).
    pub api_share_max: Option<f64>,
    /// Records of one query page asked for (200 to 2,000; default 2,000).
    pub batch_size: Option<u32>,
}

/// A number as the file writes it (an integer, a float or a string), kept as decimal text so
/// that `0.1` is read exactly: probabilities, rates and money are parsed from it as decimals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecimalText(pub String);

impl<'de> Deserialize<'de> for DecimalText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<DecimalText, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DecimalText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E>(self, v: i64) -> Result<DecimalText, E> {
                Ok(DecimalText(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<DecimalText, E> {
                Ok(DecimalText(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<DecimalText, E> {
                Ok(DecimalText(format!("{v}")))
            }
            fn visit_str<E>(self, v: &str) -> Result<DecimalText, E> {
                Ok(DecimalText(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A table of lists of names, kept in the order of the file (a map would sort it).
fn in_file_order<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(String, Vec<String>)>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Vec<(String, Vec<String>)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a table of stage names to lists of field names")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut entries = Vec::new();
            while let Some(entry) = map.next_entry()? {
                entries.push(entry);
            }
            Ok(entries)
        }
    }
    d.deserialize_map(Visitor)
}

/// Why a settings file was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {file}: {why}")]
    Read { file: String, why: std::io::Error },
    #[error("{file}: larger than {CONFIG_BYTES_MAX} bytes; not a settings file")]
    TooLarge { file: String },
    #[error("{file}:{line}:{column}: {what}")]
    Invalid { file: String, line: usize, column: usize, what: String },
    #[error("{file}: {what}")]
    Unplaced { file: String, what: String },
    /// Well formed, but a crate refused a value (see [`Config::refused`]).
    #[error("{file}: {why}")]
    Refused { file: String, why: String },
}

impl ConfigError {
    /// What is wrong, without the file's name where it is only the message's prefix (a
    /// refusal): for a caller that names the file itself.
    pub fn reason(&self) -> String {
        match self {
            ConfigError::Refused { why, .. } => why.clone(),
            other => other.to_string(),
        }
    }
}

/// The keys a table of a file knows, by the path of key names that leads to it (array indices
/// left out; `[]` is the top of the file); `None` where any key goes (a map) or the path is
/// not a table.
pub type KnownKeys = fn(&[&str]) -> Option<&'static [&'static str]>;

impl Config {
    /// Reads and parses the file at `path`; all defaults when there is none.
    pub fn read(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = match read_text(path) {
            Ok(Some(text)) => text,
            Ok(None) => return Ok(Config { file: Source(file), ..Config::default() }),
            Err(e) => return Err(e),
        };
        Config::parse(&text, &file)
    }

    /// Parses dealledger.toml's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let config: Config = parse_toml(text, file, config_keys)?;
        Ok(Config { file: Source(file.to_string()), ..config })
    }

    /// A setting the schema took but the crate it is for refused (a stage that is not in the
    /// pipeline, a probability above 1): the error names this file.
    pub fn refused(&self, why: impl std::fmt::Display) -> ConfigError {
        let file = if self.file.0.is_empty() { CONFIG_FILE } else { self.file.0.as_str() };
        ConfigError::Refused { file: file.to_string(), why: why.to_string() }
    }
}

/// The text of a settings file, `None` when there is none.
pub fn read_text(path: &Path) -> Result<Option<String>, ConfigError> {
    let file = path.display().to_string();
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() > CONFIG_BYTES_MAX => return Err(ConfigError::TooLarge { file }),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(why) => return Err(ConfigError::Read { file, why }),
    }
    std::fs::read_to_string(path).map(Some).map_err(|why| ConfigError::Read { file, why })
}

fn config_keys(path: &[&str]) -> Option<&'static [&'static str]> {
    Some(match path {
        [] => fields_of::<Config>(),
        ["pipeline"] => fields_of::<PipelineSection>(),
        ["pipeline", "stages"] => fields_of::<StageSection>(),
        ["ingest"] => fields_of::<IngestSection>(),
        ["costs"] => fields_of::<CostsSection>(),
        ["costs", "owners", _] => fields_of::<RatesSection>(),
        ["flags"] => fields_of::<FlagsSection>(),
        ["import"] => fields_of::<ImportSection>(),
        ["serve"] => fields_of::<ServeSection>(),
        ["serve", "tokens"] => fields_of::<TokenSection>(),
        ["hubspot"] => fields_of::<HubSpotSection>(),
        ["store"] => fields_of::<StoreSection>(),
        ["sync"] => fields_of::<SyncSection>(),
        ["salesforce"] => fields_of::<SalesforceSection>(),
        _ => return None,
    })
}

/// Parses a TOML file of `T`, with errors placed and worded as for dealledger.toml: `known`
/// gives the keys of each table, for naming the closest to an unknown one.
pub fn parse_toml<T: DeserializeOwned>(text: &str, file: &str, known: KnownKeys) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|error| placed(text, file, &error, known))
}

/// One step of the way to a key: a table's key, or an element of an array of tables.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Key(String),
    Index,
}

/// What an error's span points at: a key (or its value) in the table at `table`.
#[derive(Debug)]
struct Place {
    table: Vec<Step>,
    key: String,
    /// The key opens a table of its own (`[flag]`), rather than holding a value.
    opens_table: bool,
}

fn placed(text: &str, file: &str, error: &toml::de::Error, known: KnownKeys) -> ConfigError {
    let file = file.to_string();
    // One line: toml's own message may span several.
    let message = error.message().split_whitespace().collect::<Vec<_>>().join(" ");
    let Some(span) = error.span() else { return ConfigError::Unplaced { file, what: message } };
    let (line, column) = line_column(text, span.start);
    let place =
        toml_edit::ImDocument::parse(text).ok().and_then(|doc| find(doc.as_table(), &span, &mut Vec::new()));
    let Some(place) = place else { return ConfigError::Invalid { file, line, column, what: message } };
    let names: Vec<&str> = place
        .table
        .iter()
        .filter_map(|s| if let Step::Key(k) = s { Some(k.as_str()) } else { None })
        .collect();
    let what = match known(&names) {
        Some(keys) if !keys.contains(&place.key.as_str()) => unknown(&place, &names, keys, known),
        _ => format!("{} {}: {message}", table_name(&place.table), place.key),
    };
    ConfigError::Invalid { file, line, column, what }
}

/// The message for a key its table does not know.
fn unknown(place: &Place, names: &[&str], keys: &[&str], known: KnownKeys) -> String {
    let list = keys.join(", ");
    if names.is_empty() {
        // At the top: a section, or a key of one written above every header.
        if place.opens_table {
            return format!(
                "unknown section [{}]; did you mean [{}]? (sections: {list})",
                place.key,
                closest(&place.key, keys)
            );
        }
        let home = keys
            .iter()
            .find(|section| known(&[section]).is_some_and(|inner| inner.contains(&place.key.as_str())));
        let hint = match home {
            Some(section) => format!("did you mean [{section}]? `{}` is one of its keys", place.key),
            None => format!("did you mean `{}`?", closest(&place.key, keys)),
        };
        return format!("unknown key `{}` at the top of the file; {hint} (known: {list})", place.key);
    }
    format!(
        "unknown key `{}` in {}; did you mean `{}`? (known keys: {list})",
        place.key,
        table_name(&place.table),
        closest(&place.key, keys)
    )
}

/// The known name nearest to `name` (edit distance, transpositions counted once; the first of
/// equals).
fn closest<'a>(name: &str, keys: &[&'a str]) -> &'a str {
    keys.iter().copied().min_by_key(|key| strsim::damerau_levenshtein(name, key)).unwrap_or("")
}

/// `[costs.owners.ana]`, `[[pipeline.stages]]`, or "the top of the file".
fn table_name(table: &[Step]) -> String {
    let names: Vec<&str> =
        table.iter().filter_map(|s| if let Step::Key(k) = s { Some(k.as_str()) } else { None }).collect();
    if names.is_empty() {
        return "the top of the file".to_string();
    }
    if table.last() == Some(&Step::Index) {
        format!("[[{}]]", names.join("."))
    } else {
        format!("[{}]", names.join("."))
    }
}

/// 1-based line and column (in characters) of byte `at`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The key whose name or value `span` points at, under `table` (reached by `path`).
fn find(table: &toml_edit::Table, span: &Range<usize>, path: &mut Vec<Step>) -> Option<Place> {
    for (name, item) in table.iter() {
        let key_span = table.get_key_value(name).and_then(|(key, _)| key.span());
        let opens_table = matches!(item, toml_edit::Item::Table(_) | toml_edit::Item::ArrayOfTables(_));
        if key_span.as_ref() == Some(span) {
            return Some(Place { table: path.clone(), key: name.to_string(), opens_table });
        }
        path.push(Step::Key(name.to_string()));
        let found = match item {
            toml_edit::Item::Table(inner) => find(inner, span, path),
            toml_edit::Item::ArrayOfTables(array) => {
                path.push(Step::Index);
                let found = array.iter().find_map(|inner| find(inner, span, path));
                path.pop();
                found
            }
            toml_edit::Item::Value(value) => find_in_value(value, span, path),
            toml_edit::Item::None => None,
        };
        path.pop();
        if found.is_some() {
            return found;
        }
        if let toml_edit::Item::Value(value) = item {
            if value.span().is_some_and(|v| v.start <= span.start && span.end <= v.end) {
                return Some(Place { table: path.clone(), key: name.to_string(), opens_table: false });
            }
        }
    }
    None
}

/// As [`find`], inside a value (inline tables, and arrays of them). `path` leads to `value`.
fn find_in_value(value: &toml_edit::Value, span: &Range<usize>, path: &mut Vec<Step>) -> Option<Place> {
    match value {
        toml_edit::Value::InlineTable(table) => {
            for (name, inner) in table.iter() {
                let key_span = table.get_key_value(name).and_then(|(key, _)| key.span());
                if key_span.as_ref() == Some(span) {
                    return Some(Place { table: path.clone(), key: name.to_string(), opens_table: false });
                }
                path.push(Step::Key(name.to_string()));
                let found = find_in_value(inner, span, path);
                path.pop();
                if found.is_some() {
                    return found;
                }
                if inner.span().is_some_and(|v| v.start <= span.start && span.end <= v.end) {
                    return Some(Place { table: path.clone(), key: name.to_string(), opens_table: false });
                }
            }
            None
        }
        toml_edit::Value::Array(array) => {
            path.push(Step::Index);
            let found = array.iter().find_map(|inner| find_in_value(inner, span, path));
            path.pop();
            found
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        Config::parse(text, "dealledger.toml").unwrap_err().to_string()
    }

    #[test]
    fn an_empty_file_is_all_defaults() {
        assert_eq!(Config::parse("", "f").unwrap(), Config::default());
        assert_eq!(Config::read(Path::new("/nonexistent/dealledger.toml")).unwrap(), Config::default());
    }

    #[test]
    fn every_section_reads() {
        let text = "[[pipeline.stages]]\nname = \"a\"\nprobability = 0.1\n[ingest]\nmax_future = \"1d\"\n\
                    [costs]\nquota = 1000\n[costs.owners.ana]\ncommission_rate = \"0.2\"\n[flags]\nmin_contacts = 3\n\
                    [exit_criteria]\nz = [\"f\"]\na = []\n[import.stages]\nX = \"won\"\n[serve]\nlisten = \"127.0.0.1:1\"\n\
                    [hubspot]\napp_secret = \"s\"\n";
        let config = Config::parse(text, "f").unwrap();
        assert_eq!(config.pipeline.unwrap().stages[0].probability, DecimalText("0.1".into()));
        assert_eq!(config.costs.as_ref().unwrap().quota, Some(DecimalText("1000".into())));
        assert_eq!(config.costs.unwrap().owners["ana"].commission_rate, Some(DecimalText("0.2".into())));
        assert_eq!(config.exit_criteria, vec![("z".into(), vec!["f".into()]), ("a".into(), vec![])]);
        assert_eq!(config.import.unwrap().stages["X"], "won");
    }

    #[test]
    fn errors_name_the_line_the_table_and_the_closest_key() {
        assert_eq!(
            error("[flag]\nx = 1\n"),
            "dealledger.toml:1:2: unknown section [flag]; did you mean [flags]? (sections: pipeline, ingest, \
             costs, flags, exit_criteria, import, serve, hubspot, store, sync, salesforce)"
        );
        let e = error("[store]\nurl = \"nats://a:1/x\"\nlease_tll_ms = 5\n");
        assert!(
            e.starts_with(
                "dealledger.toml:3:1: unknown key `lease_tll_ms` in [store]; did you mean `lease_ttl_ms`?"
            ),
            "{e}"
        );
        let e = error("\n[flags]\ngone_drak = 3\n");
        assert!(
            e.starts_with(
                "dealledger.toml:3:1: unknown key `gone_drak` in [flags]; did you mean `gone_dark_days`?"
            ),
            "{e}"
        );
        let e = error("[costs.owners.ana]\nqota = 5\n");
        assert!(
            e.starts_with(
                "dealledger.toml:2:1: unknown key `qota` in [costs.owners.ana]; did you mean `quota`?"
            ),
            "{e}"
        );
        let e = error("[[pipeline.stages]]\nname = \"a\"\nprobability = 1\n[[pipeline.stages]]\nname = \"b\"\nprobabilty = 1\n");
        assert!(e.starts_with("dealledger.toml:6:1: unknown key `probabilty` in [[pipeline.stages]]; did you mean `probability`?"), "{e}");
        let e = error("serve = { lisen = \"x\" }\n");
        assert!(
            e.starts_with("dealledger.toml:1:11: unknown key `lisen` in [serve]; did you mean `listen`?"),
            "{e}"
        );
        let e = error("min_contacts = 3\n");
        assert!(
            e.contains("unknown key `min_contacts` at the top of the file; did you mean [flags]?"),
            "{e}"
        );
        let e = error("[flags]\nmin_contacts = \"three\"\n");
        assert!(e.starts_with("dealledger.toml:2:16: [flags] min_contacts: invalid type: string"), "{e}");
        let e = error("[costs]\nquota = true\n");
        assert!(e.contains("[costs] quota: invalid type: boolean `true`, expected a number"), "{e}");
        let e = error("[flags\n");
        assert!(e.starts_with("dealledger.toml:1:"), "{e}");
        for e in [error("[flags]\nmin_contacts = \"three\"\n"), error("[flags\n"), error("x = = 1")] {
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn line_and_column_count_characters() {
        assert_eq!(line_column("ab\ncdé\nf", 0), (1, 1));
        assert_eq!(line_column("ab\ncdé\nf", 3), (2, 1));
        assert_eq!(line_column("ab\ncdé\nf", 8), (3, 1));
        assert_eq!(line_column("ab\ncdé\nf", 6), (2, 3), "inside a character: the one it is in");
        assert_eq!(line_column("ab", 99), (1, 3));
    }
}
