//! Preparing the desired set as the caller renders it: each manifest's kind resolved through
//! discovery, then added to [`Desired`] (labelled, staged: `planning`).

use factory_core::manifests::Manifest;

use crate::desired::Desired;
use crate::engine::Engine;
use crate::error::ApplyError;

impl Engine {
    /// Adds `manifest` to `desired`: labelled, its kind resolved. Fails only when discovery
    /// does; an object that cannot be applied as it is fails the run that gets the set.
    pub async fn prepare(&self, desired: &mut Desired, manifest: &Manifest) -> Result<(), ApplyError> {
        let resolved = self.resolver.resolve(manifest.api_version(), manifest.kind()).await?;
        desired.add(manifest, resolved, &self.labels);
        Ok(())
    }

    /// Every manifest of `manifests`, prepared.
    pub async fn prepare_all(&self, manifests: &[Manifest]) -> Result<Desired, ApplyError> {
        let mut desired = Desired::default();
        for manifest in manifests {
            self.prepare(&mut desired, manifest).await?;
        }
        Ok(desired)
    }
}
