//! The AWS transport: how the SDK's calls reach DynamoDB, S3, SQS and Secrets Manager.
//! The adapters of `store` build the calls with the SDK; everything here sits under
//! the SDK, between its call and the wire, and neither the domain nor the ports see it.
//!
//! | piece | replaces | falls back to | guarded by |
//! |---|---|---|---|
//! | `https`: HTTP/1.1 client over rustls (ring), bundled AWS roots, answers read up to `MAX_ANSWER_BYTES`, connections opened ahead (`ConnectAhead`) | the SDK's default client (hyper 1 with HTTP/2, the system certificate store) | none: every call goes through it | `https::tests` (the SDK's own bytes on the wire, reuse, retries, the endless answer), `startup::tests` |
//! | `sigv4`: SigV4 with the day's signing key cached, ring's SHA-256 | the SDK's `SigV4Signer` | the SDK's signer, for any request it does not recognise (presigning, streaming bodies, odd paths) | `sigv4::tests`: byte-for-byte equal to the SDK's signatures (proptest) |
//! | `dns`: one name lookup shared by a burst of new connections, kept 5 s | hyper-util's `getaddrinfo` per connection | a fresh lookup after a failure or 5 s | `dns::tests` |
//! | `gate`: record deletes built and signed during S3's call, held, sent once S3 confirms | building them after S3 answers | built afresh when S3's answer is unsure | `gate::tests`, the property and chaos tests |
//! | `turns`: the calls of a batch started one scheduler turn apart | starting them all in one poll | none | `turns::tests`, `store::tests` |
//!
//! What each piece gains, measured where the function runs (`make power`, 256 and
//! 1769 MB), is the open work of issue 25: the figures that justified them were
//! full-core instruction counts (bench/README.md).

pub mod dns;
pub mod gate;
pub mod https;
pub mod sigv4;
pub mod turns;
