//! The fuzz targets' bodies, shared by the fuzzer (`fuzz/`, cargo-fuzz) and by the
//! unit test that replays the committed corpus in `make test`. Each takes arbitrary
//! bytes and must return without panicking: in release builds a panic aborts the
//! process and every request in flight.

use std::sync::Arc;

use lambda_http::http::{Method, Request as HttpRequest};
use lambda_http::lambda_runtime::LambdaEvent;
use lambda_http::{Body, Context, Request, RequestExt};
use secrecy::SecretString;

use crate::auth::{Tokens, token_from_header};
use crate::domain::{AlbumId, Deleter, ImageId, ImageRecord, ObjectKey};
use crate::http::{Api, event, input};
use crate::store::memory::{MemoryCatalog, MemoryObjectStore};

/// The fixtures' tokens (and so the seeds) are signed with the documented dev secret.
use crate::config::DEV_SECRET;

fn tokens() -> Tokens {
    Tokens::new(&[SecretString::from(DEV_SECRET.to_owned())], 14400).expect("a valid key")
}

/// The endpoint over fresh in-memory stores holding two of the seed's images, so
/// that every input meets the same world.
pub(crate) fn api() -> Api {
    api_and_stores().0
}

/// `api()` and the stores behind it, to see whether a request reached them.
pub(crate) fn api_and_stores() -> (Api, Arc<MemoryCatalog>, Arc<MemoryObjectStore>) {
    let catalog = Arc::new(MemoryCatalog::default());
    let objects = Arc::new(MemoryObjectStore::default());
    for id in [
        "7dca41d5-d76a-4ebb-9e00-dd13c13fc238",
        "dcd964c3-f54e-413c-ab2e-41c8608f5d16",
    ] {
        let key = format!("albums/00100000123BB121/{id}/original.jpg");
        catalog.put(ImageRecord {
            id: ImageId::parse(id).expect("a valid id"),
            album_id: AlbumId::parse("00100000123BB121").expect("a valid album"),
            object_keys: vec![ObjectKey::parse(&key).expect("a valid key")],
            rest: Default::default(),
        });
    }
    let deleter = Deleter::new(catalog.clone(), objects.clone());
    let abilities = vec!["image_delete".into(), "image_list".into()];
    (
        Api::new(deleter, tokens(), 1000, abilities),
        catalog,
        objects,
    )
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
    }
    RUNTIME.with(|runtime| runtime.block_on(future))
}

/// A raw Lambda event, as the Runtime API hands it over, to the answer: what the
/// HTTP binary does with every invocation.
pub fn http_event(data: &[u8]) {
    let Ok(payload) = serde_json::from_slice::<Box<serde_json::value::RawValue>>(data) else {
        return; // the runtime answers these with an invocation error
    };
    let repeated = authorization_copies(payload.get()) > 1;
    let api = api();
    let event = LambdaEvent::new(payload, Context::default());
    if let Ok(answer) = block_on(event::answer(&api, event)) {
        let answer = serde_json::to_value(&answer).expect("an answer serializes");
        // Checked apart from lambda_http's conversion, which keeps one copy of a
        // REST or ALB event's header: an upgrade that changes it cannot let a second
        // Authorization through unseen.
        if repeated {
            assert_eq!(
                answer["statusCode"], 401,
                "a repeated Authorization got through"
            );
        }
    }
}

/// How many copies of `Authorization` an event carries, counted on its JSON as a
/// whole (the oracle of `http_event`, written apart from `http::event`): every value
/// in either header map under any letter case, a list's elements, a comma-joined
/// value's parts; the one value API Gateway puts in both maps counts once.
fn authorization_copies(event: &str) -> usize {
    use serde_json::Value;
    let Ok(Value::Object(event)) = serde_json::from_str::<Value>(event) else {
        return 0;
    };
    let copies = |map: &str| -> Vec<Option<&str>> {
        let Some(Value::Object(headers)) = event.get(map) else {
            return Vec::new();
        };
        let values = headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            .flat_map(|(_, value)| match value {
                Value::Null => Vec::new(),
                Value::Array(list) => list.iter().collect(),
                value => vec![value],
            });
        values
            .flat_map(|value| match value.as_str() {
                Some(text) => text.split(',').map(Some).collect(),
                None => vec![None],
            })
            .collect()
    };
    let (single, multi) = (copies("headers"), copies("multiValueHeaders"));
    if single.len() == 1 && single == multi {
        1
    } else {
        single.len() + multi.len()
    }
}

/// The bulk route's input parsers: the first byte picks the content type, the rest
/// is split at the first newline into a query string and a body.
pub fn bulk_input(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let content_type = match kind % 4 {
        0 => "application/x-www-form-urlencoded",
        1 => "application/json",
        2 => "application/json; charset=utf-8",
        _ => "text/plain",
    };
    let (query, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (&[][..], rest),
    };
    let query = String::from_utf8_lossy(query);
    let request: Request = HttpRequest::builder()
        .method(Method::DELETE)
        .uri("/api/v1/images")
        .header("content-type", content_type)
        .body(Body::Binary(body.to_vec()))
        .expect("a valid request")
        .with_query_string_parameters(
            query
                .parse::<lambda_http::aws_lambda_events::query_map::QueryMap>()
                .unwrap_or_default(),
        );
    let _ = input::bulk_ids(&request, 1000);
    let _ = input::one_id(&query);
}

/// The `Authorization` header to verified claims, and a fresh token minted from them.
pub fn token(data: &[u8]) {
    let tokens = tokens();
    let now = 1_796_029_200; // the fixtures' time: their tokens are valid then
    if let Ok(token) = token_from_header(Some(data))
        && let Ok(claims) = tokens.verify(token, now)
    {
        let fresh = tokens.mint(&claims, now);
        tokens.verify(&fresh, now).expect("a minted token verifies");
    }
}

#[cfg(test)]
mod tests {
    //! Replays the committed corpus of every fuzz target (`fuzz/corpus/<target>/`).
    use std::path::Path;

    fn replay(target: &str, run: fn(&[u8])) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        let mut inputs = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
            let path = entry.unwrap().path();
            run(&std::fs::read(&path).unwrap());
            inputs += 1;
        }
        assert!(inputs > 0, "no corpus in {dir:?}");
    }

    #[test]
    fn the_http_event_corpus_replays_without_a_panic() {
        replay("http_event", super::http_event);
    }

    #[test]
    fn the_bulk_input_corpus_replays_without_a_panic() {
        replay("bulk_input", super::bulk_input);
    }

    #[test]
    fn the_token_corpus_replays_without_a_panic() {
        replay("token", super::token);
    }
}
