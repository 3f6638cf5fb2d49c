//! The pipeline (ordered stages with win probabilities) and the other settings of
//! `dealledger.toml`.

use crate::rejection::ValueError;
use dealledger_config::{Config, ConfigError, DecimalText};

/// Stages a pipeline may have, at most.
pub const STAGES_MAX: usize = 64;

/// A stage and its win probability in basis points (0.25 is 2500): integers, so that weighted
/// amounts are exact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    pub name: String,
    pub probability_bp: u32,
}

/// How far after the ledger's clock an `at` or `recorded_at` may lie (clock skew between the
/// source and the ledger), and how far before `at` a `recorded_at` may: one day.
pub const MAX_FUTURE_MICROS_DEFAULT: i64 = 24 * 3600 * 1_000_000;
/// `[ingest] max_future`, at most: ten years.
pub const MAX_FUTURE_MICROS_MAX: i64 = 3660 * 24 * 3600 * 1_000_000;

/// The pipeline, and the admission limits that go with it (`[ingest]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pipeline {
    stages: Vec<Stage>,
    max_future_micros: i64,
}

impl Default for Pipeline {
    /// prospecting 0.10, qualifying 0.25, quote 0.50, closing 0.80.
    fn default() -> Pipeline {
        let stage = |name: &str, probability_bp| Stage { name: name.to_string(), probability_bp };
        Pipeline {
            stages: vec![
                stage("prospecting", 1000),
                stage("qualifying", 2500),
                stage("quote", 5000),
                stage("closing", 8000),
            ],
            max_future_micros: MAX_FUTURE_MICROS_DEFAULT,
        }
    }
}

impl Pipeline {
    pub fn new(stages: Vec<Stage>) -> Result<Pipeline, ValueError> {
        if stages.is_empty() || stages.len() > STAGES_MAX {
            return Err(ValueError::Pipeline(format!(
                "a pipeline has 1..={STAGES_MAX} stages, this one has {}",
                stages.len()
            )));
        }
        for (i, stage) in stages.iter().enumerate() {
            if stage.name.is_empty() || stage.name.len() > 64 {
                return Err(ValueError::Pipeline(format!("stage {}: a stage name is 1..=64 bytes", i + 1)));
            }
            // Where a stage is named beside the outcomes (an importer's or HubSpot's stage map),
            // `won` and `lost` mean the outcome: a stage of that name could never be reached.
            if ["won", "lost"].iter().any(|outcome| stage.name.trim().eq_ignore_ascii_case(outcome)) {
                return Err(ValueError::Pipeline(format!(
                    "stage `{}`: `won` and `lost` are outcomes, not stages (a deal is won or lost by its own event); name the stage otherwise",
                    stage.name
                )));
            }
            if stages.iter().take(i).any(|s| s.name == stage.name) {
                return Err(ValueError::Pipeline(format!("stage `{}` is listed twice", stage.name)));
            }
            if stage.probability_bp > 10_000 {
                return Err(ValueError::Pipeline(format!(
                    "stage `{}`: probability must be within 0..=1",
                    stage.name
                )));
            }
        }
        Ok(Pipeline { stages, max_future_micros: MAX_FUTURE_MICROS_DEFAULT })
    }

    /// `[ingest] max_future`, in microseconds.
    pub fn max_future_micros(&self) -> i64 {
        self.max_future_micros
    }

    pub fn with_max_future_micros(mut self, micros: i64) -> Result<Pipeline, ValueError> {
        if !(0..=MAX_FUTURE_MICROS_MAX).contains(&micros) {
            return Err(ValueError::Pipeline(format!(
                "max_future must be within 0 and 3660 days, not {micros} µs"
            )));
        }
        self.max_future_micros = micros;
        Ok(self)
    }

    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    pub fn first(&self) -> &str {
        self.stages.first().map(|s| s.name.as_str()).expect("a pipeline has a stage (Pipeline::new)")
    }

