//! The peer of the end-to-end benchmark: one GitHub-style webhook per request, handled the way
//! wasmhook + the relay plugin handle it, but synchronously inside `wasmtime serve`:
//! 1. verify `X-Hub-Signature-256` (`sha256=<hex HMAC-SHA256 of the body>`, constant-time) with
//!    the secret in env `SECRET` (401 when wrong);
//! 2. parse the JSON body and take `contact.id` (400 when malformed);
//! 3. `POST http://<FAKE>/notes/<X-GitHub-Delivery>` with `{"contact": "<id>"}` through
//!    `wasi:http/outgoing-handler` and wait for its answer (502 unless 2xx);
//! 4. answer 200.

use std::io::{Read as _, Write as _};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasip2::http::{
    outgoing_handler,
    types::{
        Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
        ResponseOutparam, Scheme,
    },
};

wasip2::http::proxy::export!(Peer);

struct Peer;

impl wasip2::exports::http::incoming_handler::Guest for Peer {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let (status, text) = match relay(&request) {
            Ok(()) => (200, "ok\n".to_string()),
            Err((status, why)) => (status, format!("{why}\n")),
        };
        respond(out, status, text.as_bytes());
    }
}

type Failure = (u16, String);

fn relay(request: &IncomingRequest) -> Result<(), Failure> {
    let headers = request.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .into_iter()
            .next()
            .and_then(|v| String::from_utf8(v).ok())
    };
    let signature = header("x-hub-signature-256").ok_or((401, "no signature".into()))?;
    let delivery = header("x-github-delivery").ok_or((400, "no delivery id".into()))?;
    let body = read_body(request).map_err(|e| (400, format!("body: {e}")))?;

    let secret = std::env::var("SECRET").map_err(|_| (500, "SECRET is not set".into()))?;
    let expected = signature
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or((401, "malformed signature".into()))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.trim().as_bytes())
        .map_err(|_| (500, "bad secret".into()))?;
    mac.update(&body);
    mac.verify_slice(&expected)
        .map_err(|_| (401, "signature mismatch".into()))?;

    let payload: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| (400, format!("not JSON: {e}")))?;
    let contact = payload["contact"]["id"]
        .as_str()
        .ok_or((400, "no contact.id".into()))?;

    let fake = std::env::var("FAKE").map_err(|_| (500, "FAKE is not set".into()))?;
    call(
        &fake,
        &format!("/notes/{delivery}"),
        format!("{{\"contact\":\"{contact}\"}}").as_bytes(),
    )
}

fn read_body(request: &IncomingRequest) -> Result<Vec<u8>, String> {
    let body = request.consume().map_err(|_| "already consumed")?;
    let mut bytes = Vec::new();
    {
        let mut stream = body.stream().map_err(|_| "no stream")?;
        stream.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    }
    drop(body);
    Ok(bytes)
}

/// `POST http://<authority><path>` with a JSON body; Ok on a 2xx answer.
fn call(authority: &str, path: &str, json: &[u8]) -> Result<(), Failure> {
    let headers = Fields::new();
    headers
        .append("content-type", b"application/json")
        .map_err(|e| (500, format!("header: {e:?}")))?;
    let request = OutgoingRequest::new(headers);
    let bad = |what: &str| (500, format!("request {what}"));
    request
        .set_method(&Method::Post)
        .map_err(|_| bad("method"))?;
    request
        .set_scheme(Some(&Scheme::Http))
        .map_err(|_| bad("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|_| bad("authority"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|_| bad("path"))?;
    let body = request.body().map_err(|_| bad("body"))?;
    {
        let mut stream = body.write().map_err(|_| bad("body stream"))?;
        stream.write_all(json).map_err(|e| (500, e.to_string()))?;
        stream.flush().map_err(|e| (500, e.to_string()))?;
    }
    let pending =
        outgoing_handler::handle(request, None).map_err(|e| (502, format!("upstream: {e:?}")))?;
    OutgoingBody::finish(body, None).map_err(|e| (502, format!("upstream: {e:?}")))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or((502, "no upstream answer".to_string()))?
        .map_err(|_| (502, "upstream answer taken twice".to_string()))?
        .map_err(|e| (502, format!("upstream: {e:?}")))?;
    let status = response.status();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err((502, format!("upstream answered {status}")))
    }
}

fn respond(out: ResponseOutparam, status: u16, text: &[u8]) {
    let response = OutgoingResponse::new(Fields::new());
    let _ = response.set_status_code(status);
    let Ok(body) = response.body() else { return };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(mut stream) = body.write() {
        let _ = stream.write_all(text);
        let _ = stream.flush();
    }
    let _ = OutgoingBody::finish(body, None);
}
