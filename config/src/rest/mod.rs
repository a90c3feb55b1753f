//! The declarative REST source (`type = "rest"`) in one place: its raw
//! form, its validated model, and the checks between them.
//!
//! `raw.rs` mirrors the TOML (auth and pagination as `type`-tagged enums,
//! one variant struct per type with exactly its keys), `tagged.rs` reads
//! such a table keeping spans, `check.rs` validates into `model.rs`.

mod check;
mod model;
pub(crate) mod raw;
pub(crate) mod tagged;

pub use model::*;

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn check(text: &str) -> Result<crate::Config, crate::ConfigErrors> {
        crate::parse(text, Path::new("/etc/conveyor/conveyor.toml"))
    }

    fn errors(auth_and_pagination: &str) -> Vec<String> {
        let text = format!(
            "[warehouse]\npath = \"wh.duckdb\"\n\n[sources.crm]\ntype = \"rest\"\nbase_url = \"https://api.example.com\"\n{auth_and_pagination}\n[[sources.crm.streams]]\nname = \"deals\"\npath = \"/deals\"\nprimary_key = \"id\"\n"
        );
        match crate::parse_offline(&text, Path::new("c.toml")) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn each_auth_type_takes_exactly_its_own_keys() {
        assert_eq!(errors("auth = { type = \"none\" }"), Vec::<String>::new());
        // `none` used to check only four stray keys; now every one is caught.
        assert_eq!(
            errors("auth = { type = \"none\", username = \"u\", scope = \"s\" }"),
            [
                "c.toml:7:36: sources.crm.auth.username: not used by type = \"none\"",
                "c.toml:7:49: sources.crm.auth.scope: not used by type = \"none\"",
            ]
        );
        assert_eq!(
            errors("auth = { type = \"bearer\", token = \"env:T\", tokn = \"x\" }"),
            ["c.toml:7:44: sources.crm.auth.tokn: unknown field `tokn` (hint: type = \"bearer\" takes: type, token)"]
        );
    }

    #[test]
    fn auth_and_pagination_types_are_located_and_hinted() {
        assert_eq!(
            errors("auth = { type = \"oauth\" }"),
            ["c.toml:7:17: sources.crm.auth.type: unknown auth type `oauth` (hint: one of: none, api_key, basic, bearer, oauth2_client_credentials, oauth2_refresh_token)"]
        );
        assert_eq!(
            errors("pagination = { next_path = \"next\" }"),
            ["c.toml:7:14: sources.crm.pagination.type: missing key `type` (hint: one of: none, next_url, link_header, cursor, offset, page)"]
        );
        assert_eq!(
            errors("pagination = { type = \"cursor\", cursor_param = \"c\" }"),
            ["c.toml:7:23: sources.crm.pagination.cursor_path: missing key `cursor_path` (required by type = \"cursor\")"]
        );
    }

    #[test]
    fn an_ill_typed_value_is_located_at_its_key() {
        assert_eq!(
            errors("pagination = { type = \"offset\", limit = \"ten\", max_pages = 0 }"),
            [
                "c.toml:7:41: sources.crm.pagination.limit: invalid type: string \"ten\", expected u64",
                "c.toml:7:60: sources.crm.pagination.max_pages: must be at least 1 (hint: it bounds one read's paging; leave it out for the default)",
            ]
        );
    }

    #[test]
    fn page_limits_come_from_the_nearest_place_that_sets_them() {
        let text = r#"[warehouse]
path = "wh.duckdb"

[sources.api]
type = "rest"
base_url = "https://api.example.com"
pagination = { type = "next_url", max_pages = 500, max_empty_pages = 7 }
[[sources.api.streams]]
name = "inherits"
path = "/a"
primary_key = "id"
[[sources.api.streams]]
name = "own_key"
path = "/b"
primary_key = "id"
max_pages = 9
[[sources.api.streams]]
name = "own_table"
path = "/c"
primary_key = "id"
pagination = { type = "cursor", cursor_path = "next", cursor_param = "c", max_empty_pages = 2 }

[sources.plain]
type = "rest"
base_url = "https://api.example.com"
[[sources.plain.streams]]
name = "defaults"
path = "/d"
primary_key = "id"
"#;
        let c = check(text).unwrap();
        let limits = |source: &str, stream: &str| {
            let crate::ConnectorConfig::Rest(r) = &c.source(source).unwrap().connector else {
                panic!("a rest source")
            };
            let s = r.streams.iter().find(|s| s.name == stream).unwrap();
            (s.page_limits.max_pages, s.page_limits.max_empty_pages)
        };
        assert_eq!(limits("api", "inherits"), (500, 7));
        assert_eq!(limits("api", "own_key"), (9, 7));
        // A stream's own pagination table replaces the style, while a
        // limit it leaves out is still the source's.
        assert_eq!(limits("api", "own_table"), (500, 2));
        assert_eq!(
            limits("plain", "defaults"),
            (
                super::PageLimits::DEFAULT_MAX_PAGES,
                super::PageLimits::DEFAULT_MAX_EMPTY_PAGES
            )
        );
    }

    #[test]
    fn a_zero_page_limit_is_located() {
        let text = r#"[warehouse]
path = "wh.duckdb"

[sources.api]
type = "rest"
base_url = "https://api.example.com"
pagination = { type = "next_url", max_empty_pages = 0 }
[[sources.api.streams]]
name = "items"
path = "/a"
primary_key = "id"
max_pages = 0
"#;
        let errs = check(text).unwrap_err();
        let lines: Vec<String> = errs.0.iter().map(|d| d.to_string()).collect();
        crate::diagnostics::assert_prefixes(
            &lines,
            &[
                "/etc/conveyor/conveyor.toml:7:53: sources.api.pagination.max_empty_pages: must be at least 1",
                "/etc/conveyor/conveyor.toml:12:13: sources.api.streams[0].max_pages: must be at least 1",
            ],
        );
    }
}
