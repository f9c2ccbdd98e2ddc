//! The details pane's content: the fields that matter for each kind first,
//! formatted for a person (dates as local time and age, booleans, enum values
//! in words), then every source property.

use chrono::{DateTime, FixedOffset, Utc};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use serde_json::{Map, Value};

use crate::model::{EntityId, EntityKind, TenantGraph};

use super::theme;

/// Width of the label column.
const LABEL: usize = 27;

/// The fields shown first, per kind.
fn important(kind: EntityKind) -> &'static [&'static str] {
    use EntityKind as K;
    match kind {
        K::AzureAccount => &[
            "id",
            "displayName",
            "tenantType",
            "countryLetterCode",
            "createdDateTime",
        ],
        K::AzureUser => &[
            "userPrincipalName",
            "mail",
            "jobTitle",
            "department",
            "accountEnabled",
            "userType",
            "officeLocation",
            "createdDateTime",
        ],
        K::AzureUserGroup => &[
            "description",
            "mail",
            "securityEnabled",
            "mailEnabled",
            "groupTypes",
            "membershipRule",
            "createdDateTime",
        ],
        K::AzureServicePrincipal => &[
            "appId",
            "servicePrincipalType",
            "accountEnabled",
            "appOwnerOrganizationId",
        ],
        k if k.is_device() => &[
            "deviceName",
            "operatingSystem",
            "osVersion",
            "model",
            "manufacturer",
            "complianceState",
            "userDisplayName",
            "userPrincipalName",
            "lastSyncDateTime",
            "enrolledDateTime",
            "isEncrypted",
            "managedDeviceOwnerType",
            "serialNumber",
            "azureADDeviceId",
        ],
        K::IntuneNoncomplianceFinding => &[
            "state",
            "failingSettingNames",
            "deviceDisplayName",
            "userPrincipalName",
            "lastReportedDateTime",
            "complianceGracePeriodExpirationDateTime",
        ],
        K::IntuneCompliancePolicy | K::IntuneDeviceConfiguration => &[
            "@odata.type",
            "description",
            "version",
            "createdDateTime",
            "lastModifiedDateTime",
        ],
        K::IntuneDetectedApplication => &["version", "publisher", "platform", "deviceCount"],
        K::IntuneManagedApplication => &[
            "@odata.type",
            "publisher",
            "publishingState",
            "createdDateTime",
        ],
        K::DefenderMachine => &[
            "computerDnsName",
            "osPlatform",
            "version",
            "riskScore",
            "exposureLevel",
            "healthStatus",
            "lastSeen",
            "lastIpAddress",
            "aadDeviceId",
        ],
        K::DefenderVulnerability => &[
            "cveId",
            "severity",
            "productVendor",
            "productName",
            "productVersion",
            "fixingKbId",
        ],
        K::Cve => &[
            "severity",
            "cvssV3",
            "publicExploit",
            "exposedMachines",
            "publishedOn",
            "description",
        ],
        K::DefenderLogonUser => &[
            "accountName",
            "accountDomain",
            "logonTypes",
            "isDomainAdmin",
        ],
        K::AzureSubscription => &["subscriptionId", "state", "tenantId"],
        K::AzureRoleAssignment | K::AzureRoleDefinition => &["properties"],
        _ => &["type", "location", "kind", "sku", "tags"],
    }
}

/// "camelCaseName" → "Camel case name"; "azureADDeviceId" → "Azure AD device id".
pub fn humanize(field: &str) -> String {
    let chars: Vec<char> = field.trim_start_matches('@').chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        let boundary = c.is_uppercase()
            && (prev.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit())
                || (prev.is_some_and(char::is_uppercase) && next.is_some_and(char::is_lowercase)));
        if boundary && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let words: Vec<String> = words
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            let acronym = w.len() > 1 && w.chars().all(|c| c.is_uppercase() || c.is_ascii_digit());
            if acronym {
                w
            } else if i == 0 {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or_default()
            } else {
                w.to_lowercase()
            }
        })
        .collect();
    words.join(" ")
}

/// How long ago, in words ("3 days ago", "in 2 hours").
pub fn age(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds();
    let (n, future) = if secs < 0 {
        (-secs, true)
    } else {
        (secs, false)
    };
    let (v, unit) = match n {
        0..=59 => {
            return if future {
                "in a moment".into()
            } else {
                "just now".into()
            };
        }
        60..=3599 => (n / 60, "minute"),
        3600..=86_399 => (n / 3600, "hour"),
        86_400..=2_591_999 => (n / 86_400, "day"),
        2_592_000..=31_535_999 => (n / 2_592_000, "month"),
        _ => (n / 31_536_000, "year"),
    };
    let plural = if v == 1 { "" } else { "s" };
    if future {
        format!("in {v} {unit}{plural}")
    } else {
        format!("{v} {unit}{plural} ago")
    }
}

