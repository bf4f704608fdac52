//! The cleanup function: SQS deletion jobs, EventBridge `AlbumDeleted` events and
//! DynamoDB Streams `REMOVE` records, told apart by shape (see `triggers`).

use image_delete::config::Config;
use image_delete::retry::Deadline;
use image_delete::startup;
use lambda_http::lambda_runtime::{self, Error, LambdaEvent, service_fn};
use serde_json::Value;

fn main() -> Result<(), Error> {
    startup::init_logging();
    startup::tokio_runtime()?.block_on(serve())
}

async fn serve() -> Result<(), Error> {
    let config = Config::from_env()?;
    let aws = startup::aws_config().await?;
    let cleanup: &'static _ = Box::leak(Box::new(startup::cleanup(&config, &aws)?));
    lambda_runtime::run_concurrent(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = Deadline::of_invocation(event.context.deadline);
        let answer = cleanup.handle(event.payload, deadline).await?;
        Ok::<Value, Error>(answer)
    }))
    .await
}
