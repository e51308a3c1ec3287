"""Connections of each authorization type through boto3: create, describe, list, update,
deauthorize, delete (refused while an API destination uses it). One JSON line per step."""

import json
import os

import boto3

from steps import step

client = boto3.client("events", endpoint_url=os.environ["ENDPOINT"])


step("basic", client.create_connection, Name="basic", AuthorizationType="BASIC",
     AuthParameters={"BasicAuthParameters": {"Username": "u", "Password": "basic-secret-pw"}})
key = step("api_key", client.create_connection, Name="key", AuthorizationType="API_KEY",
           AuthParameters={
               "ApiKeyAuthParameters": {"ApiKeyName": "x-api-key", "ApiKeyValue": "api-secret-value"},
               "InvocationHttpParameters": {
                   "HeaderParameters": [{"Key": "x-plain", "Value": "p", "IsValueSecret": False},
                                        {"Key": "x-hidden", "Value": "hidden-secret-value", "IsValueSecret": True}],
               },
           })
step("oauth", client.create_connection, Name="oauth", AuthorizationType="OAUTH_CLIENT_CREDENTIALS",
     AuthParameters={"OAuthParameters": {
         "AuthorizationEndpoint": os.environ["TOKEN_URL"], "HttpMethod": "POST",
         "ClientParameters": {"ClientID": "client-1", "ClientSecret": "oauth-secret-value"}}})
step("oauth_get", client.create_connection, Name="oauth2", AuthorizationType="OAUTH_CLIENT_CREDENTIALS",
     AuthParameters={"OAuthParameters": {
         "AuthorizationEndpoint": os.environ["TOKEN_URL"], "HttpMethod": "GET",
         "ClientParameters": {"ClientID": "c", "ClientSecret": "s"}}})
step("again", client.create_connection, Name="basic", AuthorizationType="BASIC",
     AuthParameters={"BasicAuthParameters": {"Username": "u", "Password": "p"}})
for name in ["basic", "key", "oauth"]:
    step("describe_" + name, client.describe_connection, Name=name)
step("list", client.list_connections)
step("update", client.update_connection, Name="basic", Description="changed")
step("describe_updated", client.describe_connection, Name="basic")
step("deauthorize", client.deauthorize_connection, Name="basic")
step("describe_deauthorized", client.describe_connection, Name="basic")
step("list_deauthorized", client.list_connections, ConnectionState="DEAUTHORIZED")
step("destination", client.create_api_destination, Name="d", ConnectionArn=key["ConnectionArn"],
     InvocationEndpoint="http://127.0.0.1:9/x", HttpMethod="POST")
step("describe_destination", client.describe_api_destination, Name="d")
step("list_destinations", client.list_api_destinations)
step("delete_used", client.delete_connection, Name="key")
step("delete", client.delete_connection, Name="oauth")
step("describe_deleted", client.describe_connection, Name="oauth")
