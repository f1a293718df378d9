//! The command line (SPEC §11), with kubectl's conventions: global `--kubeconfig`,
//! `--context`, `-n/--namespace`, `-A/--all-namespaces`, `-o json|yaml|wide|name`, `--as` and
//! `--as-group`, accepted before or after the command.
//!
//! The commands of other issues (`eligible`, `activate`, `requests`, `approve`, `deny`,
//! `deactivate`) join [`Command`] as further variants.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::output::OutputFormat;

/// `kubectl lighthouse`: Azure Lighthouse's views and commands for kube-lighthouse.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-lighthouse",
    bin_name = "kubectl-lighthouse",
    version,
    about = "Azure Lighthouse on Kubernetes: your customers, your delegations, and the delegations you give",
    long_about = None,
)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// kubectl's global options.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespace (default: the context's).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Every namespace the caller can read.
    #[arg(short = 'A', long, global = true, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Output format: json, yaml, wide or name (default: a table).
    #[arg(short = 'o', long, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
    /// User to impersonate for the operation (kubectl's --as).
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,
    /// Group to impersonate for the operation; repeatable (kubectl's --as-group).
    #[arg(long = "as-group", global = true, value_name = "GROUP")]
    pub as_group: Vec<String>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Who you are to the cluster (SelfSubjectReview), and your managing tenant.
    Whoami,
    /// Customers that delegated to you: Azure's "My customers" (the views API).
    #[command(alias = "customer")]
    Customers {
        /// One customer by tenant ID.
        name: Option<String>,
        /// Across the fleet, at a kube-lighthouse hub (docs/fleet.md): with the CLUSTERS column,
        /// and a warning naming every cluster whose report the hub cannot read now.
        #[arg(long)]
        fleet: bool,
    },
    /// Delegations that give you something, standing or eligible, or name you as approver.
    #[command(alias = "delegation")]
    Delegations {
        /// One delegation by name (`<namespace>.<assignment>`; at a hub
        /// `<cluster>.<namespace>.<assignment>`).
        name: Option<String>,
        /// Across the fleet, at a kube-lighthouse hub (docs/fleet.md): with the CLUSTER column,
        /// and a warning naming every cluster whose report the hub cannot read now.
        #[arg(long)]
        fleet: bool,
    },
    /// At a kube-lighthouse hub: point your kubeconfig at a customer cluster and one of the
    /// namespaces delegated to you there, signing in as you do (docs/fleet.md).
    #[command(after_help = USE_HELP)]
    Use(UseArgs),
    /// Service providers of your namespaces: Azure's "Service providers" (customer side).
    #[command(alias = "provider")]
    Providers,
    /// The platform team's guardrails, and every delegation that breaks one (docs/guardrails.md);
    /// all namespaces unless -n.
    #[command(alias = "guardrails")]
    Policy,
    /// Registration definitions (`az managedservices definition`).
    #[command(subcommand, visible_alias = "regdef")]
    Definition(DefinitionCommand),
    /// Registration assignments (`az managedservices assignment`).
    #[command(subcommand, visible_alias = "regassign")]
    Assignment(AssignmentCommand),
    /// What you (or --as) may do in each delegated namespace: a verbs × resources matrix.
    Access(AccessArgs),
    /// Import an Azure Lighthouse onboarding template (ARM JSON) into a subscription namespace.
    Import(ImportArgs),
    /// What you may activate just in time, and where (eligible authorizations: docs/just-in-time.md).
    Eligible,
    /// Activate an eligible role in a namespace for a while, with a reason.
    Activate(ActivateArgs),
    /// Activation requests: all you can see, yours, or those waiting for an approver.
    #[command(alias = "request")]
    Requests(RequestsArgs),
    /// Approve a Pending activation (as a listed approver).
    Approve(ReviewArgs),
    /// Deny a Pending activation (as a listed approver).
    Deny(ReviewArgs),
    /// End an activation early (your own: Canceled; anyone else's, as customer admin: Revoked).
    Deactivate {
        /// The RoleActivation's name.
        name: String,
    },
    /// Exec credential plugin (run by kubectl from a kubeconfig user entry): exchanges your own
    /// tenant's token at kube-lighthouse's broker and prints an ExecCredential.
    #[command(after_help = CREDENTIAL_HELP)]
    Credential(CredentialArgs),
    /// Writes a kubeconfig user entry (and context) that signs in through kube-lighthouse's
    /// broker with `credential`; other entries are left as they are.
    #[command(after_help = LOGIN_HELP)]
    Login(LoginArgs),
    /// The plugin's version (the release it comes from), alone on one line.
    Version,
    /// Shell completion script.
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// What `use --help` adds under the flags.
const USE_HELP: &str = "\
Run it with the hub as the current context (or --context HUB). It writes the cluster entry \
lighthouse/CLUSTER (the server and CA the hub lists for it, never a credential) and the context \
lighthouse/CLUSTER/NAMESPACE, makes that context current, and prints what it wrote.

