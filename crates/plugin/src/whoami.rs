//! `whoami`: the caller's identity as the API server sees it (a `SelfSubjectReview`,
//! `authentication.k8s.io/v1`), and the managing tenant of its projected name (SPEC §2: the
//! `<tenantId>:` prefix).

use std::io::Write;

use k8s_openapi::api::authentication::v1::{SelfSubjectReview, UserInfo};
use kube::api::{Api, PostParams};

use super::cli::GlobalArgs;
use super::output::{self, Column, OutputFormat, TextTable};
use super::{client, PluginError};
use kube_lighthouse_core::model::views::tenant_prefix;

/// The managing tenant a user info names: the GUID prefix of its user name (SPEC §2's
/// default projection `{tenantId}:{principalId}`), or failing that the one tenant all its
/// tenant-prefixed groups share.
pub fn managing_tenant(user: &UserInfo) -> Option<String> {
    if let Some(tenant) = user.username.as_deref().and_then(tenant_prefix) {
        return Some(tenant.to_string());
    }
    let mut tenants: Vec<String> =
        user.groups.iter().flatten().filter_map(|g| tenant_prefix(g)).map(|g| g.to_string()).collect();
    tenants.sort();
    tenants.dedup();
    match tenants.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// kubectl's `auth whoami` table (ATTRIBUTE, VALUE), with the managing tenant added.
pub fn table(user: &UserInfo) -> TextTable {
    let mut t = TextTable::new(vec![Column::new("Attribute"), Column::new("Value")]);
    t.push(vec!["Username".into(), user.username.clone().unwrap_or_default()]);
    if let Some(uid) = &user.uid {
        t.push(vec!["UID".into(), uid.clone()]);
    }
    t.push(vec![
        "Managing tenant".into(),
        managing_tenant(user).unwrap_or_else(|| "<none> (not a managing-tenant identity)".into()),
    ]);
    for group in user.groups.iter().flatten() {
        t.push(vec!["Groups".into(), group.clone()]);
    }
    for (key, values) in user.extra.iter().flatten() {
        t.push(vec![format!("Extra: {key}"), values.join(",")]);
    }
    t
}

/// `whoami`.
///
/// # Errors
/// [`PluginError`] when the review cannot be created (API servers before 1.28 lack it).
pub async fn run(global: &GlobalArgs, out: &mut dyn Write) -> Result<(), PluginError> {
    let conn = client::connect(global).await?;
    let api: Api<SelfSubjectReview> = Api::all(conn.client);
    let review = api.create(&PostParams::default(), &SelfSubjectReview::default()).await?;
    let user = review.status.as_ref().and_then(|s| s.user_info.clone()).unwrap_or_default();
    match global.output {
        Some(OutputFormat::Json) => out.write_all(output::to_json(&review)?.as_bytes())?,
        Some(OutputFormat::Yaml) => out.write_all(output::to_yaml(&review)?.as_bytes())?,
        Some(OutputFormat::Name) => writeln!(out, "{}", user.username.unwrap_or_default())?,
        Some(OutputFormat::Wide) | None => out.write_all(table(&user).render(true).as_bytes())?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const T: &str = "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6";

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            username: Some(name.into()),
            groups: Some(groups.iter().map(|g| g.to_string()).collect()),
            extra: Some(BTreeMap::from([(
                "kubelighthouse.io/amr".to_string(),
                vec!["pwd".to_string(), "mfa".to_string()],
            )])),
            uid: None,
        }
    }

    #[test]
    fn the_managing_tenant_is_the_user_name_prefix() {
        let u = user(&format!("{T}:00000000-0000-0000-0000-0000000000a1"), &["system:authenticated"]);
        assert_eq!(managing_tenant(&u).as_deref(), Some(T));
        assert_eq!(managing_tenant(&user("kubernetes-admin", &["system:masters"])), None);
        let by_group = user("someone", &[&format!("{T}:00000000-0000-0000-0000-0000000000e1"), "system:authenticated"]);
        assert_eq!(managing_tenant(&by_group).as_deref(), Some(T));
    }

    #[test]
    fn the_table_lists_user_groups_extra_and_tenant() {
        let u =
            user(&format!("{T}:00000000-0000-0000-0000-0000000000a1"), &[&format!("{T}:g1"), "system:authenticated"]);
        let text = table(&u).render(false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("ATTRIBUTE{}VALUE", " ".repeat(22)));
        assert!(lines[1].starts_with("Username") && lines[1].ends_with(":00000000-0000-0000-0000-0000000000a1"));
        assert!(lines[2].starts_with("Managing tenant") && lines[2].ends_with(T));
        assert!(lines[3].starts_with("Groups") && lines[3].ends_with(":g1"));
        assert!(lines[4].ends_with("system:authenticated"));
        assert_eq!(lines[5], "Extra: kubelighthouse.io/amr   pwd,mfa");
    }
}
