//! The `tenx` command line: parsing and dispatch only.
//!
//! Size: long because it holds every command's clap definitions, which are
//! the command line's documentation; the work is in `cmd/`.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
/// glibc's allocator spends a third of a large fetch contending between
/// worker threads; mimalloc does not. Guarded: an allocation that fails
/// ends tenx with a message, not an abort.
#[global_allocator]
static GLOBAL: tenx::base::alloc::Guarded<mimalloc::MiMalloc> =
    tenx::base::alloc::Guarded(mimalloc::MiMalloc);

use tenx_sim::{
    FakeParams, FakeTenant, Faults, HuntingLimits, Manifest, RateLimits, ServerOptions,
    ThrottleSpec,
};

#[derive(Parser)]
#[command(
    name = "tenx",
    version,
    about = "A fast, read-only terminal explorer for Microsoft tenants"
)]
struct Cli {
    /// The profile to use (see `tenx profiles`); the only one when there is one.
    #[arg(long, global = true, env = "TENX_PROFILE")]
    profile: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The explorer on a built-in simulated tenant, read through the real pipeline (no credentials needed).
    Demo(DemoArgs),
    /// Connect to a tenant: check the app's sign-in and permissions, save a profile, keep the secret in the OS keyring.
    Login(LoginArgs),
    /// Remove a profile and its secret from the keyring.
    Logout,
    /// List profiles (never their secrets).
    Profiles,
    /// Read the tenant into a new snapshot and print what was read.
    Fetch(FetchArgs),
    /// Write a snapshot, or the subgraph around chosen entities, as JSON.
    Export(ExportArgs),
    /// Fuzzy-search the latest snapshot, as the explorer's `/` does.
    Search(SearchArgs),
    /// Noncompliant devices with their triage status: a report, or `set` to record a status.
    Triage(TriageArgs),
    /// Serve a simulated Microsoft tenant (login, Graph, Defender, ARM) on loopback.
    FakeTenant(FakeTenantArgs),
    /// Where tenx keeps its files; your keys (keymap.toml) and colours (theme.toml).
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print where profiles, keymap.toml, theme.toml and snapshots are.
    Path,
    /// Check that your keymap.toml and theme.toml can be used (exit 1 if not).
    Check,
    /// Print a built-in file, to start your own from.
    Defaults {
        #[arg(value_enum)]
        file: tenx::cmd::config::Builtin,
    },
}

#[derive(Args)]
struct LoginArgs {
    /// Directory (tenant) ID or a verified domain.
    #[arg(long)]
    tenant: Option<String>,
    /// Application (client) ID of the app registration.
    #[arg(long)]
    client_id: Option<String>,
    /// public (default), gcc, usgov (GCC High and DoD), china, or custom
    /// (with the URLs below).
    #[arg(long)]
    cloud: Option<tenx::auth::endpoints::Cloud>,
    /// Sources to read, comma-separated (default: all four).
    #[arg(long)]
    sources: Option<String>,
    /// Read the client secret from standard input instead of a hidden prompt.
    #[arg(long)]
    secret_stdin: bool,
    #[arg(long, value_name = "URL")]
    login_url: Option<String>,
    #[arg(long, value_name = "URL")]
    graph_url: Option<String>,
    #[arg(long, value_name = "URL")]
    defender_url: Option<String>,
    #[arg(long, value_name = "URL")]
    arm_url: Option<String>,
    /// Read Defender through `graph` (Microsoft Graph security advanced
    /// hunting, permission ThreatHunting.Read.All; the default) or `mde`
    /// (the Defender for Endpoint API, retired on 1 February 2027).
    #[arg(long, value_name = "graph|mde")]
    defender_api: Option<tenx::fetch::DefenderApi>,
}

#[derive(Args)]
struct DemoArgs {
    /// Users in the simulated tenant; everything else scales with it.
    #[arg(long, default_value_t = 2000)]
    users: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulated network latency per request, in milliseconds.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// Print the fetch report instead of opening the explorer.
    #[arg(long)]
    headless: bool,
    /// Read Defender through `graph` (advanced hunting, the default) or
    /// `mde` (the Defender for Endpoint API).
    #[arg(long, value_name = "graph|mde")]
    defender_api: Option<tenx::fetch::DefenderApi>,
}

