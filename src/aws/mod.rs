//! The AWS transport: how the SDK's calls reach DynamoDB, S3, SQS and Secrets Manager.
//! The adapters of `store` build the calls with the SDK; what is here sits under the
//! SDK, between its call and the wire, and neither the domain nor the ports see it.
//!
//! Every hand-written piece of the AWS path was measured against the SDK's own code
//! at Lambda's CPU share (`make pieces`, bench/results/pieces.md: gain at 256 / 1769
//! MB). What did not gain 5 % at 256 MB on a wall, RSS or zip row, above the noise of
//! the tree's own runs, was removed: a SigV4 signer, a DNS cache, a record-delete
//! gate, connections opened ahead, a `BatchGetItem` answer reader, a `DeleteObjects`
//! body writer, mimalloc and per-crate opt-levels.
//!
//! | piece | replaces | falls back to | guarded by | measured gain |
//! |---|---|---|---|---|
//! | `https`: HTTP/1.1 client over rustls (ring), bundled AWS roots, answers read up to `MAX_ANSWER_BYTES` | the SDK's default client (hyper 1 with HTTP/2) | none: every call goes through it | `https::tests` (the SDK's own bytes on the wire, reuse, retries, the endless answer), `startup::tests` | zip 7.7 % smaller; slower than the SDK's on a first 9-id request (-37.8 % / -4.6 % wall) |
//! | `turns`: the calls of a batch started one scheduler turn apart | starting them all in one poll | none | `turns::tests` | first request after a cold start, 1000 ids: +30.5 % / +43.7 % wall |

pub mod https;
pub mod turns;
