//! Entity kinds and relationship verbs: the catalogue of shared/DATA-MODEL.md.
//!
//! Every kind knows its JupiterOne `_type`, its `_class`es and a human label, so
//! exports, the tree and the manifest of the simulated tenant all speak the
//! same names.

use std::fmt;

macro_rules! kinds {
    ($( $variant:ident => ($ty:literal, [$($class:literal),+], $label:literal, $plural:literal) ),+ $(,)?) => {
        /// What an entity is. The discriminant is the index into [`EntityKind::ALL`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum EntityKind { $($variant),+ }

        impl EntityKind {
            pub const ALL: &'static [EntityKind] = &[$(EntityKind::$variant),+];

            /// The JupiterOne `_type`.
            pub fn type_name(self) -> &'static str {
                match self { $(EntityKind::$variant => $ty),+ }
            }

            /// The JupiterOne `_class` array.
            pub fn classes(self) -> &'static [&'static str] {
                match self { $(EntityKind::$variant => &[$($class),+]),+ }
            }

            /// A human label, singular ("Virtual machine").
            pub fn label(self) -> &'static str {
                match self { $(EntityKind::$variant => $label),+ }
            }

            /// A human label, plural ("Virtual machines").
            pub fn plural(self) -> &'static str {
                match self { $(EntityKind::$variant => $plural),+ }
            }

            pub fn from_type_name(name: &str) -> Option<EntityKind> {
                match name { $($ty => Some(EntityKind::$variant),)+ _ => None }
            }
        }
    };
}