#[derive(Args)]
struct FetchArgs {
    /// Which sources to read, comma-separated (default: the profile's, or all).
    #[arg(long)]
    sources: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Keep this many snapshots (0 keeps all).
    #[arg(long, default_value_t = 20)]
    keep: usize,
    /// How many Defender machines' logon users to read: a number, `all` or
    /// `none`. Defender allows 100 such calls a minute and 1,500 an hour;
    /// the others carry over from the previous snapshot with their age.
    /// `all` paces itself to those limits, however long that takes.
    #[arg(long, default_value = "100", value_name = "N|all|none", value_parser = tenx::fetch::logons::LogonBudget::parse)]
    logon_users: tenx::fetch::logons::LogonBudget,
    /// Do not complete the snapshot with the sources this fetch did not
    /// read (by default each is carried over, with its age, from the latest
    /// snapshot that has it whole).
    #[arg(long)]
    no_carry_over: bool,
    /// Read Defender through `graph` (advanced hunting) or `mde` (the
    /// Defender for Endpoint API) this time, whatever the profile says.
    #[arg(long, value_name = "graph|mde")]
    defender_api: Option<tenx::fetch::DefenderApi>,
}

#[derive(Args)]
struct TriageArgs {
    #[command(subcommand)]
    action: Option<TriageAction>,
    /// The report's form.
    #[arg(long, value_enum, ignore_case = true, default_value_t = tenx::cmd::triage::ReportFormat::Table)]
    format: tenx::cmd::triage::ReportFormat,
    /// Write to this file (whole or not at all; a regular file or a new
    /// path); `-` or none for standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE", value_parser = tenx::base::outfile::Output::clap)]
    output: Option<tenx::base::outfile::Output>,
    /// Group rows by policy, setting, owner or platform.
    #[arg(long, value_enum, ignore_case = true)]
    group_by: Option<tenx::triage::GroupBy>,
    /// A snapshot id, or a snapshot database file; the latest by default.
    #[arg(long, value_name = "ID|FILE", value_parser = snapshot_arg)]
    snapshot: Option<String>,
}

#[derive(Subcommand)]
enum TriageAction {
    /// Record a device's triage status (and note).
    Set {
        /// The device's key or exact name.
        device: String,
        /// Where the device stands.
        #[arg(long)]
        status: tenx::triage::Status,
        /// A free-text note (kept when not given).
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Args)]
struct SearchArgs {
    /// What to look for; `user:ava` narrows to a kind.
    query: String,
    /// Only this kind: user, group, sp, dev, finding, cve, machine, policy, app, sub, rg, res, role.
    #[arg(long, value_parser = kind_arg)]
    kind: Option<String>,
    /// At most this many results.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// A snapshot id, or a snapshot database file; the latest by default.
    #[arg(long, value_name = "ID|FILE", value_parser = snapshot_arg)]
    snapshot: Option<String>,
}

#[derive(Args)]
struct ExportArgs {
    /// A snapshot id, or a snapshot database file; the latest by default.
    #[arg(long, value_name = "ID|FILE", value_parser = snapshot_arg)]
    snapshot: Option<String>,
    /// The _key of an entity to start from (repeatable); everything when neither this nor --query is given.
    #[arg(long = "select", value_name = "KEY")]
    select: Vec<String>,
    /// Start from the best fuzzy-search match of TEXT (repeatable), as in the explorer's search.
    #[arg(long = "query", value_name = "TEXT")]
    query: Vec<String>,
    /// With --query: start from every match, not only the best.
    #[arg(long)]
    all_matches: bool,
    /// Hops from the selected entities, 0–5.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=tenx::export::MAX_DEPTH as i64))]
    depth: u8,
    /// Relationship verbs to follow, comma-separated (default: all), e.g. HAS,OWNS.
    #[arg(long, value_name = "VERBS", value_parser = verbs_arg)]
    follow: Option<Verbs>,
    /// Follow relationships out, in or both ways.
    #[arg(long, value_enum, ignore_case = true, default_value_t = tenx::export::Direction::Both)]
    direction: tenx::export::Direction,
    /// The export's form; csv writes two files.
    #[arg(long, value_enum, ignore_case = true, default_value_t = tenx::export::Format::Json)]
    format: tenx::export::Format,
    /// Leave out source properties.
    #[arg(long)]
    no_properties: bool,
    /// Output file (written whole or not at all; a regular file or a new
    /// path); `-` or none for standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE", value_parser = tenx::base::outfile::Output::clap)]
    output: Option<tenx::base::outfile::Output>,
}

