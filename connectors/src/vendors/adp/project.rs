//! ADP worker records → flat rows for `workers` and `work_assignments`:
//! declared fields taken out of their nested places, what is left of the
//! record kept whole in `other` (nothing is dropped).

use serde_json::{Map, Value};

/// Removes and returns the value at `path` inside `v` (`Null` if absent).
fn take(v: &mut Value, path: &[&str]) -> Value {
    let Some((last, parents)) = path.split_last() else {
        return Value::Null;
    };
    let mut at = v;
    for p in parents {
        match at.get_mut(*p) {
            Some(next) => at = next,
            None => return Value::Null,
        }
    }
    at.as_object_mut()
        .and_then(|o| o.remove(*last))
        .unwrap_or(Value::Null)
}

/// Drops the objects and lists that taking fields out left empty, so
/// `other` holds only what was not projected.
fn prune(v: &mut Value) -> bool {
    match v {
        Value::Object(o) => {
            o.retain(|_, child| !prune(child));
            o.is_empty()
        }
        Value::Array(a) => {
            a.retain_mut(|child| !prune(child));
            a.is_empty()
        }
        Value::Null => true,
        _ => false,
    }
}

/// What is left of a record, or NULL when nothing is.
fn rest(mut v: Value) -> Value {
    if prune(&mut v) {
        Value::Null
    } else {
        v
    }
}

