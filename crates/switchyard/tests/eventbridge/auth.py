"""Signed calls with the keys of $AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY (the environment
the test gives): ListEventBuses, PutRule, PutEvents to bus `default` and to `orders`. Prints one
JSON line per call: {"step", "result"} or {"step", "error", "status"}."""

import json
import os

import boto3

from steps import step

client = boto3.client("events", endpoint_url=os.environ["ENDPOINT"])


step("list_buses", client.list_event_buses)
step("put_rule", client.put_rule, Name="r", EventPattern='{"source": ["shop"]}')
step("put_events", client.put_events, Entries=[
    {"Source": "shop", "DetailType": "t", "Detail": "{}"},
    {"Source": "shop", "DetailType": "t", "Detail": "{}", "EventBusName": "orders"},
])
