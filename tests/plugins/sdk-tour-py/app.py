"""sdk-tour (Python): walks the SDK calls the example plugin does not make, so a test can check
each against the real host: items over pages, a batch with a request the SDK refuses, a bulk tag
call, kv JSON and the whole config table."""

import wasmhook
from wasmhook import Fail, api, config, kv, log

API = "highlevel"


def handle(event, delivery):
    tag = config.all()["tag"]
    contacts = api.Request(API, "GET", "/contacts", query={"locationId": event.tenant})
    ids = [c["id"] for c in api.items(contacts, "/contacts", style="start-after", max_pages=3)]

    requests = [api.Request(API, "GET", f"/contacts/{i}") for i in ids]
    requests.append(api.Request(API, "POST", "/contacts/x/notes", json={"bad": object()}))
    results = api.batch(requests)
    fetched = [r.json()["contact"]["id"] for r in results if isinstance(r, api.Response)]
    errors = [type(r).__name__ for r in results if isinstance(r, api.ApiError)]

    api.bulk_tags(API, event.tenant, ids, [tag])

    kv.set_json("seen", {"ids": ids}, ttl_ms=60_000)
    if kv.get_json("seen") != {"ids": ids}:
        raise Fail("kv did not give back what was stored")
    swapped = kv.compare_and_swap("once", None, delivery.idempotency_key)

    log.info(
        "tour done",
        items=",".join(ids),
        fetched=",".join(fetched),
        errors=",".join(errors),
        swapped=swapped,
    )


WitWorld = wasmhook.export(handle)
