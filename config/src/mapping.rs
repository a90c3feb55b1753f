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
    "payroll_people",
    "contact_center_people",
    "placements",
    "invoices",
    "payments",
    "payroll_lines",
    "agent_daily",
    "evaluations",
];

/// Built-in mappings over the vendor connectors' tables (the preset is
/// named after the source `type`): preset name and the views it fills.
pub const MODEL_PRESETS: &[(&str, &[&str])] = &[
    ("greenhouse", &["ats_people", "placements"]),
    ("quickbooks", &["invoices", "payments"]),
    ("gusto", &["payroll_people", "payroll_lines"]),
    (
        "genesys",
        &["contact_center_people", "agent_daily", "evaluations"],
    ),
    ("zendesk_talk", &["agent_daily"]),
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
    pub at: Located,
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
    presets: Option<BTreeMap<String, Spanned<String>>>,
    views: Option<BTreeMap<String, Spanned<String>>>,
}

impl Checker<'_> {
    pub(crate) fn model(&mut self, raw: Option<RawModel>, sources: &[String]) -> ModelConfig {
        let mut out = ModelConfig::default();
        let Some(raw) = raw else { return out };
        for (source, preset) in raw.presets.into_iter().flatten() {
            let key = format!("model.presets.{source}");
            if !sources.contains(&source) {
                self.error(preset.span(), &key, format!("no source named `{source}`"))
                    .hint(format!("configured sources: {}", sources.join(", ")));
                continue;
            }
            if !MODEL_PRESETS.iter().any(|(p, _)| p == preset.get_ref()) {
                let names: Vec<&str> = MODEL_PRESETS.iter().map(|(p, _)| *p).collect();
                self.error(
                    preset.span(),
                    &key,
                    format!("unknown preset `{}`", preset.get_ref()),
                )
                .hint(format!(
                    "built-in presets: {}; or map the views yourself under [model.views]",
                    names.join(", ")
                ));
                continue;
            }
            out.presets.push(PresetUse {
                source,
                preset: preset.get_ref().clone(),
                at: self.located(preset.span(), &key),
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
