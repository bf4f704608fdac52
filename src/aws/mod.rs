//! The AWS transport: how the SDK's calls reach DynamoDB, S3, SQS and Secrets Manager.
//! The adapters of `store` build the calls with the SDK; what is here sits under the
//! SDK, between its call and the wire, and neither the domain nor the ports see it.
//!
//! Every hand-written piece of the AWS path was measured against the SDK's own code
//! at Lambda's CPU share (`make pieces`, bench/results/pieces.md); what did not gain
//! 5 % at 256 MB on a headline row was removed (a SigV4 signer, a request gate,
//! connections opened ahead, a `DeleteObjects` body writer, per-crate opt-levels).
//!
//! | piece | replaces | falls back to | guarded by |
//! |---|---|---|---|
//! | `dns`: one name lookup shared by a burst of new connections, kept 5 s | hyper-util's `getaddrinfo` per connection | a fresh lookup after a failure or 5 s | `dns::tests` |
//! | `turns`: the calls of a batch started one scheduler turn apart | starting them all in one poll | none | `turns::tests` |
//! | `https`: HTTP/1.1 client over rustls (ring), bundled AWS roots, answers read up to `MAX_ANSWER_BYTES` | the SDK's default client (hyper 1 with HTTP/2) | none: every call goes through it | `https::tests` (the SDK's own bytes on the wire, reuse, retries, the endless answer), `startup::tests` |

pub mod dns;
pub mod https;
pub mod turns;
