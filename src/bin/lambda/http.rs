//! The `DELETE /api/v1/images` function: built once at init, then one `Api::handle`
//! per request; several at once on Lambda Managed Instances
//! (`AWS_LAMBDA_MAX_CONCURRENCY` > 1), one at a time otherwise.

use image_delete::config::Config;
use image_delete::http::event;
use image_delete::startup;
use lambda_http::lambda_runtime::{self, LambdaEvent};
use lambda_http::{Error, service_fn};

fn main() -> Result<(), Error> {
    startup::init_logging();
    startup::tokio_runtime()?.block_on(serve())
}

async fn serve() -> Result<(), Error> {
    let config = Config::from_env()?;
    let aws = startup::aws_config().await?;
    let api: &'static _ = Box::leak(Box::new(startup::api(&config, &aws).await?));
    // Every event is checked before lambda_http converts it (see `event`).
    lambda_runtime::run_concurrent(service_fn(
        move |e: LambdaEvent<Box<serde_json::value::RawValue>>| event::answer(api, e),
    ))
    .await
}