#[derive(Args, Clone)]
struct SizeArgs {
    /// Random seed: the same seed gives the same tenant.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Users; every other size scales with it unless overridden.
    #[arg(long, default_value_t = 200)]
    users: usize,
    #[arg(long)]
    groups: Option<usize>,
    #[arg(long)]
    devices: Option<usize>,
    #[arg(long)]
    service_principals: Option<usize>,
    #[arg(long)]
    subscriptions: Option<usize>,
    #[arg(long)]
    resources: Option<usize>,
}

impl SizeArgs {
    fn params(&self) -> FakeParams {
        FakeParams {
            seed: self.seed,
            users: self.users,
            groups: self.groups,
            devices: self.devices,
            service_principals: self.service_principals,
            subscriptions: self.subscriptions,
            resources: self.resources,
        }
    }
}

#[derive(Args)]
struct FakeTenantArgs {
    #[command(flatten)]
    size: SizeArgs,
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Enforce the services' documented limits per app and answer 429 as
    /// each service does, with the headers each sends on the way (Graph's
    /// x-ms-throttle-limit-percentage, ARM's remaining reads, Resource
    /// Graph's quota). Without a value: the documented limits; or override
    /// some, e.g. `resourcegraph=3/1s,arm=40+25/s,intune=100/20s`.
    /// Names: graph, directory, intune, intune-devices,
    /// intune-configuration, intune-apps, intune-reports, defender, arm,
    /// resourcegraph.
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    throttle: Option<String>,
    /// Per-endpoint limits the services document, always enforced:
    /// `documented` (Defender logon users 100 a minute and 1,500 an hour
    /// per app), `none`, or scaled windows like `logonusers=100/6s+1500/360s`.
    #[arg(long, default_value = "documented")]
    rate_limits: String,
    /// Advanced hunting's limits (`runHuntingQuery`): `documented` (100,000
    /// rows, 50 MB, 45 calls a minute, 600 s of CPU an hour at 1 µs a row
    /// read, 180 s a query, 30 days of data) or items over them, e.g.
    /// `rows=1000,bytes=1MB,calls=5/1s,cpu=0.5/10s,row-cost=1us,timeout=0.2s`.
    #[arg(long, default_value = "documented")]
    hunting_limits: String,
    /// Injected faults, e.g. `429=0.1,503=0.05,drop=0.01,forbid=defender,expire=30,malformed-at=/defender/api/machines`.
    #[arg(long, default_value = "")]
    faults: String,
    /// Answer the right client secret with "expired" (AADSTS7000222).
    #[arg(long)]
    secret_expired: bool,
    /// Append "METHOD PATH STATUS" for every request to this file.
    #[arg(long)]
    request_log: Option<PathBuf>,
    /// Answer a repeated request with the bytes of its first answer, so a
    /// benchmark's measured fetch does not share the cores with rendering
    /// the simulated records (ignored with --faults or --throttle).
    #[arg(long)]
    cache_responses: bool,
    /// Test-only: send a wait shorter than a second as its fraction
    /// (`Retry-After: 0.05`) for windows scaled below a second. Real
    /// services send whole seconds or an HTTP date, and so does this one
    /// without this flag.
    #[arg(long)]
    subsecond_retry_after: bool,
    /// Write the ground truth (counts per entity and relationship _type) to this file.
    #[arg(long)]
    manifest: Option<PathBuf>,
}

