"""A rule with targets, as an EventBridge user makes one with boto3: a bus, an API destination
with a path parameter, a rule with a pattern, a target with path, header and query parameters,
a retry policy and an input transformer, a second target of a kind switchyard cannot invoke,
then PutEvents. Prints one JSON line per step: {"step": ..., "result": ...} or
{"step": ..., "error": CODE, "status": HTTP status}.

$ENDPOINT is the server, $RECEIVER the base URL of a receiver on 127.0.0.1, $CONNECTION_ARN a
connection's ARN."""

import json
import os

import boto3

from steps import step

client = boto3.client("events", endpoint_url=os.environ["ENDPOINT"])


step("create_bus", client.create_event_bus, Name="orders", Description="shop orders")
step("create_bus_again", client.create_event_bus, Name="orders")
step("create_bus_2", client.create_event_bus, Name="orders-eu")
step("list_buses_page", client.list_event_buses, Limit=1)
step("describe_bus", client.describe_event_bus, Name="orders")
destination = step(
    "create_api_destination",
    client.create_api_destination,
    Name="crm",
    ConnectionArn=os.environ["CONNECTION_ARN"],
    InvocationEndpoint=os.environ["RECEIVER"] + "/orders/*",
    HttpMethod="POST",
    InvocationRateLimitPerSecond=50,
)
pattern = json.dumps({"source": ["shop"], "detail-type": ["Order Placed"]})
step("put_rule", client.put_rule, Name="placed", EventBusName="orders", EventPattern=pattern,
     Description="orders to the CRM", Tags=[{"Key": "team", "Value": "shop"}])
step("put_targets", client.put_targets, Rule="placed", EventBusName="orders", Targets=[
    {
        "Id": "crm",
        "Arn": destination["ApiDestinationArn"],
        "HttpParameters": {
            "PathParameterValues": ["$.detail.id"],
            "HeaderParameters": {"x-tenant": "acme"},
            "QueryStringParameters": {"src": "$.source"},
        },
        "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600},
        "InputTransformer": {
            "InputPathsMap": {"id": "$.detail.id", "total": "$.detail.total"},
            "InputTemplate": '{"order": <id>, "total": <total>, "rule": "<aws.events.rule-name>"}',
        },
    },
    {"Id": "audit", "Arn": "arn:aws:lambda:us-east-1:000000000000:function:audit"},
    {"Id": "detail", "Arn": destination["ApiDestinationArn"], "InputPath": "$.detail",
     "HttpParameters": {"PathParameterValues": ["detail-only"]}},
])
step("put_targets_bad", client.put_targets, Rule="placed", EventBusName="orders", Targets=[
    {"Id": "both", "Arn": destination["ApiDestinationArn"], "Input": "{}", "InputPath": "$.detail",
     "HttpParameters": {"PathParameterValues": ["x"]}},
])
step("describe_rule", client.describe_rule, Name="placed", EventBusName="orders")
step("list_rules", client.list_rules, EventBusName="orders", NamePrefix="pl")
step("list_targets", client.list_targets_by_rule, Rule="placed", EventBusName="orders")
step("rule_names_by_target", client.list_rule_names_by_target,
     TargetArn=destination["ApiDestinationArn"], EventBusName="orders")
step("tags", client.list_tags_for_resource,
     ResourceARN="arn:aws:events:us-east-1:000000000000:rule/orders/placed")
step("put_events", client.put_events, Entries=[
    {"Source": "shop", "DetailType": "Order Placed", "Detail": '{"id": "o-1", "total": 12.5, "big": 123456789012345678901234}',
     "EventBusName": "orders", "Resources": ["urn:order/o-1"]},
    {"Source": "shop", "DetailType": "Order Placed", "Detail": "not json", "EventBusName": "orders"},
    {"Source": "shop", "DetailType": "Order Placed", "Detail": "{}", "EventBusName": "nowhere"},
])
step("test_pattern", client.test_event_pattern, EventPattern=pattern, Event=json.dumps({
    "id": "1", "source": "shop", "detail-type": "Order Placed", "account": "000000000000",
    "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {}}))
step("describe_missing_rule", client.describe_rule, Name="nope", EventBusName="orders")
step("bad_pattern", client.put_rule, Name="bad", EventBusName="orders", EventPattern='{"source": "shop"}')
step("no_pattern", client.put_rule, Name="bad", EventBusName="orders")
step("scheduled", client.put_rule, Name="nightly", ScheduleExpression="rate(5 minutes)")
step("bad_schedule", client.put_rule, Name="nightly", ScheduleExpression="rate(5 minute)")
step("delete_rule_with_targets", client.delete_rule, Name="placed", EventBusName="orders")
step("put_permission", client.put_permission, EventBusName="orders", Action="events:PutEvents",
     Principal="123456789012", StatementId="s")
step("too_many_tags", client.tag_resource,
     ResourceARN="arn:aws:events:us-east-1:000000000000:event-bus/orders",
     Tags=[{"Key": "k%d" % i, "Value": "v"} for i in range(51)])
step("delete_default_bus", client.delete_event_bus, Name="default")
step("list_buses", client.list_event_buses)
