"""The plumbing of the EventBridge tests: boto3 calls ListEventBuses on the server at $ENDPOINT
and prints one JSON line with boto3's and botocore's versions and either the result or the
error code the server answered with. A failure to reach the server is not caught: the script
exits non-zero with its traceback, and the test shows it."""

import json
import os

import boto3
import botocore
from botocore.exceptions import ClientError

line = {"boto3": boto3.__version__, "botocore": botocore.__version__}
client = boto3.client("events", endpoint_url=os.environ["ENDPOINT"])
try:
    response = client.list_event_buses()
    response.pop("ResponseMetadata", None)
    line["result"] = response
except ClientError as error:
    line["error"] = error.response["Error"]["Code"]
    line["status"] = error.response["ResponseMetadata"].get("HTTPStatusCode")
print(json.dumps(line, default=str))
