//! The interpreter on small tables: every operator and function the
//! subset documents, with the results Kusto gives, and the errors.

use std::sync::Arc;

use super::value::{TICKS_PER_DAY, TICKS_PER_SEC, format_datetime, parse_datetime};
use super::*;

struct Mem {
    name: &'static str,
    cols: Vec<Column>,
    rows: Vec<Vec<Value<'static>>>,
}

impl<'a> Table<'a> for Mem {
    fn name(&self) -> &str {
        self.name
    }
    fn columns(&self) -> &[Column] {
        &self.cols
    }
    fn scan(&self, visit: &mut dyn FnMut(&dyn RowAccess<'a>) -> bool) {
        for r in &self.rows {
            if !visit(r) {
                return;
            }
        }
    }
}

const NOW: &str = "2026-12-01T12:00:00Z";

fn now() -> i64 {
    parse_datetime(NOW).unwrap()
}

fn days_ago(d: i64) -> Value<'static> {
    Value::DateTime(now() - d * TICKS_PER_DAY)
}

/// Devices reported several times: d1 three times, d2 twice, d3 once (40
/// days ago).
fn devices() -> Mem {
    let row = |t: Value<'static>,
               id: &str,
               name: &str,
               os: &str,
               build: Option<i64>,
               exp: &str,
               users: &str| {
        vec![
            t,
            Value::owned(id),
            Value::owned(name),
            Value::owned(os),
            build.map(Value::Long).unwrap_or(Value::Null),
            Value::owned(exp),
            Value::owned(users),
            Value::Bool(id != "d3"),
        ]
    };
    Mem {
        name: "DeviceInfo",
        cols: vec![
            Column::new("Timestamp", Type::DateTime),
            Column::new("DeviceId", Type::String),
            Column::new("DeviceName", Type::String),
            Column::new("OSPlatform", Type::String),
            Column::new("OSBuild", Type::Long),
            Column::new("ExposureLevel", Type::String),
            Column::new("LoggedOnUsers", Type::String),
            Column::new("IsAzureADJoined", Type::Bool),
        ],
        rows: vec![
            row(
                days_ago(1),
                "d1",
                "pc-1.contoso.local",
                "Windows11",
                Some(22631),
                "High",
                r#"[{"UserName":"ava","DomainName":"CONTOSO","Sid":"S-1-5-21-1"}]"#,
            ),
            row(
                days_ago(9),
                "d1",
                "pc-1.contoso.local",
                "Windows11",
                Some(22621),
                "Medium",
                "[]",
            ),
            row(
                days_ago(20),
                "d1",
                "pc-1.contoso.local",
                "Windows10",
                Some(19045),
                "Medium",
                "[]",
            ),
            row(
                days_ago(2),
                "d2",
                "MAC-2",
                "macOS",
                None,
                "Low",
                r#"[{"UserName":"bo","DomainName":"CONTOSO","Sid":"S-1-5-21-2"},{"UserName":"administrator","DomainName":"WORKGROUP","Sid":"S-1-5-21-500"}]"#,
            ),
            row(days_ago(5), "d2", "MAC-2", "macOS", None, "None", "[]"),
            row(
                days_ago(40),
                "d3",
                "srv-abc",
                "Linux",
                Some(5),
                "medium",
                "[]",
            ),
        ],
    }
}

fn ctx() -> Context {
    Context {
        now: now(),
        window: None,
        max_rows: 100_000,
    }
}

fn q(query: &str) -> Output<'static> {
    let t: &'static Mem = Box::leak(Box::new(devices()));
    match run(query, &[t], &ctx()) {
        Ok(o) => o,
        Err(e) => panic!("{query}: {e}"),
    }
}

fn err(query: &str) -> KqlError {
    let t = devices();
    match run(query, &[&t], &ctx()) {
        Ok(o) => panic!("{query} ran: {:?}", o.columns),
        Err(e) => e,
    }
}

fn names(o: &Output) -> Vec<String> {
    o.columns.iter().map(|c| c.name.clone()).collect()
}

fn col<'o>(o: &'o Output<'static>, name: &str) -> Vec<&'o Value<'static>> {
    let i = o.columns.iter().position(|c| c.name == name).unwrap();
    o.rows.iter().map(|r| &r[i]).collect()
}

