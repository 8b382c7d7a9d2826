//! The Factory controller: a platform factory (`type: Environments`) and a team factory
//! (`type: Applications`) are one kind with two reconcilers; this chooses.

use std::sync::Arc;

use factory_api::{Factory, FactoryType};
use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::instrument;

use crate::reconcilers::platform::Platform;
use crate::reconcilers::skeleton;
use crate::reconcilers::team::Team;
use crate::services::context::Context;
use crate::services::error::ReconcileError;

/// Reconciles one Factory by its type.
#[instrument(skip_all, fields(factory = %factory.name_any(), r#type = ?factory.spec.factory_type))]
pub async fn reconcile(factory: Arc<Factory>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    match factory.spec.factory_type {
        FactoryType::Environments => skeleton::reconcile::<Platform>(factory, &ctx).await,
        FactoryType::Applications => skeleton::reconcile::<Team>(factory, &ctx).await,
    }
}