fn main() -> ExitCode {
    // A bad command line exits 1 like any other error (2 means a partial
    // fetch, or no search match); --help and --version exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tenx::cmd::init_logging();
    let profile = cli.profile.clone();
    let Some(command) = cli.command else {
        let result = runtime().and_then(|rt| rt.block_on(tenx::cmd::explore(profile.as_deref())));
        return match result {
            Ok(code) => code,
            Err(e) => {
                eprintln!("tenx: {}", tenx::base::text::text(&format!("{e:#}")));
                ExitCode::FAILURE
            }
        };
    };
    let result = match command {
        Command::Login(a) => runtime().and_then(|rt| {
            let args = tenx::cmd::login::LoginArgs {
                profile: profile.clone(),
                tenant: a.tenant,
                client_id: a.client_id,
                cloud: a.cloud.map(|c| c.name().to_string()),
                sources: a.sources,
                secret_stdin: a.secret_stdin,
                endpoints: tenx::config::EndpointOverrides {
                    login: a.login_url,
                    graph: a.graph_url,
                    defender: a.defender_url,
                    arm: a.arm_url,
                },
                defender: a.defender_api,
            };
            rt.block_on(tenx::cmd::login::login(
                args,
                &tenx::auth::secrets::OsKeyring,
            ))
        }),
        Command::Logout => {
            tenx::cmd::login::logout(profile.as_deref(), &tenx::auth::secrets::OsKeyring)
        }
        Command::Profiles => tenx::cmd::login::profiles(&tenx::auth::secrets::OsKeyring),
        Command::Demo(a) => runtime().and_then(|rt| {
            rt.block_on(tenx::cmd::demo::run(tenx::cmd::demo::DemoArgs {
                users: a.users,
                seed: a.seed,
                latency_ms: a.latency_ms,
                headless: a.headless,
                defender: a.defender_api.unwrap_or_default(),
            }))
        }),
        Command::Fetch(args) => fetch(profile.as_deref(), args),
        Command::Export(args) => {
            tenx::base::outfile::remove_on_signals();
            export(profile.as_deref(), args)
        }
        Command::Triage(a) => (|| {
            tenx::base::outfile::remove_on_signals();
            let store = tenx::cmd::store_for(profile.as_deref(), a.snapshot.as_deref())?;
            match a.action {
                Some(TriageAction::Set {
                    device,
                    status,
                    note,
                }) => tenx::cmd::triage::set(&store, &device, status, note.as_deref()),
                None => tenx::cmd::triage::run(
                    &store,
                    tenx::cmd::triage::ReportArgs {
                        format: a.format,
                        output: a.output.unwrap_or(tenx::base::outfile::Output::Stdout),
                        group_by: a.group_by.unwrap_or_default(),
                        snapshot: a.snapshot,
                    },
                ),
            }
        })(),
        Command::Search(a) => tenx::cmd::store_for(profile.as_deref(), a.snapshot.as_deref())
            .and_then(|store| {
                tenx::cmd::search::run(
                    &store,
                    tenx::cmd::search::SearchArgs {
                        query: a.query,
                        kind: a.kind,
                        limit: a.limit,
                        json: a.json,
                        snapshot: a.snapshot,
                    },
                )
            }),
        Command::FakeTenant(args) => runtime().and_then(|rt| rt.block_on(fake_tenant(args))),
        Command::Config { action } => match action {
            ConfigAction::Path => tenx::cmd::config::path(),
            ConfigAction::Check => tenx::cmd::config::check(),
            ConfigAction::Defaults { file } => tenx::cmd::config::defaults(file),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tenx: {}", tenx::base::text::text(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// `--snapshot`: a snapshot id, or a database file that exists.
fn snapshot_arg(s: &str) -> Result<String, String> {
    let path = std::path::Path::new(s);
    if path.is_file() || s.trim().parse::<i64>().is_ok() {
        return Ok(s.to_string());
    }
    if path.exists() {
        return Err(format!(
            "{s} is not a file (a snapshot database file or a snapshot id)"
        ));
    }
    Err(format!(
        "no such file: {s} (a snapshot database file or a snapshot id)"
    ))
}

/// `--kind`: one of the search's kind names.
fn kind_arg(s: &str) -> Result<String, String> {
    let names: Vec<&str> = tenx::search::KIND_FILTERS.iter().map(|(f, _)| *f).collect();
    if names.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!("unknown kind (one of {})", names.join(", ")))
    }
}

/// Relationship verbs, parsed as the command line is read.
#[derive(Clone)]
struct Verbs(Vec<tenx::model::Verb>);

fn verbs_arg(s: &str) -> Result<Verbs, String> {
    tenx::cmd::export::parse_verbs(s)
        .map(Verbs)
        .map_err(|e| format!("{e:#}"))
}

/// Output piped into a program that stopped reading (`tenx triage | head`)
/// is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn fetch(profile: Option<&str>, args: FetchArgs) -> anyhow::Result<ExitCode> {
    // What the flags say is checked before the profile is looked for.
    let asked = match &args.sources {
        Some(s) => Some(tenx::fetch::Source::parse_list(s)?),
        None => None,
    };
    let defender_api = args.defender_api;
    let (target, profile_sources) = tenx::cmd::resolve_target(profile)?;
    let sources = match (asked, profile_sources) {
        (Some(s), _) => s,
        (None, Some(p)) => p,
        (None, None) => tenx::fetch::Source::ALL.to_vec(),
    };
    let args = tenx::cmd::fetch::FetchArgs {
        sources,
        json: args.json,
        keep: args.keep,
        logon_users: args.logon_users,
        carry_over: !args.no_carry_over,
    };
    let mut target = target;
    if let Some(api) = defender_api {
        target.defender = api;
    }
    runtime()?.block_on(tenx::cmd::fetch::run(target, args))
}

