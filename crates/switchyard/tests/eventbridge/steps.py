"""What the EventBridge test scripts share: `step` runs one boto3 call and prints its outcome as
one JSON line, {"step", "result"} or {"step", "error", "message", "status"}, which the Rust
tests read; it returns the result, or None when the call failed."""

import json

from botocore.exceptions import ClientError


def step(name, call, **kwargs):
    try:
        result = call(**kwargs)
        result.pop("ResponseMetadata", None)
        print(json.dumps({"step": name, "result": result}, default=str))
        return result
    except ClientError as error:
        print(json.dumps({
            "step": name,
            "error": error.response["Error"]["Code"],
            "message": error.response["Error"].get("Message", ""),
            "status": error.response["ResponseMetadata"].get("HTTPStatusCode"),
        }))
        return None
