//! Bulk image deletion for an image product on AWS: the domain and its ports, the
//! DynamoDB/S3 adapters, and the HTTP entry point. Each Lambda trigger is a thin
//! binary under `src/bin/lambda/` over this library.

pub mod auth;
pub mod aws;
pub mod config;
pub mod domain;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod http;
pub mod metrics;
pub mod ports;
pub mod retry;
pub mod startup;
pub mod store;
pub mod triggers;
