//! `customers` and `delegations`: the views API of SPEC §10, read through the aggregation
//! layer (`/apis/view.kubelighthouse.io/v1alpha1/...`), printed with the same columns the
//! server's `Table` has ([`kube_lighthouse_core::model::views::customer_table`]).

use std::io::Write;

use kube::api::{Api, ListParams};

use super::cli::GlobalArgs;
use super::output::{self, OutputFormat};
use super::{client, is_not_found, PluginError};
use kube_lighthouse_core::api::view::{Customer, CustomerList, Delegation, DelegationList, Table, VIEW_GROUP};
use kube_lighthouse_core::model::views::{customer_table, delegation_table, IncludeObject};

/// How a list or one object of a view prints in `format`.
///
/// # Errors
/// [`PluginError::Encode`] when JSON or YAML encoding fails.
pub fn render<T: serde::Serialize, L: serde::Serialize>(
    format: Option<OutputFormat>,
    resource: &str,
    names: &[String],
    single: Option<&T>,
    list: &L,
    table: &Table,
) -> Result<String, PluginError> {
    Ok(match format {
        Some(OutputFormat::Json) => match single {
            Some(one) => output::to_json(one)?,
            None => output::to_json(list)?,
        },
        Some(OutputFormat::Yaml) => match single {
            Some(one) => output::to_yaml(one)?,
            None => output::to_yaml(list)?,
        },
        Some(OutputFormat::Name) => output::names(resource, VIEW_GROUP, names),
        Some(OutputFormat::Wide) => output::from_table(table).render(true),
        None => output::from_table(table).render(false),
    })
}

pub(crate) fn unavailable(e: kube::Error) -> PluginError {
    if is_not_found(&e) {
        PluginError::ViewsUnavailable("404".into())
    } else if matches!(&e, kube::Error::Api(s) if s.code == 503) {
        PluginError::ViewsUnavailable("503: the APIService is not available".into())
    } else {
        e.into()
    }
}

/// The customers visible to the caller (through the views API).
///
/// # Errors
/// [`PluginError::ViewsUnavailable`] when the API is not served.
pub async fn list_customers(client: kube::Client) -> Result<Vec<Customer>, PluginError> {
    let api: Api<Customer> = Api::all(client);
    Ok(api.list(&ListParams::default()).await.map_err(unavailable)?.items)
}

/// The delegations visible to the caller (through the views API).
///
/// # Errors
/// [`PluginError::ViewsUnavailable`] when the API is not served.
pub async fn list_delegations(client: kube::Client) -> Result<Vec<Delegation>, PluginError> {
    let api: Api<Delegation> = Api::all(client);
    Ok(api.list(&ListParams::default()).await.map_err(unavailable)?.items)
}

/// With `--fleet`: the warnings about the hub's clusters the caller sees, naming each one
/// whose report the hub cannot read now ([`super::fleet::footer`]): their delegations are
/// missing from what is printed, and the engineer must know it. Printed on stderr after the
/// list, so `-o json|yaml` stays parseable.
async fn fleet_warnings(client: &kube::Client, fleet: bool) -> Result<Vec<String>, PluginError> {
    if !fleet {
        return Ok(Vec::new());
    }
    Ok(super::fleet::footer(&super::fleet::list_clusters(client.clone()).await?))
}

fn warn(out: &mut dyn Write, warnings: &[String]) -> Result<(), PluginError> {
    out.flush()?;
    for line in warnings {
        eprintln!("{line}");
    }
    Ok(())
}

/// `customers [NAME] [--fleet]`.
///
/// # Errors
/// [`PluginError`] from the API, or `NotFound` for an unknown name.
pub async fn customers(
    global: &GlobalArgs,
    name: Option<&str>,
    fleet: bool,
    out: &mut dyn Write,
) -> Result<(), PluginError> {
    let conn = client::connect(global).await?;
    let warnings = fleet_warnings(&conn.client, fleet).await?;
    let mut items = list_customers(conn.client).await?;
    if let Some(name) = name {
        items.retain(|c| c.metadata.name.as_deref() == Some(name));
        if items.is_empty() {
            return Err(PluginError::NotFound { kind: "customer", name: name.to_string() });
        }
    } else if items.is_empty() && !matches!(global.output, Some(OutputFormat::Json | OutputFormat::Yaml)) {
        eprintln!("No resources found");
        return warn(out, &warnings);
    }
    let names: Vec<String> = items.iter().filter_map(|c| c.metadata.name.clone()).collect();
    let table = customer_table(&items, IncludeObject::None);
    let single = if name.is_some() { items.first().cloned() } else { None };
    let text = render(global.output, "customer", &names, single.as_ref(), &CustomerList::new(items), &table)?;
    out.write_all(text.as_bytes())?;
    warn(out, &warnings)
}

