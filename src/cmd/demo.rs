//! `tenx demo`: the simulated tenant started in-process on loopback and the
//! real fetch run against it. No credentials, nothing leaves the machine.

use std::process::ExitCode;
use std::time::Duration;

use crate::fetch::Source;
use tenx_sim::{FakeParams, FakeTenant, RunningTenant, ServerOptions, serve};

use super::Target;
use super::fetch::FetchArgs;

/// How the product reaches a simulated tenant: its endpoints and its app
/// registration's credentials. Here, not in `tenx-sim`, so that the
/// simulated tenant depends on nothing of the product.
pub trait Simulated {
    /// Endpoints that point a client at this simulated tenant.
    fn endpoints(&self) -> anyhow::Result<crate::auth::endpoints::Endpoints>;
    /// The app registration's credentials in this simulated tenant.
    fn credentials(&self) -> crate::auth::Credentials;
}

impl Simulated for RunningTenant {
    fn endpoints(&self) -> anyhow::Result<crate::auth::endpoints::Endpoints> {
        use crate::auth::endpoints::{Cloud, Endpoints, parse_base};
        let b = self.base_url();
        let mut e = Endpoints::for_cloud(Cloud::Public);
        e.login = parse_base("simulated login", &format!("{b}/login"))?;
        e.graph = parse_base("simulated graph", &format!("{b}/graph"))?;
        e.defender = parse_base("simulated defender", &format!("{b}/defender"))?;
        e.arm = parse_base("simulated arm", &format!("{b}/arm"))?;
        Ok(e)
    }

    fn credentials(&self) -> crate::auth::Credentials {
        crate::auth::Credentials {
            tenant: self.tenant.tenant_id.clone(),
            client_id: self.tenant.client_id.clone(),
            secret: crate::auth::secret::Secret::new(self.tenant.client_secret.clone()),
        }
    }
}

pub struct DemoArgs {
    pub users: usize,
    pub seed: u64,
    pub latency_ms: u64,
    /// Print the fetch report instead of opening the explorer.
    pub headless: bool,
    /// Which API Defender is read through.
    pub defender: crate::fetch::DefenderApi,
}

/// The demo's snapshots live in a temporary folder of their own, removed
/// when the demo ends; the person's data directory gets none.
struct DemoStore {
    dir: std::path::PathBuf,
}

impl DemoStore {
    fn create() -> anyhow::Result<DemoStore> {
        let base = std::env::temp_dir();
        remove_abandoned(&base);
        let dir = base.join(format!("tenx-demo-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).ok();
        }
        crate::store::private_dir(&dir)?;
        // Removed on a signal too (headless; the explorer returns normally).
        crate::base::outfile::remove_dir_on_signals(&dir);
        crate::store::use_data_dir(dir.clone());
        Ok(DemoStore { dir })
    }
}

impl Drop for DemoStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        crate::base::outfile::forget_on_signals(&self.dir);
    }
}

/// Demo folders whose process is gone (killed outright), where that can be
/// told (`/proc`).
fn remove_abandoned(base: &std::path::Path) {
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("tenx-demo-")
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let _store = DemoStore::create()?;
    if args.headless {
        crate::base::outfile::remove_on_signals();
    }
    let tenant = FakeTenant::generate(FakeParams {
        users: args.users,
        seed: args.seed,
        ..Default::default()
    });
    let options = ServerOptions {
        latency: Duration::from_millis(args.latency_ms),
        ..Default::default()
    };
    let running = serve(tenant, "127.0.0.1:0".parse()?, options).await?;
    let base = running.base_url();
    let endpoints = running.endpoints()?;
    let t = &running.tenant;
    if !args.headless {
        let title = format!("tenx demo · {}", t.org_name);
        let http = std::sync::Arc::new(crate::fetch::http::Http::new(
            std::sync::Arc::new(crate::auth::Auth::new(running.credentials(), endpoints)),
            crate::fetch::http::HttpOptions::default(),
        )?);
        let plan = crate::tui::FetchPlan {
            http,
            sources: Source::ALL.to_vec(),
            store_name: "demo".into(),
            tenant_hint: t.tenant_id.clone(),
            logons: crate::fetch::logons::LogonPolicy::with_budget(
                crate::fetch::logons::LogonBudget::DEFAULT,
            )?,
            defender: args.defender,
            hunting: crate::fetch::HuntingPolicy::from_env()?,
        };
        let app = crate::tui::app::App::new(title, chrono::Utc::now());
        let r = crate::tui::run(app, Some(plan), false, true).await;
        running.stop().await;
        return Ok(r.map(|ended| ended.exit_code())?);
    }
    eprintln!(
        "tenx demo: {} ({} users, {} devices, {} Defender machines, {} Azure resources) simulated on {base}",
        t.org_name,
        t.users.len(),
        t.devices.len(),
        t.machines.len(),
        t.resources.len()
    );
    let target = Target {
        credentials: running.credentials(),
        endpoints,
        store_name: "demo".into(),
        defender: args.defender,
    };
    let code = super::fetch::run(
        target,
        FetchArgs {
            sources: Source::ALL.to_vec(),
            json: false,
            keep: 1,
            logon_users: crate::fetch::logons::LogonBudget::DEFAULT,
            carry_over: true,
        },
    )
    .await;
    running.stop().await;
    code
}
