"""The host's outbound API client.

    pipelines = api.get_cached("highlevel", "/opportunities/pipelines",
                               query={"locationId": location})
    api.put("highlevel", f"/opportunities/{opp_id}", json={"pipelineStageId": stage})

`get`, `post`, `put`, `patch` and `delete` send one request and return the answer's body
parsed as JSON (`None` when it is empty); `send(Request(...))` returns the whole `Response`
(status, headers, body). A request that does not end in a 2xx raises an `ApiError` subclass,
one per WIT `api-error` case. The host adds credentials, the `Version` and idempotency
headers, paces requests per tenant and retries 429, 5xx, timeouts and connection errors within
the delivery's time (unless `retry=False`), and checks every request against the manifest's
`[capabilities.api.<name>]` allow-list first.

Since WIT 0.1.1: `pages` / `items` walk list endpoints, `get_cached` reads reference data
through the host's cache, `batch` sends several requests at once and `bulk_tags` tags many
contacts in one call. HighLevel has no field selection: read only the fields you need.
"""

import json as _json

from componentize_py_types import Err, Ok
from wit_world.imports import api as _wit

from .errors import Fail, Retry

# How much of an error body goes into an error's message (and so into handler reasons).
_BODY_EXCERPT_CHARS = 200

_METHODS = {
    "GET": _wit.Method.GET,
    "POST": _wit.Method.POST,
    "PUT": _wit.Method.PUT,
    "PATCH": _wit.Method.PATCH,
    "DELETE": _wit.Method.DELETE,
}

_PAGE_STYLES = {
    "start-after": _wit.PageStyle_StartAfter,
    "page": _wit.PageStyle_Page,
    "skip": _wit.PageStyle_Skip,
    "offset": _wit.PageStyle_Offset,
    "search-page": _wit.PageStyle_SearchPage,
    "search-after": _wit.PageStyle_SearchAfter,
    "last-message-id": _wit.PageStyle_LastMessageId,
}


# ---- errors ----------------------------------------------------------------------------------


class ApiError(Exception):
    """A request that did not produce a 2xx response. `transient` says whether another attempt
    of the delivery could succeed; `handler_error()` is what an uncaught one becomes."""

    transient = False

    def handler_error(self):
        return Retry(str(self)) if self.transient else Fail(str(self))


class _HttpError(ApiError):
    """An error answer from the API: `status` and raw `body` (bytes)."""

    label = "error"

    def __init__(self, failure):
        self.status = failure.status
        self.body = bytes(failure.body)
        super().__init__(f"api {self.label} (status {self.status}){_excerpt(self.body)}")

    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        """The error body parsed as JSON (e.g. HighLevel's `message`); `None` if it is not."""
        try:
            return _json.loads(self.body)
        except ValueError:
            return None


class Denied(ApiError):
    """Outside the plugin's capabilities; nothing was sent. `rule` says which."""

    def __init__(self, rule):
        self.rule = rule
        super().__init__(f"api request denied: {rule}")


class ClientError(_HttpError):
    """400, 404, 422 and other 4xx: the request is wrong; the same request fails again."""

    label = "client error"


class AuthError(_HttpError):
    """401 after one token refresh, or 403: the installation may need re-authorisation (a human
    step); retried with the host's backoff so `max_attempts` still ends in an alert."""

    label = "authorisation failed"
    transient = True


class RateLimited(_HttpError):
    """429 after the host's waits."""

    label = "rate limited"
    transient = True


class ServerError(_HttpError):
    """5xx after the host's retries."""

    label = "server error"
    transient = True


class Timeout(ApiError):
    """No answer within the per-request timeout."""

    transient = True

    def __init__(self):
        super().__init__("api request timed out")


class TransportError(ApiError):
    """The connection failed (DNS, refused, reset, TLS)."""

    transient = True

    def __init__(self, reason):
        self.reason = reason
        super().__init__(f"api connection failed: {reason}")


class BudgetExhausted(ApiError):
    """The delivery's time ran out before the host's retry schedule finished: uncaught, it
    becomes `Retry(after_ms=retry_after_ms)`."""

    transient = True

    def __init__(self, retry_after_ms):
        self.retry_after_ms = retry_after_ms
        super().__init__(
            f"api retries need more time than the delivery has left; retry in {retry_after_ms} ms"
        )

    def handler_error(self):
        return Retry(str(self), after_ms=self.retry_after_ms)


