//! What the skeleton needs of each reconciled resource: where its status is, the part of it
//! every kind shares, and where it is written. Said once per resource, whichever reconciler
//! runs it (the platform and the team factory share `Factory`).

use factory_api::{
    Environment, EnvironmentStatus, Factory, FactoryStatus, PreviewEnvironment, PreviewEnvironmentStatus,
    ReconcileStatus,
};
use kube::{Api, Client, Resource, ResourceExt};

/// A resource the skeleton reconciles.
pub trait Reconciled:
    Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static
{
    /// Its status.
    type Status: Clone + Default + PartialEq + serde::Serialize + Send + Sync;

    /// The object's current status.
    fn status(&self) -> Option<&Self::Status>;
    /// The part of the status every kind shares.
    fn shared(status: &mut Self::Status) -> &mut ReconcileStatus;
    /// Where the object's status is written: its namespace, or the cluster.
    fn api(&self, client: Client) -> Api<Self>;
    /// The team factory whose notification targets hear about it, if one does.
    fn team(&self) -> Option<String>;
}

/// Implements [`Reconciled`] for resources whose status is an optional `status` field with
/// the shared part flattened in as `reconcile`; `cluster` or `namespaced` is the object's scope.
macro_rules! reconciled {
    (@api cluster, $object:expr, $client:expr) => {
        Api::all($client)
    };
    (@api namespaced, $object:expr, $client:expr) => {
        Api::namespaced($client, &$object.namespace().unwrap_or_default())
    };
    ($($object:ty => $status:ty, $scope:ident, $team:expr);+ $(;)?) => {$(
        impl Reconciled for $object {
            type Status = $status;

            fn status(&self) -> Option<&$status> {
                self.status.as_ref()
            }

            fn shared(status: &mut $status) -> &mut ReconcileStatus {
                &mut status.reconcile
            }

            fn api(&self, client: Client) -> Api<Self> {
                reconciled!(@api $scope, self, client)
            }

            fn team(&self) -> Option<String> {
                let team: fn(&Self) -> Option<String> = $team;
                team(self)
            }
        }
    )+};
}

reconciled!(
    Factory => FactoryStatus, cluster,
        |f| (f.spec.factory_type == factory_api::FactoryType::Applications).then(|| f.name_any());
    Environment => EnvironmentStatus, cluster, |e| Some(e.spec.factory.clone());
    PreviewEnvironment => PreviewEnvironmentStatus, namespaced,
        |p| factory_core::names::factory_of_cicd(&p.namespace()?).map(str::to_string);
);
