//! What may leave tenx: every request is one of these, and each is a read
//! (a GET, or a POST that only reads). Below the client and its pacing,
//! which both classify requests by it.

use serde_json::{Value, json};

use crate::auth::endpoints::Api;

/// What may leave tenx. Nothing else can be expressed.
#[derive(Debug, Clone)]
pub enum Outgoing<'a> {
    /// GET of an absolute URL on one API's host.
    Get { api: Api, url: &'a str },
    /// Graph JSON batch: relative GET paths, at most 20.
    GraphBatch {
        version: &'a str,
        paths: &'a [String],
    },
    /// An Azure Resource Graph query (a read expressed as POST).
    ResourceGraph { body: &'a Value },
    /// A Microsoft Graph security advanced hunting query (KQL, which only
    /// reads; a read expressed as POST): `{"Query": …}`.
    Hunting { query: &'a str },
    /// A page of an Intune report (a read expressed as POST): one of the
    /// reports named in `IntuneReport`, with a query for its body.
    IntuneReport {
        report: crate::fetch::report::IntuneReport,
        query: &'a crate::fetch::report::ReportQuery,
    },
    /// The client-credentials token request for an API's scope.
    Token { api: Api },
}

impl Outgoing<'_> {
    pub fn method(&self) -> reqwest::Method {
        match self {
            Outgoing::Get { .. } => reqwest::Method::GET,
            _ => reqwest::Method::POST,
        }
    }

    pub fn api(&self) -> Api {
        match self {
            Outgoing::Get { api, .. } | Outgoing::Token { api } => *api,
            Outgoing::GraphBatch { .. } | Outgoing::IntuneReport { .. } => Api::Graph,
            Outgoing::ResourceGraph { .. } => Api::Arm,
            Outgoing::Hunting { .. } => Api::Graph,
        }
    }

    /// The JSON body of a batch: every inner request is a GET.
    pub fn batch_body(paths: &[String]) -> Value {
        let requests: Vec<Value> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| json!({"id": i.to_string(), "method": "GET", "url": p}))
            .collect();
        json!({ "requests": requests })
    }
}
