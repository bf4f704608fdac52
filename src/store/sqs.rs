//! Hand-off on SQS: unfinished album cleanups go back on the cleanup queue as
//! `{"album_id": "..."}`, which the SQS trigger picks up and continues.

use async_trait::async_trait;
use aws_sdk_sqs::Client;

use super::classify;
use crate::domain::AlbumId;
use crate::ports::{HandOff, StoreError};

pub struct SqsHandOff {
    client: Client,
    queue_url: String,
}

impl SqsHandOff {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl HandOff for SqsHandOff {
    async fn continue_album(&self, album: &AlbumId) -> Result<(), StoreError> {
        let body = serde_json::json!({ "album_id": album.as_str() }).to_string();
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| classify("SQS SendMessage", e))?;
        Ok(())
    }
}
