//! `tenx demo`: the simulated tenant started in-process on loopback and the
//! real fetch run against it. No credentials, nothing leaves the machine.

use std::process::ExitCode;
use std::time::Duration;

use crate::fake::{FakeParams, FakeTenant, ServerOptions, serve};
use crate::fetch::Source;

use super::Target;
use super::fetch::FetchArgs;

pub struct DemoArgs {
    pub users: usize,
    pub seed: u64,
    pub latency_ms: u64,
    /// Print the fetch report instead of opening the explorer.
    pub headless: bool,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
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
        let http = std::sync::Arc::new(crate::http::Http::new(
            std::sync::Arc::new(crate::auth::Auth::new(running.credentials(), endpoints)),
            crate::http::HttpOptions::default(),
        )?);
        let plan = crate::tui::FetchPlan {
            http,
            sources: Source::ALL.to_vec(),
            store_name: "demo".into(),
            tenant_hint: t.tenant_id.clone(),
            logons: crate::logons::LogonPolicy::with_budget(crate::logons::LogonBudget::DEFAULT)?,
        };
        let app = crate::tui::app::App::new(title, chrono::Utc::now());
        let r = crate::tui::run(app, Some(plan), false, true).await;
        running.stop().await;
        return r.map(|ended| ended.exit_code());
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
    };
    let code = super::fetch::run(
        target,
        FetchArgs {
            sources: Source::ALL.to_vec(),
            json: false,
            keep: 5,
            logon_users: crate::logons::LogonBudget::DEFAULT,
        },
    )
    .await;
    running.stop().await;
    code
}
