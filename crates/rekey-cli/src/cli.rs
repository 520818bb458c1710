//! Owns the command line: every command, flag and short form, named as in `az` (`-n`, `-g`,
//! `--key-name`, `--key-kind`, `--key-type`, `--ids`) so that az scripts run with `az` replaced by
//! `rekey`, plus PowerShell's safety switches (`--what-if`, `--pass-thru`) and each command's examples.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "rekey",
    version,
    about = "Manage rekey's dual access keys, with az's commands and flags.",
    after_help = "Examples:\n  \
    rekey login --endpoint http://127.0.0.1:8080 --token-file rekey-data/bootstrap.json\n  \
    rekey group create -n rg1 -l westus\n  \
    rekey cognitiveservices account create -n acct1 -g rg1 --kind TextAnalytics --sku S0\n  \
    rekey cognitiveservices account keys list -n acct1 -g rg1 -o table\n  \
    rekey cognitiveservices account keys regenerate -n acct1 -g rg1 --key-name key1"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, anywhere on the line (as in az).
#[derive(Debug, Args)]
pub struct Global {
    /// Output format [default: json; table for `keys usage`].
    #[arg(short = 'o', long, global = true, value_enum)]
    pub output: Option<Format>,
    /// JMESPath query applied to the result before it is printed.
    #[arg(long, global = true, value_name = "JMESPATH")]
    pub query: Option<String>,
    /// Only show errors, suppressing warnings.
    #[arg(long, global = true)]
    pub only_show_errors: bool,
    /// Print every request and reply to stderr (keys and tokens masked).
    #[arg(long, global = true)]
    pub debug: bool,
    /// Name or id of the subscription to act in (default: `rekey account set`'s choice).
    #[arg(long, global = true, value_name = "NAME_OR_ID")]
    pub subscription: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Store an endpoint and token in the user's profile.
    #[command(after_help = "Examples:\n  \
        rekey login --endpoint http://127.0.0.1:8080 --token rkt_...\n  \
        rekey login --endpoint https://rekey.example:8443 --token-file rekey-data/bootstrap.json --ca-file ca.pem\n  \
        REKEY_ENDPOINT=http://127.0.0.1:8080 REKEY_TOKEN=rkt_... rekey group list   # no profile needed")]
    Login(LoginArgs),
    /// Forget the stored endpoint and token.
    #[command(after_help = "Examples:\n  rekey logout")]
    Logout,
    /// Choose the subscription commands act in.
    #[command(
        subcommand,
        after_help = "Examples:\n  rekey account list -o table\n  rekey account set -s \"My subscription\""
    )]
    Account(AccountCommand),
    /// Manage resource groups.
    #[command(
        subcommand,
        after_help = "Examples:\n  rekey group create -n rg1 -l westus\n  rekey group list -o table"
    )]
    Group(GroupCommand),
    /// Manage Cognitive Services accounts and their keys.
    #[command(
        name = "cognitiveservices",
        subcommand,
        after_help = "Examples:\n  rekey cognitiveservices account keys list -n acct1 -g rg1"
    )]
    CognitiveServices(CognitiveServicesCommand),
    /// Manage Cosmos DB accounts and their keys.
    #[command(
        name = "cosmosdb",
        alias = "documentdb",
        subcommand,
        after_help = "Examples:\n  rekey cosmosdb keys list -n docdb1 -g rg1\n  rekey cosmosdb keys regenerate -n docdb1 -g rg1 --key-kind secondary"
    )]
    Cosmosdb(CosmosCommand),
    /// Manage Quantum workspaces and their API keys.
    #[command(
        subcommand,
        after_help = "Examples:\n  rekey quantum workspace keys list -w ws1 -g rg1"
    )]
    Quantum(QuantumCommand),
    /// Create, list and revoke rekey's service tokens (a rekey extension; az has no such command).
    #[command(
        subcommand,
        after_help = "Examples:\n  rekey token create --name ci --expires-in 30d\n  rekey token list -o table"
    )]
    Token(TokenCommand),
    /// Manage role assignments and look up role definitions.
    #[command(
        subcommand,
        after_help = "Examples:\n  rekey role assignment list -o table\n  rekey role definition list --name Reader"
    )]
    Role(RoleCommand),
    /// Read the activity log.
    #[command(
        subcommand,
        after_help = "Examples:\n  rekey monitor activity-log list --offset 1d"
    )]
    Monitor(MonitorCommand),
    /// Check the audit log's hash chain.
    #[command(subcommand, after_help = "Examples:\n  rekey audit verify")]
    Audit(AuditCommand),
    /// Print a shell completion script.
    #[command(after_help = "Examples:\n  \
        rekey completion bash > ~/.local/share/bash-completion/completions/rekey\n  \
        rekey completion zsh > \"${fpath[1]}/_rekey\"\n  \
        rekey completion fish > ~/.config/fish/completions/rekey.fish")]
    Completion {
        #[arg(value_enum)]
        shell: Shell,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Base URL of rekeyd, such as http://127.0.0.1:8080.
    #[arg(long, env = "REKEY_ENDPOINT")]
    pub endpoint: String,
    /// The bearer token (default: $REKEY_TOKEN).
    #[arg(long, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// A file holding the token, or rekeyd's bootstrap.json.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// PEM file of the certificate authorities that sign rekeyd's TLS certificate.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// List the subscriptions the token can see.
    #[command(
        after_help = "Examples:\n  rekey account list\n  rekey account list --query \"[].id\" -o tsv"
    )]
    List,
    /// Show the subscription commands act in, or the one named.
    #[command(
        after_help = "Examples:\n  rekey account show\n  rekey account show -s 00000000-0000-0000-0000-000000000000"
    )]
    Show(AccountName),
    /// Make a subscription the one commands act in.
    #[command(
        after_help = "Examples:\n  rekey account set --subscription \"My subscription\"\n  rekey account set -s 00000000-0000-0000-0000-000000000000"
    )]
    Set(AccountName),
}