/// A value for a person. Dates become local time with their age; the
/// sentinels for "never" and "no end" say so.
pub fn format_value(v: &Value, now: DateTime<Utc>, tz: FixedOffset) -> String {
    match v {
        Value::Null => "—".into(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.is_empty() => "—".into(),
        Value::String(s) => {
            if s.starts_with("0001-01-01") {
                return "never".into();
            }
            if s.starts_with("9999-12-31") {
                return "no end".into();
            }
            if s.len() >= 20 && s.as_bytes().get(4) == Some(&b'-') && s.contains('T') {
                if let Ok(d) = DateTime::parse_from_rfc3339(s) {
                    let d = d.with_timezone(&Utc);
                    return format!(
                        "{} ({})",
                        d.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
                        age(d, now)
                    );
                }
            }
            s.clone()
        }
        Value::Array(a) if a.is_empty() => "—".into(),
        Value::Array(a) if a.iter().all(|x| x.is_string() || x.is_number()) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| x.to_string())
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

fn field_line(
    name: &str,
    v: &Value,
    now: DateTime<Utc>,
    tz: FixedOffset,
    style: Style,
) -> Line<'static> {
    // Labels are cut to fit the column, so a value never runs into them.
    let label: String = humanize(name).chars().take(LABEL - 1).collect();
    Line::from(vec![
        Span::styled(format!("{label:<LABEL$}"), style),
        Span::raw(format_value(v, now, tz)),
    ])
}

/// When a machine's logon users were read: Defender allows 100 such calls a
/// minute, so most fetches carry most machines' over from earlier ones.
fn logons_read(at: Option<i64>, now: DateTime<Utc>, tz: FixedOffset) -> Line<'static> {
    let label = Span::styled(format!("{:<LABEL$}", "Logon users read"), theme::key());
    match at.and_then(|s| DateTime::<Utc>::from_timestamp(s, 0)) {
        Some(t) => Line::from(vec![
            label,
            Span::raw(format!(
                "{} ({})",
                t.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
                age(t, now)
            )),
        ]),
        None => Line::from(vec![
            label,
            Span::styled("not yet (a later fetch reads them)", theme::dim()),
        ]),
    }
}

/// Every line of the details pane for an entity.
pub fn lines(
    g: &TenantGraph,
    id: EntityId,
    now: DateTime<Utc>,
    tz: FixedOffset,
) -> Vec<Line<'static>> {
    let e = g.entity(id);
    // The same rule as export: no secret is shown, at any depth.
    let props: Map<String, Value> = crate::base::redact::redacted(e.properties());
    let mut out = vec![
        Line::from(vec![
            Span::styled(
                format!("{} ", super::theme::kind_icon(e.kind)),
                theme::kind_style(e.kind),
            ),
            Span::styled(e.display_name.to_string(), theme::title()),
        ]),
        Line::from(Span::styled(
            format!("{} · {}", e.kind.label(), e.kind.type_name()),
            theme::dim(),
        )),
        Line::from(vec![
            Span::styled(format!("{:<LABEL$}", "Key"), theme::key()),
            Span::raw(e.key.to_string()),
        ]),
    ];
    let first = important(e.kind);
    for f in first {
        if let Some(v) = props.get(*f) {
            out.push(field_line(f, v, now, tz, theme::key()));
        }
    }
    if e.kind == EntityKind::DefenderMachine {
        out.push(logons_read(g.read_at(id), now, tz));
    }
    out.push(Line::from(""));
    out.push(Line::from(Span::styled(
        "All properties",
        theme::category(),
    )));
    let mut rest: Vec<(&String, &Value)> = props
        .iter()
        .filter(|(k, _)| !first.contains(&k.as_str()))
        .collect();
    rest.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in rest {
        out.push(field_line(k, v, now, tz, theme::dim()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn values_read_like_words() {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
            .single()
            .expect("date");
        let utc = FixedOffset::east_opt(0).expect("utc");
        let format_value = |v: &Value, now| format_value(v, now, utc);
        assert_eq!(format_value(&json!(true), now), "yes");
        assert_eq!(format_value(&json!(null), now), "—");
        assert_eq!(format_value(&json!("0001-01-01T00:00:00Z"), now), "never");
        assert_eq!(
            format_value(&json!("9999-12-31T23:59:59.9999999Z"), now),
            "no end"
        );
        assert!(format_value(&json!("2026-10-29T00:00:00Z"), now).ends_with("(3 days ago)"));
        assert_eq!(format_value(&json!(["a", "b"]), now), "a, b");
        assert_eq!(humanize("lastSyncDateTime"), "Last sync date time");
        assert_eq!(humanize("@odata.type"), "Odata.type");
        assert_eq!(humanize("azureADDeviceId"), "Azure AD device id");
        assert_eq!(humanize("cvssV3"), "Cvss V3");
        assert_eq!(humanize("osVersion"), "Os version");
        assert_eq!(age(now - chrono::Duration::hours(1), now), "1 hour ago");
        assert_eq!(age(now + chrono::Duration::days(2), now), "in 2 days");
    }
}
