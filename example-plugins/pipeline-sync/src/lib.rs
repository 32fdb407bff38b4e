//! pipeline-sync: keeps the contacts an opportunity owner handles tagged with the stage of the
//! owner's latest deal, the way a HighLevel integration keeps segments in sync with pipelines.
//!
//! Per event it makes at most `2 + max_pages` API calls, whatever the number of contacts:
//! 1. the location's pipelines through the host's cache (reference data: a burst of
//!    opportunity events reads them once; the host drops the cached copy when a pipeline
//!    webhook arrives);
//! 2. `POST /contacts/search` with a filter on the owner, page by page (HighLevel has no field
//!    selection, so the structs below read only `id`);
//! 3. one bulk call that tags every matching contact.
//!
//! Redelivery is harmless: adding a tag a contact already has changes nothing, and the host
//! sends the delivery's idempotency key with each call.

use serde::Deserialize;
use serde_json::json;
use wasmhook_sdk::{
    Delivery, Event, Handler, HandlerError, api, config, debug, highlevel::Opportunity, info,
};

/// The API name in the host config.
const API: &str = "highlevel";
/// Contacts per search page (HighLevel's `pageLimit`).
const PAGE_LIMIT: u32 = 100;

#[derive(Deserialize)]
struct Pipelines {
    pipelines: Vec<Pipeline>,
}

#[derive(Deserialize)]
struct Pipeline {
    id: String,
    stages: Vec<Stage>,
}

#[derive(Deserialize)]
struct Stage {
    id: String,
    name: String,
}

#[derive(Deserialize)]
struct Contact {
    id: String,
}

struct PipelineSync;

impl Handler for PipelineSync {
    fn handle(event: Event, _delivery: Delivery) -> Result<(), HandlerError> {
        if !matches!(
            event.kind(),
            "OpportunityCreate" | "OpportunityStatusUpdate"
        ) {
            debug!("ignoring event"; "kind" => event.kind());
            return Ok(());
        }
        let opp: Opportunity = event.json()?;
        // The user who owns the deal; events without an owner have nobody's contacts to tag.
        let owner = opp.assigned_to.as_str();
        if owner.is_empty() {
            debug!("opportunity has no owner; nothing to tag");
            return Ok(());
        }

        // 1. Name the stage. Pipelines change rarely: read them through the cache.
        let pipelines: Pipelines = api::get_cached(
            api::get(API, "/opportunities/pipelines").query("locationId", &opp.location_id),
        )?
        .json()?;
        let stage = pipelines
            .pipelines
            .iter()
            .filter(|p| p.id == opp.pipeline_id)
            .flat_map(|p| &p.stages)
            .find(|s| s.id == opp.pipeline_stage_id)
            .ok_or_else(|| HandlerError::fail("the opportunity's stage is not in its pipeline"))?;

        // 2. Search the owner's contacts with a filter instead of walking every contact.
        let search = api::post(API, "/contacts/search").json(&json!({
            "locationId": opp.location_id,
            "pageLimit": PAGE_LIMIT,
            "filters": [{ "field": "assignedTo", "operator": "eq", "value": owner }],
        }));
        let max_pages = match config::get("max_pages") {
            Some(text) => text
                .parse::<u32>()
                .map_err(|_| HandlerError::fail("config `max_pages` must be a whole number"))?,
            None => 5,
        };
        let ids = api::pages(search, api::PageStyle::SearchPage, max_pages)?
            .items::<Contact>("/contacts")
            .map(|c| c.map(|c| c.id))
            .collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            info!("no contacts to tag"; "owner" => owner);
            return Ok(());
        }

        // 3. One bulk call for all of them.
        let prefix = config::get("tag_prefix").unwrap_or_else(|| "stage:".into());
        let tag = format!("{prefix}{}", stage.name);
        api::bulk_tags(
            API,
            &opp.location_id,
            &ids,
            &[tag.as_str()],
            api::TagAction::Add,
        )
        .send()?;
        info!("tagged contacts"; "count" => ids.len(), "tag" => tag);
        Ok(())
    }
}

wasmhook_sdk::export!(PipelineSync);