#[derive(Debug, Args)]
pub struct AccountName {
    /// Name or id of the subscription (the global --subscription works too).
    #[arg(short = 's', long = "name", short_alias = 'n')]
    pub name: Option<String>,
}

/// `-n`, `--name`, `-g` and `--resource-group` all name the group in `az group`.
#[derive(Debug, Args)]
pub struct GroupName {
    /// Name of the resource group.
    #[arg(
        short = 'n',
        long = "name",
        short_alias = 'g',
        alias = "resource-group",
        required_unless_present = "ids",
        conflicts_with = "ids"
    )]
    pub name: Option<String>,
    /// One or more resource group ids, instead of --name.
    #[arg(long, num_args = 1..)]
    pub ids: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create or update a resource group.
    #[command(
        after_help = "Examples:\n  rekey group create -n rg1 -l westus\n  rekey group create --name rg1 --location westus --tags team=keys env=dev"
    )]
    Create {
        /// Name of the resource group.
        #[arg(
            short = 'n',
            long = "name",
            short_alias = 'g',
            alias = "resource-group"
        )]
        name: String,
        /// Location, such as westus.
        #[arg(short = 'l', long)]
        location: String,
        /// Space-separated tags: key[=value].
        #[arg(long, num_args = 0..)]
        tags: Option<Vec<String>>,
    },
    /// Show a resource group.
    #[command(
        after_help = "Examples:\n  rekey group show -n rg1\n  rekey group show --ids /subscriptions/SUB/resourceGroups/rg1"
    )]
    Show(GroupName),
    /// List resource groups.
    #[command(after_help = "Examples:\n  rekey group list\n  rekey group list -o table")]
    List,
    /// Check whether a resource group exists (prints true or false).
    #[command(after_help = "Examples:\n  rekey group exists -n rg1")]
    Exists(GroupName),
    /// Delete a resource group with its resources and their keys.
    #[command(after_help = "Examples:\n  rekey group delete -n rg1 --yes")]
    Delete {
        #[command(flatten)]
        group: GroupName,
        /// Do not prompt for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
        /// Do not wait for a long-running deletion to finish.
        #[arg(long)]
        no_wait: bool,
    },
}

