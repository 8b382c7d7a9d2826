//! Standard Kubernetes conditions: set one without disturbing `lastTransitionTime` unless the
//! status really changed, and read them back.

use factory_api::conditions::Reason;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The status of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    Unknown,
}

impl Status {
    /// The string form used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

/// Sets condition `type_` in `conditions`. `lastTransitionTime` moves to `now` only when the
/// status changes (or the condition is new); reason, message and generation always update.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: Status,
    reason: Reason,
    message: impl Into<String>,
    generation: Option<i64>,
    now: &Time,
) {
    let message = message.into();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status != status.as_str() {
                existing.status = status.as_str().to_string();
                existing.last_transition_time = now.clone();
            }
            existing.reason = reason.as_str().to_string();
            existing.message = message;
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status: status.as_str().to_string(),
            reason: reason.as_str().to_string(),
            message,
            observed_generation: generation,
            last_transition_time: now.clone(),
        }),
    }
}

/// Removes condition `type_`, if present.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// Finds condition `type_`.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether condition `type_` is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == Status::True.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use factory_api::conditions::READY;

    fn at(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).expect("valid timestamp"))
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let mut c = Vec::new();
        set(&mut c, READY, Status::False, Reason::Progressing, "working", Some(1), &at(10));
        set(&mut c, READY, Status::False, Reason::FetchFailed, "down", Some(2), &at(20));
        assert_eq!(c[0].last_transition_time, at(10));
        assert_eq!(c[0].reason, Reason::FetchFailed.as_str());
        assert_eq!(c[0].observed_generation, Some(2));
        set(&mut c, READY, Status::True, Reason::Reconciled, "ok", Some(2), &at(30));
        assert_eq!(c[0].last_transition_time, at(30));
        assert!(is_true(&c, READY));
    }

    #[test]
    fn remove_drops_only_that_type() {
        let mut c = Vec::new();
        set(&mut c, "A", Status::True, Reason::Reconciled, "", None, &at(1));
        set(&mut c, "B", Status::True, Reason::Reconciled, "", None, &at(1));
        remove(&mut c, "A");
        assert_eq!(c.len(), 1);
        assert!(get(&c, "B").is_some());
    }
}
