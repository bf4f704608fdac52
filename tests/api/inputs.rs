//! Bad input gets a clear 4xx and changes nothing.

use crate::helpers::*;

async fn seeded() -> (TestApp, String) {
    let app = TestApp::spawn_with(&[("MAX_IDS", "5")]).await;
    for id in SEED_IDS {
        app.seed_image(id, SEED_ALBUM).await;
    }
    let token = app.token(&[SEED_ALBUM], "image_delete");
    (app, token)
}

async fn assert_nothing_deleted(app: &TestApp) {
    assert_eq!(app.record_count().await, 9);
    assert_eq!(app.object_count().await, 18);
}

#[tokio::test]
async fn missing_malformed_and_expired_tokens_get_the_seed_401() {
    let (app, _) = seeded().await;
    let mut event = fixture("apigw-rest-bulk-delete.json");
    remove_header(&mut event, "authorization");
    assert_denied(&app.send(request(&event)).await);
    for value in [
        "Token token=\"not-a-jwt\"",
        "Basic dXNlcjpwYXNz",
        // the seed's own token: signed with another key, and long expired
        "Token token=\"eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJleHAiOjE1NTQ3NTk1MzEsImlhdCI6MTU1NDc0NTEzMSwidXNlcl9pZCI6ImRjODUwNjM1LTljZGEtNGM3Yy04MTAyLWJlZDI1ZjM5MDU1ZSIsImFiaWxpdGllcyI6eyIwMDEwMDAwMDEyM0JCMTIxIjp7IkFjY2VzcyI6eyJpbWFnZV9saXN0Ijp0cnVlfX19fQ.MWphZjO450rRxkyJGcdlLGMHJZz_jwAh28rRBYX7TPY\"",
    ] {
        set_header(&mut event, "authorization", value);
        assert_denied(&app.send(request(&event)).await);
    }
    assert_nothing_deleted(&app).await;
}

#[tokio::test]
async fn each_bad_body_gets_its_own_4xx() {
    let (app, token) = seeded().await;
    let six: Vec<&str> = SEED_IDS[..6].to_vec();
    let cases: Vec<(String, &str, u16, &str)> = vec![
        (
            format!("image_ids[]={}&image_ids[]=nope", SEED_IDS[0]),
            "application/x-www-form-urlencoded",
            400,
            "invalid_image_id",
        ),
        (
            form_body(&six),
            "application/x-www-form-urlencoded",
            400,
            "too_many_image_ids",
        ),
        (
            "{\"image_ids\": 7}".into(),
            "application/json",
            400,
            "invalid_body",
        ),
        (
            SEED_IDS[0].into(),
            "text/plain",
            415,
            "unsupported_media_type",
        ),
        (
            "image_ids[]=".to_string() + &"a".repeat(200 * 1024),
            "application/x-www-form-urlencoded",
            413,
            "body_too_large",
        ),
    ];
    for (body, content_type, status, code) in cases {
        let mut event = bulk_event(&body, &token);
        set_header(&mut event, "content-type", content_type);
        assert_client_error(&app.send(request(&event)).await, status, code);
    }
    assert_nothing_deleted(&app).await;
}

#[tokio::test]
async fn other_routes_and_methods_get_404_and_405_in_the_same_shape() {
    let (app, token) = seeded().await;
    let mut event = bulk_event(&form_body(&SEED_IDS), &token);
    event["httpMethod"] = "POST".into();
    let response = app.send(request(&event)).await;
    assert_client_error(&response, 405, "method_not_allowed");
    assert_eq!(header(&response, "allow"), Some("DELETE"));
    event["httpMethod"] = "DELETE".into();
    event["path"] = "/api/v1/albums".into();
    assert_client_error(&app.send(request(&event)).await, 404, "not_found");
    let mut one = fixture("apigw-rest-delete-one.json");
    one["path"] = "/api/v1/images/not-a-uuid".into();
    assert_client_error(&app.send(request(&one)).await, 400, "invalid_image_id");
    assert_nothing_deleted(&app).await;
}