/// A resource by `-n`/`-g`, or by `--ids`.
#[derive(Debug, Args)]
pub struct ResourceArgs {
    /// Name of the resource.
    #[arg(
        short = 'n',
        long,
        required_unless_present = "ids",
        conflicts_with = "ids"
    )]
    pub name: Option<String>,
    /// Name of the resource group.
    #[arg(
        short = 'g',
        long,
        required_unless_present = "ids",
        conflicts_with = "ids"
    )]
    pub resource_group: Option<String>,
    /// One or more resource ids, instead of --name and --resource-group.
    #[arg(long, num_args = 1..)]
    pub ids: Vec<String>,
}

/// A Quantum workspace by `-w` (or `-n`) and `-g`, or by `--ids`, as az quantum names it.
#[derive(Debug, Args)]
pub struct WorkspaceArgs {
    /// Name of the Quantum workspace.
    #[arg(
        short = 'w',
        long = "workspace-name",
        short_alias = 'n',
        alias = "name",
        required_unless_present = "ids",
        conflicts_with = "ids"
    )]
    pub name: Option<String>,
    /// Name of the resource group.
    #[arg(
        short = 'g',
        long,
        required_unless_present = "ids",
        conflicts_with = "ids"
    )]
    pub resource_group: Option<String>,
    /// One or more workspace ids, instead of --workspace-name and --resource-group.
    #[arg(long, num_args = 1..)]
    pub ids: Vec<String>,
}

impl From<WorkspaceArgs> for ResourceArgs {
    fn from(w: WorkspaceArgs) -> Self {
        ResourceArgs {
            name: w.name,
            resource_group: w.resource_group,
            ids: w.ids,
        }
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this resource group (default: the whole subscription).
    #[arg(short = 'g', long)]
    pub resource_group: Option<String>,
}

/// rekey's rotation extensions to a regeneration (Azure has neither).
#[derive(Debug, Args)]
pub struct RotationOptions {
    /// Refuse, changing nothing, if the key was used within this long: 90s, 15m, 2h, 1d (at most
    /// 1d). rekeyd answers 409 KeyInUse naming the last use and client.
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::if_unused_for)]
    pub if_unused_for: Option<u64>,
    /// Keep the old key working this long beside the new one: 90s, 15m, 2h, 1d (at most 7d).
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::grace)]
    pub grace: Option<u64>,
}

/// PowerShell's -Confirm/-WhatIf, az's --yes.
#[derive(Debug, Args)]
pub struct Safety {
    /// Do not prompt for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Print what would change and change nothing.
    #[arg(long, alias = "whatif")]
    pub what_if: bool,
}

#[derive(Debug, Subcommand)]
pub enum CognitiveServicesCommand {
    /// Manage Cognitive Services accounts.
    #[command(
        subcommand,
        after_help = "Examples:\n  rekey cognitiveservices account list -g rg1 -o table"
    )]
    Account(CognitiveAccountCommand),
}

#[derive(Debug, Subcommand)]
pub enum CognitiveAccountCommand {
    /// Create a Cognitive Services account.
    #[command(
        after_help = "Examples:\n  rekey cognitiveservices account create -n acct1 -g rg1 --kind TextAnalytics --sku S0 -l westus"
    )]
    Create {
        /// Name of the account.
        #[arg(short = 'n', long)]
        name: String,
        /// Name of the resource group.
        #[arg(short = 'g', long)]
        resource_group: String,
        /// The API kind, such as TextAnalytics or CognitiveServices.
        #[arg(long)]
        kind: String,
        /// The SKU, such as S0 or F0.
        #[arg(long, alias = "sku-name")]
        sku: String,
        /// Location (default: the resource group's).
        #[arg(short = 'l', long)]
        location: Option<String>,
        /// Space-separated tags: key[=value].
        #[arg(long, num_args = 0..)]
        tags: Option<Vec<String>>,
        /// Accepted for az compatibility (az asks to accept terms; rekey has none).
        #[arg(long, hide = true)]
        yes: bool,
    },
    /// Show a Cognitive Services account.
    #[command(after_help = "Examples:\n  rekey cognitiveservices account show -n acct1 -g rg1")]
    Show(ResourceArgs),
    /// List Cognitive Services accounts.
    #[command(
        after_help = "Examples:\n  rekey cognitiveservices account list\n  rekey cognitiveservices account list -g rg1 -o table"
    )]
    List(ListArgs),
    /// Delete a Cognitive Services account and its keys.
    #[command(after_help = "Examples:\n  rekey cognitiveservices account delete -n acct1 -g rg1")]
    Delete(ResourceArgs),
    /// List or regenerate an account's keys.
    #[command(
        subcommand,
        after_help = "Examples:\n  rekey cognitiveservices account keys list -n acct1 -g rg1"
    )]
    Keys(CognitiveKeysCommand),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CognitiveKeyName {
    #[value(alias = "Key1")]
    Key1,
    #[value(alias = "Key2")]
    Key2,
}