/// A calendar date, or `None` when ADP masked it (`"0000-04-12"`,
/// `"XXXX-04-12"` [?]) or sent something else.
pub(super) fn is_plain_date(v: &Value) -> bool {
    v.as_str()
        .and_then(|t| chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
        .is_some_and(|d| chrono::Datelike::year(&d) > 0)
}

/// The assignment's department: the home organisational unit typed
/// `Department` [?], by its short name (else long name, else code).
fn department(units: &Value) -> (Value, Value) {
    let Some(list) = units.as_array() else {
        return (Value::Null, Value::Null);
    };
    let Some(unit) = list.iter().find(|u| {
        u["typeCode"]["codeValue"]
            .as_str()
            .is_some_and(|c| c.eq_ignore_ascii_case("department"))
    }) else {
        return (Value::Null, Value::Null);
    };
    let code = unit["nameCode"]["codeValue"].clone();
    let name = ["shortName", "longName", "codeValue"]
        .iter()
        .map(|k| unit["nameCode"][*k].clone())
        .find(|v| v.is_string())
        .unwrap_or(Value::Null);
    // The units stay whole in `other` (the list holds other unit types).
    (name, code)
}

/// The assignment columns both tables share, taken out of `a`; the
/// assignment's status goes in `status_column` (a worker row has its own
/// `status`).
fn assignment_columns(a: &mut Value, row: &mut Map<String, Value>, status_column: &str) {
    // Read with `get`, never indexed for writing: an assignment that is not
    // an object must not panic the read (its columns stay NULL).
    let (department, department_code) = department(&a["homeOrganizationalUnits"]);
    let reports_to = a
        .get_mut("reportsTo")
        .and_then(Value::as_array_mut)
        .and_then(|l| l.first_mut())
        .map(|m| take(m, &["associateOID"]))
        .unwrap_or(Value::Null);
    for (col, value) in [
        ("job_title", take(a, &["jobTitle"])),
        (
            status_column,
            take(a, &["assignmentStatus", "statusCode", "codeValue"]),
        ),
        ("hire_date", take(a, &["hireDate"])),
        ("department", department),
        ("department_code", department_code),
        ("reports_to", reports_to),
        // The pay rate [?]: ADP's `baseRemuneration` shape is not in the
        // reference; these are the field names its public samples use.
        (
            "annual_rate",
            take(a, &["baseRemuneration", "annualRateAmount", "amountValue"]),
        ),
        (
            "hourly_rate",
            take(a, &["baseRemuneration", "hourlyRateAmount", "amountValue"]),
        ),
        ("rate_currency", rate_currency(a)),
    ] {
        row.insert(col.into(), value);
    }
    // ADP sends some amounts as numbers, some as text [?]: either is kept
    // exactly (DECIMAL parses both).
}

/// The currency of whichever rate is present.
fn rate_currency(a: &mut Value) -> Value {
    for rate in ["annualRateAmount", "hourlyRateAmount"] {
        let c = take(a, &["baseRemuneration", rate, "currencyCode"]);
        if !c.is_null() {
            return c;
        }
    }
    Value::Null
}

/// The assignment to flatten into the worker row: the one marked primary,
/// else the first.
fn primary_index(assignments: &[Value]) -> Option<usize> {
    assignments
        .iter()
        .position(|a| a["primaryIndicator"] == Value::Bool(true))
        .or((!assignments.is_empty()).then_some(0))
}

/// One `workers` row from a worker record. The primary assignment's
/// fields beyond its columns are not repeated here: the assignment's own
/// row in `work_assignments` keeps them in its `other`.
pub(super) fn worker(mut w: Value) -> Map<String, Value> {
    let mut row = Map::new();
    for (col, path) in [
        ("associate_oid", &["associateOID"][..]),
        ("worker_id", &["workerID", "idValue"]),
        ("given_name", &["person", "legalName", "givenName"]),
        ("family_name", &["person", "legalName", "familyName1"]),
        ("formatted_name", &["person", "legalName", "formattedName"]),
        ("original_hire_date", &["workerDates", "originalHireDate"]),
        ("termination_date", &["workerDates", "terminationDate"]),
        ("status", &["workerStatus", "statusCode", "codeValue"]),
    ] {
        row.insert(col.into(), take(&mut w, path));
    }
    // A masked birth date is no date: the column stays NULL and the masked
    // text stays in `other` (the read warns once).
    let birth = &w["person"]["birthDate"];
    let birth = if is_plain_date(birth) {
        take(&mut w, &["person", "birthDate"])
    } else {
        Value::Null
    };
    row.insert("birth_date".into(), birth);
    // The assignments have their own table; the primary one is flattened here.
    let mut assignments = match take(&mut w, &["workAssignments"]) {
        Value::Array(a) => a,
        _ => Vec::new(),
    };
    let mut primary = primary_index(&assignments)
        .map(|i| assignments.swap_remove(i))
        .unwrap_or(Value::Null);
    let item = take(&mut primary, &["itemID"]);
    assignment_columns(&mut primary, &mut row, "assignment_status");
    row.insert("primary_assignment_id".into(), item);
    row.insert("deleted".into(), Value::Bool(false));
    row.insert("other".into(), rest(w));
    row
}

/// The `work_assignments` rows of a worker record.
pub(super) fn assignments(w: &Value) -> Vec<Map<String, Value>> {
    let oid = w["associateOID"].clone();
    let list = w["workAssignments"].as_array().cloned().unwrap_or_default();
    list.into_iter()
        .map(|mut a| {
            let mut row = Map::new();
            row.insert("associate_oid".into(), oid.clone());
            row.insert("item_id".into(), take(&mut a, &["itemID"]));
            row.insert(
                "primary_indicator".into(),
                take(&mut a, &["primaryIndicator"]),
            );
            assignment_columns(&mut a, &mut row, "status");
            // Here only: a worker row's `termination_date` is the worker's.
            row.insert(
                "termination_date".into(),
                take(&mut a, &["terminationDate"]),
            );
            row.insert("deleted".into(), Value::Bool(false));
            row.insert("other".into(), rest(a));
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "associateOID": "G3349PZGBADQY8H7",
            "workerID": {"idValue": "EMP0042", "schemeCode": {"codeValue": "EmployeeID"}},
            "person": {"birthDate": "1985-04-12",
                "legalName": {"givenName": "Ada", "familyName1": "Lovelace", "formattedName": "Lovelace, Ada"},
                "genderCode": {"codeValue": "F"}},
            "workerDates": {"originalHireDate": "2019-03-01"},
            "workerStatus": {"statusCode": {"codeValue": "Active"}},
            "workAssignments": [
                {"itemID": "SEC1", "primaryIndicator": false, "jobTitle": "Trainer", "hireDate": "2021-01-04",
                 "assignmentStatus": {"statusCode": {"codeValue": "T"}}},
                {"itemID": "PRI1", "primaryIndicator": true, "jobTitle": "Agent", "hireDate": "2019-03-01",
                 "assignmentStatus": {"statusCode": {"codeValue": "A", "shortName": "Active"}},
                 "homeOrganizationalUnits": [
                    {"nameCode": {"codeValue": "LOC9", "shortName": "Leeds"}, "typeCode": {"codeValue": "Location"}},
                    {"nameCode": {"codeValue": "CC", "shortName": "Contact Center"}, "typeCode": {"codeValue": "Department"}}],
                 "reportsTo": [{"associateOID": "G3349PZGBADQY8H1", "workerID": {"idValue": "EMP0001"}}],
                 "baseRemuneration": {"annualRateAmount": {"amountValue": "52000.50", "currencyCode": "USD"}}}
            ]
        })
    }

    #[test]
    fn a_worker_row_flattens_the_primary_assignment_and_keeps_the_rest() {
        let row = worker(sample());
        assert_eq!(row["associate_oid"], "G3349PZGBADQY8H7");
        assert_eq!(row["worker_id"], "EMP0042");
        assert_eq!(row["formatted_name"], "Lovelace, Ada");
        assert_eq!(row["birth_date"], "1985-04-12");
        assert_eq!(row["status"], "Active");
        assert_eq!(row["primary_assignment_id"], "PRI1");
        assert_eq!(row["job_title"], "Agent");
        assert_eq!(row["assignment_status"], "A");
        assert_eq!(row["department"], "Contact Center");
        assert_eq!(row["department_code"], "CC");
        assert_eq!(row["reports_to"], "G3349PZGBADQY8H1");
        assert_eq!(row["annual_rate"], "52000.50");
        assert_eq!(row["rate_currency"], "USD");
        assert_eq!(row["termination_date"], Value::Null);
        // Not projected: kept; assignments live in their own table.
        assert_eq!(
            row["other"],
            json!({"workerID": {"schemeCode": {"codeValue": "EmployeeID"}},
                   "person": {"genderCode": {"codeValue": "F"}}})
        );
    }

    #[test]
    fn a_masked_birth_date_is_null_and_kept_in_other() {
        let mut w = sample();
        w["person"]["birthDate"] = json!("0000-04-12");
        let row = worker(w);
        assert_eq!(row["birth_date"], Value::Null);
        assert_eq!(row["other"]["person"]["birthDate"], "0000-04-12");
        assert!(!is_plain_date(&json!("XXXX-04-12")));
    }

    #[test]
    fn every_assignment_is_a_row_with_its_own_status() {
        let rows = assignments(&sample());
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (
                &rows[0]["item_id"],
                &rows[0]["primary_indicator"],
                &rows[0]["status"]
            ),
            (&json!("SEC1"), &json!(false), &json!("T"))
        );
        assert_eq!(rows[0]["department"], Value::Null);
        assert_eq!(rows[1]["associate_oid"], "G3349PZGBADQY8H7");
        assert_eq!(rows[1]["department"], "Contact Center");
        assert_eq!(
            rows[1]["other"]["homeOrganizationalUnits"][0]["typeCode"]["codeValue"], "Location",
            "the other unit types stay"
        );
        // A worker without assignments: a row with NULL assignment columns.
        let row = worker(json!({"associateOID": "X1"}));
        assert_eq!(row["job_title"], Value::Null);
        assert_eq!(row["other"], Value::Null);
        assert!(assignments(&json!({"associateOID": "X1"})).is_empty());
    }
}
