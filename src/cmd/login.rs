//! `tenx login`, `tenx logout`, `tenx profiles`: connect tenx to a tenant
//! once; the secret goes to the OS keyring, the rest to a profile.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::auth::endpoints::{Api, Cloud};
use crate::auth::secret::Secret;
use crate::auth::secrets::{KeyringError, SecretStore};
use crate::auth::{Auth, Credentials};
use crate::base::text;
use crate::config::{self, EndpointOverrides, Profile};
use crate::fetch::http::{Http, HttpError, HttpOptions};
use crate::fetch::{DefenderApi, Source};

#[derive(Debug, Default)]
pub struct LoginArgs {
    pub profile: Option<String>,
    pub tenant: Option<String>,
    pub client_id: Option<String>,
    pub cloud: Option<String>,
    pub sources: Option<String>,
    pub secret_stdin: bool,
    pub endpoints: EndpointOverrides,
    /// `graph` (the default) or `mde`.
    pub defender: Option<DefenderApi>,
}

/// The application permissions each source needs (any of the listed
/// alternatives satisfies one requirement).
pub fn required_roles(source: Source, defender: DefenderApi) -> &'static [&'static [&'static str]] {
    match source {
        // Advanced hunting through Microsoft Graph security.
        Source::Defender if defender == DefenderApi::Graph => &[&["ThreatHunting.Read.All"]],
        Source::Directory => &[&["Directory.Read.All", "Directory.ReadWrite.All"]],
        Source::Intune => &[
            &[
                "DeviceManagementManagedDevices.Read.All",
                "DeviceManagementManagedDevices.ReadWrite.All",
            ],
            &[
                "DeviceManagementConfiguration.Read.All",
                "DeviceManagementConfiguration.ReadWrite.All",
            ],
            &[
                "DeviceManagementApps.Read.All",
                "DeviceManagementApps.ReadWrite.All",
            ],
        ],
        Source::Defender => &[
            &["Machine.Read.All", "Machine.ReadWrite.All"],
            &["Vulnerability.Read.All"],
            &["User.Read.All"],
        ],
        Source::Arm => &[],
    }
}

fn api_of(source: Source, defender: DefenderApi) -> Api {
    match source {
        Source::Directory | Source::Intune => Api::Graph,
        Source::Defender if defender == DefenderApi::Graph => Api::Graph,
        Source::Defender => Api::Defender,
        Source::Arm => Api::Arm,
    }
}

/// What a source's check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Working(String),
    Problem(String),
}

/// Checks each source with fresh tokens: sign-in, the token's `roles`, and
/// for ARM whether any subscription is visible. `signed_in` is false when no
/// token could be had at all (wrong credentials).
pub async fn check_sources(
    http: &Http,
    sources: &[Source],
    defender: DefenderApi,
) -> (bool, Vec<(Source, Check)>) {
    let mut signed_in = false;
    let mut out = Vec::new();
    let today = crate::fetch::today().unwrap_or_else(|_| chrono::Utc::now().date_naive());
    for &source in sources {
        if source == Source::Defender {
            if let Err(why) = defender.retirement(today) {
                out.push((source, Check::Problem(why)));
                continue;
            }
        }
        let api = api_of(source, defender);
        let token = match http.token(api).await {
            Ok(t) => {
                signed_in = true;
                t
            }
            Err(HttpError::Auth(a)) => {
                out.push((source, Check::Problem(a.to_string())));
                continue;
            }
            Err(e) => {
                out.push((source, Check::Problem(format!("could not sign in: {e}"))));
                continue;
            }
        };
        if source == Source::Arm {
            let check = match http.get(Api::Arm, "/subscriptions?api-version=2022-12-01").await {
                Ok(v) => match v["value"].as_array().map(Vec::len).unwrap_or(0) {
                    0 => Check::Problem("signed in, but no subscription is visible: assign the app the Reader role on each subscription (or on the Tenant Root management group)".into()),
                    n => Check::Working(format!("{n} subscription{} visible", if n == 1 { "" } else { "s" })),
                },
                Err(e) => Check::Problem(format!("signed in, but listing subscriptions failed: {e}")),
            };
            out.push((source, check));
            continue;
        }
        let missing: Vec<&str> = required_roles(source, defender)
            .iter()
            .filter(|alts| {
                !alts
                    .iter()
                    .any(|r| token.roles.iter().any(|have| have.eq_ignore_ascii_case(r)))
            })
            .map(|alts| alts[0])
            .collect();
        let retiring = match (source, defender.retirement(today)) {
            (Source::Defender, Ok(Some(note))) => format!("; {note}"),
            _ => String::new(),
        };
        let check = if missing.is_empty() {
            Check::Working(format!("all application permissions granted{retiring}"))
        } else if token.roles.is_empty() {
            Check::Problem(format!(
                "the token carries no application permissions: {} are missing, were added as Delegated instead of Application, or admin consent was not granted",
                missing.join(", ")
            ))
        } else {
            Check::Problem(format!(
                "missing application permission{} {} (add as Application, not Delegated, then grant admin consent)",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", ")
            ))
        };
        out.push((source, check));
    }
    (signed_in, out)
}

fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// A value from its flag, or asked for on a terminal.
fn ask(
    flag: &str,
    label: &str,
    given: Option<String>,
    default: Option<&str>,
    can_ask: bool,
) -> anyhow::Result<String> {
    if let Some(v) = given
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
    {
        return Ok(v);
    }
    if !can_ask {
        return match default {
            Some(d) => Ok(d.to_string()),
            None => bail!("{label} is needed: pass {flag}"),
        };
    }
    let mut err = std::io::stderr();
    match default {
        Some(d) => write!(err, "{label} [{d}]: ")?,
        None => write!(err, "{label}: ")?,
    }
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let v = line.trim().to_string();
    match (v.is_empty(), default) {
        (false, _) => Ok(v),
        (true, Some(d)) => Ok(d.to_string()),
        (true, None) => bail!("{label} is needed"),
    }
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && [8, 4, 4, 4, 12]
            .iter()
            .zip(&parts)
            .all(|(n, p)| p.len() == *n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn read_secret(from_stdin: bool) -> anyhow::Result<Secret> {
    let raw = if from_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the secret from standard input")?;
        s
    } else if interactive() {
        rpassword::prompt_password("Client secret (its Value, not its Secret ID): ")
            .context("cannot read the secret")?
    } else {
        bail!(
            "no terminal to ask for the client secret on: pass --secret-stdin and write it to standard input"
        );
    };
    let s = raw.trim_end_matches(['\r', '\n']).trim();
    if s.is_empty() {
        bail!("the client secret is empty");
    }
    Ok(Secret::new(s))
}

pub async fn login(args: LoginArgs, store: &dyn SecretStore) -> anyhow::Result<ExitCode> {
    let can_ask = interactive() && !args.secret_stdin;
    let name = args.profile.clone().unwrap_or_else(|| "default".into());
    config::check_name(&name)?;
    let tenant = ask(
        "--tenant",
        "Tenant (Directory ID or verified domain)",
        args.tenant,
        None,
        can_ask,
    )?;
    if !is_guid(&tenant) && !tenant.contains('.') {
        bail!("tenant '{tenant}' is neither a GUID nor a domain such as contoso.onmicrosoft.com");
    }
    let client_id = ask(
        "--client-id",
        "Application (client) ID",
        args.client_id,
        None,
        can_ask,
    )?;
    if !is_guid(&client_id) {
        bail!(
            "client id '{client_id}' is not a GUID: copy the Application (client) ID from the app registration's Overview"
        );
    }
    let cloud = Cloud::parse(&ask(
        "--cloud",
        "Cloud (public, gcc, usgov, china, custom)",
        args.cloud,
        Some("public"),
        can_ask,
    )?)?;
    let mut endpoints = args.endpoints;
    if cloud == Cloud::Custom && endpoints.is_empty() && can_ask {
        for (label, slot) in [
            ("Login URL", &mut endpoints.login),
            ("Graph URL", &mut endpoints.graph),
            ("Defender URL", &mut endpoints.defender),
            ("ARM URL", &mut endpoints.arm),
        ] {
            *slot = Some(ask("", label, None, None, true)?);
        }
    }
    let sources = Source::parse_list(&ask(
        "--sources",
        "Sources",
        args.sources,
        Some("directory,intune,defender,arm"),
        can_ask,
    )?)?;
    let secret = read_secret(args.secret_stdin)?;
    if is_guid(secret.expose()) {
        eprintln!(
            "note: the secret looks like a GUID — that is usually the Secret ID; tenx needs the secret's Value"
        );
    }
    let profile = Profile {
        name: name.clone(),
        tenant,
        client_id,
        cloud,
        sources,
        defender: args.defender.unwrap_or_default(),
        endpoints,
    };
    let auth = Auth::new(
        Credentials {
            tenant: profile.tenant.clone(),
            client_id: profile.client_id.clone(),
            secret: secret.clone(),
        },
        profile.endpoints()?,
    );
    let http = Http::new(
        Arc::new(auth),
        HttpOptions {
            throttle_attempts: 4,
            error_attempts: 3,
            ..Default::default()
        },
    )?;
    eprintln!(
        "checking {} source{}…",
        profile.sources.len(),
        if profile.sources.len() == 1 { "" } else { "s" }
    );
    let (signed_in, checks) = check_sources(&http, &profile.sources, profile.defender).await;
    for (source, check) in &checks {
        match check {
            // What a service says is printed without its control characters.
            Check::Working(note) => {
                println!("  {:<10} working: {}", source.name(), text::text(note))
            }
            Check::Problem(p) => println!("  {:<10} {}", source.name(), text::text(p)),
        }
    }
    if !signed_in {
        println!("nothing was saved: fix the sign-in and run `tenx login` again");
        return Ok(ExitCode::FAILURE);
    }
    store
        .set(&name, &secret)
        .map_err(|e| anyhow::anyhow!("{e}\nnothing was saved"))?;
    let path = config::save(&profile)?;
    println!(
        "saved profile '{name}' in {}; the secret is in the OS keyring (service 'tenx', account '{name}')",
        path.display()
    );
    let problems = checks
        .iter()
        .filter(|(_, c)| matches!(c, Check::Problem(_)))
        .count();
    if problems > 0 {
        println!(
            "{problems} source{} will not work until the above is fixed",
            if problems == 1 { "" } else { "s" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn logout(profile: Option<&str>, store: &dyn SecretStore) -> anyhow::Result<ExitCode> {
    let name = match profile {
        Some(n) => n.to_string(),
        None => config::resolve(None)?.name,
    };
    config::check_name(&name)?;
    let secret = store.delete(&name);
    let existed = config::delete(&name)?;
    match (&secret, existed) {
        (Ok(false), false) => bail!("no profile named '{name}' and no secret stored for it"),
        (Ok(_), _) => {
            println!("removed profile '{name}' and its secret from the keyring");
            Ok(ExitCode::SUCCESS)
        }
        (Err(KeyringError::Unavailable(_)), _) => {
            println!("removed profile '{name}'");
            let e = secret.err().map(|e| e.to_string()).unwrap_or_default();
            eprintln!(
                "tenx: the secret could not be removed from the keyring: {}",
                text::text(&e)
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn profiles(store: &dyn SecretStore) -> anyhow::Result<ExitCode> {
    let all = config::list()?;
    if all.is_empty() {
        println!("no profile yet: run `tenx login`");
        return Ok(ExitCode::SUCCESS);
    }
    let only = all.len() == 1;
    println!(
        "{:<16} {:<38} {:<38} {:<7} {:<30} SECRET",
        "PROFILE", "TENANT", "CLIENT ID", "CLOUD", "SOURCES"
    );
    for p in all {
        match p {
            Ok(p) => {
                let secret = match store.get(&p.name) {
                    Ok(Some(_)) => "stored",
                    Ok(None) => "missing",
                    Err(_) => "keyring unavailable",
                };
                let sources: Vec<&str> = p.sources.iter().map(|s| s.name()).collect();
                let cloud = serde_json::to_value(p.cloud)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                println!(
                    "{:<16} {:<38} {:<38} {:<7} {:<30} {secret}{}",
                    p.name,
                    p.tenant,
                    p.client_id,
                    cloud,
                    sources.join(","),
                    if only { "  (default)" } else { "" }
                );
            }
            Err(e) => println!("(unreadable) {e}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_recognised() {
        assert!(is_guid("6b1610bf-438d-4902-b6b8-9d694d657b29"));
        assert!(!is_guid("contoso.onmicrosoft.com"));
        assert!(!is_guid("6b1610bf-438d-4902-b6b8-9d694d657b2"));
    }
}