#[derive(Debug, Subcommand)]
pub enum CognitiveKeysCommand {
    /// List an account's two keys.
    #[command(after_help = "Examples:\n  \
        rekey cognitiveservices account keys list --name myMultiCogService --resource-group cog-services-staging\n  \
        rekey cognitiveservices account keys list -n acct1 -g rg1 --query key1 -o tsv")]
    List(ResourceArgs),
    /// Regenerate key1 or key2; the old key stops working at once.
    #[command(after_help = "Examples:\n  \
        rekey cognitiveservices account keys regenerate --name myMultiCogService --resource-group cog-services-staging --key-name key1\n  \
        rekey cognitiveservices account keys regenerate -n acct1 -g rg1 --key-name key2 --yes\n  \
        rekey cognitiveservices account keys regenerate -n acct1 -g rg1 --key-name key1 --what-if\n  \
        rekey cognitiveservices account keys regenerate -n acct1 -g rg1 --key-name key1 --if-unused-for 15m --grace 1h")]
    Regenerate {
        #[command(flatten)]
        target: ResourceArgs,
        /// The key to regenerate.
        #[arg(long, value_enum)]
        key_name: CognitiveKeyName,
        #[command(flatten)]
        safety: Safety,
        #[command(flatten)]
        rotation: RotationOptions,
    },
    /// Show each key's data-plane use over the last 24 hours (a rekey extension).
    #[command(after_help = "Examples:\n  \
        rekey cognitiveservices account keys usage -n acct1 -g rg1\n  \
        rekey cognitiveservices account keys usage -n acct1 -g rg1 -o json --query \"[].perMinute\"")]
    Usage(ResourceArgs),
    /// Make a key stop working on the data plane without rotating it (a rekey extension).
    #[command(after_help = "Examples:\n  \
        rekey cognitiveservices account keys disable -n acct1 -g rg1 --key-name key2 --yes")]
    Disable {
        #[command(flatten)]
        target: ResourceArgs,
        /// The key to disable.
        #[arg(long, value_enum)]
        key_name: CognitiveKeyName,
        #[command(flatten)]
        safety: Safety,
    },
    /// Make a disabled key work again (a rekey extension).
    #[command(after_help = "Examples:\n  \
        rekey cognitiveservices account keys enable -n acct1 -g rg1 --key-name key2")]
    Enable {
        #[command(flatten)]
        target: ResourceArgs,
        /// The key to enable.
        #[arg(long, value_enum)]
        key_name: CognitiveKeyName,
        #[command(flatten)]
        safety: Safety,
    },
}

