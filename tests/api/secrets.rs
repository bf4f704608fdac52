//! Signing keys read once at init from Secrets Manager (moto), with rotation.

use crate::helpers::*;
use image_delete::auth::Tokens;
use secrecy::SecretString;

#[tokio::test]
async fn keys_from_secrets_manager_verify_with_any_and_sign_with_the_first() {
    // GIVEN a secret listing a new key first and the dev key second
    let new_key = "rotated-key-0123456789abcdef0123456789abcdef";
    let aws = image_delete::startup::aws_config().await.unwrap();
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let name = format!("jwt-{:016x}", fastrand::u64(..));
    let created = secrets
        .create_secret()
        .name(&name)
        .secret_string(format!(r#"{{"keys": ["{new_key}", "{DEV_SECRET}"]}}"#))
        .send()
        .await
        .expect("create_secret on the emulator (run through `make test`)");
    let arn = created.arn().unwrap().to_owned();
    let app = TestApp::spawn_with(&[("JWT_SECRET_ARN", arn.as_str())]).await;
    app.seed_image(SEED_IDS[0], SEED_ALBUM).await;

    // WHEN a request signed with the old (dev) key arrives
    let old_token = app.token(&[SEED_ALBUM], "image_delete");
    let response = app
        .send(form_request(&form_body(&SEED_IDS[..1]), &old_token))
        .await;

    // THEN it is accepted, and the fresh token is signed with the new key only
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    let fresh = header(&response, "x-token").unwrap();
    let new_only = Tokens::new(&[SecretString::from(new_key.to_owned())], 60).unwrap();
    let dev_only = Tokens::new(&[SecretString::from(DEV_SECRET.to_owned())], 60).unwrap();
    assert!(new_only.verify(fresh, now()).is_ok());
    assert!(dev_only.verify(fresh, now()).is_err());
}
