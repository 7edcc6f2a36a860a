//! The download of a completed job: its targets (from the polling response, or from the
//! response of `download_target_requester`; one empty target without a
//! `download_target_extractor`), each read page by page with the download paginator, the
//! records through the stream's record selector.

use std::sync::Arc;

use cdk::{Error, Result};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::job::{Done, send};
use super::{AsyncJobs, job_vars};
use crate::interpolation::{Headers, json_value, to_mj};
use crate::paginator::LastPage;
use crate::read::{Msg, Slice};
use crate::request_option::RequestParts;
use crate::requester::{Call, RateLimitNotice};
use crate::selector::Records;
use crate::stream::StreamDef;

impl AsyncJobs {
    /// Reads every download target of a completed job, sending its pages to `tx`.
    pub(super) async fn download_all(
        &self,
        stream: &StreamDef,
        slice: &Slice,
        done: &Done,
        id: u64,
        tx: &mpsc::Sender<Msg>,
        notice: RateLimitNotice<'_>,
    ) -> Result<()> {
        let selector_vars = job_vars(stream, slice, &[]);
        for target in self.targets(stream, done, notice).await? {
            let vars = job_vars(
                stream,
                slice,
                &[
                    ("download_target", &target),
                    ("creation_response", &done.creation),
                    ("polling_response", &done.polling),
                ],
            );
            let pages = Pages {
                jobs: self,
                stream,
                vars: &vars,
                selector_vars: &selector_vars,
                id,
                tx,
                notice,
            };
            if !pages.read().await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The download targets of a completed job.
    async fn targets(
        &self,
        stream: &StreamDef,
        done: &Done,
        notice: RateLimitNotice<'_>,
    ) -> Result<Vec<Value>> {
        let Some(extractor) = &self.target_extractor else {
            return Ok(vec![Value::String(String::new())]);
        };
        let body = match &self.download_target {
            None => done.polling_response.body.clone(),
            Some(r) => {
                let empty = Slice {
                    partition: Arc::new(Map::new()),
                    interval: None,
                    injections: Vec::new(),
                    extra_fields: Map::new(),
                    floor: None,
                };
                let vars = job_vars(stream, &empty, &[("polling_response", &done.polling)]);
                send(r, &vars, notice)
                    .await?
                    .ok_or_else(|| {
                        Error::system(format!(
                            "stream '{}': the download target request got no response",
                            stream.name
                        ))
                    })?
                    .body
            }
        };
        extractor.values(self.decoder.decode(&body)?)
    }
}

/// The pages of one download target.
struct Pages<'a> {
    jobs: &'a AsyncJobs,
    stream: &'a StreamDef,
    /// What the download requester's templates see.
    vars: &'a crate::interpolation::Vars,
    /// What the record selector's templates see: the job's slice.
    selector_vars: &'a crate::interpolation::Vars,
    id: u64,
    tx: &'a mpsc::Sender<Msg>,
    notice: RateLimitNotice<'a>,
}

impl Pages<'_> {
    /// Reads every page; false when the consumer has gone.
    async fn read(&self) -> Result<bool> {
        let paginator = self.jobs.download_paginator.as_ref();
        let mut token = paginator.and_then(|p| p.initial_token());
        loop {
            let mut vars = self.vars.clone();
            if let Some(t) = &token {
                let mut m = Map::new();
                m.insert("next_page_token".into(), t.clone());
                vars.set("next_page_token", to_mj(&m));
            }
            let mut extra = RequestParts::default();
            if let Some(p) = paginator {
                p.inject(token.as_ref(), &vars, &mut extra)?;
            }
            let call = Call {
                vars: &vars,
                extra,
                path_override: paginator.and_then(|p| p.path(token.as_ref())),
                notice: Some(self.notice),
            };
            let Some(resp) = self.jobs.download.send(&call).await? else {
                return Ok(true);
            };
            let (records, first) = self
                .jobs
                .download_extractor
                .records(&self.jobs.download_decoder, &resp.body)?;
            let next = match paginator {
                None => None,
                Some(p) => {
                    let mut pvars = vars
                        .with("response", json_value(Arc::new(first)))
                        .with(
                            "headers",
                            minijinja::Value::from_object(Headers::new(resp.headers.clone())),
                        )
                        .with("last_page_size", minijinja::Value::from(records.len()));
                    if let Some(last) = records.last() {
                        pvars.set("last_record", json_value(Arc::new(last.clone())));
                    }
                    let last = LastPage {
                        vars: &pvars,
                        extracted: records.len(),
                        page_size_override: None,
                    };
                    p.next_token(&last, token.as_ref())?
                }
            };
            let selected = self
                .stream
                .retriever
                .selector
                .select(records, self.selector_vars)?;
            let page = Msg::Page {
                id: self.id,
                records: Records::Values(selected),
            };
            if self.tx.send(page).await.is_err() {
                return Ok(false);
            }
            match next {
                Some(t) if Some(&t) != token.as_ref() => token = Some(t),
                Some(t) => {
                    return Err(Error::system(format!(
                        "stream '{}': the download paginator returned the same page token twice ({t}); stopping to avoid a loop",
                        self.stream.name
                    )));
                }
                None => return Ok(true),
            }
        }
    }
}
