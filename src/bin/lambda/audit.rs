//! The audit function: the trash table's stream into `ImagesDeleted`,
//! `ImagesRestored` and `ImagesErased` events on the project's bus (`triggers::audit`).

use image_delete::retry::Deadline;
use image_delete::startup;
use lambda_http::lambda_runtime::{self, Error, LambdaEvent, service_fn};
use serde_json::Value;

fn main() -> Result<(), Error> {
    startup::init_logging();
    startup::tokio_runtime()?.block_on(serve())
}

async fn serve() -> Result<(), Error> {
    let aws = startup::aws_config().await?;
    let audit: &'static _ = Box::leak(Box::new(startup::audit(&aws)?));
    lambda_runtime::run_concurrent(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = Deadline::of_invocation(event.context.deadline);
        Ok::<Value, Error>(audit.handle(event.payload, deadline).await?)
    }))
    .await
}
