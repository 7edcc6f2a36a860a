//! {{name}}: an Airbyte source built on the cdk.

mod config;

use std::sync::Arc;

use cdk::{ReadContext, RecordWriter, Result, Source, Stream};
use serde_json::{Value, json};

pub use config::Config;

pub struct {{type_name}};

#[cdk::async_trait]
impl Source for {{type_name}} {
    type Config = Config;

    /// Verify the config can be used: connect, authenticate, read one thing. (The kit has
    /// already checked it against the spec and `Config::validate`.)
    async fn check(&self, _config: &Config) -> Result<()> {
        Ok(())
    }

    async fn streams(&self, config: &Config) -> Result<Vec<Arc<dyn Stream>>> {
        Ok(vec![Arc::new(Items { count: config.count })])
    }
}

/// One stream: replace with reads of your system, in cursor order.
struct Items {
    count: u64,
}

#[cdk::async_trait]
impl Stream for Items {
    fn name(&self) -> &str {
        "items"
    }

    fn json_schema(&self) -> Value {
        json!({"type": "object", "properties": {
            "id": {"type": "integer"},
            "label": {"type": ["null", "string"]}
        }})
    }

    fn primary_key(&self) -> Vec<Vec<String>> {
        vec![vec!["id".into()]]
    }

    fn default_cursor_field(&self) -> Option<Vec<String>> {
        Some(vec!["id".into()])
    }

    async fn read(&self, ctx: &ReadContext, out: &mut RecordWriter) -> Result<()> {
        let after = match (ctx.is_incremental(), &ctx.state) {
            (true, Some(state)) => state.get("id").and_then(Value::as_u64).unwrap_or(0),
            _ => 0,
        };
        for id in after + 1..=self.count {
            let item = json!({"id": id, "label": format!("item {id}")});
            out.record_with_state(&item, || json!({"id": id}))?;
        }
        out.checkpoint(json!({"id": self.count.max(after)}));
        Ok(())
    }
}
