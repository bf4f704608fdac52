//! Turning an HTTP request into what the endpoint acts on: which route, and which ids.
//! Everything here is pure and runs before any AWS call.

use std::borrow::Cow;

use lambda_http::http::Method;
use lambda_http::{Body, Request, RequestExt};

use super::error::ApiError;
use crate::domain::{ImageId, ImageIds, InvalidImageIds};

/// Bodies above this are refused unread. 1000 ids in the seed's form encoding take
/// about 52 KiB; API Gateway itself allows 10 MiB.
pub const MAX_BODY_BYTES: usize = 128 * 1024;

/// Ids the query string may hold under each key (duplicates counted): API Gateway's
/// 10 KiB for the request line and headers leave room for about this many, so the
/// limit is the same behind every front door (ALBs and function URLs allow more).
pub const MAX_QUERY_IDS: usize = 150;

/// The collection paths, without any API Gateway stage prefix.
const COLLECTION: &str = "/api/v1/images";
const TRASH: &str = "/api/v1/trashed_images";
/// Erasure has a path of its own: a dropped parameter never turns it into a restore.
const ERASE: &str = "/api/v1/trashed_images/erase";

#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `DELETE /api/v1/images`
    Bulk,
    /// `DELETE /api/v1/images/{id}`, the id as given.
    One(&'a str),
    /// `GET /api/v1/trashed_images`
    TrashList,
    /// `DELETE /api/v1/trashed_images`: bulk restore.
    RestoreBulk,
    /// `DELETE /api/v1/trashed_images/{id}`, the id as given.
    RestoreOne(&'a str),
    /// `POST /api/v1/trashed_images/erase`
    Erase,
}

impl Route<'_> {
    /// Whether this is one of the trash's routes (guarded by the `trash` ability).
    pub fn in_trash(&self) -> bool {
        !matches!(self, Self::Bulk | Self::One(_))
    }
}

/// Resolves the route of `request`, or the 404/405 to answer. The trash's routes
/// exist only when `trash` is on: with `TRASH_DAYS` = 0 they are 404, as before.
pub fn route<'a>(
    request: &'a Request,
    stage: Option<&str>,
    trash: bool,
) -> Result<Route<'a>, ApiError> {
    let path = path_without_stage(request.uri().path(), stage);
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let item = |collection: &str| {
        path.strip_prefix(collection)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|id| !id.is_empty() && !id.contains('/'))
    };
    let method = request.method();
    let allowed = |route, allow: &'static str, methods: &[Method]| {
        if methods.contains(method) {
            Ok(route)
        } else {
            Err(ApiError::MethodNotAllowed { allow })
        }
    };
    let delete = &[Method::DELETE][..];
    if path == COLLECTION {
        allowed(Route::Bulk, "DELETE", delete)
    } else if let Some(id) = item(COLLECTION) {
        allowed(Route::One(id), "DELETE", delete)
    } else if !trash {
        Err(ApiError::NotFound)
    } else if path == ERASE {
        allowed(Route::Erase, "POST", &[Method::POST])
    } else if path == TRASH {
        match *method {
            Method::GET => Ok(Route::TrashList),
            Method::DELETE => Ok(Route::RestoreBulk),
            _ => Err(ApiError::MethodNotAllowed {
                allow: "GET, DELETE",
            }),
        }
    } else if let Some(id) = item(TRASH) {
        allowed(Route::RestoreOne(id), "DELETE", delete)
    } else {
        Err(ApiError::NotFound)
    }
}

/// REST APIs (v1) and named HTTP API stages put the stage in front of the path.
fn path_without_stage<'a>(path: &'a str, stage: Option<&str>) -> &'a str {
    if let Some(stage) = stage.filter(|s| !s.is_empty() && *s != "$default")
        && let Some(rest) = path.strip_prefix('/').and_then(|p| p.strip_prefix(stage))
        && rest.starts_with('/')
    {
        return rest;
    }
    path
}

