//! The apply engine, shared by every reconciler: desired objects in, cluster converged out.
//!
//! 1. *prepare* each object as it comes (labelled, kept as JSON text, its kind resolved through
//!    discovery; unknown kinds fail the revision once it is complete);
//! 2. *validate* the whole revision with a server-side dry-run before anything is written, so
//!    one bad document applies nothing; the dry-run result compared with the live object also
//!    tells which objects would change, so a steady state writes nothing;
//! 3. *apply* what changed with server-side apply under the `factory-operator` field manager,
//!    in stages: CRDs and Namespaces, then cluster-scoped objects, then namespaced ones;
//! 4. *prune* what left the inventory — never on a failed revision, never an object annotated
//!    `factories.dev/prune: disabled`, never an object we did not apply;
//! 5. on request, read back what was applied and say which objects are not healthy yet.

mod desired;
// `bounded!`, shared with `health`.
#[macro_use]
mod engine;
mod error;
mod health;
mod plan;
mod planning;
mod prepare;
mod resolve;

pub use desired::Desired;
pub use engine::{DriftMode, Engine, Outcome, PruneMode};
pub use error::{ApplyError, ObjectFailure, api_message};
pub use plan::{Change, Planned};
pub use resolve::{Resolver, impersonating_client};