Sign-in: a cluster that trusts your tenant's own issuer gets the hub context's user entry as it \
is; a cluster that signs in through its kube-lighthouse broker gets a user entry \
lighthouse/CLUSTER running `kubectl lighthouse credential` at that broker, with the token source \
of your current broker user entry or --token-command/--token-file. --user NAME uses that user \
entry instead. --kubeconfig PATH is the file written (default: the first file of $KUBECONFIG, \
then ~/.kube/config); its comments are not kept.";

/// `use CLUSTER/NAMESPACE`
#[derive(Debug, Clone, Default, Args)]
pub struct UseArgs {
    /// The customer cluster (its ClusterProfile's name at the hub) and a namespace delegated to you there.
    #[arg(value_name = "CLUSTER/NAMESPACE")]
    pub target: String,
    /// The kubeconfig user entry the context uses (default: as the cluster signs in, see below).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// For a cluster with a sign-in broker: the command printing your own tenant's token.
    #[arg(long, value_name = "COMMAND", conflicts_with = "token_file")]
    pub token_command: Option<String>,
    /// For a cluster with a sign-in broker: the file holding your own tenant's token.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// For a cluster with a sign-in broker: PEM file of the CA of the broker's certificate, when not publicly trusted.
    #[arg(long, value_name = "FILE")]
    pub broker_certificate_authority: Option<PathBuf>,
}

/// What `credential --help` adds under the flags.
const CREDENTIAL_HELP: &str = "\
Your own tenant's token: pass exactly one of --token-command COMMAND (e.g. \
`kubelogin get-token --login azurecli --server-id APP`) or --token-file FILE.

