//! The SIG-Multicluster Cluster Inventory API's `ClusterProfile`
//! (`multicluster.x-k8s.io/v1alpha1`, github.com/kubernetes-sigs/cluster-inventory-api), as
//! far as a hub reads it (docs/fleet.md): the access providers in its status, each a name and
//! a kubeconfig `Cluster` (server, CA, extensions), and the deprecated `credentialProviders`
//! of the same shape. Plain serde types: the CRD is the upstream one, never ours.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// API group of ClusterProfile.
pub const CLUSTER_PROFILE_GROUP: &str = "multicluster.x-k8s.io";
/// Version read.
pub const CLUSTER_PROFILE_VERSION: &str = "v1alpha1";
/// Resource (plural).
pub const CLUSTER_PROFILES: &str = "clusterprofiles";
/// Annotation of a hand-written ClusterProfile naming a Secret, in the profile's namespace,
/// whose `kubeconfig` key holds a kubeconfig with the read-only credential (docs/fleet.md).
pub const KUBECONFIG_SECRET_ANNOTATION: &str = "kubelighthouse.io/kubeconfig-secret";

/// One `ClusterProfile` (the fields a hub reads).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterProfile {
    /// Name and namespace; the annotation [`KUBECONFIG_SECRET_ANNOTATION`].
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `status.accessProviders` and `status.credentialProviders`.
    #[serde(default)]
    pub status: Option<ClusterProfileStatus>,
}

/// `status` of a ClusterProfile.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterProfileStatus {
    /// How to reach the cluster, one entry per provider type.
    #[serde(default)]
    pub access_providers: Vec<AccessProvider>,
    /// Deprecated upstream in favour of `accessProviders`; read too, `accessProviders` wins
    /// for the same name.
    #[serde(default)]
    pub credential_providers: Vec<AccessProvider>,
}

/// An access provider: its type name and the kubeconfig `Cluster` to reach.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccessProvider {
    /// The provider type, matched against the hub's provider file.
    pub name: String,
    /// A kubeconfig v1 `Cluster` (`server`, `certificate-authority-data`, `extensions`, …).
    #[serde(default)]
    pub cluster: BTreeMap<String, serde_json::Value>,
}

/// The hub's credential providers file, the upstream format
/// (`{"providers": [{"name", "execConfig": {apiVersion, command, args, env, provideClusterInfo}}]}`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ProviderFile {
    /// In order of preference.
    #[serde(default)]
    pub providers: Vec<ProviderEntry>,
}

/// One provider of the hub's file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProviderEntry {
    /// The provider type name.
    pub name: String,
    /// A kubeconfig v1 `ExecConfig`: the exec credential plugin to run.
    pub exec_config: serde_json::Value,
}