#[derive(Debug, Subcommand)]
pub enum CosmosCommand {
    /// Create a Cosmos DB account (a long-running operation).
    #[command(after_help = "Examples:\n  \
        rekey cosmosdb create -n docdb1 -g rg1\n  \
        rekey cosmosdb create --name docdb-test --kind GlobalDocumentDB --locations \"China East\"=0 \"China North\"=1 --resource-group myResourceGroup\n  \
        rekey cosmosdb create -n docdb1 -g rg1 --locations regionName=westus failoverPriority=0 --no-wait")]
    Create(CosmosCreate),
    /// Show a Cosmos DB account.
    #[command(after_help = "Examples:\n  rekey cosmosdb show -n docdb1 -g rg1")]
    Show(ResourceArgs),
    /// List Cosmos DB accounts.
    #[command(after_help = "Examples:\n  rekey cosmosdb list -g rg1 -o table")]
    List(ListArgs),
    /// Delete a Cosmos DB account and its keys.
    #[command(after_help = "Examples:\n  rekey cosmosdb delete -n docdb1 -g rg1 --yes")]
    Delete {
        #[command(flatten)]
        target: ResourceArgs,
        /// Do not prompt for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
        /// Do not wait for the deletion to finish.
        #[arg(long)]
        no_wait: bool,
    },
    /// List or regenerate an account's keys.
    #[command(
        subcommand,
        after_help = "Examples:\n  rekey cosmosdb keys list -n docdb1 -g rg1 --type connection-strings"
    )]
    Keys(CosmosKeysCommand),
    /// Deprecated: use `cosmosdb keys list`.
    #[command(
        hide = true,
        after_help = "Examples:\n  rekey cosmosdb list-keys --name docdb-test --resource-group myResourceGroup"
    )]
    ListKeys(ResourceArgs),
    /// Deprecated: use `cosmosdb keys regenerate`.
    #[command(
        hide = true,
        after_help = "Examples:\n  rekey cosmosdb regenerate-key --name docdb-test --resource-group myResourceGroup --key-kind secondary"
    )]
    RegenerateKey(CosmosRegenerate),
}

#[derive(Debug, Args)]
pub struct CosmosCreate {
    /// Name of the account: lower-case letters, digits and '-'.
    #[arg(short = 'n', long)]
    pub name: String,
    /// Name of the resource group.
    #[arg(short = 'g', long)]
    pub resource_group: String,
    /// The API kind.
    #[arg(long, default_value = "GlobalDocumentDB")]
    pub kind: String,
    /// Regions: `regionName=R failoverPriority=N [isZoneRedundant=B]`, repeatable, or the older
    /// `"Region Name"=N` (default: the group's location).
    #[arg(long, num_args = 1..)]
    pub locations: Vec<String>,
    /// Default consistency level (Eventual, ConsistentPrefix, Session, BoundedStaleness, Strong).
    #[arg(long)]
    pub default_consistency_level: Option<String>,
    /// Bounded staleness: the most seconds of lag tolerated.
    #[arg(long)]
    pub max_interval: Option<u64>,
    /// Bounded staleness: the most stale requests tolerated.
    #[arg(long)]
    pub max_staleness_prefix: Option<u64>,
    /// Space-separated tags: key[=value].
    #[arg(long, num_args = 0..)]
    pub tags: Option<Vec<String>>,
    /// Return at once instead of waiting for the account to be ready.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CosmosKeyType {
    Keys,
    ReadOnlyKeys,
    ConnectionStrings,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CosmosKeyKind {
    #[value(name = "primary")]
    Primary,
    #[value(name = "secondary")]
    Secondary,
    #[value(name = "primaryReadonly")]
    PrimaryReadonly,
    #[value(name = "secondaryReadonly")]
    SecondaryReadonly,
}

#[derive(Debug, Subcommand)]
pub enum CosmosKeysCommand {
    /// List an account's keys, read-only keys or connection strings.
    #[command(after_help = "Examples:\n  \
        rekey cosmosdb keys list -n docdb1 -g rg1\n  \
        rekey cosmosdb keys list -n docdb1 -g rg1 --type read-only-keys\n  \
        rekey cosmosdb keys list -n docdb1 -g rg1 --type connection-strings")]
    List {
        #[command(flatten)]
        target: ResourceArgs,
        /// Which secrets to list.
        #[arg(long = "type", value_enum, default_value = "keys")]
        key_type: CosmosKeyType,
    },
    /// Regenerate one of the four keys (a long-running operation).
    #[command(after_help = "Examples:\n  \
        rekey cosmosdb keys regenerate -n docdb1 -g rg1 --key-kind secondary\n  \
        rekey cosmosdb keys regenerate -n docdb1 -g rg1 --key-kind primaryReadonly --yes --no-wait\n  \
        rekey cosmosdb keys regenerate -n docdb1 -g rg1 --key-kind secondary --if-unused-for 1h --grace 30m")]
    Regenerate(CosmosRegenerate),
    /// Show each key's data-plane use over the last 24 hours (a rekey extension).
    #[command(after_help = "Examples:\n  \
        rekey cosmosdb keys usage -n docdb1 -g rg1\n  \
        rekey cosmosdb keys usage -n docdb1 -g rg1 -o json")]
    Usage(ResourceArgs),
    /// Make a key stop working on the data plane without rotating it (a rekey extension).
    #[command(after_help = "Examples:\n  \
        rekey cosmosdb keys disable -n docdb1 -g rg1 --key-kind secondary --yes")]
    Disable(CosmosKeyControl),
    /// Make a disabled key work again (a rekey extension).
    #[command(after_help = "Examples:\n  \
        rekey cosmosdb keys enable -n docdb1 -g rg1 --key-kind secondary")]
    Enable(CosmosKeyControl),
}

#[derive(Debug, Args)]
pub struct CosmosKeyControl {
    #[command(flatten)]
    pub target: ResourceArgs,
    /// The key to act on.
    #[arg(long, value_enum, ignore_case = true)]
    pub key_kind: CosmosKeyKind,
    #[command(flatten)]
    pub safety: Safety,
}

#[derive(Debug, Args)]
pub struct CosmosRegenerate {
    #[command(flatten)]
    pub target: ResourceArgs,
    /// The key to regenerate.
    #[arg(long, value_enum, ignore_case = true)]
    pub key_kind: CosmosKeyKind,
    #[command(flatten)]
    pub safety: Safety,
    #[command(flatten)]
    pub rotation: RotationOptions,
    /// Return at once instead of waiting for the regeneration to finish.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Subcommand)]
pub enum QuantumCommand {
    /// Manage Quantum workspaces.
    #[command(
        subcommand,
        after_help = "Examples:\n  rekey quantum workspace list -o table"
    )]
    Workspace(QuantumWorkspaceCommand),
}

