"""sms-router: moves a contact's deal to a pipeline stage chosen by the keyword they text in.

A lead texts "DEMO please" to the location's number; HighLevel sends an InboundMessage webhook;
this handler maps the first word of the SMS to a stage through the manifest's
`[config.keywords]` table and puts the contact's open opportunity in that pipeline there, or
creates one when the contact has none. Per message it makes at most three API calls:

1. the location's pipelines through the host's cache (reference data: a burst of messages reads
   them once);
2. `GET /opportunities/search` filtered by contact, pipeline and status (no fetch-everything);
3. one `PUT /opportunities/{id}` (skipped when the deal is already in that stage) or one
   `POST /opportunities`.

Redelivery is harmless: the search finds the deal an earlier attempt created or moved, and the
host sends the delivery's idempotency key with each call.
"""

import wasmhook
from wasmhook import Fail, api, config, highlevel, log

API = "highlevel"


def keyword_of(text):
    """The first word of `text`, upper case, without surrounding punctuation ("Demo!" -> DEMO)."""
    words = (text or "").split()
    return words[0].strip(".,!?;:'\"()").upper() if words else ""


def find_stage(pipelines, pipeline_name, stage_name):
    """(pipeline id, stage id) for the names in the config; `Fail` naming what is missing."""
    for pipeline in pipelines.get("pipelines", []):
        if pipeline.get("name") == pipeline_name:
            for stage in pipeline.get("stages", []):
                if stage.get("name") == stage_name:
                    return pipeline["id"], stage["id"]
            raise Fail(f"config: pipeline `{pipeline_name}` has no stage `{stage_name}`")
    raise Fail(f"config: the location has no pipeline `{pipeline_name}`")


def handle(event, delivery):
    if event.kind != "InboundMessage":
        return
    msg = highlevel.InboundMessage.from_event(event)
    if msg.message_type != "SMS" or msg.direction != "inbound" or not msg.contact_id:
        log.debug("not an inbound SMS from a contact", type=msg.message_type)
        return

    keyword = keyword_of(msg.body)
    routes = {k.upper(): v for k, v in config.all().get("keywords", {}).items()}
    stage_name = routes.get(keyword)
    if stage_name is None:
        log.debug("no route for this message", keyword=keyword)
        return

    location = event.tenant
    pipeline_name = config.require("pipeline")
    pipelines = api.get_cached(API, "/opportunities/pipelines", query={"locationId": location})
    pipeline_id, stage_id = find_stage(pipelines, pipeline_name, stage_name)

    found = api.get(
        API,
        "/opportunities/search",
        query={
            "location_id": location,
            "contact_id": msg.contact_id,
            "pipeline_id": pipeline_id,
            "status": "open",
        },
    )
    deals = (found or {}).get("opportunities", [])
    if deals:
        deal = deals[0]
        if deal.get("pipelineStageId") == stage_id:
            log.info("deal already in stage", opportunity=deal["id"], stage=stage_name)
            return
        api.put(API, f"/opportunities/{deal['id']}", json={"pipelineStageId": stage_id})
        log.info("moved deal", opportunity=deal["id"], stage=stage_name, keyword=keyword)
    else:
        created = api.post(
            API,
            "/opportunities",
            json={
                "locationId": location,
                "pipelineId": pipeline_id,
                "pipelineStageId": stage_id,
                "contactId": msg.contact_id,
                "name": f"{keyword.title()} (SMS)",
                "status": "open",
            },
        )
        opportunity = ((created or {}).get("opportunity") or {}).get("id", "")
        log.info("created deal", opportunity=opportunity, stage=stage_name, keyword=keyword)


WitWorld = wasmhook.export(handle)