fn strs(o: &Output<'static>, name: &str) -> Vec<String> {
    col(o, name).into_iter().map(|v| v.to_text()).collect()
}

#[test]
fn a_table_alone_returns_every_row_and_column() {
    let o = q("DeviceInfo");
    assert_eq!(o.rows.len(), 6);
    assert_eq!(o.columns.len(), 8);
    assert_eq!(o.columns[0].ty.schema_name(), "DateTime");
    assert_eq!(o.work, 6);
}

#[test]
fn where_with_comparisons_and_logic() {
    assert_eq!(q("DeviceInfo | where DeviceId == 'd1'").rows.len(), 3);
    assert_eq!(q("DeviceInfo | where DeviceId != \"d1\"").rows.len(), 3);
    assert_eq!(
        q("DeviceInfo | where ExposureLevel =~ 'MEDIUM'").rows.len(),
        3
    );
    assert_eq!(
        q("DeviceInfo | where ExposureLevel !~ 'medium'").rows.len(),
        3
    );
    assert_eq!(
        q("DeviceInfo | where ExposureLevel == 'medium'").rows.len(),
        1
    );
    assert_eq!(q("DeviceInfo | where OSBuild > 19045").rows.len(), 2);
    assert_eq!(q("DeviceInfo | where OSBuild >= 19045").rows.len(), 3);
    assert_eq!(
        q("DeviceInfo | where OSBuild < 22000 and OSBuild <= 19045")
            .rows
            .len(),
        2
    );
    assert_eq!(
        q("DeviceInfo | where DeviceId == 'd2' or (OSPlatform == 'Linux' and not(IsAzureADJoined))").rows.len(),
        3
    );
    // Null never compares: the macOS rows have no build.
    assert_eq!(q("DeviceInfo | where OSBuild != 5").rows.len(), 3);
}

#[test]
fn in_and_not_in() {
    assert_eq!(
        q("DeviceInfo | where DeviceId in ('d1', 'd3')").rows.len(),
        4
    );
    assert_eq!(
        q("DeviceInfo | where DeviceId !in ('d1', 'd3')").rows.len(),
        2
    );
    assert_eq!(q("DeviceInfo | where DeviceId in ('D1')").rows.len(), 0);
    assert_eq!(q("DeviceInfo | where DeviceId in~ ('D1')").rows.len(), 3);
    assert_eq!(q("DeviceInfo | where OSBuild in (22631, 5)").rows.len(), 2);
    assert_eq!(
        q("DeviceInfo | where DeviceId in (dynamic(['d2']))")
            .rows
            .len(),
        2
    );
}

#[test]
fn string_operators() {
    assert_eq!(
        q("DeviceInfo | where DeviceName has 'contoso'").rows.len(),
        3
    );
    assert_eq!(q("DeviceInfo | where DeviceName has 'cont'").rows.len(), 0);
    assert_eq!(
        q("DeviceInfo | where DeviceName contains 'CONT'")
            .rows
            .len(),
        3
    );
    assert_eq!(
        q("DeviceInfo | where DeviceName contains_cs 'CONT'")
            .rows
            .len(),
        0
    );
    assert_eq!(
        q("DeviceInfo | where DeviceName startswith 'pc-'")
            .rows
            .len(),
        3
    );
    assert_eq!(
        q("DeviceInfo | where DeviceName !startswith 'pc-'")
            .rows
            .len(),
        3
    );
    assert_eq!(
        q("DeviceInfo | where DeviceName endswith '.local'")
            .rows
            .len(),
        3
    );
    assert_eq!(q("DeviceInfo | where DeviceName !has 'mac'").rows.len(), 4);
    assert_eq!(
        q("DeviceInfo | where LoggedOnUsers has 'administrator'")
            .rows
            .len(),
        1
    );
    assert_eq!(
        q("DeviceInfo | where DeviceName hasprefix 'cont'")
            .rows
            .len(),
        3
    );
}