kinds! {
    AzureAccount => ("azure_account", ["Account"], "Tenant", "Tenants"),
    AzureUser => ("azure_user", ["User"], "User", "Users"),
    AzureUserGroup => ("azure_user_group", ["UserGroup"], "Group", "Groups"),
    AzureGroupMember => ("azure_group_member", ["User"], "Group member", "Other group members"),
    AzureServicePrincipal => ("azure_service_principal", ["Service"], "Service principal", "Service principals"),
    Laptop => ("laptop", ["Device", "Host"], "Laptop", "Laptops"),
    Desktop => ("desktop", ["Device", "Host"], "Desktop", "Desktops"),
    Workstation => ("workstation", ["Device", "Host"], "Workstation", "Workstations"),
    Server => ("server", ["Device", "Host"], "Server", "Servers"),
    Smartphone => ("smartphone", ["Device", "Host"], "Smartphone", "Smartphones"),
    Computer => ("computer", ["Device", "Host"], "Computer", "Computers"),
    UserEndpoint => ("user_endpoint", ["Device", "Host"], "Endpoint", "Other endpoints"),
    IntuneHostAgent => ("intune_host_agent", ["HostAgent"], "Intune agent", "Intune agents"),
    IntuneCompliancePolicy => ("intune_compliance_policy", ["Configuration", "ControlPolicy"], "Compliance policy", "Compliance policies"),
    IntuneNoncomplianceFinding => ("intune_noncompliance_finding", ["Finding"], "Noncompliance finding", "Noncompliance findings"),
    IntuneDeviceConfiguration => ("intune_device_configuration", ["Configuration", "ControlPolicy"], "Device configuration", "Device configurations"),
    IntuneDetectedApplication => ("intune_detected_application", ["Application"], "Detected app", "Detected apps"),
    IntuneManagedApplication => ("intune_managed_application", ["Application"], "Managed app", "Managed apps"),
    DefenderMachine => ("microsoft_defender_machine", ["HostAgent"], "Defender machine", "Defender machines"),
    DefenderVulnerability => ("microsoft_defender_vulnerability", ["Finding"], "Vulnerability finding", "Vulnerability findings"),
    Cve => ("cve", ["Vulnerability"], "CVE", "CVEs"),
    DefenderLogonUser => ("microsoft_defender_logon_user", ["User"], "Logon user", "Logon users"),
    AzureSubscription => ("azure_subscription", ["Account"], "Subscription", "Subscriptions"),
    AzureResourceGroup => ("azure_resource_group", ["Group"], "Resource group", "Resource groups"),
    AzureRoleAssignment => ("azure_role_assignment", ["AccessPolicy"], "Role assignment", "Role assignments"),
    AzureRoleDefinition => ("azure_role_definition", ["AccessRole"], "Role definition", "Role definitions"),
    // Azure resources typed by ARM type (seed 003's catalogue, the ones that
    // the ARM resource listing returns as top-level resources).
    AzureVm => ("azure_vm", ["Host"], "Virtual machine", "Virtual machines"),
    AzureNic => ("azure_nic", ["NetworkInterface"], "Network interface", "Network interfaces"),
    AzureVnet => ("azure_vnet", ["Network"], "Virtual network", "Virtual networks"),
    AzureSubnet => ("azure_subnet", ["Network"], "Subnet", "Subnets"),
    AzureManagedDisk => ("azure_managed_disk", ["DataStore", "Disk"], "Managed disk", "Managed disks"),
    AzurePublicIp => ("azure_public_ip", ["IpAddress"], "Public IP address", "Public IP addresses"),
    AzureSecurityGroup => ("azure_security_group", ["Firewall"], "Network security group", "Network security groups"),
    AzureLb => ("azure_lb", ["Gateway"], "Load balancer", "Load balancers"),
    AzureStorageAccount => ("azure_storage_account", ["Service"], "Storage account", "Storage accounts"),
    AzureKeyvaultService => ("azure_keyvault_service", ["Service"], "Key vault", "Key vaults"),
    AzureSqlServer => ("azure_sql_server", ["Database", "DataStore", "Host"], "SQL server", "SQL servers"),
    AzureSqlDatabase => ("azure_sql_database", ["Database", "DataStore"], "SQL database", "SQL databases"),
    AzureCosmosdbAccount => ("azure_cosmosdb_account", ["Account", "Service"], "Cosmos DB account", "Cosmos DB accounts"),
    AzureWebApp => ("azure_web_app", ["Application"], "Web app", "Web apps"),
    AzureFunctionApp => ("azure_function_app", ["Function"], "Function app", "Function apps"),
    AzureAppServicePlan => ("azure_app_service_plan", ["Configuration"], "App Service plan", "App Service plans"),
    AzureKubernetesCluster => ("azure_kubernetes_cluster", ["Cluster"], "Kubernetes cluster", "Kubernetes clusters"),
    AzureContainerRegistry => ("azure_container_registry", ["DataStore"], "Container registry", "Container registries"),
    AzureRedisCache => ("azure_redis_cache", ["Database", "DataStore", "Cluster"], "Redis cache", "Redis caches"),
    AzurePostgresqlServer => ("azure_postgresql_server", ["Database", "DataStore", "Host"], "PostgreSQL server", "PostgreSQL servers"),
    AzureMysqlServer => ("azure_mysql_server", ["Database", "DataStore", "Host"], "MySQL server", "MySQL servers"),
    AzureDnsZone => ("azure_dns_zone", ["DomainZone"], "DNS zone", "DNS zones"),
    AzurePrivateDnsZone => ("azure_private_dns_zone", ["DomainZone"], "Private DNS zone", "Private DNS zones"),
    AzurePrivateEndpoint => ("azure_private_endpoint", ["NetworkEndpoint"], "Private endpoint", "Private endpoints"),
    AzureServiceBusNamespace => ("azure_service_bus_namespace", ["Service"], "Service Bus namespace", "Service Bus namespaces"),
    AzureEventGridTopic => ("azure_event_grid_topic", ["Queue"], "Event Grid topic", "Event Grid topics"),
    AzureNetworkWatcher => ("azure_network_watcher", ["Resource"], "Network watcher", "Network watchers"),
    AzureNetworkFirewall => ("azure_network_firewall", ["Firewall"], "Azure Firewall", "Azure Firewalls"),
    AzureApiManagementService => ("azure_api_management_service", ["Gateway"], "API Management service", "API Management services"),
    AzureCdnProfile => ("azure_cdn_profile", ["Service"], "CDN profile", "CDN profiles"),
    AzureBatchAccount => ("azure_batch_account", ["Service"], "Batch account", "Batch accounts"),
    AzureContainerGroup => ("azure_container_group", ["Group"], "Container group", "Container groups"),
    AzureImage => ("azure_image", ["Image"], "Image", "Images"),
    AzureGallery => ("azure_gallery", ["Repository"], "Compute gallery", "Compute galleries"),
    AzureResource => ("azure_resource", ["Resource"], "Azure resource", "Other Azure resources"),
}

