//! OData paging as the real services do it: `$top`, `$select`, `$filter`,
//! opaque `$skiptoken`s, absolute next links.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::*;

impl Sim {
    /// An OData collection page. Graph style pages with an opaque
    /// `$skiptoken`; Defender style with `$skip`. A `$filter` of the form
    /// `field eq 'value'` is applied; any other is ignored.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn odata_page(
        &self,
        svc: Service,
        path: &str,
        q: &Query,
        total: usize,
        default_top: usize,
        max_top: usize,
        render: &dyn Fn(usize) -> Value,
    ) -> Reply {
        let filter: Vec<(String, Value)> = q
            .get("$filter")
            .and_then(parse_eq_filter)
            .map(|(f, v)| (f, json!(v)))
            .into_iter()
            .collect();
        self.odata_page_filtered(
            svc,
            path,
            q,
            total,
            default_top,
            max_top,
            render,
            filter,
            None,
        )
    }

    /// `odata_page` with the filter decided by the caller: records whose
    /// fields equal every `(field, value)` given (strings compared
    /// case-insensitively, as Graph does); every record when none is.
    /// Without `$select`, records keep only `defaults` when given (filters
    /// still see every property, as the service's do).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn odata_page_filtered(
        &self,
        svc: Service,
        path: &str,
        q: &Query,
        total: usize,
        default_top: usize,
        max_top: usize,
        render: &dyn Fn(usize) -> Value,
        filter: Vec<(String, Value)>,
        defaults: Option<&[&str]>,
    ) -> Reply {
        let top = match q.get("$top") {
            None => default_top,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=max_top).contains(&n) => n,
                _ => {
                    return match svc {
                        Service::Defender => self.error(svc, StatusCode::BAD_REQUEST, "InvalidRequestBody", &format!("Invalid $top value '{v}'. $top must be between 1 and {max_top}.")),
                        _ => self.error(svc, StatusCode::BAD_REQUEST, "Request_UnsupportedQuery", &format!("Invalid page size specified: '{v}'. Must be between 1 and {max_top} inclusive.")),
                    };
                }
            },
        };
        let offset = if svc == Service::Defender {
            q.get("$skip").and_then(|s| s.parse().ok()).unwrap_or(0)
        } else {
            match q.get("$skiptoken") {
                None => 0,
                Some(tok) => match decode_skiptoken(tok) {
                    Some(n) => n,
                    None => {
                        return self.error(
                            svc,
                            StatusCode::BAD_REQUEST,
                            "Request_BadRequest",
                            "The specified page token value has expired or is invalid.",
                        );
                    }
                },
            }
        };
        let select: Option<Vec<String>> = q
            .get("$select")
            .map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
        let mut items = Vec::new();
        let mut next_offset = None;
        if !filter.is_empty() {
            // Filtering: walk everything, page over the matches.
            let mut matched = 0;
            for i in 0..total {
                let v = render(i);
                let matches = filter.iter().all(|(field, value)| {
                    let have = &v[field.as_str()];
                    match (have.as_str(), value.as_str()) {
                        (Some(h), Some(w)) => h.eq_ignore_ascii_case(w),
                        _ => have == value,
                    }
                });
                if matches {
                    if matched >= offset && items.len() < top {
                        items.push(v);
                    } else if items.len() == top {
                        next_offset = Some(offset + top);
                        break;
                    }
                    matched += 1;
                }
            }
        } else {
            let end = (offset + top).min(total);
            for i in offset.min(total)..end {
                items.push(render(i));
            }
            if end < total {
                next_offset = Some(end);
            }
        }
        let prefix = match svc {
            Service::Defender => "/defender",
            _ => "/graph",
        };
        if next_offset.is_none() && self.loops(&format!("{prefix}{path}")) {
            // Back to a page already served: the second, or the first.
            next_offset = Some(if total > top { top } else { 0 });
        }
        let select = select.or_else(|| defaults.map(|d| d.iter().map(|f| f.to_string()).collect()));
        if let Some(sel) = &select {
            for v in items.iter_mut() {
                if let Some(o) = v.as_object_mut() {
                    o.retain(|k, _| {
                        k == "id"
                            || k == "@odata.type"
                            || sel.iter().any(|s| s.eq_ignore_ascii_case(k))
                    });
                }
            }
        }
        let context = match svc {
            Service::Defender => format!(
                "{}/defender/api/$metadata#{}",
                self.base,
                path.rsplit('/').next().unwrap_or("")
            ),
            _ => format!(
                "{}/graph/v1.0/$metadata#{}",
                self.base,
                path.trim_start_matches('/')
                    .split('/')
                    .next_back()
                    .unwrap_or("")
            ),
        };
        self.spoil(&mut items);
        let mut out = json!({"@odata.context": context, "value": items});
        if let Some(next) = next_offset {
            let mut params: Vec<(String, String)> =
                q.0.iter()
                    .filter(|(k, _)| {
                        !k.eq_ignore_ascii_case("$skiptoken") && !k.eq_ignore_ascii_case("$skip")
                    })
                    .cloned()
                    .collect();
            if q.get("$top").is_none() && svc == Service::Graph {
                params.push(("$top".into(), top.to_string()));
            }
            match svc {
                Service::Defender => params.push(("$skip".into(), next.to_string())),
                _ => params.push(("$skiptoken".into(), encode_skiptoken(next))),
            }
            out["@odata.nextLink"] = json!(format!(
                "{}{prefix}{path}?{}",
                self.base,
                encode_query(&params)
            ));
        }
        Reply::ok(out)
    }
}

/// Opaque page tokens (clients must pass them back unchanged).
pub(super) fn encode_skiptoken(offset: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("tenx-page:{offset}"))
}

pub(super) fn decode_skiptoken(tok: &str) -> Option<usize> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tok)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("tenx-page:")?
        .parse()
        .ok()
}

/// `field eq 'value'`, the one OData filter form the listings need.
pub(super) fn parse_eq_filter(f: &str) -> Option<(String, String)> {
    let (field, rest) = f.trim().split_once(" eq ")?;
    let value = rest.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    Some((field.trim().to_string(), value.to_string()))
}

pub(super) fn encode_query(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| {
            let v: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skiptokens_round_trip_and_reject_garbage() {
        assert_eq!(decode_skiptoken(&encode_skiptoken(1234)), Some(1234));
        assert_eq!(decode_skiptoken("nonsense"), None);
    }

    #[test]
    fn eq_filters_parse() {
        assert_eq!(
            parse_eq_filter("machineId eq 'abc'"),
            Some(("machineId".into(), "abc".into()))
        );
        assert_eq!(parse_eq_filter("machineId gt 3"), None);
    }
}