#[derive(Debug, Subcommand)]
pub enum QuantumWorkspaceCommand {
    /// Create a Quantum workspace.
    #[command(after_help = "Examples:\n  \
        rekey quantum workspace create -w ws1 -g rg1 -l westus -a mystorage\n  \
        rekey quantum workspace create -w ws1 -g rg1 -l westus -a mystorage -r Microsoft/Basic --enable-api-key true")]
    Create {
        /// Name of the workspace.
        #[arg(
            short = 'w',
            long = "workspace-name",
            short_alias = 'n',
            alias = "name"
        )]
        name: String,
        /// Name of the resource group.
        #[arg(short = 'g', long)]
        resource_group: String,
        /// Location (default: the resource group's).
        #[arg(short = 'l', long)]
        location: Option<String>,
        /// Name or id of the storage account the workspace uses.
        #[arg(short = 'a', long)]
        storage_account: Option<String>,
        /// Comma-separated providers as ProviderId/SKU, such as Microsoft/Basic.
        #[arg(short = 'r', long)]
        provider_sku_list: Option<String>,
        /// Whether API keys open the workspace.
        #[arg(long)]
        enable_api_key: Option<bool>,
        /// Return at once instead of waiting for the workspace to be ready.
        #[arg(long)]
        no_wait: bool,
    },
    /// Show a Quantum workspace.
    #[command(after_help = "Examples:\n  rekey quantum workspace show -w ws1 -g rg1")]
    Show(WorkspaceArgs),
    /// List Quantum workspaces.
    #[command(after_help = "Examples:\n  rekey quantum workspace list -g rg1")]
    List(ListArgs),
    /// Delete a Quantum workspace and its keys.
    #[command(after_help = "Examples:\n  rekey quantum workspace delete -w ws1 -g rg1")]
    Delete {
        #[command(flatten)]
        target: WorkspaceArgs,
        /// Do not wait for the deletion to finish.
        #[arg(long)]
        no_wait: bool,
    },
    /// List or regenerate a workspace's API keys.
    #[command(
        subcommand,
        after_help = "Examples:\n  rekey quantum workspace keys list -w ws1 -g rg1"
    )]
    Keys(QuantumKeysCommand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QuantumKeyType {
    #[value(name = "Primary")]
    Primary,
    #[value(name = "Secondary")]
    Secondary,
}

#[derive(Debug, Subcommand)]
pub enum QuantumKeysCommand {
    /// List a workspace's API keys and connection strings.
    #[command(after_help = "Examples:\n  \
        rekey quantum workspace keys list -w ws1 -g rg1\n  \
        rekey quantum workspace keys list -w ws1 -g rg1 --query primaryConnectionString -o tsv")]
    List(WorkspaceArgs),
    /// Regenerate the primary key, the secondary key, or both; old keys stop working at once.
    #[command(after_help = "Examples:\n  \
        rekey quantum workspace keys regenerate -w ws1 -g rg1 --key-type Primary\n  \
        rekey quantum workspace keys regenerate -w ws1 -g rg1 --key-type Primary,Secondary --yes --pass-thru\n  \
        rekey quantum workspace keys regenerate -w ws1 -g rg1 --key-type Secondary --what-if\n  \
        rekey quantum workspace keys regenerate -w ws1 -g rg1 --key-type Primary --if-unused-for 15m")]
    Regenerate {
        #[command(flatten)]
        target: WorkspaceArgs,
        /// Keys to regenerate: Primary, Secondary, or both comma-separated.
        #[arg(long, value_enum, value_delimiter = ',', num_args = 1.., ignore_case = true, required = true)]
        key_type: Vec<QuantumKeyType>,
        #[command(flatten)]
        safety: Safety,
        #[command(flatten)]
        rotation: RotationOptions,
        /// Print true when the keys were regenerated (PowerShell's -PassThru).
        #[arg(long)]
        pass_thru: bool,
    },
    /// Show each API key's data-plane use over the last 24 hours (a rekey extension).
    #[command(after_help = "Examples:\n  \
        rekey quantum workspace keys usage -w ws1 -g rg1\n  \
        rekey quantum workspace keys usage -w ws1 -g rg1 -o json")]
    Usage(WorkspaceArgs),
    /// Make API keys stop working without rotating them (a rekey extension).
    #[command(after_help = "Examples:\n  \
        rekey quantum workspace keys disable -w ws1 -g rg1 --key-type Secondary --yes")]
    Disable {
        #[command(flatten)]
        target: WorkspaceArgs,
        /// Keys to disable: Primary, Secondary, or both comma-separated.
        #[arg(long, value_enum, value_delimiter = ',', num_args = 1.., ignore_case = true, required = true)]
        key_type: Vec<QuantumKeyType>,
        #[command(flatten)]
        safety: Safety,
    },
    /// Make disabled API keys work again (a rekey extension).
    #[command(after_help = "Examples:\n  \
        rekey quantum workspace keys enable -w ws1 -g rg1 --key-type Secondary")]
    Enable {
        #[command(flatten)]
        target: WorkspaceArgs,
        /// Keys to enable: Primary, Secondary, or both comma-separated.
        #[arg(long, value_enum, value_delimiter = ',', num_args = 1.., ignore_case = true, required = true)]
        key_type: Vec<QuantumKeyType>,
        #[command(flatten)]
        safety: Safety,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a service token; the token is shown only in this command's output.
    #[command(after_help = "Examples:\n  \
        rekey token create --name ci\n  \
        rekey token create --name nightly-rotation --expires-in 30d --query token -o tsv")]
    Create {
        /// A name to tell the token apart in `rekey token list`.
        #[arg(short = 'n', long)]
        name: String,
        /// Lifetime such as 90s, 30m, 12h or 7d (default: the token does not expire).
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
    },
    /// List the tokens this token may see (never the tokens themselves).
    #[command(after_help = "Examples:\n  rekey token list\n  rekey token list -o table")]
    List,
    /// Revoke a token at once.
    #[command(
        after_help = "Examples:\n  rekey token revoke --id 00000000-0000-0000-0000-000000000000"
    )]
    Revoke {
        /// The token's principal id, as `rekey token create` printed it.
        #[arg(long, value_name = "PRINCIPAL_ID")]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Manage role assignments.
    #[command(
        subcommand,
        after_help = "Examples:\n  rekey role assignment list --assignee 00000000-0000-0000-0000-000000000000"
    )]
    Assignment(RoleAssignmentCommand),
    /// Look up role definitions.
    #[command(
        subcommand,
        after_help = "Examples:\n  rekey role definition list -o table"
    )]
    Definition(RoleDefinitionCommand),
}