class InvalidBody(ApiError):
    """The `json=` body could not be serialised; nothing was sent. (Detected by the SDK.)"""

    def __init__(self, reason):
        super().__init__(f"api request body is not valid JSON: {reason}")


def _excerpt(body):
    text = " ".join(bytes(body).decode("utf-8", "replace").split())
    if not text:
        return ""
    if len(text) > _BODY_EXCERPT_CHARS:
        text = text[:_BODY_EXCERPT_CHARS] + "…"
    return ": " + text


def _error(wit_error):
    """The `ApiError` for a WIT `api-error` case."""
    value = getattr(wit_error, "value", None)
    return {
        _wit.ApiError_Denied: lambda: Denied(value),
        _wit.ApiError_ClientError: lambda: ClientError(value),
        _wit.ApiError_Auth: lambda: AuthError(value),
        _wit.ApiError_RateLimited: lambda: RateLimited(value),
        _wit.ApiError_ServerError: lambda: ServerError(value),
        _wit.ApiError_Timeout: Timeout,
        _wit.ApiError_Transport: lambda: TransportError(value),
        _wit.ApiError_BudgetExhausted: lambda: BudgetExhausted(value),
    }[type(wit_error)]()


# ---- requests and responses ------------------------------------------------------------------


class Response:
    """A 2xx answer: `status`, `headers` (list of (name, value), names lower case), `body`
    (bytes)."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = bytes(body)

    @classmethod
    def _from_wit(cls, r):
        return cls(r.status, list(r.headers), r.body)

    def header(self, name):
        """The first value of header `name` (any case), or `None`."""
        name = name.lower()
        return next((v for n, v in self.headers if n == name), None)

    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        """The body parsed as JSON; `None` when empty. A body that is not JSON raises `Fail`."""
        if not self.body.strip():
            return None
        try:
            return _json.loads(self.body)
        except ValueError as e:
            raise Fail(f"api response body is not JSON: {e}") from None


class Request:
    """A request to the API named `api` in the host config (`[apis.<name>]`).

    `path` is below the API's base URL (one leading `/`, no query string, no `.`/`..`);
    `query` a dict or a list of (name, value) pairs (values are turned into text, the host
    percent-encodes them); `json` any JSON-serialisable body; `headers` extra headers the host
    allows (e.g. `accept`); `retry=False` sends once, whatever happens.
    """

    __slots__ = ("api", "method", "path", "query", "json", "headers", "retry")

    def __init__(self, api, method, path, query=None, json=None, headers=None, retry=True):
        if method.upper() not in _METHODS:
            raise ValueError(f"method must be one of {sorted(_METHODS)}, not {method!r}")
        self.api = api
        self.method = method.upper()
        self.path = path
        self.query = query
        self.json = json
        self.headers = headers
        self.retry = retry

    def _to_wit(self):
        body = None
        if self.json is not None:
            try:
                body = _json.dumps(self.json, separators=(",", ":"), allow_nan=False)
            except (TypeError, ValueError) as e:
                raise InvalidBody(str(e)) from None
        return _wit.Request(
            api=self.api,
            method=_METHODS[self.method],
            path=self.path,
            query=_pairs(self.query),
            body=body,
            retry=None if self.retry else _wit.RetryMode.NEVER,
            headers=_pairs(self.headers),
        )

    def __repr__(self):
        return f"Request({self.api!r}, {self.method!r}, {self.path!r})"


def _pairs(mapping):
    if not mapping:
        return []
    items = mapping.items() if isinstance(mapping, dict) else mapping
    return [(str(k), _text(v)) for k, v in items]


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def send(request):
    """Sends `request` through the host (with its retries) and returns the `Response`; raises
    an `ApiError` subclass otherwise."""
    try:
        return Response._from_wit(_wit.send(request._to_wit()))
    except Err as e:
        raise _error(e.value) from None


def get(api, path, query=None, headers=None, retry=True):
    """`GET path`; the answer parsed as JSON."""
    return send(Request(api, "GET", path, query, None, headers, retry)).json()


def post(api, path, json=None, query=None, headers=None, retry=True):
    """`POST path` with a JSON body; the answer parsed as JSON."""
    return send(Request(api, "POST", path, query, json, headers, retry)).json()


def put(api, path, json=None, query=None, headers=None, retry=True):
    """`PUT path` with a JSON body; the answer parsed as JSON."""
    return send(Request(api, "PUT", path, query, json, headers, retry)).json()


def patch(api, path, json=None, query=None, headers=None, retry=True):
    """`PATCH path` with a JSON body; the answer parsed as JSON."""
    return send(Request(api, "PATCH", path, query, json, headers, retry)).json()


def delete(api, path, query=None, headers=None, retry=True):
    """`DELETE path`; the answer parsed as JSON."""
    return send(Request(api, "DELETE", path, query, None, headers, retry)).json()


# ---- budget savers (WIT 0.1.1) -----------------------------------------------------------------


def get_cached(api, path, query=None, headers=None):
    """A GET through the host's reference-data cache: a fresh answer to the same request for
    the same tenant comes back without an API call; otherwise it is sent and kept for the host's
    TTL. For data that changes rarely: pipelines, calendars, custom fields, users. Counts as one
    call against `max_api_calls` even when the cache answers. Returns the parsed JSON."""
    request = Request(api, "GET", path, query, None, headers)
    try:
        return Response._from_wit(_wit.get_cached(request._to_wit())).json()
    except Err as e:
        raise _error(e.value) from None


class Cursor:
    """The `cursor` page style: the query parameter `param` is set from the answer's `field`
    (top level, in `meta`, or at a JSON pointer when it starts with `/`)."""

    __slots__ = ("param", "field")

    def __init__(self, param, field):
        self.param = param
        self.field = field


def _page_style(style):
    if isinstance(style, Cursor):
        return _wit.PageStyle_Cursor(_wit.CursorStyle(style.param, style.field))
    if style not in _PAGE_STYLES:
        raise ValueError(f"page style must be a Cursor or one of {sorted(_PAGE_STYLES)}, not {style!r}")
    return _PAGE_STYLES[style]()


def pages(request, style="start-after", max_pages=10):
    """Yields the `Response` of each page of `request`, fetching at most `max_pages` (the host
    may lower it). `style` is one of `start-after`, `page`, `skip`, `offset`, `search-page`,
    `search-after`, `last-message-id`, or a `Cursor`. Each page is one API call; the first
    failing page raises its `ApiError` and ends the walk."""
    walk = _wit.Pages(request._to_wit(), _page_style(style), max_pages)
    with walk:
        while True:
            page = walk.next()
            if page is None:
                return
            if isinstance(page, Err):
                raise _error(page.value)
            yield Response._from_wit(page.value)


def items(request, pointer, style="start-after", max_pages=10):
    """Yields the items of every page: the array at JSON pointer `pointer` (e.g. `/contacts`)
    of each page body. A page without an array there raises `Fail`."""
    for page in pages(request, style, max_pages):
        found = _at_pointer(page.json(), pointer)
        if not isinstance(found, list):
            raise Fail(f"the page has no item array at `{pointer}`")
        yield from found


def _at_pointer(doc, pointer):
    """The value at JSON pointer `pointer` (RFC 6901) in `doc`, or `None`."""
    if pointer == "":
        return doc
    if not pointer.startswith("/"):
        raise ValueError(f"a JSON pointer starts with `/`: {pointer!r}")
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(doc, dict):
            doc = doc.get(token)
        elif isinstance(doc, list) and token.isdigit() and int(token) < len(doc):
            doc = doc[int(token)]
        else:
            return None
    return doc


def batch(requests):
    """Sends several requests at once under the tenant's pacing and returns, in order, a
    `Response` or an `ApiError` (returned, not raised) per request. Each counts against
    `max_api_calls`; a request whose body cannot be serialised is reported in its place."""
    results = []
    sendable = []
    for request in requests:
        try:
            sendable.append(request._to_wit())
            results.append(None)
        except InvalidBody as e:
            results.append(e)
    answers = iter(_wit.send_batch(sendable) if sendable else [])
    out = []
    for local in results:
        if local is not None:
            out.append(local)
            continue
        answer = next(answers, None)
        if answer is None:
            out.append(TransportError("the host returned too few results"))
        elif isinstance(answer, Ok):
            out.append(Response._from_wit(answer.value))
        else:
            out.append(_error(answer.value))
    return out


def bulk_tags(api, location_id, contacts, tags, action="add"):
    """One `POST /contacts/bulk/tags/update/{add|remove}` that adds or removes `tags` on all
    `contacts` of `location_id` (the event's tenant): one call instead of one per contact. The
    manifest must allow `POST /contacts/bulk/tags/update/*`. Returns the parsed answer."""
    if action not in ("add", "remove"):
        raise ValueError(f"action must be 'add' or 'remove', not {action!r}")
    body = {"locationId": location_id, "ids": list(contacts), "tags": list(tags)}
    return post(api, f"/contacts/bulk/tags/update/{action}", json=body)
