//! `agent_metrics`: the GetMetricDataV2 query (one agent per result, one
//! result per day) and its answer as one flat row per agent per interval.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::epoch_instant;

/// Results a page may hold (the API's largest `MaxResults`).
pub const MAX_RESULTS: u64 = 100;

/// The answer-time threshold of the service level, in seconds.
pub const SERVICE_LEVEL_SECONDS: f64 = 60.0;

/// The metrics asked for and the column each fills. All but
/// SERVICE_LEVEL are averages in seconds or a count; SERVICE_LEVEL is the
/// percentage answered within [`SERVICE_LEVEL_SECONDS`].
pub const METRICS: &[(&str, &str)] = &[
    ("CONTACTS_HANDLED", "contacts_handled"),
    ("AVG_HANDLE_TIME", "avg_handle_time_secs"),
    (
        "AVG_AFTER_CONTACT_WORK_TIME",
        "avg_after_contact_work_time_secs",
    ),
    ("AVG_HOLD_TIME", "avg_hold_time_secs"),
    ("AVG_TALK_TIME", "avg_talk_time_secs"),
    ("SERVICE_LEVEL", "service_level_60s_pct"),
];

/// The query for `[start, end)` in day intervals, grouped by agent, for
/// the given queues (the API requires a filter).
pub fn query(
    instance_arn: &str,
    queues: &[String],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Value {
    let metrics: Vec<Value> = METRICS
        .iter()
        .map(|(name, _)| match *name {
            "SERVICE_LEVEL" => json!({"Name": name, "Threshold": [{"Comparison": "LT", "ThresholdValue": SERVICE_LEVEL_SECONDS}]}),
            _ => json!({"Name": name}),
        })
        .collect();
    json!({
        "ResourceArn": instance_arn,
        "StartTime": start.timestamp(),
        "EndTime": end.timestamp(),
        "Interval": {"IntervalPeriod": "DAY", "TimeZone": "UTC"},
        "Filters": [{"FilterKey": "QUEUE", "FilterValues": queues}],
        "Groupings": ["AGENT"],
        "Metrics": metrics,
        "MaxResults": MAX_RESULTS,
    })
}

/// The agent's id from its dimension: the last path segment of an agent
/// ARN (`arn:aws:connect:…:instance/<id>/agent/<agent id>`), or the value
/// itself when it is already an id.
pub fn agent_id(dimension: &str) -> &str {
    match dimension.rsplit_once("/agent/") {
        Some((_, id)) => id,
        None => dimension,
    }
}

/// One result as a row: the agent, the interval as UTC instants, each
/// metric a number or NULL (the API gives none when it would divide by
/// zero); anything unexpected is kept in `other`.
pub fn row(mut result: Map<String, Value>) -> Map<String, Value> {
    let mut row = Map::new();
    let mut dimensions = result.remove("Dimensions").unwrap_or(Value::Null);
    let agent = dimensions
        .as_object_mut()
        .and_then(|d| d.remove("AGENT"))
        .unwrap_or(Value::Null);
    row.insert(
        "agent_id".into(),
        match agent.as_str() {
            Some(a) => Value::String(agent_id(a).to_string()),
            None => Value::Null,
        },
    );
    row.insert("agent_arn".into(), agent.clone());
    let interval = result.remove("MetricInterval").unwrap_or(Value::Null);
    row.insert(
        "interval_start".into(),
        epoch_instant(&interval["StartTime"]),
    );
    row.insert("interval_end".into(), epoch_instant(&interval["EndTime"]));
    row.insert("interval".into(), interval["Interval"].clone());
    for (_, column) in METRICS {
        row.insert((*column).into(), Value::Null);
    }
    let mut unknown = Vec::new();
    if let Some(Value::Array(collections)) = result.remove("Collections") {
        for c in collections {
            let name = c["Metric"]["Name"].as_str().unwrap_or_default();
            match METRICS.iter().find(|(n, _)| *n == name) {
                // Absent and null both mean "no value".
                Some((_, column)) => {
                    row.insert(
                        (*column).into(),
                        c.get("Value").cloned().unwrap_or(Value::Null),
                    );
                }
                None => unknown.push(c),
            }
        }
    }
    if !unknown.is_empty() {
        result.insert("Collections".into(), Value::Array(unknown));
    }
    if dimensions.as_object().is_some_and(|d| !d.is_empty()) {
        result.insert("Dimensions".into(), dimensions);
    }
    row.insert(
        "other".into(),
        if result.is_empty() {
            Value::Null
        } else {
            Value::Object(result)
        },
    );
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_the_filter_grouping_interval_and_metrics() {
        let start = crate::json_arrow::parse_timestamp("2024-06-01T00:00:00Z").unwrap();
        let end = crate::json_arrow::parse_timestamp("2024-06-02T00:00:00Z").unwrap();
        let q = query(
            "arn:aws:connect:us-east-1:123456789012:instance/i",
            &["q1".into()],
            start,
            end,
        );
        assert_eq!(q["StartTime"], 1717200000);
        assert_eq!(q["EndTime"], 1717286400);
        assert_eq!(q["Interval"]["IntervalPeriod"], "DAY");
        assert_eq!(
            q["Filters"][0],
            json!({"FilterKey": "QUEUE", "FilterValues": ["q1"]})
        );
        assert_eq!(q["Groupings"], json!(["AGENT"]));
        assert_eq!(q["Metrics"][5]["Threshold"][0]["ThresholdValue"], 60.0);
        assert_eq!(q["MaxResults"], 100);
    }

    #[test]
    fn a_result_becomes_a_row_with_null_for_a_missing_value() {
        let r = json!({"Dimensions": {"AGENT": "arn:aws:connect:us-east-1:123456789012:instance/i/agent/a-1"},
            "MetricInterval": {"Interval": "DAY", "StartTime": 1717200000, "EndTime": 1717286400},
            "Collections": [{"Metric": {"Name": "CONTACTS_HANDLED"}, "Value": 14.0},
                {"Metric": {"Name": "AVG_HOLD_TIME"}, "Value": null},
                {"Metric": {"Name": "AVG_TALK_TIME"}},
                {"Metric": {"Name": "AGENT_OCCUPANCY"}, "Value": 0.5}]});
        let row = row(r.as_object().unwrap().clone());
        assert_eq!(row["agent_id"], "a-1");
        assert_eq!(row["interval_start"], "2024-06-01T00:00:00.000Z");
        assert_eq!(row["interval_end"], "2024-06-02T00:00:00.000Z");
        assert_eq!(row["contacts_handled"], 14.0);
        assert_eq!(row["avg_hold_time_secs"], Value::Null);
        assert_eq!(row["avg_talk_time_secs"], Value::Null);
        assert_eq!(
            row["other"]["Collections"][0]["Metric"]["Name"],
            "AGENT_OCCUPANCY"
        );
        assert_eq!(agent_id("a-2"), "a-2");
    }
}
