//! Where each service lives: the public cloud, the national clouds, or base
//! URLs given one by one (the simulated tenant, custom endpoints). Each base
//! URL stands where the public cloud's host stands; the client appends the
//! same paths to it.

use url::Url;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    Graph,
    Defender,
    Arm,
}

impl Api {
    pub const ALL: [Api; 3] = [Api::Graph, Api::Defender, Api::Arm];

    pub fn name(self) -> &'static str {
        match self {
            Api::Graph => "Microsoft Graph",
            Api::Defender => "Defender for Endpoint",
            Api::Arm => "Azure Resource Manager",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    #[value(alias = "global", alias = "azurecloud")]
    Public,
    /// US Government Community Cloud: the commercial sign-in, Graph and
    /// ARM, Defender's API at its GCC host.
    Gcc,
    /// GCC High and DoD.
    #[value(
        name = "usgov",
        alias = "usgovernment",
        alias = "gcchigh",
        alias = "dod",
        alias = "azureusgovernment"
    )]
    UsGov,
    #[value(alias = "azurechina", alias = "21vianet")]
    China,
    Custom,
}

/// A setting tenx cannot use: named, with what it takes.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EndpointError(String);

impl Cloud {
    /// A cloud as a person types it at the prompt (`US Gov`, `gcc-high`),
    /// through the names `--cloud` takes.
    pub fn parse(s: &str) -> Result<Cloud, EndpointError> {
        let n = s.to_ascii_lowercase().replace(['-', '_', ' '], "");
        <Cloud as clap::ValueEnum>::from_str(&n, true).map_err(|_| {
            EndpointError(format!(
                "unknown cloud '{n}' (public, gcc, usgov, china, custom)"
            ))
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Cloud::Public => "public",
            Cloud::Gcc => "gcc",
            Cloud::UsGov => "usgov",
            Cloud::China => "china",
            Cloud::Custom => "custom",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub login: Url,
    pub graph: Url,
    pub defender: Url,
    pub arm: Url,
    /// The resource each token is requested for (`{resource}/.default`).
    pub graph_resource: String,
    pub defender_resource: String,
    pub arm_resource: String,
}

fn url(s: &str) -> Url {
    // The literals below are valid URLs; a failure here is a typo in this file.
    Url::parse(s).unwrap_or_else(|_| panic!("built-in endpoint {s} is not a URL"))
}

impl Endpoints {
    pub fn for_cloud(cloud: Cloud) -> Endpoints {
        match cloud {
            Cloud::Public | Cloud::Custom => Endpoints {
                login: url("https://login.microsoftonline.com"),
                graph: url("https://graph.microsoft.com"),
                // The Defender for Endpoint API's documented base (its
                // tokens are still for api.securitycenter.microsoft.com);
                // regional hosts (us., eu., uk., au., swa., ina.) go in
                // the profile's endpoints.
                defender: url("https://api.security.microsoft.com"),
                arm: url("https://management.azure.com"),
                graph_resource: "https://graph.microsoft.com".into(),
                defender_resource: "https://api.securitycenter.microsoft.com".into(),
                arm_resource: "https://management.azure.com".into(),
            },
            // "Microsoft Defender for Endpoint for US Government
            // customers" (defender-endpoint/gov.md), its API table: GCC
            // signs in at login.microsoftonline.com and calls
            // api-gcc.securitycenter.microsoft.us; GCC High and DoD sign
            // in at login.microsoftonline.us and call api-gov.
            Cloud::Gcc => Endpoints {
                defender: url("https://api-gcc.securitycenter.microsoft.us"),
                defender_resource: "https://api-gcc.securitycenter.microsoft.us".into(),
                ..Endpoints::for_cloud(Cloud::Public)
            },
            Cloud::UsGov => Endpoints {
                login: url("https://login.microsoftonline.us"),
                graph: url("https://graph.microsoft.us"),
                defender: url("https://api-gov.securitycenter.microsoft.us"),
                arm: url("https://management.usgovcloudapi.net"),
                graph_resource: "https://graph.microsoft.us".into(),
                defender_resource: "https://api-gov.securitycenter.microsoft.us".into(),
                arm_resource: "https://management.usgovcloudapi.net".into(),
            },
            Cloud::China => Endpoints {
                login: url("https://login.chinacloudapi.cn"),
                graph: url("https://microsoftgraph.chinacloudapi.cn"),
                defender: url("https://api.securitycenter.microsoft.com"),
                arm: url("https://management.chinacloudapi.cn"),
                graph_resource: "https://microsoftgraph.chinacloudapi.cn".into(),
                defender_resource: "https://api.securitycenter.microsoft.com".into(),
                arm_resource: "https://management.chinacloudapi.cn".into(),
            },
        }
    }

    pub fn base(&self, api: Api) -> &Url {
        match api {
            Api::Graph => &self.graph,
            Api::Defender => &self.defender,
            Api::Arm => &self.arm,
        }
    }

    pub fn scope(&self, api: Api) -> String {
        let r = match api {
            Api::Graph => &self.graph_resource,
            Api::Defender => &self.defender_resource,
            Api::Arm => &self.arm_resource,
        };
        format!("{}/.default", r.trim_end_matches('/'))
    }

    /// Applies `TENX_LOGIN_URL`, `TENX_GRAPH_URL`, `TENX_DEFENDER_URL`,
    /// `TENX_ARM_URL` over these endpoints.
    pub fn with_env_overrides(mut self) -> Result<Endpoints, EndpointError> {
        for (var, slot) in [
            ("TENX_LOGIN_URL", &mut self.login),
            ("TENX_GRAPH_URL", &mut self.graph),
            ("TENX_DEFENDER_URL", &mut self.defender),
            ("TENX_ARM_URL", &mut self.arm),
        ] {
            if let Ok(v) = std::env::var(var) {
                if !v.trim().is_empty() {
                    *slot = parse_base(var, v.trim())?;
                }
            }
        }
        Ok(self)
    }
}

/// A base URL: https anywhere, plain http only for loopback hosts.
pub fn parse_base(what: &str, s: &str) -> Result<Url, EndpointError> {
    let u = Url::parse(s).map_err(|e| EndpointError(format!("{what}: '{s}' is not a URL: {e}")))?;
    match u.scheme() {
        "https" => {}
        "http" if is_loopback(&u) => {}
        "http" => {
            return Err(EndpointError(format!(
                "{what}: plain http is only allowed for loopback hosts (127.0.0.1, ::1, localhost); use https for '{s}'"
            )));
        }
        other => {
            return Err(EndpointError(format!(
                "{what}: unsupported scheme '{other}' in '{s}'"
            )));
        }
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(EndpointError(format!(
            "{what}: a base URL takes no query or fragment: '{s}'"
        )));
    }
    Ok(u)
}

pub fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Joins a base URL and an API path (`/v1.0/users`), keeping the base's path
/// prefix (the simulated tenant serves Graph under `/graph`).
pub fn join(base: &Url, path_and_query: &str) -> String {
    format!(
        "{}/{}",
        base.as_str().trim_end_matches('/'),
        path_and_query.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(parse_base("x", "http://127.0.0.1:8080/graph").is_ok());
        assert!(parse_base("x", "http://[::1]:8080").is_ok());
        assert!(parse_base("x", "http://localhost:1").is_ok());
        let e = parse_base("TENX_GRAPH_URL", "http://graph.example.com").expect_err("refused");
        assert!(e.to_string().contains("only allowed for loopback"), "{e}");
        assert!(parse_base("x", "ftp://127.0.0.1").is_err());
        assert!(parse_base("x", "https://graph.microsoft.com").is_ok());
    }

    #[test]
    fn joins_keep_the_base_prefix_and_scopes_follow_the_cloud() {
        let b = Url::parse("http://127.0.0.1:9/graph").expect("url");
        assert_eq!(
            join(&b, "/v1.0/users"),
            "http://127.0.0.1:9/graph/v1.0/users"
        );
        let e = Endpoints::for_cloud(Cloud::Public);
        assert_eq!(
            join(&e.graph, "/v1.0/users"),
            "https://graph.microsoft.com/v1.0/users"
        );
        assert_eq!(e.scope(Api::Arm), "https://management.azure.com/.default");
        assert_eq!(
            Endpoints::for_cloud(Cloud::UsGov).scope(Api::Graph),
            "https://graph.microsoft.us/.default"
        );
        assert_eq!(Cloud::parse("US-Gov").expect("cloud"), Cloud::UsGov);
        let gcc = Endpoints::for_cloud(Cloud::parse("GCC").expect("cloud"));
        assert_eq!(gcc.login.as_str(), "https://login.microsoftonline.com/");
        assert_eq!(
            gcc.scope(Api::Defender),
            "https://api-gcc.securitycenter.microsoft.us/.default"
        );
        assert_eq!(
            Endpoints::for_cloud(Cloud::UsGov).defender.as_str(),
            "https://api-gov.securitycenter.microsoft.us/"
        );
        assert!(Cloud::parse("mars").is_err());
    }
}