#[test]
fn empty_and_time_functions() {
    assert_eq!(q("DeviceInfo | where isempty(OSBuild)").rows.len(), 2);
    assert_eq!(q("DeviceInfo | where isnotempty(OSBuild)").rows.len(), 4);
    assert_eq!(q("DeviceInfo | where isnull(OSBuild)").rows.len(), 2);
    assert_eq!(q("DeviceInfo | where Timestamp > ago(30d)").rows.len(), 5);
    assert_eq!(q("DeviceInfo | where Timestamp > ago(7d)").rows.len(), 3);
    assert_eq!(q("DeviceInfo | where Timestamp > now(-48h)").rows.len(), 1);
    assert_eq!(
        q("DeviceInfo | where Timestamp > ago(2d) - 12h").rows.len(),
        2
    );
    assert_eq!(
        q("DeviceInfo | where Timestamp between (datetime(2026-11-28) .. datetime(2026-11-30T13:00:00Z))").rows.len(),
        2
    );
    assert_eq!(
        q("DeviceInfo | where Timestamp < datetime(2026-11-01)")
            .rows
            .len(),
        1
    );
    let o = q(
        "DeviceInfo | where DeviceId == 'd3' | extend Age = now() - Timestamp, Day = bin(Timestamp, 1d) | project Age, Day, Days = Age / 1d",
    );
    assert_eq!(o.rows[0][0], Value::TimeSpan(40 * TICKS_PER_DAY));
    let Value::DateTime(day) = o.rows[0][1] else {
        panic!("bin() of a datetime is a datetime")
    };
    assert_eq!(format_datetime(day), "2026-10-22T00:00:00.0000000Z");
    assert_eq!(o.rows[0][2], Value::Real(40.0));
}

#[test]
fn project_extend_and_renames() {
    let o = q(
        "DeviceInfo | where DeviceId == 'd2' | project Id = DeviceId, DeviceName, Platform = tolower(OSPlatform)",
    );
    assert_eq!(names(&o), ["Id", "DeviceName", "Platform"]);
    assert_eq!(strs(&o, "Platform"), ["macos", "macos"]);
    let o = q(
        "DeviceInfo | take 1 | extend Label = strcat(DeviceId, '/', DeviceName), OSBuild = tostring(OSBuild), N = 7 % 4 + 2 * 3 - 1",
    );
    assert_eq!(o.columns.len(), 10);
    assert_eq!(strs(&o, "Label"), ["d1/pc-1.contoso.local"]);
    // extend of an existing name replaces it in place.
    assert_eq!(o.columns[4].name, "OSBuild");
    assert_eq!(o.columns[4].ty, Type::String);
    assert_eq!(col(&o, "N"), [&Value::Long(8)]);
    let o = q("DeviceInfo | project-away LoggedOnUsers, OSBuild | take 1");
    assert_eq!(o.columns.len(), 6);
    let o = q("DeviceInfo | project-keep DeviceId, Timestamp | take 1");
    assert_eq!(names(&o), ["Timestamp", "DeviceId"]);
    let o = q("DeviceInfo | project-rename Host = DeviceName | project Host | take 1");
    assert_eq!(strs(&o, "Host"), ["pc-1.contoso.local"]);
    let o = q(
        "DeviceInfo | take 1 | project toupper(DeviceId), strlen(DeviceName), iff(OSBuild > 20000, 'new', 'old'), substring(DeviceName, 0, 4)",
    );
    assert_eq!(names(&o), ["Column1", "Column2", "Column3", "Column4"]);
    assert_eq!(o.rows[0][0].to_text(), "D1");
    assert_eq!(o.rows[0][1], Value::Long(18));
    assert_eq!(o.rows[0][2].to_text(), "new");
    assert_eq!(o.rows[0][3].to_text(), "pc-1");
}

#[test]
fn dynamic_values() {
    let o = q(
        "DeviceInfo | where DeviceId == 'd2' | take 1 | extend U = parse_json(LoggedOnUsers) | project First = tostring(U[0].UserName), N = array_length(U), Last = tostring(U[-1]['DomainName']), Direct = tostring(LoggedOnUsers[1].Sid)",
    );
    assert_eq!(strs(&o, "First"), ["bo"]);
    assert_eq!(col(&o, "N"), [&Value::Long(2)]);
    assert_eq!(strs(&o, "Last"), ["WORKGROUP"]);
    assert_eq!(strs(&o, "Direct"), ["S-1-5-21-500"]);
    let o = q("DeviceInfo | take 1 | project P = split(DeviceName, '.')");
    assert_eq!(
        o.rows[0][0].to_json(),
        serde_json::json!(["pc-1", "contoso", "local"])
    );
}