kubectl runs this command from the user entry `kubectl lighthouse login` writes (client-go's exec \
credential protocol, reading KUBERNETES_EXEC_INFO); run it yourself to see the ExecCredential \
kubectl gets. The global --kubeconfig, --context, -n, -A, -o, --as and --as-group do not apply to it.";

/// What `login --help` adds under the flags.
const LOGIN_HELP: &str = "\
Your own tenant's token: pass exactly one of --token-command COMMAND (e.g. \
`kubelogin get-token --login azurecli --server-id APP`) or --token-file FILE.

--context NAME (required) is the context written, -n NAMESPACE its namespace, and --kubeconfig \
PATH the file written (default: the first file of $KUBECONFIG, then ~/.kube/config). -A, -o, --as \
and --as-group do not apply. The file is rewritten from its parsed content: its comments are not kept.";

/// `credential --broker ISSUER_URL (--token-command CMD | --token-file FILE)`
#[derive(Debug, Clone, Default, Args)]
#[command(group = clap::ArgGroup::new("token_source").required(true).args(["token_command", "token_file"]))]
pub struct CredentialArgs {
    /// The broker's issuer URL (its discovery document is at ISSUER_URL/.well-known/openid-configuration).
    #[arg(long, value_name = "ISSUER_URL")]
    pub broker: String,
    /// PEM file of the CA that signed the broker's certificate (default: the system's trusted roots).
    #[arg(long, value_name = "FILE")]
    pub certificate_authority: Option<PathBuf>,
    /// Command printing your own tenant's token (a JWT, an ExecCredential as kubelogin prints, or az's JSON); run by sh -c.
    #[arg(long, value_name = "COMMAND")]
    pub token_command: Option<String>,
    /// File holding your own tenant's token (read at each call).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The audience to request for the issued token (default: the broker's).
    #[arg(long, value_name = "AUDIENCE")]
    pub audience: Option<String>,
    /// Where issued tokens are cached (default: kube-lighthouse/credentials in your cache directory).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Exchange at every call; cache nothing.
    #[arg(long)]
    pub no_cache: bool,
}

/// `login --context NAME --broker ISSUER_URL (--token-command CMD | --token-file FILE) [--server URL]`
#[derive(Debug, Clone, Default, Args)]
#[command(group = clap::ArgGroup::new("token_source").required(true).args(["token_command", "token_file"]))]
pub struct LoginArgs {
    /// The broker's issuer URL, e.g. https://lighthouse.example.com/federation.
    #[arg(long, value_name = "ISSUER_URL")]
    pub broker: String,
    /// PEM file of the CA that signed the broker's certificate, when it is not publicly trusted.
    #[arg(long, value_name = "FILE")]
    pub certificate_authority: Option<PathBuf>,
    /// Command printing your own tenant's token, e.g. `kubelogin get-token --login azurecli --server-id APP`.
    #[arg(long, value_name = "COMMAND")]
    pub token_command: Option<String>,
    /// File holding your own tenant's token.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The audience to request for the issued token (default: the broker's).
    #[arg(long, value_name = "AUDIENCE")]
    pub audience: Option<String>,
    /// The API server's URL: writes the cluster entry (named --cluster, default the context's name).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// PEM file of the API server's CA, embedded in the cluster entry written for --server.
    #[arg(long, value_name = "FILE", requires = "server")]
    pub server_certificate_authority: Option<PathBuf>,
    /// The cluster entry the context uses (default: the context's own, or the context's name with --server).
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Name of the user entry (default: CONTEXT-lighthouse).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// The plugin's command in the user entry, found on kubectl's PATH.
    #[arg(long, value_name = "COMMAND", default_value = "kubectl-lighthouse")]
    pub exec_command: String,
    /// Replace an existing user or cluster entry of the same name (without it, login refuses and writes nothing).
    #[arg(long)]
    pub overwrite: bool,
    /// Print the entries instead of writing them.
    #[arg(long)]
    pub dry_run: bool,
}

/// `--dry-run`: kubectl's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    /// Print the object that would be sent; send nothing.
    Client,
    /// Send it for validation and admission, persist nothing.
    Server,
    /// Really do it.
    None,
}

/// `definition …`
#[derive(Debug, Subcommand)]
pub enum DefinitionCommand {
    /// List definitions.
    #[command(visible_alias = "ls")]
    List,
    /// A definition's authorizations, the subject each becomes, its assignments and the RBAC made.
    Show {
        /// Definition name.
        name: String,
    },
    /// Create (server-side apply) a definition in a subscription namespace.
    Create(Box<DefinitionCreateArgs>),
    /// Delete a definition (and so its assignments), after saying what access goes.
    Delete(DeleteArgs),
}

/// `definition create`: `az managedservices definition create`'s flags, with repeatable
/// authorizations.
#[derive(Debug, Clone, Args)]
pub struct DefinitionCreateArgs {
    /// Object name of the definition.
    pub name: String,
    /// The offer's display name (`registrationDefinitionName`; default: the object name).
    #[arg(long)]
    pub display_name: Option<String>,
    /// What the managing tenant will do.
    #[arg(long)]
    pub description: Option<String>,
    /// The managing tenant's ID (`managedByTenantId`).
    #[arg(long = "tenant-id", alias = "managed-by-tenant-id", value_name = "GUID")]
    pub tenant_id: String,
    /// `principalId=GUID,role=NAME|GUID[,principalType=User|Group|ServicePrincipal|ServiceAccount][,displayName=..][,delegatedRoles=R1;R2]`; repeatable.
    #[arg(long = "authorization", value_name = "SPEC")]
    pub authorizations: Vec<String>,
    /// `principalId=GUID,role=NAME|GUID[,displayName=..][,mfa=Azure|None][,maxDuration=PT8H][,approvers=GUID[:NAME];..]`; repeatable.
    #[arg(long = "eligible", value_name = "SPEC")]
    pub eligible: Vec<String>,
    /// az's single authorization: the principal (with --role-definition-id).
    #[arg(long, value_name = "GUID")]
    pub principal_id: Option<String>,
    /// az's single authorization: its role, by name or GUID.
    #[arg(long, value_name = "ROLE")]
    pub role_definition_id: Option<String>,
    /// Marketplace plan name.
    #[arg(long)]
    pub plan_name: Option<String>,
    /// Marketplace plan publisher.
    #[arg(long)]
    pub plan_publisher: Option<String>,
    /// Marketplace plan product.
    #[arg(long)]
    pub plan_product: Option<String>,
    /// Marketplace plan version.
    #[arg(long)]
    pub plan_version: Option<String>,
    /// Only print (`client`) or only validate (`server`).
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "client", default_value = "none")]
    pub dry_run: DryRun,
}

