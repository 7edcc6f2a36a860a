//! One slice's job, from its creation to a final status: created, polled until its status is
//! final, and created again when it failed or timed out, as airbyte-cdk's job orchestrator
//! does (timed-out jobs are aborted; a failed creation counts as a failed job, unless the error
//! is one of the config).

use std::time::Instant;

use cdk::protocol::FailureType;
use cdk::{Error, Result};
use serde_json::Value;

use super::status::JobStatus;
use super::{AsyncJobs, MAX_ATTEMPTS, job_vars, response_context};
use crate::http::Response;
use crate::read::Slice;
use crate::request_option::RequestParts;
use crate::requester::{Call, RateLimitNotice, Requester};
use crate::stream::StreamDef;

/// A job the API completed.
pub struct Done {
    /// `creation_response`.
    pub creation: Value,
    /// `polling_response`, and the response itself (where download targets may be found).
    pub polling: Value,
    pub polling_response: Response,
}

/// How one attempt ended.
enum Outcome {
    Completed(Done),
    Skipped,
    /// Failed, timed out, or not created; with the creation response when there is one.
    Retry {
        status: JobStatus,
        creation: Option<Value>,
    },
}

impl AsyncJobs {
    /// Runs the slice's job until it completes (`None`: the API skipped it), holding one of
    /// the source's job slots meanwhile.
    pub(super) async fn complete(
        &self,
        stream: &StreamDef,
        slice: &Slice,
        notice: RateLimitNotice<'_>,
    ) -> Result<Option<Done>> {
        let _slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::system(e.to_string()))?;
        let mut attempt = 1;
        loop {
            let outcome = match self.create(stream, slice, notice).await {
                Ok(creation) => self.wait(stream, slice, creation, notice).await?,
                Err(e) if e.failure_type == FailureType::ConfigError => return Err(e),
                Err(e) => {
                    tracing::warn!(stream = %stream.name, "could not create the async job: {}", e.message);
                    Outcome::Retry {
                        status: JobStatus::Failed,
                        creation: None,
                    }
                }
            };
            let (status, creation) = match outcome {
                Outcome::Completed(done) => return Ok(Some(done)),
                Outcome::Skipped => {
                    tracing::info!(stream = %stream.name, "the async job was skipped: no data");
                    return Ok(None);
                }
                Outcome::Retry { status, creation } => (status, creation),
            };
            if status == JobStatus::TimedOut
                && let Some(creation) = &creation
            {
                self.abort(stream, slice, creation, notice).await;
            }
            if attempt >= MAX_ATTEMPTS {
                return Err(Error::system(format!(
                    "stream '{}': the async job of slice {} did not complete in {MAX_ATTEMPTS} attempts (last status: {})",
                    stream.name,
                    super::describe(slice),
                    status.name()
                )));
            }
            attempt += 1;
            let wait = match (status, creation.is_some(), self.failed_retry_wait) {
                (JobStatus::Failed, true, Some(w)) => w.max(self.poll_interval),
                _ => self.poll_interval,
            };
            tracing::info!(stream = %stream.name, status = status.name(), attempt, "creating the async job again");
            tokio::time::sleep(wait).await;
        }
    }

    /// Creates the job: its `creation_response`.
    async fn create(
        &self,
        stream: &StreamDef,
        slice: &Slice,
        notice: RateLimitNotice<'_>,
    ) -> Result<Value> {
        let vars = job_vars(stream, slice, &[]);
        let resp = send(&self.creation, &vars, notice)
            .await?
            .ok_or_else(|| Error::system("the job creation request got no response"))?;
        response_context(&resp, "job creation")
    }

    /// Polls the job until its status is final.
    async fn wait(
        &self,
        stream: &StreamDef,
        slice: &Slice,
        creation: Value,
        notice: RateLimitNotice<'_>,
    ) -> Result<Outcome> {
        let started = Instant::now();
        let vars = job_vars(stream, slice, &[("creation_response", &creation)]);
        loop {
            let resp = send(&self.polling, &vars, notice).await?.ok_or_else(|| {
                Error::system(format!(
                    "stream '{}': the job polling request got no response",
                    stream.name
                ))
            })?;
            let status = self.status(stream, &resp)?;
            tracing::debug!(stream = %stream.name, status = status.name(), "async job status");
            let status = match status {
                JobStatus::Running if started.elapsed() > self.timeout => JobStatus::TimedOut,
                s => s,
            };
            match status {
                JobStatus::Running => tokio::time::sleep(self.poll_interval).await,
                JobStatus::Completed => {
                    let polling = response_context(&resp, "job polling")?;
                    return Ok(Outcome::Completed(Done {
                        creation,
                        polling,
                        polling_response: resp,
                    }));
                }
                JobStatus::Skipped => return Ok(Outcome::Skipped),
                status => {
                    tracing::warn!(stream = %stream.name, status = status.name(), "the async job did not complete");
                    return Ok(Outcome::Retry {
                        status,
                        creation: Some(creation),
                    });
                }
            }
        }
    }

    /// The job's status in a polling response.
    fn status(&self, stream: &StreamDef, resp: &Response) -> Result<JobStatus> {
        let docs = self.decoder.decode(&resp.body)?;
        let api = self
            .status_extractor
            .values(docs)?
            .into_iter()
            .next()
            .unwrap_or(Value::Null);
        let text = super::extract::py_str(&api);
        self.status_map.get(&text).ok_or_else(|| {
            Error::system(format!(
                "stream '{}': the API status '{text}' of the async job is not in the status_mapping",
                stream.name
            ))
        })
    }

    /// Aborts a job (`abort_requester`), logging a failure.
    async fn abort(
        &self,
        stream: &StreamDef,
        slice: &Slice,
        creation: &Value,
        notice: RateLimitNotice<'_>,
    ) {
        let Some(r) = &self.abort else { return };
        let vars = job_vars(stream, slice, &[("creation_response", creation)]);
        if let Err(e) = send(r, &vars, notice).await {
            tracing::warn!(stream = %stream.name, "could not abort the async job: {}", e.message);
        }
    }

    /// Deletes a downloaded job (`delete_requester`).
    pub(super) async fn delete(
        &self,
        stream: &StreamDef,
        slice: &Slice,
        done: &Done,
        notice: RateLimitNotice<'_>,
    ) -> Result<()> {
        let Some(r) = &self.delete else {
            return Ok(());
        };
        let vars = job_vars(stream, slice, &[("creation_response", &done.creation)]);
        send(r, &vars, notice).await.map(drop)
    }
}

/// Sends one request of a job with `vars`.
pub(super) async fn send(
    r: &Requester,
    vars: &crate::interpolation::Vars,
    notice: RateLimitNotice<'_>,
) -> Result<Option<Response>> {
    let call = Call {
        vars,
        extra: RequestParts::default(),
        path_override: None,
        notice: Some(notice),
    };
    r.send(&call).await
}