#[test]
fn summarize_arg_max_star_takes_the_latest_row_per_device() {
    let o = q(
        "DeviceInfo | where Timestamp > ago(30d) | summarize arg_max(Timestamp, *) by DeviceId | order by DeviceId asc",
    );
    assert_eq!(o.rows.len(), 2);
    let n = names(&o);
    assert_eq!(&n[..3], ["DeviceId", "Timestamp", "DeviceName"]);
    assert_eq!(n.len(), 8, "DeviceId is not repeated: {n:?}");
    assert_eq!(strs(&o, "ExposureLevel"), ["High", "Low"]);
    assert_eq!(col(&o, "OSBuild"), [&Value::Long(22631), &Value::Null]);
    assert_eq!(col(&o, "Timestamp")[0], &days_ago(1));
}

#[test]
fn summarize_arg_max_with_columns_and_repeated_names() {
    let o = q(
        "DeviceInfo | summarize arg_max(Timestamp, DeviceId, OSBuild) by DeviceId | sort by DeviceId asc",
    );
    assert_eq!(names(&o), ["DeviceId", "Timestamp", "DeviceId1", "OSBuild"]);
    assert_eq!(strs(&o, "DeviceId1"), ["d1", "d2", "d3"]);
    let o = q(
        "DeviceInfo | summarize arg_min(Timestamp, ExposureLevel) by DeviceId | sort by DeviceId asc",
    );
    assert_eq!(strs(&o, "ExposureLevel"), ["Medium", "None", "medium"]);
}

#[test]
fn summarize_aggregations() {
    let o = q(
        "DeviceInfo | summarize count(), Rows = count(*), Devices = dcount(DeviceId), Builds = make_set(OSBuild), Platforms = make_list(OSPlatform, 2), Newest = max(Timestamp), Oldest = min(Timestamp), Total = sum(OSBuild), Mean = avg(OSBuild), AnyId = take_any(DeviceId), Joined = countif(IsAzureADJoined)",
    );
    assert_eq!(o.rows.len(), 1);
    let r = &o.rows[0];
    assert_eq!(names(&o)[0], "count_");
    assert_eq!(r[0], Value::Long(6));
    assert_eq!(r[1], Value::Long(6));
    assert_eq!(r[2], Value::Long(3));
    assert_eq!(r[3].to_json(), serde_json::json!([22631, 22621, 19045, 5]));
    assert_eq!(
        r[4].to_json(),
        serde_json::json!(["Windows11", "Windows11"])
    );
    assert_eq!(r[5], days_ago(1));
    assert_eq!(r[6], days_ago(40));
    assert_eq!(r[7], Value::Long(22631 + 22621 + 19045 + 5));
    assert_eq!(r[8], Value::Real((22631 + 22621 + 19045 + 5) as f64 / 4.0));
    assert_eq!(r[9].to_text(), "d1");
    assert_eq!(r[10], Value::Long(5));
    assert_eq!(o.columns[3].ty.schema_name(), "Object");
    let o = q(
        "DeviceInfo | summarize dcount(OSBuild), max(OSBuild) by OSPlatform | order by OSPlatform asc",
    );
    assert_eq!(names(&o), ["OSPlatform", "dcount_OSBuild", "max_OSBuild"]);
    assert_eq!(
        strs(&o, "OSPlatform"),
        ["Linux", "Windows10", "Windows11", "macOS"]
    );
    // No rows: one row of zero without `by`, none with it.
    let o = q("DeviceInfo | where DeviceId == 'none' | summarize count()");
    assert_eq!(o.rows, vec![vec![Value::Long(0)]]);
    assert!(
        q("DeviceInfo | where DeviceId == 'none' | summarize count() by DeviceId")
            .rows
            .is_empty()
    );
}