fn export(profile: Option<&str>, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let store_name = tenx::cmd::store_for(profile, args.snapshot.as_deref())?;
    tenx::cmd::export::run(
        &store_name,
        tenx::cmd::export::ExportArgs {
            snapshot: args.snapshot,
            select: args.select,
            query: args.query,
            all_matches: args.all_matches,
            depth: usize::from(args.depth),
            follow: args.follow.map(|v| v.0).unwrap_or_default(),
            direction: args.direction,
            format: args.format,
            properties: !args.no_properties,
            output: args.output.unwrap_or(tenx::base::outfile::Output::Stdout),
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn fake_tenant(args: FakeTenantArgs) -> anyhow::Result<ExitCode> {
    let faults = Faults::parse(&args.faults)?;
    let throttle = match &args.throttle {
        None => None,
        Some(spec) => Some(ThrottleSpec::parse(spec)?),
    };
    let rate_limits = RateLimits::parse(&args.rate_limits)?;
    let hunting = HuntingLimits::parse(&args.hunting_limits)?;
    let tenant = FakeTenant::generate(args.size.params());
    if let Some(path) = &args.manifest {
        let manifest = Manifest::of(&tenant);
        let json = serde_json::to_string_pretty(&manifest)?;
        tenx::base::outfile::write_atomic(path, |w| std::io::Write::write_all(w, json.as_bytes()))
            .with_context(|| format!("cannot write the manifest {}", path.display()))?;
    }
    let options = ServerOptions {
        latency: Duration::from_millis(args.latency_ms),
        throttle,
        rate_limits,
        faults,
        request_log: args.request_log.clone(),
        secret_expired: args.secret_expired,
        cache_responses: args.cache_responses,
        hunting,
        subsecond_retry_after: args.subsecond_retry_after,
    };
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), args.port);
    let running = tenx_sim::serve(tenant, addr, options).await?;
    for (k, v) in running.env() {
        println!("{k}={v}");
    }
    eprintln!(
        "tenx fake-tenant: {} users, {} devices, {} machines, {} resources on {} (Ctrl-C to stop)",
        running.tenant.users.len(),
        running.tenant.devices.len(),
        running.tenant.machines.len(),
        running.tenant.resources.len(),
        running.base_url()
    );
    wait_for_stop().await;
    running.stop().await;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
