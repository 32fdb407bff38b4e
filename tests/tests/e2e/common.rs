//! Helpers shared by the end-to-end modules.

use std::{path::PathBuf, time::Duration};

use wasmhook_tests::{
    APP_ID, FakeApi, TestServer, fixtures, plugins::rust_plugin, server::TestServerBuilder,
    signing::HighLevelSigner,
};

/// The manifest of the example contact-tagger, pointed at `api`.
pub fn tagger_manifest() -> String {
    std::fs::read_to_string(
        wasmhook_tests::repo_root().join("example-plugins/contact-tagger/contact-tagger.toml"),
    )
    .unwrap()
}

/// A manifest for the `hostile` test plugin in `mode`, with a per-attempt `timeout` and
/// `memory` cap, one attempt, and `extra` lines appended to its `[config]`.
pub fn hostile_manifest(
    name: &str,
    mode: &str,
    timeout: &str,
    memory: &str,
    extra: &str,
) -> String {
    format!(
        "name = \"{name}\"\nevents = [\"highlevel:ContactCreate\"]\ntimeout = \"{timeout}\"\n\
         memory = \"{memory}\"\nmax_attempts = 1\nmax_api_calls = 5\n\n\
         [capabilities.api.fake]\nallow = [\"GET /hang\", \"GET /allowed/*\"]\n\n\
         [config]\nmode = \"{mode}\"\n{extra}\n"
    )
}

pub fn hostile_wasm() -> PathBuf {
    rust_plugin("hostile")
}

pub fn tagger_wasm() -> PathBuf {
    rust_plugin("contact-tagger")
}

/// A server with the `highlevel` source, APIs `highlevel` and `fake` on `fake`, the example
/// contact-tagger, and whatever `more` adds.
pub async fn server_with(
    signer: &HighLevelSigner,
    fake: &FakeApi,
    more: impl FnOnce(TestServerBuilder) -> TestServerBuilder,
) -> TestServer {
    let builder = TestServer::builder()
        .api("highlevel", fake)
        .api("fake", fake)
        .highlevel(signer)
        .toml("[plugins]\nworkers = 16\npoll_interval = \"50ms\"\nretry_base = \"100ms\"\nretry_max = \"2s\"\n")
        .plugin("contact-tagger", &tagger_wasm(), &tagger_manifest());
    more(builder).spawn().await
}

/// A signed ContactCreate body for our app with a fresh webhook id; returns (id, body).
pub fn contact_create() -> (String, Vec<u8>) {
    let id = format!("wh-{}", rand::random::<u64>());
    (
        id.clone(),
        fixtures::highlevel_signed_body("contact-create", APP_ID, &id),
    )
}

/// The contact id in the ContactCreate fixture.
pub const CONTACT_ID: &str = "nmFmQEsNgz6AVpgLVUJ0";

/// Generous bound for a delivery to reach a final state.
pub const FINAL: Duration = Duration::from_secs(30);
