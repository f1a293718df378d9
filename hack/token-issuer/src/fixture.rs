//! Test fixtures: scratch directories, and one issuer shared by the unit tests (RSA key
//! generation takes seconds in debug builds).

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::Issuer;

pub const TENANT: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";
pub const AUDIENCE: &str = "api://kube-lighthouse";

/// A fresh, empty directory under the system temp dir, unique to this process and `name`.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kl-token-issuer-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The issuer URL for `tenant` on `port`.
pub fn url(port: u16, tenant: &str) -> String {
    format!("https://127.0.0.1:{port}/{tenant}/v2.0")
}

/// One issuer for [`TENANT`] at port 18443 (never served by unit tests).
pub fn shared() -> &'static Issuer {
    static ISSUER: OnceLock<Issuer> = OnceLock::new();
    ISSUER.get_or_init(|| Issuer::init(&scratch("shared"), TENANT, &url(18443, TENANT), AUDIENCE).expect("init"))
}