/// `… delete`
#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    /// Object name.
    pub name: String,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
}

/// `assignment …`
#[derive(Debug, Subcommand)]
pub enum AssignmentCommand {
    /// List assignments.
    #[command(visible_alias = "ls")]
    List,
    /// An assignment, its definition's authorizations, the namespaces in force and the RBAC made.
    Show {
        /// Assignment name.
        name: String,
    },
    /// Assign a definition to this namespace (a subscription or one of its resource groups).
    Create(AssignmentCreateArgs),
    /// Delete an assignment, after saying what access goes.
    Delete(DeleteArgs),
}

/// `assignment create`
#[derive(Debug, Clone, Args)]
pub struct AssignmentCreateArgs {
    /// Object name (default: the definition's name).
    pub name: Option<String>,
    /// The definition to assign, by name in the subscription namespace.
    #[arg(long, value_name = "NAME")]
    pub definition: String,
    /// Only print (`client`) or only validate (`server`).
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "client", default_value = "none")]
    pub dry_run: DryRun,
}

/// `import`: `az deployment sub create --template-file … --parameters …`, onto the cluster.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The deployment template (ARM JSON): a subscription or resource-group onboarding template.
    #[arg(short = 'f', long = "filename", value_name = "TEMPLATE.json")]
    pub template: PathBuf,
    /// The deployment parameters file (`{"parameters": {"NAME": {"value": …}}}`).
    #[arg(short = 'p', long = "parameters", value_name = "PARAMETERS.json")]
    pub parameters: Option<PathBuf>,
    /// Maps a resource group of the template to a namespace; repeatable. Unmapped resource
    /// groups go to the subscription's resource-group namespace of the same name.
    #[arg(long = "resource-group", value_name = "RG_NAME=NAMESPACE", value_parser = parse_resource_group)]
    pub resource_groups: Vec<(String, String)>,
    /// Overrides a template parameter (JSON for array, object, int and bool ones); repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, String)>,
    /// For a resource-group deployment template (`deploymentTemplate.json`): the resource
    /// group it is deployed to (az's `deployment group create --resource-group`).
    #[arg(short = 'g', long = "deployment-resource-group", value_name = "RG_NAME")]
    pub deployment_resource_group: Option<String>,
    /// Only print (`client`) or only validate (`server`).
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "client", default_value = "none")]
    pub dry_run: DryRun,
}

fn parse_set(arg: &str) -> Result<(String, String), String> {
    kube_lighthouse_core::azure::parse_set(arg).map_err(|e| e.to_string())
}

fn parse_resource_group(arg: &str) -> Result<(String, String), String> {
    kube_lighthouse_core::azure::parse_resource_group(arg).map_err(|e| e.to_string())
}

