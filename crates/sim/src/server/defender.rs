//! Defender for Endpoint: machines, vulnerabilities, logon users.

use axum::http::StatusCode;
use serde_json::Value;

use super::*;

impl Sim {
    pub(super) fn defender(&self, rest: &str, q: &Query, roles: &[String]) -> Reply {
        let t = &*self.t;
        let has = |role: &str| roles.iter().any(|r| r == role);
        let denied = |needed: &str, resource: &str| {
            self.error(Service::Defender, StatusCode::FORBIDDEN, "Forbidden", &format!("The application does not have any of the required application roles ({needed}, {}) to access resource '{resource}'.", needed.replace(".Read.", ".ReadWrite.")))
        };
        let Some(path) = rest.strip_prefix("/api") else {
            return self.error(
                Service::Defender,
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                &format!("Resource {rest} not found"),
            );
        };
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let page = |total: usize, max_top: usize, render: &dyn Fn(usize) -> Value| {
            self.odata_page(
                Service::Defender,
                &format!("/api{path}"),
                q,
                total,
                max_top,
                max_top,
                render,
            )
        };
        let machine = |id: &str| self.ix.machines.get(&id.to_lowercase()).copied();
        let not_found = |id: &str| {
            self.error(
                Service::Defender,
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                &format!("Machine {id} was not found"),
            )
        };
        match segs.as_slice() {
            ["machines"] => {
                if has("Machine.Read.All") {
                    page(t.machines.len(), 10_000, &|i| render::machine(t, i))
                } else {
                    denied("Machine.Read.All", "Machine")
                }
            }
            ["machines", id] => {
                if !has("Machine.Read.All") {
                    denied("Machine.Read.All", "Machine")
                } else {
                    match machine(id) {
                        Some(m) => Reply::ok(render::machine(t, m)),
                        None => not_found(id),
                    }
                }
            }
            ["machines", id, "logonusers"] => {
                if !(has("Machine.Read.All") && has("User.Read.All")) {
                    return denied("User.Read.All", "User");
                }
                match machine(id) {
                    Some(m) => {
                        let l = &t.machines[m].logons;
                        page(l.len(), 10_000, &|i| {
                            render::logon_user(t, m, l[i] as usize)
                        })
                    }
                    None => not_found(id),
                }
            }
            ["machines", id, "vulnerabilities"] => {
                if !has("Vulnerability.Read.All") {
                    return denied("Vulnerability.Read.All", "Vulnerability");
                }
                match machine(id) {
                    Some(m) => {
                        let v = &t.machines[m].vulns;
                        page(v.len(), 10_000, &|i| {
                            render::vulnerability(t, v[i] as usize, 1)
                        })
                    }
                    None => not_found(id),
                }
            }
            ["vulnerabilities"] => {
                if has("Vulnerability.Read.All") {
                    let list = &self.ix.exposed_cves;
                    page(list.len(), 8_000, &|i| {
                        render::vulnerability(t, list[i].0 as usize, list[i].1)
                    })
                } else {
                    denied("Vulnerability.Read.All", "Vulnerability")
                }
            }
            ["vulnerabilities", "machinesVulnerabilities"] => {
                if has("Vulnerability.Read.All") {
                    let list = &self.ix.machine_vulns;
                    page(list.len(), 10_000, &|i| {
                        let (m, c, p) = list[i];
                        render::machine_vulnerability_product(t, m as usize, c as usize, p as usize)
                    })
                } else {
                    denied("Vulnerability.Read.All", "Vulnerability")
                }
            }
            _ => self.error(
                Service::Defender,
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                &format!("Resource /api{path} not found"),
            ),
        }
    }
}
