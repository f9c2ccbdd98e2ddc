//! The simulated tenant as the tests start it on loopback, and tenx's own
//! HTTP client signed in to it.

use std::sync::Arc;

use tenx::auth::endpoints::Endpoints;
use tenx::auth::secret::Secret;
use tenx::auth::{Auth, Credentials};
use tenx::cmd::demo::Simulated as _;
use tenx::fetch::http::{Http, HttpOptions};
use tenx_sim::{FakeParams, FakeTenant, Faults, RateLimits, RunningTenant, ServerOptions};

/// Defender's documented logon-user limits (100 a minute, 1,500 an hour),
/// 600 times faster, so reading every machine takes a test moments.
pub const SCALED: &str = "100/0.1s+1500/1.5s";

/// The simulated tenant of this size and seed, everything else as default.
pub fn tenant(users: usize, seed: u64) -> FakeTenant {
    FakeTenant::generate(FakeParams {
        users,
        seed,
        ..Default::default()
    })
}

/// Serves a tenant on a free loopback port.
pub async fn serve(t: FakeTenant, options: ServerOptions) -> RunningTenant {
    tenx_sim::serve(t, "127.0.0.1:0".parse().expect("addr"), options)
        .await
        .expect("server starts")
}

/// The tenant of this size and seed, served with these options (the
/// documented limits unless they say otherwise).
pub async fn start(users: usize, seed: u64, options: ServerOptions) -> RunningTenant {
    serve(tenant(users, seed), options).await
}

/// `start`, with the logon-user limits at `SCALED` (`scaled`).
pub async fn start_scaled(users: usize, seed: u64, options: ServerOptions) -> RunningTenant {
    start(users, seed, scaled(options)).await
}

/// Server options with these `--faults`.
pub fn faults(spec: &str) -> ServerOptions {
    ServerOptions {
        faults: Faults::parse(spec).expect("faults"),
        ..Default::default()
    }
}

/// The options with Defender's logon-user limits at `SCALED`, and the
/// scaled windows' waits said in fractions of a second (test-only).
pub fn scaled(options: ServerOptions) -> ServerOptions {
    ServerOptions {
        rate_limits: RateLimits::parse(&format!("logonusers={SCALED}")).expect("limits"),
        subsecond_retry_after: true,
        ..options
    }
}

/// Client options that wait 5 ms before trying again: a test need not
/// wait as long as a service would want.
pub fn quick() -> HttpOptions {
    HttpOptions {
        backoff: std::time::Duration::from_millis(5),
        ..Default::default()
    }
}

/// tenx's HTTP client with these credentials, for these endpoints.
pub fn http_with(creds: Credentials, endpoints: Endpoints, opts: HttpOptions) -> Arc<Http> {
    Arc::new(Http::new(Arc::new(Auth::new(creds, endpoints)), opts).expect("http"))
}

/// tenx's HTTP client signed in to the simulated tenant.
pub fn http(s: &RunningTenant, opts: HttpOptions) -> Arc<Http> {
    http_with(s.credentials(), s.endpoints().expect("endpoints"), opts)
}

/// `http`, with this client secret instead of the tenant's.
pub fn http_as(s: &RunningTenant, secret: &str, opts: HttpOptions) -> Arc<Http> {
    let creds = Credentials {
        secret: Secret::new(secret),
        ..s.credentials()
    };
    http_with(creds, s.endpoints().expect("endpoints"), opts)
}