#[test]
fn summarize_by_expressions_names_them() {
    let o = q(
        "DeviceInfo | summarize Rows = count() by Part = hash(DeviceId, 2), bin(Timestamp, 7d) | count",
    );
    assert!(o.rows[0][0].as_i64().unwrap() >= 3);
    let o = q(
        "DeviceInfo | summarize by DeviceId, Exposure = tolower(ExposureLevel) | summarize Rows = count() by DeviceId | order by DeviceId asc",
    );
    assert_eq!(names(&o), ["DeviceId", "Rows"]);
    assert_eq!(
        col(&o, "Rows"),
        [&Value::Long(2), &Value::Long(2), &Value::Long(1)]
    );
    let o = q("DeviceInfo | summarize count() by bin(Timestamp, 30d)");
    assert_eq!(names(&o), ["Timestamp", "count_"]);
}

#[test]
fn hash_partitions_are_disjoint_and_cover_everything() {
    let all = q("DeviceInfo | distinct DeviceId").rows.len();
    let mut seen = std::collections::HashSet::new();
    for k in 0..4 {
        let o = q(&format!(
            "DeviceInfo | summarize arg_max(Timestamp, *) by DeviceId | where hash(DeviceId, 4) == {k} | project DeviceId"
        ));
        for r in o.rows {
            assert!(seen.insert(r[0].to_text()), "in two partitions");
        }
    }
    assert_eq!(seen.len(), all);
    let o = q("DeviceInfo | take 1 | project H = hash('World'), M = hash('World', 100)");
    assert_eq!(
        o.rows[0],
        vec![Value::Long(1_846_988_464_401_551_951), Value::Long(51)]
    );
}

#[test]
fn order_take_top_count_distinct() {
    let o = q("DeviceInfo | order by Timestamp");
    assert_eq!(o.rows[0][0], days_ago(1), "descending by default");
    let o = q("DeviceInfo | sort by OSBuild asc, DeviceId desc");
    assert!(o.rows[0][4].is_null(), "nulls first ascending");
    let o = q("DeviceInfo | sort by OSBuild desc");
    assert!(o.rows[5][4].is_null(), "nulls last descending");
    assert_eq!(q("DeviceInfo | take 2").rows.len(), 2);
    assert_eq!(q("DeviceInfo | limit 0").rows.len(), 0);
    let o = q("DeviceInfo | top 2 by OSBuild asc");
    assert!(
        col(&o, "OSBuild").iter().all(|v| v.is_null()),
        "nulls first ascending"
    );
    let o = q("DeviceInfo | top 2 by OSBuild asc nulls last");
    assert_eq!(col(&o, "OSBuild"), [&Value::Long(5), &Value::Long(19045)]);
    let o = q("DeviceInfo | count");
    assert_eq!(names(&o), ["Count"]);
    assert_eq!(o.rows[0][0], Value::Long(6));
    assert_eq!(
        q("DeviceInfo | distinct DeviceId, OSPlatform").rows.len(),
        4
    );
    assert_eq!(
        q("DeviceInfo | project DeviceId | distinct *").rows.len(),
        3
    );
}

#[test]
fn a_sort_with_a_limit_keeps_the_right_rows() {
    // More rows than the sort's batch, in an order that moves the cut.
    let rows: Vec<Vec<Value<'static>>> = (0..5000i64)
        .map(|i| vec![Value::Long((i * 7919) % 5000), Value::Long(i)])
        .collect();
    let t = Mem {
        name: "T",
        cols: vec![Column::new("K", Type::Long), Column::new("I", Type::Long)],
        rows,
    };
    let o = run("T | order by K asc | take 5", &[&t], &ctx()).unwrap();
    let ks: Vec<i64> = o.rows.iter().map(|r| r[0].as_i64().unwrap()).collect();
    assert_eq!(ks, [0, 1, 2, 3, 4]);
    let o = run("T | top 3 by K", &[&t], &ctx()).unwrap();
    let ks: Vec<i64> = o.rows.iter().map(|r| r[0].as_i64().unwrap()).collect();
    assert_eq!(ks, [4999, 4998, 4997]);
    let o = run("T | sort by K desc | take 10 | take 2", &[&t], &ctx()).unwrap();
    assert_eq!(o.rows.len(), 2);
    assert_eq!(o.rows[0][0], Value::Long(4999));
}