#[derive(Debug, Subcommand)]
pub enum RoleAssignmentCommand {
    /// Assign a role to a principal at a scope.
    #[command(after_help = "Examples:\n  \
        rekey role assignment create --assignee PRINCIPAL_ID --role \"Key Operator\" --scope /subscriptions/SUB/resourceGroups/rg1/providers/Microsoft.CognitiveServices/accounts/acct1\n  \
        rekey role assignment create --assignee PRINCIPAL_ID --role Reader --scope /subscriptions/SUB")]
    Create {
        /// The principal id (of a token) to assign the role to.
        #[arg(long, value_name = "PRINCIPAL_ID")]
        assignee: String,
        /// The role's name (such as Reader or "Key Operator") or its definition id.
        #[arg(long)]
        role: String,
        /// The subscription, resource group or resource id the role applies to.
        #[arg(long)]
        scope: String,
    },
    /// List role assignments at, above and below a scope.
    #[command(after_help = "Examples:\n  \
        rekey role assignment list\n  \
        rekey role assignment list --scope /subscriptions/SUB/resourceGroups/rg1 --assignee PRINCIPAL_ID -o table")]
    List {
        /// The scope (default: the current subscription).
        #[arg(long)]
        scope: Option<String>,
        /// Only this principal's assignments.
        #[arg(long, value_name = "PRINCIPAL_ID")]
        assignee: Option<String>,
    },
    /// Delete role assignments by id.
    #[command(after_help = "Examples:\n  \
        rekey role assignment delete --ids /subscriptions/SUB/providers/Microsoft.Authorization/roleAssignments/ASSIGNMENT_GUID")]
    Delete {
        /// One or more full role assignment ids.
        #[arg(long, num_args = 1.., required = true)]
        ids: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleDefinitionCommand {
    /// List the built-in roles, or the one named.
    #[command(
        after_help = "Examples:\n  rekey role definition list\n  rekey role definition list --name \"Key Operator\""
    )]
    List {
        /// Only the role with this name.
        #[arg(short = 'n', long)]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MonitorCommand {
    /// Read the activity log.
    #[command(
        name = "activity-log",
        subcommand,
        after_help = "Examples:\n  rekey monitor activity-log list"
    )]
    ActivityLog(ActivityLogCommand),
}

#[derive(Debug, Subcommand)]
pub enum ActivityLogCommand {
    /// List the current subscription's events, newest first.
    #[command(after_help = "Examples:\n  \
        rekey monitor activity-log list --offset 7d\n  \
        rekey monitor activity-log list --start-time 2026-01-01T00:00:00Z --query \"[].operationName.value\"")]
    List {
        /// How far back to look, such as 30m, 1h, 7d or 1d12h (default 6h, as in az).
        #[arg(long, conflicts_with = "start_time")]
        offset: Option<String>,
        /// The earliest event time, RFC 3339 (instead of --offset).
        #[arg(long, value_name = "RFC3339")]
        start_time: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain; exits 1 and names the first broken record when it is not intact.
    #[command(after_help = "Examples:\n  rekey audit verify\n  rekey audit verify --query intact")]
    Verify,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_shows_examples_in_its_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            let help = cmd
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            if !help.contains("Examples:\n  rekey ") {
                missing.push(path.clone());
            }
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "commands without examples: {missing:?}");
    }
}
