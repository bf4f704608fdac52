//! Every event source fixture under `events/` drives the function as Lambda would.

use crate::helpers::*;

async fn seeded() -> TestApp {
    let app = TestApp::spawn().await;
    for id in SEED_IDS {
        app.seed_image(id, SEED_ALBUM).await;
    }
    app
}

#[tokio::test]
async fn http_api_v2_with_a_base64_form_body() {
    let app = seeded().await;
    let response = app
        .send(request(&fixture("apigw-http-bulk-delete.json")))
        .await;
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    assert_eq!(body_json(&response).as_array().unwrap().len(), 9);
    assert_eq!(header(&response, "x-request-id"), Some("JKJaXmPLvHcESHA="));
    assert_eq!(app.record_count().await, 0);
}

#[tokio::test]
async fn function_url_with_a_json_body() {
    let app = seeded().await;
    let response = app
        .send(request(&fixture("function-url-bulk-delete.json")))
        .await;
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    assert_eq!(
        body_json(&response),
        serde_json::json!([SEED_IDS[2], SEED_IDS[1], SEED_IDS[0]])
    );
    assert_eq!(app.record_count().await, 6);
}

#[tokio::test]
async fn alb_with_ids_in_an_undecoded_query_string() {
    let app = seeded().await;
    let response = app.send(request(&fixture("alb-bulk-delete.json"))).await;
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    assert_eq!(
        body_json(&response),
        serde_json::json!([SEED_IDS[1], SEED_IDS[0]])
    );
    assert_eq!(app.record_count().await, 7);
    assert_seed_headers(&response);
}

#[tokio::test]
async fn a_sane_caller_request_id_is_echoed_and_an_unsafe_one_replaced() {
    let app = seeded().await;
    let mut event = fixture("apigw-rest-bulk-delete.json");
    event["body"] = "".into();
    set_header(&mut event, "x-request-id", "client-abc_123.x");
    let response = app.send(request(&event)).await;
    assert_eq!(header(&response, "x-request-id"), Some("client-abc_123.x"));
    set_header(&mut event, "x-request-id", "bad id\"<script>");
    let response = app.send(request(&event)).await;
    assert_eq!(
        header(&response, "x-request-id"),
        Some("3cdcadc9-532d-4f5e-8826-8584694cf195")
    );
}
