//! `[model]`: how sources map into the unified model's views — a built-in
//! preset per source, or a user's own SELECT per view.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::model::Located;
use crate::validate::Checker;

/// Views a source maps into. `people` is derived from the three `*_people`
/// views and is not mapped directly.
pub const MAPPED_VIEWS: &[&str] = &[
    "ats_people",
    "hires",
    "payroll_people",
    "contact_center_people",
    "placements",
    "invoices",
    "payments",
    "payroll_lines",
    "agent_daily",
    "evaluations",
    "contacts",
];

/// Built-in mappings over the vendor connectors' tables (the preset is
/// named after the source `type`): preset name and the views it fills.
pub const MODEL_PRESETS: &[(&str, &[&str])] = &[
    ("greenhouse", &["ats_people", "hires", "placements"]),
    ("quickbooks", &["invoices", "payments"]),
    ("gusto", &["payroll_people", "payroll_lines"]),
    (
        "genesys",
        &[
            "contact_center_people",
            "agent_daily",
            "evaluations",
            "contacts",
        ],
    ),
    (
        "zendesk_talk",
        &["contact_center_people", "agent_daily", "contacts"],
    ),
    ("xero", &["invoices", "payments"]),
    ("lever", &["ats_people", "hires", "placements"]),
    ("adp", &["payroll_people"]),
    ("amazon_connect", &["agent_daily", "contacts"]),
    ("salesforce", &["placements"]),
];

/// Options a preset takes (`ats = { preset = "greenhouse", client_field =
/// "client" }`): the custom fields a company defined for itself, by their
/// `name_key` (Greenhouse) or name (QuickBooks), and their defaults.
pub const PRESET_OPTIONS: &[(&str, &str, &str)] = &[
    ("greenhouse", "client_field", "client_company"),
    ("greenhouse", "placement_fee_field", "placement_fee"),
    ("quickbooks", "placement_id_field", "Placement ID"),
    // Lever: offer form fields, by their `identifier`.
    ("lever", "client_field", "client_company"),
    ("lever", "placement_fee_field", "placement_fee"),
];

/// The validated `[model]` section.
#[derive(Debug, Clone, Default)]
pub struct ModelConfig {
    /// Sources read through a built-in preset.
    pub presets: Vec<PresetUse>,
    /// Views mapped by the user's SQL; these win over presets.
    pub views: Vec<ViewMapping>,
}

#[derive(Debug, Clone)]
pub struct PresetUse {
    pub source: String,
    pub preset: String,
    /// Every option of the preset ([`PRESET_OPTIONS`]), set or defaulted.
    pub options: BTreeMap<String, String>,
    pub at: Located,
}

impl PresetUse {
    pub fn option(&self, name: &str) -> &str {
        self.options.get(name).map_or("", String::as_str)
    }
}

