"""Archive and replay through boto3. Phase "setup" (env PHASE): a bus with an archive, two rules
(`a`, `b`) with API destination targets, one event. Phase "replay": StartReplay of the archive
to rule `b` only, then DescribeReplay until it is no longer RUNNING (bounded), a
CancelReplay of the finished replay, and the archive and replay lists."""

import json
import os
import time

import boto3

from steps import step

client = boto3.client("events", endpoint_url=os.environ["ENDPOINT"])
ARN = "arn:aws:events:us-east-1:000000000000:"


if os.environ["PHASE"] == "setup":
    step("bus", client.create_event_bus, Name="shop")
    step("archive", client.create_archive, ArchiveName="all-shop", EventSourceArn=ARN + "event-bus/shop",
         EventPattern=json.dumps({"source": ["shop"]}), RetentionDays=7, Description="everything")
    step("archive_again", client.create_archive, ArchiveName="all-shop", EventSourceArn=ARN + "event-bus/shop")
    for rule, url in [("a", os.environ["RECEIVER_A"]), ("b", os.environ["RECEIVER_B"])]:
        step("destination_" + rule, client.create_api_destination, Name="to-" + rule,
             ConnectionArn=ARN + "connection/open/x", InvocationEndpoint=url, HttpMethod="POST")
        step("rule_" + rule, client.put_rule, Name=rule, EventBusName="shop",
             EventPattern=json.dumps({"source": ["shop"]}))
        step("targets_" + rule, client.put_targets, Rule=rule, EventBusName="shop", Targets=[
            {"Id": "t", "Arn": ARN + "api-destination/to-%s/x" % rule}])
    step("put_events", client.put_events, Entries=[
        {"Source": "shop", "DetailType": "Order Placed", "Detail": "{}", "EventBusName": "shop"}])
else:
    now = time.time()
    step("start", client.start_replay, ReplayName="fix-b", EventSourceArn=ARN + "archive/all-shop",
         EventStartTime=now - 3600, EventEndTime=now + 60,
         Destination={"Arn": ARN + "event-bus/shop", "FilterArns": [ARN + "rule/shop/b"]})
    for _ in range(200):
        described = client.describe_replay(ReplayName="fix-b")
        if described["State"] != "RUNNING":
            break
        time.sleep(0.1)
    step("describe", client.describe_replay, ReplayName="fix-b")
    step("cancel_finished", client.cancel_replay, ReplayName="fix-b")
    step("list_replays", client.list_replays, NamePrefix="fix")
    step("describe_archive", client.describe_archive, ArchiveName="all-shop")
    step("list_archives", client.list_archives, EventSourceArn=ARN + "event-bus/shop")