/// `access`
#[derive(Debug, Clone, Args)]
pub struct AccessArgs {
    /// Verbs to check (default: get,list,watch,create,update,patch,delete).
    #[arg(long, value_delimiter = ',')]
    pub verbs: Vec<String>,
    /// Resources to check, `resource` or `resource.group` (default: the common ones).
    #[arg(long, value_delimiter = ',')]
    pub resources: Vec<String>,
    /// Print yes/no instead of ✔/✖.
    #[arg(long)]
    pub ascii: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kubectl-lighthouse").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_before_or_after_the_command() {
        let cli = parse(&["-n", "customer-a", "providers", "-o", "wide", "--context", "msp"]).expect("parses");
        assert_eq!(cli.global.namespace.as_deref(), Some("customer-a"));
        assert_eq!(cli.global.output, Some(OutputFormat::Wide));
        assert_eq!(cli.global.context.as_deref(), Some("msp"));
        assert!(matches!(cli.command, Command::Providers));
        let cli = parse(&["customers", "-o", "yaml", "--kubeconfig", "/tmp/kc"]).expect("parses");
        assert_eq!(cli.global.output, Some(OutputFormat::Yaml));
        assert_eq!(cli.global.kubeconfig, Some(PathBuf::from("/tmp/kc")));
    }

    #[test]
    fn impersonation_flags_repeat() {
        let cli = parse(&["access", "--as", "t:u", "--as-group", "t:g1", "--as-group", "t:g2"]).expect("parses");
        assert_eq!(cli.global.as_user.as_deref(), Some("t:u"));
        assert_eq!(cli.global.as_group, ["t:g1", "t:g2"]);
    }

    #[test]
    fn namespace_and_all_namespaces_conflict() {
        assert!(parse(&["providers", "-A"]).expect("parses").global.all_namespaces);
        let err = parse(&["providers", "-A", "-n", "x"]).expect_err("conflict");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn unknown_commands_and_formats_are_usage_errors() {
        assert_eq!(parse(&["bogus"]).expect_err("unknown").exit_code(), 2);
        assert_eq!(parse(&["customers", "-o", "table"]).expect_err("bad format").exit_code(), 2);
        assert_eq!(parse(&[]).expect_err("no command").exit_code(), 2);
    }

    #[test]
    fn definition_create_takes_many_authorizations() {
        let cli = parse(&[
            "definition",
            "create",
            "contoso-msp",
            "-n",
            "customer-a",
            "--tenant-id",
            "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6",
            "--display-name",
            "Contoso Managed Services",
            "--authorization",
            "principalId=00000000-0000-0000-0000-0000000000a1,role=Reader,principalType=Group",
            "--authorization",
            "principalId=00000000-0000-0000-0000-0000000000b2,role=Contributor",
            "--eligible",
            "principalId=00000000-0000-0000-0000-0000000000c3,role=Contributor,maxDuration=PT4H",
            "--dry-run=client",
            "-o",
            "yaml",
        ])
        .expect("parses");
        let Command::Definition(DefinitionCommand::Create(args)) = cli.command else { panic!("create") };
        assert_eq!(args.authorizations.len(), 2);
        assert_eq!(args.eligible.len(), 1);
        assert_eq!(args.dry_run, DryRun::Client);
        assert_eq!(cli.global.output, Some(OutputFormat::Yaml));
    }

    #[test]
    fn dry_run_defaults_to_none_and_bare_means_client() {
        let create = |extra: &[&str]| {
            let mut args = vec!["assignment", "create", "--definition", "d"];
            args.extend(extra);
            match parse(&args).expect("parses").command {
                Command::Assignment(AssignmentCommand::Create(a)) => a.dry_run,
                _ => panic!("create"),
            }
        };
        assert_eq!(create(&[]), DryRun::None);
        assert_eq!(create(&["--dry-run"]), DryRun::Client);
        assert_eq!(create(&["--dry-run=server"]), DryRun::Server);
        assert!(parse(&["assignment", "create", "--definition", "d", "--dry-run=maybe"]).is_err());
    }

    #[test]
    fn delete_asks_unless_yes() {
        let cli = parse(&["assignment", "delete", "contoso", "-n", "customer-a", "--yes"]).expect("parses");
        let Command::Assignment(AssignmentCommand::Delete(d)) = cli.command else { panic!("delete") };
        assert!(d.yes);
        assert_eq!(d.name, "contoso");
        assert!(parse(&["definition", "delete"]).is_err(), "a name is required");
    }

    #[test]
    fn access_takes_verb_and_resource_lists() {
        let cli =
            parse(&["access", "-A", "--verbs", "get,list", "--resources", "pods,deployments.apps"]).expect("parses");
        let Command::Access(a) = cli.command else { panic!("access") };
        assert_eq!(a.verbs, ["get", "list"]);
        assert_eq!(a.resources, ["pods", "deployments.apps"]);
    }

    #[test]
    fn import_takes_files_mappings_and_overrides() {
        let cli = parse(&[
            "import",
            "-f",
            "subscription.json",
            "-p",
            "subscription.parameters.json",
            "-n",
            "customer-a",
            "--resource-group",
            "rg-web=customer-a-web",
            "--resource-group",
            "rg-db=customer-a-db",
            "--set",
            "managedByTenantId=fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6",
            "--set",
            "authorizations=[{\"a\":\"b=c\"}]",
            "--dry-run=client",
            "-o",
            "yaml",
        ])
        .expect("parses");
        assert_eq!(cli.global.namespace.as_deref(), Some("customer-a"));
        assert_eq!(cli.global.output, Some(OutputFormat::Yaml));
        let Command::Import(args) = cli.command else { panic!("import") };
        assert_eq!(args.template, PathBuf::from("subscription.json"));
        assert_eq!(args.parameters, Some(PathBuf::from("subscription.parameters.json")));
        assert_eq!(
            args.resource_groups,
            [("rg-web".to_string(), "customer-a-web".to_string()), ("rg-db".into(), "customer-a-db".into())]
        );
        assert_eq!(args.set[0], ("managedByTenantId".to_string(), "fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6".to_string()));
        assert_eq!(
            args.set[1],
            ("authorizations".to_string(), "[{\"a\":\"b=c\"}]".to_string()),
            "split at the first ="
        );
        assert_eq!(args.dry_run, DryRun::Client);
        assert_eq!(args.deployment_resource_group, None);
    }

    #[test]
    fn import_needs_a_template_and_well_formed_pairs() {
        assert_eq!(parse(&["import", "-n", "customer-a"]).expect_err("no -f").exit_code(), 2);
        let bad_set = parse(&["import", "-f", "t.json", "--set", "novalue"]).expect_err("no =");
        assert_eq!(bad_set.exit_code(), 2);
        assert!(bad_set.to_string().contains("NAME=VALUE"), "{bad_set}");
        let bad_rg = parse(&["import", "-f", "t.json", "--resource-group", "web="]).expect_err("no namespace");
        assert!(bad_rg.to_string().contains("RESOURCE_GROUP=NAMESPACE"), "{bad_rg}");
        let cli = parse(&["import", "-f", "rg.json", "-g", "web", "--dry-run=server"]).expect("parses");
        let Command::Import(args) = cli.command else { panic!("import") };
        assert_eq!((args.deployment_resource_group.as_deref(), args.dry_run), (Some("web"), DryRun::Server));
        let cli = parse(&["import", "-f", "t.json"]).expect("parses");
        let Command::Import(args) = cli.command else { panic!("import") };
        assert_eq!(args.dry_run, DryRun::None, "applies by default");
    }

    #[test]
    fn credential_needs_a_broker_and_one_token_source() {
        let cli = parse(&["credential", "--broker", "https://b/federation", "--token-command", "kubelogin get-token"])
            .expect("parses");
        let Command::Credential(args) = cli.command else { panic!("credential") };
        assert_eq!(args.token_command.as_deref(), Some("kubelogin get-token"));
        assert!(!args.no_cache);
        let none = parse(&["credential", "--broker", "https://b"]).expect_err("no source");
        assert_eq!(none.exit_code(), 2);
        let said = none.to_string();
        assert!(said.contains("--token-command") && said.contains("--token-file"), "says what to pass: {said}");
        assert_eq!(parse(&["credential", "--token-file", "t"]).expect_err("no broker").exit_code(), 2);
        let both = ["credential", "--broker", "b", "--token-file", "t", "--token-command", "c"];
        assert_eq!(parse(&both).expect_err("both").exit_code(), 2);
    }

    #[test]
    fn login_takes_the_context_broker_and_cluster() {
        let cli = parse(&[
            "login",
            "--context",
            "fabrikam",
            "--broker",
            "https://b/federation",
            "--token-file",
            "t.jwt",
            "--server",
            "https://aks:443",
            "--server-certificate-authority",
            "ca.pem",
            "--dry-run",
        ])
        .expect("parses");
        assert_eq!(cli.global.context.as_deref(), Some("fabrikam"));
        let Command::Login(args) = cli.command else { panic!("login") };
        assert!(args.dry_run);
        assert_eq!(args.exec_command, "kubectl-lighthouse");
        assert_eq!(args.server.as_deref(), Some("https://aks:443"));
        let none = parse(&["login", "--context", "c", "--broker", "https://b/federation"]).expect_err("no source");
        let said = none.to_string();
        assert!(said.contains("--token-command") && said.contains("--token-file"), "says what to pass: {said}");
        let both = ["login", "--broker", "b", "--token-file", "t", "--token-command", "c"];
        assert_eq!(parse(&both).expect_err("both").exit_code(), 2);
        let ca_without_server = ["login", "--broker", "b", "--token-file", "t", "--server-certificate-authority", "ca"];
        assert_eq!(parse(&ca_without_server).expect_err("requires server").exit_code(), 2);
    }

    #[test]
    fn fleet_and_use_parse() {
        assert!(matches!(
            parse(&["delegations", "--fleet"]).expect("parses").command,
            Command::Delegations { fleet: true, .. }
        ));
        let cli = parse(&["use", "east/customer-a-web", "--token-file", "t.jwt"]).expect("parses");
        let Command::Use(args) = cli.command else { panic!("use") };
        assert_eq!(args.target, "east/customer-a-web");
        assert_eq!(args.token_file, Some(PathBuf::from("t.jwt")));
        assert_eq!(parse(&["use"]).expect_err("a target").exit_code(), 2);
        let both = ["use", "a/b", "--token-file", "t", "--token-command", "c"];
        assert_eq!(parse(&both).expect_err("both").exit_code(), 2);
    }

    #[test]
    fn completion_names_a_shell_and_aliases_work() {
        assert!(matches!(parse(&["completion", "zsh"]).expect("parses").command, Command::Completion { .. }));
        assert!(parse(&["completion", "tcsh"]).is_err());
        assert!(matches!(
            parse(&["regdef", "ls"]).expect("parses").command,
            Command::Definition(DefinitionCommand::List)
        ));
        assert!(matches!(
            parse(&["customer", "t1"]).expect("parses").command,
            Command::Customers { name: Some(_), fleet: false }
        ));
    }
}