#[derive(Debug, Clone)]
pub struct ViewMapping {
    pub view: String,
    pub sql: String,
    pub at: Located,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModel {
    presets: Option<BTreeMap<String, Spanned<toml::Value>>>,
    views: Option<BTreeMap<String, Spanned<String>>>,
}

impl Checker<'_> {
    pub(crate) fn model(&mut self, raw: Option<RawModel>, sources: &[String]) -> ModelConfig {
        let mut out = ModelConfig::default();
        let Some(raw) = raw else { return out };
        for (source, value) in raw.presets.into_iter().flatten() {
            let key = format!("model.presets.{source}");
            let span = value.span();
            let mut given: BTreeMap<String, Spanned<String>> = BTreeMap::new();
            let preset = match value.get_ref() {
                toml::Value::String(p) => p.clone(),
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        match (k.as_str(), v) {
                            ("preset", _) => {}
                            (k, toml::Value::String(v)) => {
                                given.insert(k.to_string(), Spanned::new(span.clone(), v.clone()));
                            }
                            (k, _) => {
                                self.error(span.clone(), &format!("{key}.{k}"), "must be a string");
                            }
                        }
                    }
                    match t.get("preset").and_then(|p| p.as_str()) {
                        Some(p) => p.to_string(),
                        None => {
                            self.error(span.clone(), &key, "missing key `preset`")
                                .hint("e.g. ats = { preset = \"greenhouse\", client_field = \"client_company\" }");
                            continue;
                        }
                    }
                }
                _ => {
                    self.error(
                        span.clone(),
                        &key,
                        "must be a preset name or a table with `preset`",
                    );
                    continue;
                }
            };
            if !sources.contains(&source) {
                self.error(span.clone(), &key, format!("no source named `{source}`"))
                    .hint(format!("configured sources: {}", sources.join(", ")));
                continue;
            }
            if !MODEL_PRESETS.iter().any(|(p, _)| *p == preset) {
                let names: Vec<&str> = MODEL_PRESETS.iter().map(|(p, _)| *p).collect();
                self.error(span.clone(), &key, format!("unknown preset `{preset}`"))
                    .hint(format!(
                        "built-in presets: {}; or map the views yourself under [model.views]",
                        names.join(", ")
                    ));
                continue;
            }
            let known: Vec<&(&str, &str, &str)> = PRESET_OPTIONS
                .iter()
                .filter(|(p, _, _)| *p == preset)
                .collect();
            let mut options = BTreeMap::new();
            for (_, name, default) in &known {
                options.insert(name.to_string(), default.to_string());
            }
            for (name, v) in given {
                if !known.iter().any(|(_, n, _)| *n == name) {
                    let names: Vec<&str> = known.iter().map(|(_, n, _)| *n).collect();
                    self.error(
                        v.span(),
                        &format!("{key}.{name}"),
                        format!("preset `{preset}` has no option `{name}`"),
                    )
                    .hint(if names.is_empty() {
                        "it takes none".to_string()
                    } else {
                        format!("its options: {}", names.join(", "))
                    });
                    continue;
                }
                let ok = !v.get_ref().is_empty()
                    && v.get_ref()
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == ' ' || c == '-');
                if !ok {
                    self.error(
                        v.span(),
                        &format!("{key}.{name}"),
                        "must be a field name (letters, digits, `_`, `-`, spaces)",
                    );
                    continue;
                }
                options.insert(name, v.into_inner());
            }
            out.presets.push(PresetUse {
                source,
                preset,
                options,
                at: self.located(span, &key),
            });
        }
        for (view, sql) in raw.views.into_iter().flatten() {
            let key = format!("model.views.{view}");
            if !MAPPED_VIEWS.contains(&view.as_str()) {
                self.error(
                    sql.span(),
                    &key,
                    format!("`{view}` is not a view of the unified model"),
                )
                .hint(format!("one of: {}", MAPPED_VIEWS.join(", ")));
                continue;
            }
            if sql.get_ref().trim().is_empty() {
                self.error(sql.span(), &key, "must be a SELECT statement");
                continue;
            }
            let text = sql.get_ref().trim().trim_end_matches(';').to_string();
            out.views.push(ViewMapping {
                view,
                sql: text,
                at: self.located(sql.span(), &key),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    fn parse(presets: &str) -> Result<crate::Config, crate::ConfigErrors> {
        let text = format!(
            "[warehouse]\npath = \"w.duckdb\"\n[sources.ats]\ntype = \"rest\"\nbase_url = \"https://a.example\"\n\
             [[sources.ats.streams]]\nname = \"x\"\npath = \"/x\"\nprimary_key = \"id\"\n[model]\npresets = {{ {presets} }}\n"
        );
        crate::parse_offline(&text, std::path::Path::new("/c/conveyor.toml"))
    }

    #[test]
    fn model_preset_options_default_and_are_checked() {
        let c = parse("ats = \"greenhouse\"").unwrap();
        assert_eq!(c.model.presets[0].option("client_field"), "client_company");
        let c =
            parse("ats = { preset = \"greenhouse\", placement_fee_field = \"fee_usd\" }").unwrap();
        assert_eq!(c.model.presets[0].option("placement_fee_field"), "fee_usd");
        assert_eq!(c.model.presets[0].option("client_field"), "client_company");
        let e = parse("ats = { preset = \"greenhouse\", fee = \"x\" }")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("has no option `fee`") && e.contains("placement_fee_field"),
            "{e}"
        );
        let e = parse("ats = { preset = \"greenhouse\", client_field = \"a'b\" }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be a field name"), "{e}");
        let e = parse("ats = { client_field = \"c\" }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing key `preset`"), "{e}");
    }
}
