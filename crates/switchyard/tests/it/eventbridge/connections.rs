//! Connections through boto3: each authorization type, secrets never answered, deauthorizing,
//! and a connection in use that cannot be deleted.

use serde_json::{Value, json};
use switchyard_test_support::{python_or_skip, temp_dir};

use super::run_steps;
use crate::common::{Receiver, Reply, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_of_each_type_never_answer_their_secrets_and_deauthorize() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let tokens = Receiver::start(|_, _| {
        Reply::json(
            200,
            json!({"access_token": "t", "token_type": "Bearer", "expires_in": 300}),
        )
    })
    .await;
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let env = vec![
        ("ENDPOINT", server.base.clone()),
        ("TOKEN_URL", format!("{}/token", tokens.url)),
    ];
    let steps = run_steps(&python, "connections.py", env).await;
    let text = steps
        .values()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    for secret in [
        "basic-secret-pw",
        "api-secret-value",
        "hidden-secret-value",
        "oauth-secret-value",
    ] {
        assert!(!text.contains(secret), "a secret was answered: {secret}");
    }
    for name in ["basic", "api_key", "oauth"] {
        assert_eq!(
            steps[name]["result"]["ConnectionState"], "AUTHORIZED",
            "{}",
            steps[name]
        );
    }
    assert_eq!(steps["oauth_get"]["error"], "ValidationException");
    assert_eq!(steps["again"]["error"], "ResourceAlreadyExistsException");
    let basic = &steps["describe_basic"]["result"];
    assert_eq!(basic["AuthorizationType"], "BASIC");
    assert_eq!(
        basic["AuthParameters"]["BasicAuthParameters"]["Username"],
        "u"
    );
    let key = &steps["describe_key"]["result"];
    assert_eq!(
        key["AuthParameters"]["ApiKeyAuthParameters"]["ApiKeyName"],
        "x-api-key"
    );
    let headers = &key["AuthParameters"]["InvocationHttpParameters"]["HeaderParameters"];
    assert!(
        headers
            .as_array()
            .unwrap()
            .contains(&json!({"Key": "x-hidden", "IsValueSecret": true}))
    );
    let oauth = &steps["describe_oauth"]["result"]["AuthParameters"]["OAuthParameters"];
    assert_eq!(oauth["ClientParameters"]["ClientID"], "client-1");
    assert_eq!(
        steps["list"]["result"]["Connections"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        steps["describe_updated"]["result"]["Description"],
        "changed"
    );
    assert_eq!(
        steps["describe_updated"]["result"]["AuthorizationType"], "BASIC",
        "an update without AuthParameters keeps the auth"
    );
    let deauthorized = &steps["describe_deauthorized"]["result"];
    assert_eq!(deauthorized["ConnectionState"], "DEAUTHORIZED");
    assert_eq!(deauthorized["AuthorizationType"], "BASIC");
    let listed = &steps["list_deauthorized"]["result"]["Connections"];
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let key_arn = &steps["api_key"]["result"]["ConnectionArn"];
    assert_eq!(
        &steps["describe_destination"]["result"]["ConnectionArn"],
        key_arn
    );
    assert_eq!(
        &steps["list_destinations"]["result"]["ApiDestinations"][0]["ConnectionArn"],
        key_arn
    );
    assert_eq!(
        steps["delete_used"]["error"],
        "ConcurrentModificationException"
    );
    assert_eq!(steps["delete"]["result"]["ConnectionState"], "DELETING");
    assert_eq!(
        steps["describe_deleted"]["error"],
        "ResourceNotFoundException"
    );
}
