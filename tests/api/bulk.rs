//! The bulk endpoint's behaviour on real emulators: the seed's request, authorization,
//! partial inputs and replays.

use crate::helpers::*;

#[tokio::test]
async fn the_seed_request_deletes_all_nine_images_and_answers_as_the_seed_does() {
    // GIVEN the seed's nine images, each with two objects, and one image left alone
    let app = TestApp::spawn().await;
    let mut keys = Vec::new();
    for id in SEED_IDS {
        keys.extend(app.seed_image(id, SEED_ALBUM).await);
    }
    let bystander = "0b9d1a52-7b7f-4c3c-9d3e-3f0b7e1c2a11";
    app.seed_image(bystander, SEED_ALBUM).await;

    // WHEN the seed's request arrives through API Gateway (REST, stage "prod"), with
    // the seed's claims in a token issued now (the fixture's own was issued in 2025:
    // past the renewal cap, it would get no X-token)
    let event = with_fresh_token(&app, fixture("apigw-rest-bulk-delete.json"));
    let response = app.send(request(&event)).await;

    // THEN 200 with the nine ids, newest first, in the seed's exact bytes
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    let reversed: Vec<&str> = SEED_IDS.iter().rev().copied().collect();
    assert_eq!(
        body_text(&response),
        serde_json::to_string(&reversed).unwrap()
    );
    assert_eq!(body_text(&response).len(), 352, "the seed's Content-Length");
    assert_eq!(
        header(&response, "content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_seed_headers(&response);
    assert_eq!(
        header(&response, "x-request-id"),
        Some("3cdcadc9-532d-4f5e-8826-8584694cf195")
    );
    // AND a fresh token with the same claims, valid for four hours
    let token = header(&response, "x-token").expect("x-token");
    assert!(token.starts_with("eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9."));
    let claims = app.verify(token);
    assert_eq!(claims.exp - claims.iat.unwrap(), 14400);
    assert!((claims.iat.unwrap() - now()).abs() <= 5);
    assert_eq!(claims.user_id, "dc850635-9cda-4c7c-8102-bed25f39055e");
    // AND every record and object is gone, the bystander untouched
    for id in SEED_IDS {
        assert!(!app.record_exists(id).await, "record {id}");
    }
    for key in &keys {
        assert!(!app.object_exists(key).await, "object {key}");
    }
    assert!(app.record_exists(bystander).await);
    assert_eq!(app.object_count().await, 2);
}

#[tokio::test]
async fn a_token_for_another_album_gets_401_and_nothing_is_deleted() {
    // GIVEN the seed's images and a token for another album only
    let app = TestApp::spawn().await;
    for id in SEED_IDS {
        app.seed_image(id, SEED_ALBUM).await;
    }
    let token = app.token(&[OTHER_ALBUM], "image_delete");
    // WHEN it asks to delete them
    let response = app.send(form_request(&form_body(&SEED_IDS), &token)).await;
    // THEN the seed's 401 and everything is still there
    assert_denied(&response);
    assert_eq!(app.record_count().await, 9);
    assert_eq!(app.object_count().await, 18);
}

#[tokio::test]
async fn one_image_of_a_foreign_album_among_many_denies_the_whole_request() {
    // GIVEN two images of the token's album and one of another album
    let app = TestApp::spawn().await;
    app.seed_image(SEED_IDS[0], SEED_ALBUM).await;
    app.seed_image(SEED_IDS[1], SEED_ALBUM).await;
    app.seed_image(SEED_IDS[2], OTHER_ALBUM).await;
    let token = app.token(&[SEED_ALBUM], "image_delete");
    // WHEN all three are requested
    let response = app
        .send(form_request(&form_body(&SEED_IDS[..3]), &token))
        .await;
    // THEN 401 and not even the permitted two are deleted
    assert_denied(&response);
    assert_eq!(app.record_count().await, 3);
    assert_eq!(app.object_count().await, 6);
}

#[tokio::test]
async fn a_token_for_both_albums_deletes_across_albums() {
    let app = TestApp::spawn().await;
    app.seed_image(SEED_IDS[0], SEED_ALBUM).await;
    app.seed_image(SEED_IDS[1], OTHER_ALBUM).await;
    let token = app.token(&[SEED_ALBUM, OTHER_ALBUM], "image_delete");
    let response = app
        .send(form_request(&form_body(&SEED_IDS[..2]), &token))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        body_json(&response),
        serde_json::json!([SEED_IDS[1], SEED_IDS[0]])
    );
    assert_eq!(app.record_count().await, 0);
    assert_eq!(app.object_count().await, 0);
}

#[tokio::test]
async fn a_token_without_a_delete_ability_is_denied() {
    let app = TestApp::spawn().await;
    app.seed_image(SEED_IDS[0], SEED_ALBUM).await;
    let token = app.token(&[SEED_ALBUM], "image_upload");
    let response = app
        .send(form_request(&form_body(&SEED_IDS[..1]), &token))
        .await;
    assert_denied(&response);
    assert!(app.record_exists(SEED_IDS[0]).await);
}

#[tokio::test]
async fn nonexistent_ids_and_duplicates_are_left_out_of_the_answer() {
    // GIVEN one existing image
    let app = TestApp::spawn().await;
    app.seed_image(SEED_IDS[0], SEED_ALBUM).await;
    let token = app.token(&[SEED_ALBUM], "image_list");
    // WHEN it is requested twice (once in upper case) among two ids that do not exist
    let upper = SEED_IDS[0].to_uppercase();
    let body = form_body(&[SEED_IDS[1], SEED_IDS[0], upper.as_str(), SEED_IDS[2]]);
    let response = app.send(form_request(&body, &token)).await;
    // THEN only the existing one is reported, once
    assert_eq!(response.status(), 200);
    assert_eq!(body_json(&response), serde_json::json!([SEED_IDS[0]]));
    assert_eq!(app.record_count().await, 0);
}

#[tokio::test]
async fn replaying_a_request_is_harmless() {
    let app = TestApp::spawn().await;
    app.seed_image(SEED_IDS[0], SEED_ALBUM).await;
    let token = app.token(&[SEED_ALBUM], "image_list");
    let first = app
        .send(form_request(&form_body(&SEED_IDS[..1]), &token))
        .await;
    let again = app
        .send(form_request(&form_body(&SEED_IDS[..1]), &token))
        .await;
    assert_eq!(body_json(&first), serde_json::json!([SEED_IDS[0]]));
    assert_eq!(again.status(), 200);
    assert_eq!(body_json(&again), serde_json::json!([]));
    assert!(header(&again, "x-token").is_some());
}

#[tokio::test]
async fn an_image_without_objects_and_an_empty_request() {
    let app = TestApp::spawn().await;
    app.seed(SEED_IDS[0], SEED_ALBUM, &[]).await;
    let token = app.token(&[SEED_ALBUM], "image_delete");
    let response = app
        .send(form_request(&form_body(&SEED_IDS[..1]), &token))
        .await;
    assert_eq!(body_json(&response), serde_json::json!([SEED_IDS[0]]));
    // no ids at all: nothing to delete, still a fresh token
    let empty = app.send(form_request("", &token)).await;
    assert_eq!(empty.status(), 200);
    assert_eq!(body_json(&empty), serde_json::json!([]));
    assert!(header(&empty, "x-token").is_some());
}

#[tokio::test]
async fn a_thousand_ids_go_through_the_batch_limits_the_emulator_enforces() {
    // GIVEN 120 images (more than one BatchGetItem and 5 BatchWriteItem chunks)
    let app = TestApp::spawn().await;
    let ids: Vec<String> = (0..1000)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    for id in &ids[..120] {
        app.seed(id, SEED_ALBUM, &[format!("k/{id}")]).await;
    }
    let token = app.token(&[SEED_ALBUM], "image_delete");
    // WHEN all 1000 ids (880 of them unknown) are requested
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let response = app.send(form_request(&form_body(&refs), &token)).await;
    // THEN the 120 are deleted and reported, newest first
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    let expected: Vec<&str> = refs[..120].iter().rev().copied().collect();
    assert_eq!(body_json(&response), serde_json::json!(expected));
    assert_eq!(app.record_count().await, 0);
    assert_eq!(app.object_count().await, 0);
}

#[tokio::test]
async fn the_single_image_route_answers_204_then_404() {
    let app = TestApp::spawn().await;
    let keys = app.seed_image(SEED_IDS[0], SEED_ALBUM).await;
    let event = with_fresh_token(&app, fixture("apigw-rest-delete-one.json"));
    let first = app.send(request(&event)).await;
    assert_eq!(first.status(), 204, "{}", body_text(&first));
    assert!(header(&first, "x-token").is_some());
    assert_seed_headers(&first);
    assert!(!app.record_exists(SEED_IDS[0]).await);
    assert!(!app.object_exists(&keys[0]).await);
    let again = app.send(request(&event)).await;
    assert_eq!(again.status(), 404);
    assert_eq!(body_json(&again)["error"], "not_found");
    assert!(header(&again, "x-token").is_some());
}

#[tokio::test]
async fn the_single_image_route_denies_a_foreign_album() {
    let app = TestApp::spawn().await;
    app.seed_image(SEED_IDS[0], OTHER_ALBUM).await;
    let response = app
        .send(request(&fixture("apigw-rest-delete-one.json")))
        .await;
    assert_denied(&response);
    assert!(app.record_exists(SEED_IDS[0]).await);
}

#[tokio::test]
async fn a_token_issued_past_the_renewal_cap_is_served_but_not_renewed() {
    // GIVEN the fixture's own token: valid until 2100, issued in 2025 (past the cap)
    let app = TestApp::spawn().await;
    app.seed_image(SEED_IDS[0], SEED_ALBUM).await;
    let response = app
        .send(request(&fixture("apigw-rest-bulk-delete.json")))
        .await;
    // THEN the deletion is done and answered, without a fresh token
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    assert_eq!(body_json(&response), serde_json::json!([SEED_IDS[0]]));
    assert_eq!(header(&response, "x-token"), None);
    assert_seed_headers(&response);
}

/// The fixture with the seed's claims in a token issued now (the fixtures' own tokens
/// were issued in 2025: past the renewal cap, they get no X-token).
fn with_fresh_token(app: &TestApp, mut event: serde_json::Value) -> serde_json::Value {
    let token = app.token(&[SEED_ALBUM], "image_list");
    set_header(
        &mut event,
        "authorization",
        &format!("Token token=\"{token}\""),
    );
    event
}