#[test]
fn take_stops_the_scan() {
    let o = q("DeviceInfo | take 2");
    assert_eq!(o.work, 2);
    let o = q("DeviceInfo | where DeviceId == 'd2' | take 1");
    assert_eq!(o.work, 4);
}

#[test]
fn the_row_cap_truncates_silently_at_the_first_rows() {
    let t = devices();
    let c = Context {
        max_rows: 4,
        ..ctx()
    };
    let o = run("DeviceInfo", &[&t], &c).unwrap();
    assert_eq!(o.rows.len(), 4);
    assert!(o.truncated);
    assert_eq!(o.work, 5, "scanning stops one row past the cap");
    let o = run("DeviceInfo | sort by Timestamp asc", &[&t], &c).unwrap();
    assert_eq!(o.rows.len(), 4);
    assert_eq!(o.rows[0][0], days_ago(40));
    assert!(o.truncated);
    let o = run("DeviceInfo | take 4", &[&t], &c).unwrap();
    assert!(!o.truncated);
}

#[test]
fn the_window_hides_rows_outside_it() {
    let t = devices();
    let c = Context {
        window: Some((now() - 30 * TICKS_PER_DAY, now())),
        ..ctx()
    };
    let o = run(
        "DeviceInfo | summarize arg_max(Timestamp, *) by DeviceId",
        &[&t],
        &c,
    )
    .unwrap();
    assert_eq!(o.rows.len(), 2, "d3 was last seen 40 days ago");
    let o = run("DeviceInfo | where Timestamp > ago(90d) | count", &[&t], &c).unwrap();
    assert_eq!(o.rows[0][0], Value::Long(5));
}