impl EntityKind {
    pub fn index(self) -> usize {
        self as usize
    }

    /// Devices are typed by what they are (laptop, server, ...); this says whether
    /// a kind is one of them.
    pub fn is_device(self) -> bool {
        matches!(
            self,
            EntityKind::Laptop
                | EntityKind::Desktop
                | EntityKind::Workstation
                | EntityKind::Server
                | EntityKind::Smartphone
                | EntityKind::Computer
                | EntityKind::UserEndpoint
        )
    }

    /// Every kind that an ARM resource listing can produce (typed resources and
    /// the `azure_resource` fallback).
    pub fn is_azure_resource(self) -> bool {
        self.index() >= EntityKind::AzureVm.index()
    }

    /// The entity kind for an ARM resource type (`Microsoft.Compute/virtualMachines`),
    /// case-insensitive, with `azure_resource` for anything not in the catalogue.
    pub fn for_arm_type(arm_type: &str) -> EntityKind {
        ARM_TYPES
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(arm_type))
            .map(|(_, k)| *k)
            .unwrap_or(EntityKind::AzureResource)
    }

    /// The ARM type this kind stands for, if it is a typed resource.
    pub fn arm_type(self) -> Option<&'static str> {
        ARM_TYPES.iter().find(|(_, k)| *k == self).map(|(t, _)| *t)
    }
}

/// ARM resource type → entity kind (seed 003's table).
pub const ARM_TYPES: &[(&str, EntityKind)] = &[
    ("Microsoft.Compute/virtualMachines", EntityKind::AzureVm),
    ("Microsoft.Network/networkInterfaces", EntityKind::AzureNic),
    ("Microsoft.Network/virtualNetworks", EntityKind::AzureVnet),
    (
        "Microsoft.Network/virtualNetworks/subnets",
        EntityKind::AzureSubnet,
    ),
    ("Microsoft.Compute/disks", EntityKind::AzureManagedDisk),
    (
        "Microsoft.Network/publicIPAddresses",
        EntityKind::AzurePublicIp,
    ),
    (
        "Microsoft.Network/networkSecurityGroups",
        EntityKind::AzureSecurityGroup,
    ),
    ("Microsoft.Network/loadBalancers", EntityKind::AzureLb),
    (
        "Microsoft.Storage/storageAccounts",
        EntityKind::AzureStorageAccount,
    ),
    (
        "Microsoft.KeyVault/vaults",
        EntityKind::AzureKeyvaultService,
    ),
    ("Microsoft.Sql/servers", EntityKind::AzureSqlServer),
    (
        "Microsoft.Sql/servers/databases",
        EntityKind::AzureSqlDatabase,
    ),
    (
        "Microsoft.DocumentDB/databaseAccounts",
        EntityKind::AzureCosmosdbAccount,
    ),
    ("Microsoft.Web/sites", EntityKind::AzureWebApp),
    ("Microsoft.Web/serverFarms", EntityKind::AzureAppServicePlan),
    (
        "Microsoft.ContainerService/managedClusters",
        EntityKind::AzureKubernetesCluster,
    ),
    (
        "Microsoft.ContainerRegistry/registries",
        EntityKind::AzureContainerRegistry,
    ),
    ("Microsoft.Cache/Redis", EntityKind::AzureRedisCache),
    (
        "Microsoft.DBforPostgreSQL/servers",
        EntityKind::AzurePostgresqlServer,
    ),
    (
        "Microsoft.DBforPostgreSQL/flexibleServers",
        EntityKind::AzurePostgresqlServer,
    ),
    ("Microsoft.DBforMySQL/servers", EntityKind::AzureMysqlServer),
    (
        "Microsoft.DBforMySQL/flexibleServers",
        EntityKind::AzureMysqlServer,
    ),
    ("Microsoft.Network/dnszones", EntityKind::AzureDnsZone),
    (
        "Microsoft.Network/privateDnsZones",
        EntityKind::AzurePrivateDnsZone,
    ),
    (
        "Microsoft.Network/privateEndpoints",
        EntityKind::AzurePrivateEndpoint,
    ),
    (
        "Microsoft.ServiceBus/namespaces",
        EntityKind::AzureServiceBusNamespace,
    ),
    (
        "Microsoft.EventGrid/topics",
        EntityKind::AzureEventGridTopic,
    ),
    (
        "Microsoft.Network/networkWatchers",
        EntityKind::AzureNetworkWatcher,
    ),
    (
        "Microsoft.Network/azureFirewalls",
        EntityKind::AzureNetworkFirewall,
    ),
    (
        "Microsoft.ApiManagement/service",
        EntityKind::AzureApiManagementService,
    ),
    ("Microsoft.Cdn/profiles", EntityKind::AzureCdnProfile),
    (
        "Microsoft.Batch/batchAccounts",
        EntityKind::AzureBatchAccount,
    ),
    (
        "Microsoft.ContainerInstance/containerGroups",
        EntityKind::AzureContainerGroup,
    ),
    ("Microsoft.Compute/images", EntityKind::AzureImage),
    ("Microsoft.Compute/galleries", EntityKind::AzureGallery),
];

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name())
    }
}