    /// The stage's position in the pipeline, if it is one of its stages.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|stage| stage.name == name)
    }

    pub fn names(&self) -> String {
        self.stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// A span as `N` followed by `d`, `h`, `m` or `s`, in microseconds.
pub fn parse_span_micros(text: &str) -> Result<i64, ValueError> {
    let text = text.trim();
    let unit_micros: i64 = match text.chars().last() {
        Some('d') => 24 * 3600 * 1_000_000,
        Some('h') => 3600 * 1_000_000,
        Some('m') => 60 * 1_000_000,
        Some('s') => 1_000_000,
        _ => {
            return Err(ValueError::Time(format!(
                "`{text}` is not a span: a whole number and d, h, m or s (\"1d\", \"36h\")"
            )))
        }
    };
    let count: i64 = text.strip_suffix(['d', 'h', 'm', 's']).unwrap_or(text).parse().map_err(|_| {
        ValueError::Time(format!("`{text}` is not a span: a whole number and d, h, m or s (\"1d\", \"36h\")"))
    })?;
    count
        .checked_mul(unit_micros)
        .filter(|m| *m >= 0)
        .ok_or_else(|| ValueError::Time(format!("`{text}` is out of range")))
}

/// The pipeline of `[pipeline]`, with `[ingest] max_future`; the default pipeline when the file
/// has none.
///
/// ```toml
/// [[pipeline.stages]]
/// name = "discovery"
/// probability = 0.2
/// ```
pub fn pipeline_from_config(config: &Config) -> Result<Pipeline, ConfigError> {
    pipeline_of(config).map_err(|why| config.refused(why))
}

fn pipeline_of(config: &Config) -> Result<Pipeline, String> {
    let pipeline = match &config.pipeline {
        None => Pipeline::default(),
        Some(section) => {
            let mut stages = Vec::with_capacity(section.stages.len());
            for stage in &section.stages {
                let probability_bp = probability_to_bp(&stage.probability)
                    .map_err(|why| format!("pipeline stage `{}`: probability {why}", stage.name))?;
                stages.push(Stage { name: stage.name.clone(), probability_bp });
            }
            Pipeline::new(stages).map_err(|why| why.to_string())?
        }
    };
    match config.ingest.as_ref().and_then(|i| i.max_future.as_deref()) {
        Some(span) => pipeline
            .with_max_future_micros(
                parse_span_micros(span).map_err(|why| format!("[ingest] max_future: {why}"))?,
            )
            .map_err(|why| format!("[ingest] {why}")),
        None => Ok(pipeline),
    }
}

/// `0.25` to 2500 basis points, exactly: the TOML text of the number is parsed as a decimal.
pub fn probability_to_bp(value: &DecimalText) -> Result<u32, ValueError> {
    let text = &value.0;
    let decimal = crate::money::Decimal::parse(text)
        .map_err(|_| ValueError::Pipeline(format!("`{text}` must be within 0..=1")))?;
    if decimal.scale > 4 {
        return Err(ValueError::Pipeline(format!("`{text}` has more than 4 decimal places")));
    }
    let bp = decimal.mantissa * 10u64.pow(4 - decimal.scale);
    if bp > 10_000 {
        return Err(ValueError::Pipeline(format!("`{text}` must be within 0..=1")));
    }
    Ok(bp as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pipeline, or the error's text (for a refusal, its reason without the file).
    fn parse_pipeline_toml(text: &str) -> Result<Pipeline, String> {
        let config = Config::parse(text, "dealledger.toml").map_err(|e| e.to_string())?;
        pipeline_from_config(&config).map_err(|e| e.reason())
    }

    #[test]
    fn a_stage_cannot_take_the_name_of_an_outcome() {
        for name in ["won", "lost", "Won", " LOST "] {
            let e = Pipeline::new(vec![
                Stage { name: "qualifying".into(), probability_bp: 0 },
                Stage { name: name.into(), probability_bp: 0 },
            ])
            .unwrap_err();
            assert!(e.to_string().contains(&format!("`{name}`")), "{e}");
        }
    }

    #[test]
    fn default_pipeline() {
        let p = Pipeline::default();
        assert_eq!(p.names(), "prospecting, qualifying, quote, closing");
        assert_eq!(p.stages()[1].probability_bp, 2500);
        assert_eq!(p.index("quote"), Some(2));
        assert_eq!(p.first(), "prospecting");
    }

    #[test]
    fn toml_pipeline() {
        let p = parse_pipeline_toml(
            "[[pipeline.stages]]\nname = \"discovery\"\nprobability = 0.2\n\
             [[pipeline.stages]]\nname = \"proposal\"\nprobability = 0.65\n",
        )
        .unwrap();
        assert_eq!(p.names(), "discovery, proposal");
        assert_eq!(p.stages()[1].probability_bp, 6500);
        assert_eq!(parse_pipeline_toml("").unwrap(), Pipeline::default());
        // Nothing is ignored: a section the schema does not have is an error.
        assert!(parse_pipeline_toml("[other]\nx = 1\n").unwrap_err().contains("unknown section [other]"));
    }

    #[test]
    fn toml_pipeline_errors() {
        let err = parse_pipeline_toml("[[pipeline.stages]]\nname = \"a\"\nprobability = 1.5\n").unwrap_err();
        assert_eq!(err, "pipeline stage `a`: probability `1.5` must be within 0..=1");
        let err = parse_pipeline_toml(
            "[[pipeline.stages]]\nname = \"a\"\nprobability = 0.1\n[[pipeline.stages]]\nname = \"a\"\nprobability = 0.2\n",
        )
        .unwrap_err();
        assert_eq!(err, "stage `a` is listed twice");
        assert!(parse_pipeline_toml("[pipeline]\nstages = []\n").is_err());
    }
}