/// `activate ROLE -n NS --for 2h --reason "…" [--ticket SYSTEM:NUMBER] [--wait]`
#[derive(Debug, Clone, Args)]
pub struct ActivateArgs {
    /// The eligible role: display name as in the catalog's ClusterRole name, or its GUID.
    pub role: String,
    /// The assignment holding the eligible authorization (in the namespace, or its subscription).
    #[arg(long, value_name = "NAME")]
    pub assignment: String,
    /// How long: `2h`, `90m` or ISO 8601 `PT2H`; at most the policy's maximum.
    #[arg(long = "for", value_name = "DURATION")]
    pub duration: String,
    /// Why you need the access (the justification).
    #[arg(long)]
    pub reason: String,
    /// The ticket, `SYSTEM:NUMBER` (e.g. `ServiceNow:INC4711`).
    #[arg(long, value_name = "SYSTEM:NUMBER")]
    pub ticket: Option<String>,
    /// Name of the RoleActivation (default: the role and the time).
    #[arg(long)]
    pub name: Option<String>,
    /// Wait until it is Active (or ends).
    #[arg(long)]
    pub wait: bool,
}

/// `requests [--mine | --to-approve]`
#[derive(Debug, Clone, Args)]
pub struct RequestsArgs {
    /// Only yours.
    #[arg(long, conflicts_with = "to_approve")]
    pub mine: bool,
    /// Only Pending ones of others (those you may be asked to approve).
    #[arg(long)]
    pub to_approve: bool,
}

/// `approve|deny NAME --reason "…"`
#[derive(Debug, Clone, Args)]
pub struct ReviewArgs {
    /// The RoleActivation's name.
    pub name: String,
    /// Why.
    #[arg(long)]
    pub reason: String,
}
