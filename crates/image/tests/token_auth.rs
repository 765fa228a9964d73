//! The Bearer token flow: an in-test gateway (axum) in front of a real docker-registry
//! demands `Bearer` tokens scoped per repository and action, handed out by its token
//! endpoint only for the right Basic credentials.

mod common;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use berth_image::progress::ProgressSink;
use berth_image::registry::Credentials;
use berth_image::{Error, PullOptions};
use common::*;

const USER: &str = "tok";
const PASSWORD: &str = "en";

struct Gateway {
    upstream: String,
    me: String,
    http: reqwest::Client,
}

/// Tokens are the granted scopes, base64'd: enough to check them, and no secret needed.
async fn token(headers: HeaderMap, Query(q): Query<Vec<(String, String)>>) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, "bad credentials").into_response();
    }
    assert!(q.iter().any(|(k, v)| k == "service" && v == "berth-test"));
    let scopes: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.as_str())
        .collect();
    let t = format!(
        "t.{}",
        base64::engine::general_purpose::STANDARD.encode(scopes.join(" "))
    );
    axum::Json(serde_json::json!({ "token": t, "expires_in": 300 })).into_response()
}

/// The scope a request needs: repository:<name>:pull or :push.
fn needed(method: &Method, path: &str) -> Option<(String, &'static str)> {
    let rest = path.strip_prefix("/v2/")?;
    let i = rest
        .rfind("/manifests/")
        .or_else(|| rest.rfind("/blobs/"))?;
    let action = if method == Method::GET || method == Method::HEAD {
        "pull"
    } else {
        "push"
    };
    Some((rest[..i].to_string(), action))
}

fn granted(headers: &HeaderMap, repo: &str, action: &str) -> bool {
    let Some(t) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer t."))
    else {
        return false;
    };
    let Ok(scopes) = base64::engine::general_purpose::STANDARD.decode(t) else {
        return false;
    };
    String::from_utf8_lossy(&scopes).split(' ').any(|s| {
        let mut p = s.splitn(3, ':');
        p.next() == Some("repository")
            && p.next() == Some(repo)
            && p.next().is_some_and(|a| a.split(',').any(|x| x == action))
    })
}

async fn proxy(State(g): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path_q = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let ok = match needed(&parts.method, parts.uri.path()) {
        Some((repo, action)) => granted(&parts.headers, &repo, action),
        None => parts.headers.contains_key("authorization"),
    };
    if !ok {
        let challenge = format!(
            r#"Bearer realm="http://{}/token",service="berth-test""#,
            g.me
        );
        return (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", challenge)],
            "",
        )
            .into_response();
    }
    let body: Bytes = axum::body::to_bytes(body, 1 << 30).await.unwrap();
    let mut up = g
        .http
        .request(
            parts.method.clone(),
            format!("http://{}{path_q}", g.upstream),
        )
        .body(body);
    for (k, v) in parts
        .headers
        .iter()
        .filter(|(k, _)| *k != "host" && *k != "authorization")
    {
        up = up.header(k, v);
    }
    let resp = up.send().await.unwrap();
    let mut out = Response::builder().status(resp.status().as_u16());
    for (k, v) in resp.headers() {
        // Upload locations name the upstream: send clients back through the gateway.
        let v = if k == "location" {
            HeaderValue::from_str(&v.to_str().unwrap().replace(&g.upstream, &g.me)).unwrap()
        } else {
            v.clone()
        };
        out = out.header(k.as_str(), v);
    }
    out.body(Body::from(resp.bytes().await.unwrap())).unwrap()
}

/// Starts the gateway; it runs until the test's runtime ends.
async fn gateway(upstream: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let me = listener.local_addr().unwrap().to_string();
    let g = Arc::new(Gateway {
        upstream,
        me: me.clone(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    });
    let app = Router::new()
        .route("/token", get(token))
        .fallback(proxy)
        .with_state(g);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    me
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_flow_for_push_and_pull() {
    let reg = Registry::start().await;
    let gw = gateway(reg.host()).await;
    let root = Root::new();
    let name = format!("{gw}/team/app:1");
    let img = root.import_busybox(&name);

    // Without credentials the token endpoint refuses.
    let err = root
        .svc
        .push(&name, None, &ProgressSink::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    let wrong = Credentials {
        username: USER.into(),
        password: "x".into(),
    };
    assert!(matches!(
        root.svc.login(&gw, &wrong).await,
        Err(Error::Unauthorized { .. })
    ));
    root.svc
        .login(
            &gw,
            &Credentials {
                username: USER.into(),
                password: PASSWORD.into(),
            },
        )
        .await
        .unwrap();
    root.svc
        .push(&name, None, &ProgressSink::default())
        .await
        .unwrap();

    // Another repository on the same registry: the layer is mounted across, which needs a
    // token for both repositories.
    let second = format!("{gw}/team/other:1");
    root.svc.tag(&name, &second).unwrap();
    let (progress, mut events) = ProgressSink::channel();
    root.svc.push(&second, None, &progress).await.unwrap();
    drop(progress);
    let mut skipped = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let berth_image::progress::Progress::Skipped { reason, .. } = e {
            skipped.push(reason);
        }
    }
    assert!(
        skipped.iter().any(|r| r == "mounted from team/app"),
        "{skipped:?}"
    );

    let other = Root::with(|o| o.registry.credentials = root.path("docker/config.json"));
    let pulled = other
        .svc
        .pull(&second, &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(pulled.id, img.id);
}