/// A relationship verb (the relationship's `_class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Verb {
    Has,
    Owns,
    Manages,
    Assigned,
    Identified,
    Installed,
    Is,
    Allows,
    Uses,
    Contains,
    Protects,
}

impl Verb {
    pub const ALL: &'static [Verb] = &[
        Verb::Has,
        Verb::Owns,
        Verb::Manages,
        Verb::Assigned,
        Verb::Identified,
        Verb::Installed,
        Verb::Is,
        Verb::Allows,
        Verb::Uses,
        Verb::Contains,
        Verb::Protects,
    ];

    /// The `_class` of a relationship with this verb: upper case.
    pub fn class(self) -> &'static str {
        match self {
            Verb::Has => "HAS",
            Verb::Owns => "OWNS",
            Verb::Manages => "MANAGES",
            Verb::Assigned => "ASSIGNED",
            Verb::Identified => "IDENTIFIED",
            Verb::Installed => "INSTALLED",
            Verb::Is => "IS",
            Verb::Allows => "ALLOWS",
            Verb::Uses => "USES",
            Verb::Contains => "CONTAINS",
            Verb::Protects => "PROTECTS",
        }
    }

    /// The lower-case form used inside relationship `_type`s.
    pub fn lower(self) -> &'static str {
        match self {
            Verb::Has => "has",
            Verb::Owns => "owns",
            Verb::Manages => "manages",
            Verb::Assigned => "assigned",
            Verb::Identified => "identified",
            Verb::Installed => "installed",
            Verb::Is => "is",
            Verb::Allows => "allows",
            Verb::Uses => "uses",
            Verb::Contains => "contains",
            Verb::Protects => "protects",
        }
    }

    pub fn from_class(s: &str) -> Option<Verb> {
        Verb::ALL
            .iter()
            .copied()
            .find(|v| v.class().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.class())
    }
}

/// A relationship's `_type`: `{fromType}_{verb lower}_{toType}`.
pub fn relationship_type(from: EntityKind, verb: Verb, to: EntityKind) -> String {
    format!("{}_{}_{}", from.type_name(), verb.lower(), to.type_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &k in EntityKind::ALL {
            assert_eq!(EntityKind::from_type_name(k.type_name()), Some(k));
            assert!(seen.insert(k.type_name()), "duplicate {k}");
            assert!(!k.classes().is_empty());
            assert_eq!(EntityKind::ALL[k.index()], k);
        }
    }

    #[test]
    fn arm_types_map_case_insensitively_with_fallback() {
        assert_eq!(
            EntityKind::for_arm_type("microsoft.compute/VIRTUALMACHINES"),
            EntityKind::AzureVm
        );
        assert_eq!(
            EntityKind::for_arm_type("Microsoft.Foo/bars"),
            EntityKind::AzureResource
        );
        for (_, k) in ARM_TYPES {
            assert!(k.is_azure_resource());
        }
        assert!(!EntityKind::AzureRoleDefinition.is_azure_resource());
    }

    #[test]
    fn relationship_types_follow_the_data_model() {
        assert_eq!(
            relationship_type(EntityKind::AzureUserGroup, Verb::Has, EntityKind::AzureUser),
            "azure_user_group_has_azure_user"
        );
        assert_eq!(Verb::from_class("manages"), Some(Verb::Manages));
    }
}
