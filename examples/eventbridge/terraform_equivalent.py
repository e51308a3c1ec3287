"""The EventBridge setup of the AWS provider for Terraform's documentation, as boto3 calls: a bus,
a connection with invocation parameters, an API destination with a path parameter, one rule per
event type, and a target per rule that fills the path parameter from the event. Then one event
of each type. Run it against switchyard with --endpoint-url; it is idempotent (it removes what it
made first) and exits non-zero on any failure. $ENDPOINT and $RECEIVER stand in for the flags.

    python3 terraform_equivalent.py --endpoint-url http://127.0.0.1:8700 \
        --receiver-url http://127.0.0.1:9000
"""

import argparse
import json
import os

import boto3
from botocore.exceptions import ClientError

BUS = "orders"
CONNECTION = "crm"
DESTINATION = "crm-orders"
EVENT_TYPES = ["Order Placed", "Order Shipped", "Order Cancelled"]


def rule_name(event_type):
    return event_type.lower().replace(" ", "-")


def ignore_missing(call, **kwargs):
    try:
        call(**kwargs)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint-url", default=os.environ.get("ENDPOINT"))
    parser.add_argument("--receiver-url", default=os.environ.get("RECEIVER"))
    args = parser.parse_args()
    if not args.endpoint_url or not args.receiver_url:
        parser.error("give --endpoint-url and --receiver-url (or $ENDPOINT and $RECEIVER)")
    events = boto3.client("events", endpoint_url=args.endpoint_url)

    # Start clean: what an earlier run made goes first, targets before rules.
    for event_type in EVENT_TYPES:
        name = rule_name(event_type)
        try:
            events.remove_targets(Rule=name, EventBusName=BUS, Ids=["crm"])
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
        ignore_missing(events.delete_rule, Name=name, EventBusName=BUS)
    ignore_missing(events.delete_api_destination, Name=DESTINATION)
    ignore_missing(events.delete_connection, Name=CONNECTION)
    ignore_missing(events.delete_event_bus, Name=BUS)

    # aws_cloudwatch_event_bus
    events.create_event_bus(Name=BUS)
    # aws_cloudwatch_event_connection, with invocation_http_parameters
    connection = events.create_connection(
        Name=CONNECTION,
        AuthorizationType="API_KEY",
        AuthParameters={
            "ApiKeyAuthParameters": {"ApiKeyName": "x-api-key", "ApiKeyValue": "example-key"},
            "InvocationHttpParameters": {
                "HeaderParameters": [{"Key": "x-source", "Value": "eventbridge", "IsValueSecret": False}],
                "QueryStringParameters": [{"Key": "tenant", "Value": "acme", "IsValueSecret": False}],
                "BodyParameters": [{"Key": "origin", "Value": "eventbridge", "IsValueSecret": False}],
            },
        },
    )
    # aws_cloudwatch_event_api_destination
    destination = events.create_api_destination(
        Name=DESTINATION,
        ConnectionArn=connection["ConnectionArn"],
        InvocationEndpoint=args.receiver_url + "/orders/*",
        HttpMethod="POST",
        InvocationRateLimitPerSecond=20,
    )
    for event_type in EVENT_TYPES:
        name = rule_name(event_type)
        # aws_cloudwatch_event_rule, one per event type
        events.put_rule(
            Name=name,
            EventBusName=BUS,
            EventPattern=json.dumps({"source": ["shop"], "detail-type": [event_type]}),
        )
        # aws_cloudwatch_event_target, with http_target.path_parameter_values
        result = events.put_targets(
            Rule=name,
            EventBusName=BUS,
            Targets=[{
                "Id": "crm",
                "Arn": destination["ApiDestinationArn"],
                "HttpParameters": {"PathParameterValues": ["$.detail.order_id"]},
                "RetryPolicy": {"MaximumRetryAttempts": 10, "MaximumEventAgeInSeconds": 3600},
            }],
        )
        if result["FailedEntryCount"]:
            raise SystemExit("put_targets failed: %s" % result["FailedEntries"])

    sent = events.put_events(Entries=[
        {"Source": "shop", "DetailType": event_type, "EventBusName": BUS,
         "Detail": json.dumps({"order_id": "o-%d" % index})}
        for index, event_type in enumerate(EVENT_TYPES)
    ])
    if sent["FailedEntryCount"]:
        raise SystemExit("put_events failed: %s" % sent["Entries"])
    print(json.dumps({"rules": [rule_name(t) for t in EVENT_TYPES],
                      "events": [e["EventId"] for e in sent["Entries"]]}))


if __name__ == "__main__":
    main()
