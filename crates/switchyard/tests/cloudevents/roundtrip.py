"""CloudEvents in and out with the CloudEvents SDK (cloudevents.core, spec 1.0.2).

PHASE=send: makes CloudEvents with the SDK and publishes them to ENDPOINT's bus `ce` in
structured, batch and binary mode; prints {"step": "publish-MODE", "status", "answer"} per
request and {"step": "sent", "events": {id: normalised}}.
PHASE=parse: reads the requests switchyard delivered (REQUESTS, a JSON file of
[{"headers", "body_base64"}]), parses each with the SDK's from_http, and prints
{"step": "received", "events": [normalised, ...]}.

Normalised: the attributes as the SDK holds them (time as ISO text) and the data tagged by type,
so that Rust compares what was sent with what came back without knowing the SDK."""

import base64
import datetime
import json
import os
import urllib.request

from cloudevents.core.bindings.http import HTTPMessage, from_http, to_binary, to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

FORMAT = JSONFormat()


def normalised(event):
    attributes = {}
    for name, value in event.get_attributes().items():
        if isinstance(value, datetime.datetime):
            value = value.isoformat()
        attributes[name] = value
    data = event.get_data()
    if isinstance(data, (bytes, bytearray)):
        data = {"bytes": base64.b64encode(data).decode()}
    elif isinstance(data, str):
        data = {"text": data}
    else:
        data = {"json": data}
    return {"attributes": attributes, "data": data}


def post(headers, body):
    request = urllib.request.Request(
        os.environ["ENDPOINT"] + "/v1/buses/ce/events", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def event(id, data, **extra):
    attributes = {
        "id": id,
        "type": "com.example.order.placed",
        "source": "/shop/orders",
        "subject": "orders/" + id,
        "time": datetime.datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=datetime.timezone.utc),
        **extra,
    }
    return CloudEvent(attributes=attributes, data=data)


def send():
    json_data = {"total": 12345678901234567890, "items": ["a", "b"], "note": "caf\u00e9"}
    structured = event("s-1", json_data, datacontenttype="application/json", tenant="acme")
    text = event("s-2", "plain text, not JSON", datacontenttype="text/plain")
    batch = [
        event("b-1", {"n": 1}, datacontenttype="application/json", priority="high"),
        event("b-2", b"\x00\x01\xfe\xff", datacontenttype="application/octet-stream"),
    ]
    binary = [
        event("x-1", {"n": 2}, datacontenttype="application/json", region="eu west 1 \u20ac"),
        event("x-2", b"\x89PNG\r\n", datacontenttype="image/png"),
    ]
    sent = {}
    for name, ce in [("structured-json", structured), ("structured-text", text)]:
        message = to_structured(ce, FORMAT)
        status, answer = post(message.headers, message.body)
        print(json.dumps({"step": "publish-" + name, "status": status, "answer": answer}))
        sent[ce.get_id()] = normalised(ce)
    body = b"[" + b",".join(FORMAT.write(ce) for ce in batch) + b"]"
    status, answer = post({"content-type": "application/cloudevents-batch+json"}, body)
    print(json.dumps({"step": "publish-batch", "status": status, "answer": answer}))
    for ce in batch:
        sent[ce.get_id()] = normalised(ce)
    for index, ce in enumerate(binary):
        message = to_binary(ce, FORMAT)
        status, answer = post(message.headers, message.body)
        print(json.dumps({"step": "publish-binary-%d" % index, "status": status, "answer": answer}))
        sent[ce.get_id()] = normalised(ce)
    print(json.dumps({"step": "sent", "events": sent}))


def parse():
    with open(os.environ["REQUESTS"]) as file:
        requests = json.load(file)
    events = []
    for request in requests:
        message = HTTPMessage(
            headers=request["headers"], body=base64.b64decode(request["body_base64"])
        )
        events.append(normalised(from_http(message, FORMAT)))
    print(json.dumps({"step": "received", "events": events}))


if os.environ["PHASE"] == "send":
    send()
else:
    parse()
