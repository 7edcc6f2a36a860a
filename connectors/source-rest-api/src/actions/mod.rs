//! What a `SimpleRetriever` does when the API refuses a request in a way it can work around:
//! a smaller page (`page_size_reduction`, the `REDUCE_PAGE_SIZE` action), a smaller window
//! (`request_window_splitting`, `SPLIT_REQUEST_WINDOW`) and a restarted pagination
//! (`pagination_reset`, `RESET_PAGINATION`), decoded and checked as airbyte-cdk 7.39.1 does.

pub mod page_size;
pub mod reset;
mod stop_condition;

pub use stop_condition::reads_variable;
pub mod window;

use cdk::Result;

use crate::cursor::DatetimeCursor;
use crate::manifest::{Build, Component};
use crate::paginator::Paginator;
use crate::requester::Requester;

/// The retriever's answers to refused requests.
#[derive(Debug, Default)]
pub struct Actions {
    pub page_size: Option<page_size::PageSizeReduction>,
    pub window: Option<window::RequestWindowSplitting>,
    pub reset: Option<reset::PaginationReset>,
}

/// What the retriever's other parts look like, for the checks made when a manifest loads.
pub struct Context<'a> {
    pub stream: &'a str,
    pub requester: &'a Requester,
    pub paginator: Option<&'a Paginator>,
    pub cursor: Option<&'a DatetimeCursor>,
    pub record_filter: bool,
}

impl Actions {
    /// Reads `pagination_reset`, `request_window_splitting` and `page_size_reduction` of a
    /// `SimpleRetriever`, refusing what airbyte-cdk refuses.
    pub fn decode(r: &mut Component<'_>, b: &Build, cx: &Context<'_>) -> Result<Self> {
        let reset = reset::PaginationReset::decode(r.child("pagination_reset"), cx)?;
        let window =
            window::RequestWindowSplitting::decode(r.child("request_window_splitting"), b, cx)?;
        let page_size = page_size::PageSizeReduction::decode(r.child("page_size_reduction"), cx)?;
        Ok(Self {
            page_size,
            window,
            reset,
        })
    }
}
