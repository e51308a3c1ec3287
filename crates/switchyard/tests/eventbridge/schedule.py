"""Scheduled rules through boto3. Phase "setup" (env PHASE): an API destination to $RECEIVER, a
rule `every-minute` on the default bus with ScheduleExpression rate(1 minute) and two targets
(`one` gets the event, `two` an Input constant), and a DISABLED scheduled rule `off` with a
target of its own. Phase "swap": DisableRule of `every-minute` (then DescribeRule) and
EnableRule of `off`."""

import os

import boto3

from steps import step

client = boto3.client("events", endpoint_url=os.environ["ENDPOINT"])
ARN = "arn:aws:events:us-east-1:000000000000:"

if os.environ["PHASE"] == "setup":
    step("destination", client.create_api_destination, Name="jobs",
         ConnectionArn=ARN + "connection/open/x", InvocationEndpoint=os.environ["RECEIVER"] + "/*",
         HttpMethod="POST")
    step("rule", client.put_rule, Name="every-minute", ScheduleExpression="rate(1 minute)",
         Description="starts the nightly job, every scaled minute")
    step("targets", client.put_targets, Rule="every-minute", Targets=[
        {"Id": "one", "Arn": ARN + "api-destination/jobs/x",
         "HttpParameters": {"PathParameterValues": ["one"]}},
        {"Id": "two", "Arn": ARN + "api-destination/jobs/x", "Input": '{"job": "two"}',
         "HttpParameters": {"PathParameterValues": ["two"]}},
    ])
    step("off", client.put_rule, Name="off", ScheduleExpression="rate(1 minute)", State="DISABLED")
    step("off_targets", client.put_targets, Rule="off", Targets=[
        {"Id": "t", "Arn": ARN + "api-destination/jobs/x",
         "HttpParameters": {"PathParameterValues": ["off"]}}])
    step("describe", client.describe_rule, Name="every-minute")
    step("bad_cron", client.put_rule, Name="bad", ScheduleExpression="cron(0 12 * * * *)")
else:
    step("disable", client.disable_rule, Name="every-minute")
    step("describe", client.describe_rule, Name="every-minute")
    step("enable", client.enable_rule, Name="off")