/// `delegations [NAME] [--fleet]`.
///
/// # Errors
/// [`PluginError`] from the API, or `NotFound` for an unknown name.
pub async fn delegations(
    global: &GlobalArgs,
    name: Option<&str>,
    fleet: bool,
    out: &mut dyn Write,
) -> Result<(), PluginError> {
    let conn = client::connect(global).await?;
    let warnings = fleet_warnings(&conn.client, fleet).await?;
    let mut items = list_delegations(conn.client).await?;
    if let Some(name) = name {
        items.retain(|d| d.metadata.name.as_deref() == Some(name));
        if items.is_empty() {
            return Err(PluginError::NotFound { kind: "delegation", name: name.to_string() });
        }
    } else if items.is_empty() && !matches!(global.output, Some(OutputFormat::Json | OutputFormat::Yaml)) {
        eprintln!("No resources found");
        return warn(out, &warnings);
    }
    let names: Vec<String> = items.iter().filter_map(|d| d.metadata.name.clone()).collect();
    let table = delegation_table(&items, IncludeObject::None);
    let single = if name.is_some() { items.first().cloned() } else { None };
    let text = render(global.output, "delegation", &names, single.as_ref(), &DelegationList::new(items), &table)?;
    out.write_all(text.as_bytes())?;
    warn(out, &warnings)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;
    use kube_lighthouse_core::api::view::{RoleSummary, VIEW_API_VERSION};

    fn customer() -> Customer {
        Customer {
            api_version: VIEW_API_VERSION.into(),
            kind: "Customer".into(),
            metadata: ObjectMeta { name: Some("11111111-1111-1111-1111-111111111111".into()), ..Default::default() },
            customer_tenant_id: "11111111-1111-1111-1111-111111111111".into(),
            managed_by_tenant_ids: vec!["fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6".into()],
            offers: vec![],
            subscriptions: vec!["customer-a".into()],
            resource_groups: vec![],
            my_roles: RoleSummary { standing: vec!["Reader".into()], ..Default::default() },
            delegations: vec!["customer-a.contoso".into()],
            delegation_count: 1,
            clusters: vec![],
        }
    }

    #[test]
    fn every_output_format_renders_a_customer_list() {
        let items = vec![customer()];
        let table = customer_table(&items, IncludeObject::None);
        let list = CustomerList::new(items.clone());
        let names = vec!["11111111-1111-1111-1111-111111111111".to_string()];
        let plain = render::<Customer, _>(None, "customer", &names, None, &list, &table).expect("table");
        assert_eq!(
            plain,
            "CUSTOMER TENANT                        OFFERS   DELEGATIONS   MY ROLES\n\
             11111111-1111-1111-1111-111111111111   <none>   1             Reader\n"
        );
        let wide =
            render::<Customer, _>(Some(OutputFormat::Wide), "customer", &names, None, &list, &table).expect("wide");
        assert!(wide.lines().next().expect("header").ends_with("SUBSCRIPTIONS   RESOURCE GROUPS   MANAGED BY"));
        let name =
            render::<Customer, _>(Some(OutputFormat::Name), "customer", &names, None, &list, &table).expect("name");
        assert_eq!(name, "customer.view.kubelighthouse.io/11111111-1111-1111-1111-111111111111\n");
        let yaml =
            render::<Customer, _>(Some(OutputFormat::Yaml), "customer", &names, None, &list, &table).expect("yaml");
        let back: CustomerList = serde_yaml::from_str(&yaml).expect("a CustomerList");
        assert_eq!(back, list);
        let json = render(Some(OutputFormat::Json), "customer", &names, Some(&items[0]), &list, &table).expect("json");
        let one: Customer = serde_json::from_str(&json).expect("one Customer");
        assert_eq!(one, items[0]);
    }
}
