//! The `DELETE /api/v1/images` function: built once at init, then one `Api::handle`
//! per request.

use image_delete::config::Config;
use image_delete::startup;
use lambda_http::{Error, Request, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    startup::init_logging();
    let config = Config::from_env()?;
    let aws = startup::aws_config().await;
    let api: &'static _ = Box::leak(Box::new(startup::api(&config, &aws).await?));
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, std::convert::Infallible>(api.handle(request).await)
    }))
    .await
}
