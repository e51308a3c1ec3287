"""DescribeRule of rule `placed` on bus `orders`, as one JSON line {"step", "result"}."""

import json
import os

import boto3

client = boto3.client("events", endpoint_url=os.environ["ENDPOINT"])
result = client.describe_rule(Name="placed", EventBusName="orders")
result.pop("ResponseMetadata", None)
print(json.dumps({"step": "describe_rule", "result": result}, default=str))
