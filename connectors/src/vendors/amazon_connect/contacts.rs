//! `contacts`: the SearchContacts query over an initiation-time range and
//! each contact summary as one flat row.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::epoch_instant;

/// Contacts a page may hold (the API's largest `MaxResults`).
pub const MAX_RESULTS: u64 = 100;

/// The search for contacts initiated in `[start, end]`.
pub fn query(instance_id: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Value {
    json!({
        "InstanceId": instance_id,
        "TimeRange": {"Type": "INITIATION_TIMESTAMP", "StartTime": start.timestamp(), "EndTime": end.timestamp()},
        "MaxResults": MAX_RESULTS,
    })
}

/// One contact summary as a row; fields not mapped stay in `other`.
pub fn row(mut c: Map<String, Value>) -> Map<String, Value> {
    let mut row = Map::new();
    let mut take = |k: &str| c.remove(k).unwrap_or(Value::Null);
    row.insert("contact_id".into(), take("Id"));
    row.insert("contact_arn".into(), take("Arn"));
    row.insert("channel".into(), take("Channel"));
    row.insert("initiation_method".into(), take("InitiationMethod"));
    row.insert(
        "initiation_at".into(),
        epoch_instant(&take("InitiationTimestamp")),
    );
    row.insert(
        "disconnect_at".into(),
        epoch_instant(&take("DisconnectTimestamp")),
    );
    row.insert(
        "scheduled_at".into(),
        epoch_instant(&take("ScheduledTimestamp")),
    );
    let agent = take("AgentInfo");
    row.insert("agent_id".into(), agent["Id"].clone());
    row.insert(
        "connected_to_agent_at".into(),
        epoch_instant(&agent["ConnectedToAgentTimestamp"]),
    );
    let queue = take("QueueInfo");
    row.insert("queue_id".into(), queue["Id"].clone());
    row.insert(
        "enqueue_at".into(),
        epoch_instant(&queue["EnqueueTimestamp"]),
    );
    row.insert("initial_contact_id".into(), take("InitialContactId"));
    row.insert("previous_contact_id".into(), take("PreviousContactId"));
    row.insert("name".into(), take("Name"));
    row.insert("tags".into(), take("Tags"));
    row.insert(
        "other".into(),
        if c.is_empty() {
            Value::Null
        } else {
            Value::Object(c)
        },
    );
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contact_summary_becomes_a_row_with_utc_instants() {
        let c = json!({"Id": "c-1", "Arn": "arn:aws:connect:us-east-1:123456789012:instance/i/contact/c-1",
            "Channel": "VOICE", "InitiationMethod": "INBOUND", "InitiationTimestamp": 1717200001.5,
            "DisconnectTimestamp": 1717200601, "AgentInfo": {"Id": "a-1", "ConnectedToAgentTimestamp": 1717200031},
            "QueueInfo": {"Id": "q-1", "EnqueueTimestamp": 1717200011}, "SegmentAttributes": {"x": {}}});
        let row = row(c.as_object().unwrap().clone());
        assert_eq!(row["contact_id"], "c-1");
        assert_eq!(row["initiation_at"], "2024-06-01T00:00:01.500Z");
        assert_eq!(row["disconnect_at"], "2024-06-01T00:10:01.000Z");
        assert_eq!(row["connected_to_agent_at"], "2024-06-01T00:00:31.000Z");
        assert_eq!(row["agent_id"], "a-1");
        assert_eq!(row["queue_id"], "q-1");
        assert_eq!(row["scheduled_at"], Value::Null);
        assert_eq!(row["other"], json!({"SegmentAttributes": {"x": {}}}));
        let q = query(
            "i-1",
            DateTime::from_timestamp(0, 0).unwrap(),
            DateTime::from_timestamp(60, 0).unwrap(),
        );
        assert_eq!(
            q["TimeRange"],
            json!({"Type": "INITIATION_TIMESTAMP", "StartTime": 0, "EndTime": 60})
        );
    }
}
