//! The commands behind the CLI (`main.rs` parses; these do the work), and
//! what they share: where credentials, endpoints and the store come from
//! (a profile or `TENX_*`), logging, and the explorer's start.

pub mod config;
pub mod demo;
pub mod export;
pub mod fetch;
pub mod login;
pub mod search;
pub mod triage;

use anyhow::{Context, bail};

use crate::auth::Credentials;
use crate::auth::endpoints::{Cloud, Endpoints};
use crate::auth::secret::Secret;

/// Whom to read and where to keep what was read.
#[derive(Debug, Clone)]
pub struct Target {
    pub credentials: Credentials,
    pub endpoints: Endpoints,
    /// The snapshot database's name (a profile name, or one from the tenant).
    pub store_name: String,
    /// Which API Defender is read through (the profile's, else
    /// `TENX_DEFENDER_API`, else Microsoft Graph security).
    pub defender: crate::fetch::DefenderApi,
}

/// The target of a command: the named profile; else credentials from the
/// environment when `TENX_TENANT_ID` is set; else the only profile.
/// A profile's secret comes from `TENX_CLIENT_SECRET` or the OS keyring.
pub fn resolve_target(
    profile: Option<&str>,
) -> anyhow::Result<(Target, Option<Vec<crate::fetch::Source>>)> {
    if profile.is_none() && env("TENX_PROFILE").is_none() && env("TENX_TENANT_ID").is_some() {
        return Ok((target_from_env()?, None));
    }
    let p = crate::config::resolve(profile)?;
    let secret = crate::auth::secrets::resolve(&crate::auth::secrets::OsKeyring, &p.name)?;
    let target = Target {
        credentials: Credentials {
            tenant: p.tenant.clone(),
            client_id: p.client_id.clone(),
            secret,
        },
        endpoints: p.endpoints()?,
        defender: p.defender,
        store_name: p.name.clone(),
    };
    Ok((target, Some(p.sources)))
}

/// The snapshot store of a profile (or of the environment's tenant), without
/// touching the secret.
pub fn resolve_store_name(profile: Option<&str>) -> anyhow::Result<String> {
    if let (None, None, Some(t)) = (profile, env("TENX_PROFILE"), env("TENX_TENANT_ID")) {
        return Ok(format!("tenant-{}", t.to_ascii_lowercase()));
    }
    Ok(crate::config::resolve(profile)?.name)
}

/// The store for commands that read snapshots: the profile's, or none when
/// `--snapshot` names a database file (which needs no profile).
pub fn store_for(profile: Option<&str>, snapshot: Option<&str>) -> anyhow::Result<String> {
    let is_file = snapshot.is_some_and(|s| std::path::Path::new(s).is_file());
    match resolve_store_name(profile) {
        Ok(n) => Ok(n),
        Err(_) if is_file => Ok(String::new()),
        Err(e) => Err(e),
    }
}

/// A non-blank environment variable.
fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Credentials from `TENX_TENANT_ID`, `TENX_CLIENT_ID`, `TENX_CLIENT_SECRET`;
/// endpoints from the public cloud with `TENX_*_URL` overrides.
pub fn target_from_env() -> anyhow::Result<Target> {
    let var = env;
    let (tenant, client, secret) = (
        var("TENX_TENANT_ID"),
        var("TENX_CLIENT_ID"),
        var("TENX_CLIENT_SECRET"),
    );
    let missing: Vec<&str> = [
        ("TENX_TENANT_ID", tenant.is_none()),
        ("TENX_CLIENT_ID", client.is_none()),
        ("TENX_CLIENT_SECRET", secret.is_none()),
    ]
    .iter()
    .filter(|(_, m)| *m)
    .map(|(k, _)| *k)
    .collect();
    let (Some(tenant), Some(client_id), Some(secret)) = (tenant, client, secret) else {
        bail!(
            "no credentials: set {} (or use `tenx fake-tenant` for a simulated tenant)",
            missing.join(", ")
        );
    };
    let cloud = match var("TENX_CLOUD") {
        Some(c) => Cloud::parse(&c)?,
        None => Cloud::Public,
    };
    let endpoints = Endpoints::for_cloud(cloud)
        .with_env_overrides()
        .context("bad endpoint override")?;
    let defender = match var("TENX_DEFENDER_API") {
        Some(d) => crate::fetch::DefenderApi::parse(&d).context("TENX_DEFENDER_API")?,
        None => crate::fetch::DefenderApi::default(),
    };
    Ok(Target {
        defender,
        store_name: format!("tenant-{}", tenant.to_ascii_lowercase()),
        credentials: Credentials {
            tenant,
            client_id,
            secret: Secret::new(secret),
        },
        endpoints,
    })
}

/// `tenx [--profile NAME]`: the explorer on the profile's latest snapshot,
/// refreshed in the background.
pub async fn explore(profile: Option<&str>) -> anyhow::Result<std::process::ExitCode> {
    let (target, sources) = resolve_target(profile)?;
    let sources = sources.unwrap_or_else(|| crate::fetch::Source::ALL.to_vec());
    let title = format!("tenx · {}", target.store_name);
    let tenant_hint = target.credentials.tenant.clone();
    let store_name = target.store_name.clone();
    let target_defender = target.defender;
    let http = std::sync::Arc::new(crate::fetch::http::Http::new(
        std::sync::Arc::new(crate::auth::Auth::new(target.credentials, target.endpoints)),
        crate::fetch::http::HttpOptions::default(),
    )?);
    let plan = crate::tui::FetchPlan {
        http,
        sources,
        store_name,
        tenant_hint,
        logons: crate::fetch::logons::LogonPolicy::with_budget(
            crate::fetch::logons::LogonBudget::DEFAULT,
        )?,
        defender: target_defender,
        hunting: crate::fetch::HuntingPolicy::from_env()?,
    };
    let ended = crate::tui::run(
        crate::tui::app::App::new(title, chrono::Utc::now()),
        Some(plan),
        true,
        true,
    )
    .await?;
    Ok(ended.exit_code())
}

/// Log lines go to `tenx.log` in the data directory, never to the screen.
pub fn init_logging() {
    let Ok(dir) = crate::store::data_dir() else {
        return;
    };
    if crate::store::private_dir(&dir).is_err() {
        return;
    }
    let path = dir.join("tenx.log");
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let Ok(file) = o.open(&path) else { return };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TENX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
}