/// The ids of a bulk request: from the body (form or JSON) and the query string, in
/// request order, deduplicated and bounded by `max_ids`.
pub fn bulk_ids(request: &Request, max_ids: usize) -> Result<ImageIds, ApiError> {
    let mut raw: Vec<Cow<'_, str>> = Vec::new();
    read_body_ids(request, &mut raw, max_ids)?;
    read_query_ids(request, &mut raw)?;
    ImageIds::parse(raw.iter().map(|id| id.as_ref()), max_ids).map_err(|err| match err {
        InvalidImageIds::Malformed { position } => ApiError::InvalidImageId {
            detail: format!("image id #{position} is not a UUID"),
        },
        InvalidImageIds::TooMany { max } => ApiError::TooManyIds { max },
    })
}

/// The id of a single-image route.
pub fn one_id(raw: &str) -> Result<ImageId, ApiError> {
    let decoded = percent_decode(raw);
    ImageId::parse(&decoded).map_err(|_| ApiError::InvalidImageId {
        detail: "the image id in the path is not a UUID".into(),
    })
}

/// The keys under which ids are accepted: Rails' `image_ids[]` and plain repeats.
/// The keys ids come under, in a form body or the query string.
const IDS_KEYS: [&str; 2] = ["image_ids[]", "image_ids"];

