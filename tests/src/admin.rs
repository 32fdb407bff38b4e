//! `Admin`: the admin API of a running server (in-process or child), as an operator's tools
//! see it: list and show deliveries, wait for one to finish, read `/metrics`.

use std::{net::SocketAddr, time::Duration};

use wasmhook::store::{DeliveryRecord, DeliveryState};

use crate::ADMIN_TOKEN;

/// A client for one server's admin listener, using [`ADMIN_TOKEN`].
#[derive(Clone)]
pub struct Admin {
    pub addr: SocketAddr,
    client: reqwest::Client,
}

impl Admin {
    /// The admin API at `addr`.
    pub fn new(addr: SocketAddr) -> Admin {
        Admin {
            addr,
            client: reqwest::Client::new(),
        }
    }

    /// `http://<admin addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Deliveries matching the admin API query string (e.g. `event_id=...&plugin=...`).
    pub async fn deliveries(&self, query: &str) -> Vec<DeliveryRecord> {
        self.get_json(&format!("/admin/deliveries?{query}")).await
    }

    /// One delivery with its attempts.
    pub async fn delivery(&self, id: &str) -> DeliveryRecord {
        self.get_json(&format!("/admin/deliveries/{id}")).await
    }

    /// The live summary `wasmhook status` prints (`GET /admin/status`).
    pub async fn status(&self) -> serde_json::Value {
        self.get_json("/admin/status").await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "admin GET {path} failed");
        response.json().await.unwrap()
    }

    /// Waits until the delivery of `event_id` to `plugin` reaches a final state (succeeded or
    /// dead) and returns it with its attempts. Panics after `timeout`.
    pub async fn wait_final(
        &self,
        event_id: &str,
        plugin: &str,
        timeout: Duration,
    ) -> DeliveryRecord {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let list = self
                .deliveries(&format!("event_id={event_id}&plugin={plugin}"))
                .await;
            if let Some(d) = list.first()
                && matches!(d.state, DeliveryState::Succeeded | DeliveryState::Dead)
            {
                return self.delivery(d.id.as_str()).await;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "delivery of {event_id} to {plugin} not final after {timeout:?}: {list:#?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}
