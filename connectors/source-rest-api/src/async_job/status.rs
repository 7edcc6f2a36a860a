//! `AsyncJobStatusMap`: which statuses of the API mean that a job runs, is done, failed, timed
//! out or was skipped (no data).

use std::collections::HashMap;

use cdk::Result;

use crate::manifest::Node;

/// A job's status as the engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Running,
    Completed,
    Failed,
    TimedOut,
    Skipped,
}

impl JobStatus {
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Running => "RUNNING",
            JobStatus::Completed => "COMPLETED",
            JobStatus::Failed => "FAILED",
            JobStatus::TimedOut => "TIMED_OUT",
            JobStatus::Skipped => "SKIPPED",
        }
    }
}

/// The API's statuses, each mapped to one of ours.
#[derive(Debug, Default)]
pub struct StatusMap(HashMap<String, JobStatus>);

impl StatusMap {
    pub fn decode(node: Node<'_>) -> Result<Self> {
        let mut c = node.component(Some("AsyncJobStatusMap"))?;
        c.expect(&["AsyncJobStatusMap"])?;
        let mut map = HashMap::new();
        for (key, status) in [
            ("running", JobStatus::Running),
            ("completed", JobStatus::Completed),
            ("failed", JobStatus::Failed),
            ("timeout", JobStatus::TimedOut),
            ("skipped", JobStatus::Skipped),
        ] {
            let Some(api) = c.string_list(key)? else {
                if status == JobStatus::Skipped {
                    continue;
                }
                return Err(c.error(format!(
                    "the status '{key}' has no API statuses mapped (give at least an empty list)"
                )));
            };
            for s in api {
                if map.insert(s.clone(), status).is_some() {
                    return Err(c.error(format!("the API status '{s}' is mapped more than once")));
                }
            }
        }
        c.finish()?;
        Ok(Self(map))
    }

    /// Our status for the API's.
    pub fn get(&self, api: &str) -> Option<JobStatus> {
        self.0.get(api).copied()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn statuses_map_once_each() {
        let v = json!({"running": ["pending", "running"], "completed": ["done"], "failed": ["error"], "timeout": []});
        let m = StatusMap::decode(Node::root(&v)).unwrap();
        assert_eq!(m.get("pending"), Some(JobStatus::Running));
        assert_eq!(m.get("done"), Some(JobStatus::Completed));
        assert_eq!(m.get("nope"), None);
        let twice = json!({"running": ["x"], "completed": ["x"], "failed": [], "timeout": []});
        assert!(StatusMap::decode(Node::root(&twice)).is_err());
        let missing = json!({"running": ["x"], "completed": ["y"], "failed": []});
        assert!(StatusMap::decode(Node::root(&missing)).is_err());
    }
}