/// Reads the body's ids into `out`. Repeats collapse later, but no key of the body may
/// list more than `max_ids` entries (the documented `maxItems`).
fn read_body_ids<'a>(
    request: &'a Request,
    out: &mut Vec<Cow<'a, str>>,
    max_ids: usize,
) -> Result<(), ApiError> {
    let too_many = ApiError::TooManyIds { max: max_ids };
    let bytes: &[u8] = match request.body() {
        Body::Empty => return Ok(()),
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => return Err(ApiError::InvalidBody),
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::BodyTooLarge {
            max: MAX_BODY_BYTES,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    // A compressed body would be read as form or JSON text: refused instead.
    let encoding = request
        .headers()
        .get(lambda_http::http::header::CONTENT_ENCODING)
        .map(|v| v.as_bytes().trim_ascii());
    if encoding.is_some_and(|e| !e.is_empty() && !e.eq_ignore_ascii_case(b"identity")) {
        return Err(ApiError::UnsupportedEncoding);
    }
    let media_type = request
        .headers()
        .get(lambda_http::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match media_type.as_deref() {
        Some("application/x-www-form-urlencoded") => {
            let text = std::str::from_utf8(bytes).map_err(|_| ApiError::InvalidBody)?;
            let mut per_key = [0usize; 2];
            for (key, value) in form_pairs(text) {
                let Some(slot) = IDS_KEYS.iter().position(|k| *k == key) else {
                    continue;
                };
                per_key[slot] += 1;
                if per_key[slot] > max_ids {
                    return Err(too_many);
                }
                out.push(value);
            }
            Ok(())
        }
        Some("application/json") => {
            #[derive(serde::Deserialize)]
            struct JsonBody {
                #[serde(default)]
                image_ids: Option<Vec<String>>,
            }
            // Only an object: serde would also read a struct from an array.
            let is_object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
            let body: JsonBody = serde_json::from_slice(bytes)
                .ok()
                .filter(|_| is_object)
                .ok_or(ApiError::InvalidBody)?;
            let ids = body.image_ids.unwrap_or_default();
            if ids.len() > max_ids {
                return Err(too_many);
            }
            out.extend(ids.into_iter().map(Cow::Owned));
            Ok(())
        }
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

fn read_query_ids(request: &Request, out: &mut Vec<Cow<'_, str>>) -> Result<(), ApiError> {
    let Some(query) = request.query_string_parameters_ref() else {
        return Ok(());
    };
    // ALB passes the query through undecoded, API Gateway decodes it: decoding a
    // key or id twice is harmless, since neither legitimately contains `%` or `+`.
    let mut per_key = [0usize; 2];
    for (key, value) in query.iter() {
        let key = percent_decode(key);
        let Some(slot) = IDS_KEYS.iter().position(|k| *k == key) else {
            continue;
        };
        per_key[slot] += 1;
        if per_key[slot] > MAX_QUERY_IDS {
            return Err(ApiError::TooManyQueryIds { max: MAX_QUERY_IDS });
        }
        out.push(Cow::Owned(percent_decode(value)));
    }
    Ok(())
}

/// The pairs of a form body, as `form_urlencoded::parse` reads them, each name and
/// value borrowed from `text` unless it holds something to decode (`%` or `+`). A
/// body of 1000 ids has nothing to decode: `form_urlencoded` scanned and copied each
/// id all the same, 1,400 instructions per id.
fn form_pairs(text: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    text.split('&').filter(|pair| !pair.is_empty()).map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decoded(name), form_decoded(value))
    })
}

/// One name or value of a form body, decoded as `form_urlencoded` does: `+` is a
/// space, `%` and two hex digits a byte (a `%` without them stays), and the bytes
/// are read as UTF-8, invalid sequences replaced.
fn form_decoded(piece: &str) -> Cow<'_, str> {
    if !piece.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(piece);
    }
    let bytes = piece.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let byte = match bytes[at] {
            b'+' => b' ',
            b'%' => match bytes.get(at + 1..at + 3).and_then(hex_byte) {
                Some(decoded) => {
                    at += 2;
                    decoded
                }
                None => b'%',
            },
            other => other,
        };
        out.push(byte);
        at += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// The byte two hex digits spell.
fn hex_byte(digits: &[u8]) -> Option<u8> {
    let digit = |d: u8| char::from(d).to_digit(16);
    u8::try_from(digit(digits[0])? * 16 + digit(digits[1])?).ok()
}

pub(super) fn percent_decode(raw: &str) -> String {
    form_urlencoded::parse(raw.as_bytes())
        .next()
        .map(|(k, _)| k.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http;
    use std::collections::HashMap;

    const A: &str = "7dca41d5-d76a-4ebb-9e00-dd13c13fc238";
    const B: &str = "dcd964c3-f54e-413c-ab2e-41c8608f5d16";

    fn request(method: &str, path: &str, content_type: Option<&str>, body: Body) -> Request {
        let mut builder = http::Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            builder = builder.header("content-type", ct);
        }
        builder.body(body).unwrap()
    }

    fn ids(request: &Request) -> Result<Vec<String>, ApiError> {
        bulk_ids(request, 1000).map(|ids| ids.as_slice().iter().map(|i| i.to_string()).collect())
    }

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    #[test]
    fn at_most_150_ids_come_from_the_query_string_under_each_key() {
        let query = |plain: usize, brackets: usize| {
            let ids = |n: usize, from: usize| -> Vec<String> {
                (from..from + n)
                    .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
                    .collect()
            };
            // (A key never maps to an empty list: `event` refuses such events.)
            let q: HashMap<String, Vec<String>> = [
                ("image_ids".to_string(), ids(plain, 0)),
                ("image_ids[]".to_string(), ids(brackets, 1000)),
            ]
            .into_iter()
            .filter(|(_, ids)| !ids.is_empty())
            .collect();
            request("DELETE", "/api/v1/images", None, Body::Empty).with_query_string_parameters(q)
        };
        assert_eq!(ids(&query(150, 150)).unwrap().len(), 300);
        let refused = Err(ApiError::TooManyQueryIds { max: MAX_QUERY_IDS });
        assert_eq!(ids(&query(151, 0)), refused);
        assert_eq!(ids(&query(0, 151)), refused);
    }

    #[test]
    fn routes_with_and_without_a_stage() {
        let bulk = request("DELETE", "/api/v1/images", None, Body::Empty);
        assert_eq!(route(&bulk, None, false), Ok(Route::Bulk));
        let staged = request("DELETE", "/prod/api/v1/images/", None, Body::Empty);
        assert_eq!(route(&staged, Some("prod"), false), Ok(Route::Bulk));
        let one = request(
            "DELETE",
            &format!("/prod/api/v1/images/{A}"),
            None,
            Body::Empty,
        );
        assert_eq!(route(&one, Some("prod"), false), Ok(Route::One(A)));
        let get = request("GET", "/api/v1/images", None, Body::Empty);
        let refused = Err(ApiError::MethodNotAllowed { allow: "DELETE" });
        assert_eq!(route(&get, None, false), refused);
        for path in [
            "/",
            "/api/v1/image",
            "/api/v1/images/a/b",
            "/other/api/v1/images",
        ] {
            let r = request("DELETE", path, None, Body::Empty);
            assert_eq!(
                route(&r, Some("prod"), true),
                Err(ApiError::NotFound),
                "{path}"
            );
        }
    }

    #[test]
    fn the_trash_routes_exist_only_with_a_trash() {
        let restore_one = format!("/api/v1/trashed_images/{A}");
        for (method, path, want) in [
            ("GET", "/api/v1/trashed_images", Ok(Route::TrashList)),
            ("DELETE", "/api/v1/trashed_images/", Ok(Route::RestoreBulk)),
            ("DELETE", restore_one.as_str(), Ok(Route::RestoreOne(A))),
            ("POST", "/api/v1/trashed_images/erase", Ok(Route::Erase)),
            // A restore can never be spelled as an erasure, nor the reverse.
            (
                "DELETE",
                "/api/v1/trashed_images/erase",
                Err(ApiError::MethodNotAllowed { allow: "POST" }),
            ),
            (
                "POST",
                "/api/v1/trashed_images",
                Err(ApiError::MethodNotAllowed {
                    allow: "GET, DELETE",
                }),
            ),
            (
                "GET",
                restore_one.as_str(),
                Err(ApiError::MethodNotAllowed { allow: "DELETE" }),
            ),
            (
                "DELETE",
                "/api/v1/trashed_images/a/b",
                Err(ApiError::NotFound),
            ),
        ] {
            let r = request(method, path, None, Body::Empty);
            assert_eq!(route(&r, None, true), want, "{method} {path}");
            assert_eq!(
                route(&r, None, false),
                Err(ApiError::NotFound),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn form_bodies_in_text_or_bytes_with_either_key() {
        let body = format!("image_ids[]={A}&image_ids={B}&other=1");
        for b in [
            Body::Text(body.clone()),
            Body::Binary(body.clone().into_bytes()),
        ] {
            let r = request(
                "DELETE",
                "/api/v1/images",
                Some("application/x-www-form-urlencoded; charset=UTF-8"),
                b,
            );
            assert_eq!(ids(&r).unwrap(), [A, B]);
        }
        let encoded = format!("image_ids%5B%5D={A}");
        let r = request("DELETE", "/api/v1/images", FORM, Body::Text(encoded));
        assert_eq!(ids(&r).unwrap(), [A]);
    }

    #[test]
    fn json_bodies_and_query_strings() {
        let json = format!(r#"{{"image_ids": ["{A}"]}}"#);
        let r = request(
            "DELETE",
            "/api/v1/images",
            Some("application/json"),
            Body::Text(json),
        );
        let q: HashMap<String, Vec<String>> = HashMap::from([(
            "image_ids%5B%5D".to_string(),
            vec![B.to_string(), A.to_string()],
        )]);
        let r = r.with_query_string_parameters(q);
        // body first, then the query; the duplicate collapses
        assert_eq!(ids(&r).unwrap(), [A, B]);
    }

    #[test]
    fn no_ids_is_an_empty_list() {
        for (ct, body) in [
            (None, Body::Empty),
            (FORM, Body::Text(String::new())),
            (FORM, Body::Text("other=1".into())),
        ] {
            let r = request("DELETE", "/api/v1/images", ct, body);
            assert!(ids(&r).unwrap().is_empty());
        }
        let r = request(
            "DELETE",
            "/api/v1/images",
            Some("application/json"),
            Body::Text("{}".into()),
        );
        assert!(ids(&r).unwrap().is_empty());
    }

    #[test]
    fn bad_bodies_are_refused_with_their_own_error() {
        let cases = [
            (
                FORM,
                Body::Text("image_ids[]=nope".into()),
                "invalid_image_id",
            ),
            (FORM, Body::Binary(vec![0xff, 0xfe]), "invalid_body"),
            (
                Some("application/json"),
                Body::Binary(b"H\x18S\xff\xfeN`\x06!".to_vec()),
                "invalid_body",
            ),
            (
                Some("application/json"),
                Body::Binary(b"{\"image_ids\": [\"\xff\"]}".to_vec()),
                "invalid_body",
            ),
            (
                Some("application/json"),
                Body::Text("{".into()),
                "invalid_body",
            ),
            (
                Some("application/json"),
                Body::Text(r#"{"image_ids": "x"}"#.into()),
                "invalid_body",
            ),
            (
                Some("application/json"),
                Body::Text(r#"{"image_ids": [1]}"#.into()),
                "invalid_body",
            ),
            (
                Some("application/json"),
                Body::Text("[]".into()),
                "invalid_body",
            ),
            (
                Some("text/plain"),
                Body::Text(A.into()),
                "unsupported_media_type",
            ),
            (None, Body::Text(A.into()), "unsupported_media_type"),
            (
                FORM,
                Body::Text("x".repeat(MAX_BODY_BYTES + 1)),
                "body_too_large",
            ),
        ];
        for (ct, body, code) in cases {
            let r = request("DELETE", "/api/v1/images", ct, body);
            assert_eq!(ids(&r).unwrap_err().code(), code, "{ct:?}");
        }
    }

    #[test]
    fn a_compressed_body_is_refused_and_identity_is_read() {
        for (encoding, expected) in [
            ("gzip", Err("unsupported_media_type")),
            ("br", Err("unsupported_media_type")),
            ("identity", Ok(vec![A.to_owned()])),
            (" Identity ", Ok(vec![A.to_owned()])),
        ] {
            // GIVEN a form body sent with a Content-Encoding
            let mut r = request(
                "DELETE",
                "/api/v1/images",
                FORM,
                Body::Text(format!("image_ids[]={A}")),
            );
            r.headers_mut()
                .insert("content-encoding", http::HeaderValue::from_static(encoding));
            // WHEN its ids are read THEN only an uncompressed body is read
            let got = ids(&r).map_err(|e| e.code());
            assert_eq!(got, expected, "{encoding}");
        }
    }

    #[test]
    fn too_many_distinct_ids_are_refused() {
        let body = format!("image_ids[]={A}&image_ids[]={B}");
        let r = request("DELETE", "/api/v1/images", FORM, Body::Text(body));
        assert_eq!(
            bulk_ids(&r, 1).unwrap_err(),
            ApiError::TooManyIds { max: 1 }
        );
    }

    #[test]
    fn repeats_collapse_but_count_toward_the_length_of_a_body() {
        let body = |n: usize| vec![format!("image_ids[]={A}"); n].join("&");
        let r = request("DELETE", "/api/v1/images", FORM, Body::Text(body(3)));
        assert_eq!(bulk_ids(&r, 3).unwrap().len(), 1);
        let r = request("DELETE", "/api/v1/images", FORM, Body::Text(body(4)));
        assert_eq!(
            bulk_ids(&r, 3).unwrap_err(),
            ApiError::TooManyIds { max: 3 }
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn form_bodies_are_read_exactly_as_form_urlencoded_reads_them(
            body in "[a-z_\\[\\]=&%+ 0-9A-Fé\u{80}-]{0,40}"
        ) {
            // GIVEN any body of form syntax: separators, `+`, `%` with and without
            // hex digits after it, escapes of invalid UTF-8, plain text
            // WHEN it is read by `form_pairs` and by `form_urlencoded`
            let ours: Vec<(String, String)> = form_pairs(&body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let theirs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            // THEN both give the same pairs
            proptest::prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn ids_with_nothing_to_decode_are_borrowed_from_the_body() {
        // GIVEN the seed's form body
        let body = format!("image_ids[]={A}&image_ids[]={B}");
        // WHEN its pairs are read
        let pairs: Vec<_> = form_pairs(&body).collect();
        // THEN the ids are the body's own text, not copies
        assert!(
            pairs
                .iter()
                .all(|(k, v)| matches!((k, v), (Cow::Borrowed(_), Cow::Borrowed(_))))
        );
        assert_eq!(pairs[1].1, B);
    }
}
