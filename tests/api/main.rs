//! The whole function, through its HTTP interface, against real local emulators
//! (dynalite for DynamoDB, moto for S3) over HTTP through the real AWS SDK.
//!
//! Run through `make test`, which starts the emulators and sets
//! `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL_S3`. Without them every test here
//! fails loudly: none is skipped.

mod audit;
mod bulk;
mod chaos;
mod cleanup;
mod events;
mod helpers;
mod inputs;
mod secrets;
mod trash;