#[test]
fn filters_move_ahead_of_grouping_and_projection() {
    let t = devices();
    let plan = |s: &str| {
        let toks = lex::lex(s).unwrap();
        let ast = parse::parse(&toks).unwrap();
        let p = compile::compile(&ast, &[&t], &ctx()).unwrap();
        p.stages
            .iter()
            .map(|s| {
                format!("{:?}", s.stage)
                    .split('(')
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        plan(
            "DeviceInfo | summarize arg_max(Timestamp, *) by DeviceId | where hash(DeviceId, 4) == 1 | project DeviceId"
        ),
        ["Filter", "Summarize { by: [Col", "Map"]
    );
    // Not over an aggregate, and not ahead of take.
    assert_eq!(
        plan("DeviceInfo | summarize n = count() by DeviceId | where n > 1"),
        ["Summarize { by: [Col", "Filter"]
    );
    assert_eq!(
        plan("DeviceInfo | take 3 | where OSBuild > 1"),
        ["Take", "Filter"]
    );
    assert_eq!(
        plan("DeviceInfo | project D = DeviceId, B = OSBuild | where B > 1"),
        ["Filter", "Map"]
    );
    // Same answers either way.
    let a = q("DeviceInfo | project D = DeviceId, B = OSBuild | where B > 19000 | count");
    assert_eq!(a.rows[0][0], Value::Long(3));
}

#[test]
fn semantic_errors_name_what_is_unknown() {
    let e = err("DeviceInfo | where Nope == 1");
    assert_eq!(
        e.message,
        "'where' operator: Failed to resolve scalar expression named 'Nope'. Fix semantic errors in your query."
    );
    assert_eq!(e.kind, ErrorKind::Semantic);
    let e = err("DeviceEvents | where X == 1");
    assert_eq!(
        e.message,
        "'where' operator: Failed to resolve table or column expression named 'DeviceEvents'. Fix semantic errors in your query."
    );
    let e = err("DeviceEvents");
    assert!(
        e.message
            .starts_with("Failed to resolve table or column expression named 'DeviceEvents'")
    );
    let e = err("DeviceInfo | project DeviceId, CvssVector");
    assert!(
        e.message
            .contains("'project' operator: Failed to resolve scalar expression named 'CvssVector'")
    );
    let e = err("DeviceInfo | where frob(DeviceId)");
    assert!(e.message.contains("Unknown function: 'frob'"), "{e}");
    let e = err("DeviceInfo | summarize x = frob(DeviceId)");
    assert!(e.message.contains("Unknown function: 'frob'"), "{e}");
    let e = err("DeviceInfo | summarize x = tolower(DeviceId)");
    assert!(e.message.contains("not an aggregation function"), "{e}");
    let e = err("DeviceInfo | where count() > 1");
    assert!(
        e.message.contains("cannot be invoked in current context"),
        "{e}"
    );
    let e = err("DeviceInfo | where DeviceId == 1");
    assert!(
        e.message
            .contains("Cannot compare values of types string and long"),
        "{e}"
    );
    let e = err("DeviceInfo | where DeviceId");
    assert!(e.message.contains("must be of type bool"), "{e}");
    let e = err("DeviceInfo | extend x = DeviceId + 1");
    assert!(
        e.message
            .contains("'+' is not defined for types string and long"),
        "{e}"
    );
    let e = err("DeviceInfo | where hash(DeviceId, 'x') == 1");
    assert!(e.message.contains("hash"), "{e}");
    let e = err("DeviceInfo | take -1");
    assert!(e.message.contains("non-negative"), "{e}");
    let e = err("DeviceInfo | project-away Nope");
    assert!(e.message.contains("'project-away' operator"), "{e}");
    let e = err("DeviceInfo | where ago(1) > Timestamp");
    assert!(e.message.contains("'ago'"), "{e}");
}

#[test]
fn syntax_and_unsupported_errors() {
    let e = err("DeviceInfo | summarise count()");
    assert_eq!(
        e.message,
        "Query could not be parsed at 'summarise' on line [1,14]"
    );
    assert_eq!(e.kind, ErrorKind::Syntax);
    let e = err("DeviceInfo\n| where (DeviceId == 'a'");
    assert_eq!(
        e.message,
        "Query could not be parsed at '<EOF>' on line [2,25]"
    );
    let e = err("DeviceInfo | mv-expand LoggedOnUsers");
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert!(
        e.message
            .starts_with("'mv-expand' operator: the simulated tenant does not run")
    );
    let e = err("let x = 1; DeviceInfo");
    assert_eq!(e.kind, ErrorKind::Unsupported);
    let e = err("DeviceInfo | where DeviceId == 'a' | ");
    assert_eq!(e.kind, ErrorKind::Syntax);
}

#[test]
fn the_clients_queries_run() {
    for query in [
        "DeviceInfo | where Timestamp > ago(30d) | summarize arg_max(Timestamp, *) by DeviceId | where hash(DeviceId, 4) == 1 | project DeviceId, DeviceName, OSPlatform, OSBuild, IsAzureADJoined, LoggedOnUsers, Timestamp",
        "DeviceInfo | where Timestamp > ago(30d) | summarize arg_max(Timestamp, DeviceId) by DeviceId | summarize Rows = count() by Part = hash(DeviceId, 256)",
        "DeviceInfo | where hash(DeviceId, 256) in (3, 17, 42) | summarize Software = make_set(strcat(OSPlatform, \" \", DeviceName)), Builds = make_set(OSBuild) by DeviceId, ExposureLevel",
    ] {
        q(query);
    }
}

#[test]
fn dcount_is_exact_for_small_sets_and_an_estimate_above() {
    assert_eq!(eval::approx_dcount(1000), 1000);
    let n = 50_000;
    let e = eval::approx_dcount(n);
    assert!((e - n as i64).abs() <= 800, "{e}");
    assert_eq!(eval::approx_dcount(n), e, "deterministic");
}

#[test]
fn values_render_as_the_service_writes_them() {
    let mut out = Vec::new();
    Value::DateTime(parse_datetime("2024-03-26T09:39:50.7688641Z").unwrap()).write_json(&mut out);
    out.push(b' ');
    Value::Real(9.8).write_json(&mut out);
    out.push(b' ');
    Value::Real(7.0).write_json(&mut out);
    out.push(b' ');
    Value::owned("a\"b").write_json(&mut out);
    out.push(b' ');
    Value::Dynamic(Arc::new(serde_json::json!(["x"]))).write_json(&mut out);
    out.push(b' ');
    Value::TimeSpan(90 * TICKS_PER_SEC).write_json(&mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#""2024-03-26T09:39:50.7688641Z" 9.8 7.0 "a\"b" ["x"] "00:01:30""#
    );
}
