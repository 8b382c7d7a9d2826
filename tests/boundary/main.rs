//! The tenant boundary, tried by a team's own member: `alice`, authenticated by her own client
//! certificate, owner of team factory `shop` with `edit` in its test environment and `view` in
//! its protected prod. Every path she could take to write prod or read a credential the
//! platform delivered there — impersonating, requesting a token for, or running a Pod,
//! TaskRun or PipelineRun as any account of the team; previews of another class or a longer
//! life; another team's Secret named in her factory — is refused by the real API server or the
//! operator, and each refusal is asserted by its reason after the same request was shown to
//! succeed for someone allowed. Also: application pruning and suspension lose nothing by
//! accident. Results: docs/security.md ("Who can assume what").

#[path = "../platform/fixture.rs"]
#[allow(dead_code)]
mod fixture;

mod applications;
mod identities;
mod previews;
mod secrets;
mod world;
