"""Google's Pub/Sub client (google-cloud-pubsub) against switchyard's Pub/Sub API, reached
through PUBSUB_EMULATOR_HOST as the emulator would be. Prints one JSON line per step,
{"step", ...}, which the Rust test asserts on. PHASE picks what runs:

- publish: topic `orders`, subscriptions `work` (pull), `ordered` (pull, message ordering),
  `filtered` (pull, a filter) and `pushed` (push to RECEIVER with an OIDC token); 1,000 messages with attributes, published
  with the batching publisher; three with ordering key `k`.
- receive: every message of `work` through the streaming-pull subscriber, acked; then no
  message comes again.
- redeliver: one message pulled (unary Pull), its deadline set to 1 s, pulled again.
- order: `ordered` hands out `k`'s messages in order, the first again after a nack.
- filtered: `filtered` (a Pub/Sub filter) has only the keyed messages.
- deadletter: a message given back 5 times on `fragile` (max_delivery_attempts 5) reaches its
  dead-letter topic `dead` with Pub/Sub's attributes.
- seek: on topic `seekable` (a bus with an archive), messages acked, then Seek to a time
  before them delivers them again; Seek on a bus without an archive is refused.
- errors: what the API refuses, with its status code.
- auth: against a server with API tokens (READER, ADMIN): no token, a read token, an admin one.
- hold: a streaming subscriber that holds its messages (flow control full) while the server
  is told to stop.
- tls: over TLS (the CA in CA, the server at TLS_HOST), with the ADMIN token.
"""

import datetime
import json
import os
import threading
import time

from google.api_core import exceptions
from google.cloud import pubsub_v1
from google.pubsub_v1.types import PushConfig

PROJECT = "test-project"
TOPIC = f"projects/{PROJECT}/topics/orders"
COUNT = 1000


def sub(name):
    return f"projects/{PROJECT}/subscriptions/{name}"


def out(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def publish():
    publisher = pubsub_v1.PublisherClient(
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    )
    subscriber = pubsub_v1.SubscriberClient()
    out("create_topic", name=publisher.create_topic(name=TOPIC).name)
    work = subscriber.create_subscription(name=sub("work"), topic=TOPIC, ack_deadline_seconds=30)
    out("create_work", name=work.name, topic=work.topic, ack=work.ack_deadline_seconds)
    subscriber.create_subscription(
        request={"name": sub("ordered"), "topic": TOPIC, "enable_message_ordering": True}
    )
    keyed = subscriber.create_subscription(
        request={"name": sub("filtered"), "topic": TOPIC,
                 "filter": 'attributes.kind = "keyed" AND NOT attributes:index'}
    )
    out("create_filtered", filter=keyed.filter)
    push = PushConfig(
        push_endpoint=os.environ["RECEIVER"],
        oidc_token=PushConfig.OidcToken(
            service_account_email="pusher@test-project.iam.gserviceaccount.com",
            audience="https://worker.example.com",
        ),
    )
    subscriber.create_subscription(
        request={"name": sub("pushed"), "topic": TOPIC, "push_config": push}
    )
    got = subscriber.get_subscription(subscription=sub("pushed"))
    out("get_pushed", endpoint=got.push_config.push_endpoint,
        audience=got.push_config.oidc_token.audience,
        email=got.push_config.oidc_token.service_account_email)
    futures = [
        publisher.publish(TOPIC, f"message {i}".encode(), index=str(i), kind="bulk")
        for i in range(COUNT)
    ]
    ids = [f.result(timeout=60) for f in futures]
    ordered = [
        publisher.publish(TOPIC, f"k{i}".encode(), ordering_key="k", kind="keyed").result(timeout=60)
        for i in range(3)
    ]
    out("published", count=len(set(ids)), keyed=len(ordered))
    topics = [t.name for t in publisher.list_topics(request={"project": f"projects/{PROJECT}"})]
    subs = sorted(publisher.list_topic_subscriptions(request={"topic": TOPIC}))
    out("lists", topics=topics, subscriptions=subs)


def receive():
    subscriber = pubsub_v1.SubscriberClient()
    seen = {}
    lock = threading.Lock()
    done = threading.Event()

    def callback(message):
        with lock:
            index = message.attributes.get("index", message.data.decode())
            seen[index] = seen.get(index, 0) + 1
            if sum(1 for k in seen if k.isdigit()) >= COUNT:
                done.set()
        message.ack()

    flow = pubsub_v1.types.FlowControl(max_messages=100)
    future = subscriber.subscribe(sub("work"), callback=callback, flow_control=flow)
    done.wait(timeout=120)
    # Long enough for a message not acked (or acked late) to come again: none must.
    time.sleep(3)
    future.cancel()
    try:
        future.result(timeout=10)
    except Exception:  # the cancellation itself
        pass
    bulk = {k: v for k, v in seen.items() if k.isdigit()}
    out("received", distinct=len(bulk), repeated=sum(1 for v in bulk.values() if v > 1),
        others=sorted(k for k in seen if not k.isdigit()))


def redeliver():
    subscriber = pubsub_v1.SubscriberClient()
    publisher = pubsub_v1.PublisherClient()
    subscriber.create_subscription(name=sub("redeliver"), topic=TOPIC)
    publisher.publish(TOPIC, b"slow", index="slow").result(timeout=30)
    first = subscriber.pull(subscription=sub("redeliver"), max_messages=1, timeout=30)
    message = first.received_messages[0]
    subscriber.modify_ack_deadline(
        subscription=sub("redeliver"), ack_ids=[message.ack_id], ack_deadline_seconds=1
    )
    again = None
    for _ in range(30):
        response = subscriber.pull(subscription=sub("redeliver"), max_messages=1, timeout=30)
        if response.received_messages:
            again = response.received_messages[0]
            break
        time.sleep(0.2)
    subscriber.acknowledge(subscription=sub("redeliver"), ack_ids=[again.ack_id])
    out("redelivered", first=message.message.data.decode(), again=again.message.data.decode(),
        attempt=again.delivery_attempt, same_id=message.message.message_id == again.message.message_id)


def order():
    subscriber = pubsub_v1.SubscriberClient()

    def pull_keyed():
        response = subscriber.pull(subscription=sub("ordered"), max_messages=100, timeout=30)
        keyed = [m for m in response.received_messages if m.message.ordering_key == "k"]
        others = [m.ack_id for m in response.received_messages if m.message.ordering_key != "k"]
        if others:
            subscriber.acknowledge(subscription=sub("ordered"), ack_ids=others)
        return keyed

    seen = []
    first = []
    for _ in range(40):
        first = pull_keyed()
        if first:
            break
    seen.append([m.message.data.decode() for m in first])
    subscriber.modify_ack_deadline(
        subscription=sub("ordered"), ack_ids=[first[0].ack_id], ack_deadline_seconds=0
    )
    again = pull_keyed()
    seen.append([m.message.data.decode() for m in again])
    for _ in range(3):
        subscriber.acknowledge(subscription=sub("ordered"), ack_ids=[again[0].ack_id])
        again = []
        for _ in range(20):
            again = pull_keyed()
            if again:
                break
        if not again:
            break
        seen.append([m.message.data.decode() for m in again])
    out("ordered", seen=seen)


def filtered():
    subscriber = pubsub_v1.SubscriberClient()
    got = []
    for _ in range(10):
        response = subscriber.pull(subscription=sub("filtered"), max_messages=100, timeout=30)
        if not response.received_messages:
            break
        got.extend(m.message.data.decode() for m in response.received_messages)
        subscriber.acknowledge(subscription=sub("filtered"),
                               ack_ids=[m.ack_id for m in response.received_messages])
    out("filtered", data=sorted(got))


def seek():
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic = f"projects/{PROJECT}/topics/seekable"
    subscriber.create_subscription(name=sub("seeker"), topic=topic)
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
    for i in range(3):
        publisher.publish(topic, f"s{i}".encode()).result(timeout=30)

    def drain(want):
        got = []
        for _ in range(30):
            response = subscriber.pull(subscription=sub("seeker"), max_messages=10, timeout=30)
            if response.received_messages:
                got.extend(m.message.data.decode() for m in response.received_messages)
                subscriber.acknowledge(subscription=sub("seeker"),
                                       ack_ids=[m.ack_id for m in response.received_messages])
            if len(got) >= want:
                break
        return sorted(got)

    first = drain(3)
    subscriber.seek(request={"subscription": sub("seeker"), "time": start})
    again = drain(3)
    no_archive = None
    try:
        subscriber.seek(request={"subscription": sub("work"), "time": start})
    except exceptions.GoogleAPICallError as error:
        no_archive = error.grpc_status_code.name
    out("seek", first=first, again=again, no_archive=no_archive)


def deadletter():
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    source = f"projects/{PROJECT}/topics/fragile"
    dead = f"projects/{PROJECT}/topics/dead"
    publisher.create_topic(name=source)
    publisher.create_topic(name=dead)
    subscriber.create_subscription(name=sub("dead-reader"), topic=dead)
    made = subscriber.create_subscription(request={
        "name": sub("fragile"), "topic": source,
        "dead_letter_policy": {"dead_letter_topic": dead, "max_delivery_attempts": 5},
    })
    publisher.publish(source, b"poison", kind="poison").result(timeout=30)
    attempts = []
    for _ in range(40):
        response = subscriber.pull(subscription=sub("fragile"), max_messages=1, timeout=30)
        if not response.received_messages:
            if len(attempts) >= 5:
                break
            continue
        message = response.received_messages[0]
        attempts.append(message.delivery_attempt)
        subscriber.modify_ack_deadline(subscription=sub("fragile"), ack_ids=[message.ack_id],
                                       ack_deadline_seconds=0)
    dead_letter = None
    for _ in range(30):
        response = subscriber.pull(subscription=sub("dead-reader"), max_messages=1, timeout=30)
        if response.received_messages:
            dead_letter = response.received_messages[0]
            subscriber.acknowledge(subscription=sub("dead-reader"), ack_ids=[dead_letter.ack_id])
            break
    out("deadletter", attempts=attempts,
        policy_topic=made.dead_letter_policy.dead_letter_topic,
        policy_attempts=made.dead_letter_policy.max_delivery_attempts,
        data=dead_letter.message.data.decode() if dead_letter else None,
        attributes=dict(dead_letter.message.attributes) if dead_letter else None)


def auth():
    publisher = pubsub_v1.PublisherClient()
    project = {"project": f"projects/{PROJECT}"}
    bearer = lambda token: [("authorization", "Bearer " + token)]
    cases = {
        "none": lambda: publisher.list_topics(request=project),
        "reader_lists": lambda: list(publisher.list_topics(request=project,
                                                           metadata=bearer(os.environ["READER"]))),
        "reader_creates": lambda: publisher.create_topic(name=TOPIC,
                                                         metadata=bearer(os.environ["READER"])),
        "admin_creates": lambda: publisher.create_topic(name=TOPIC,
                                                        metadata=bearer(os.environ["ADMIN"])),
    }
    for name, call in cases.items():
        try:
            call()
            out("auth_" + name, code="OK")
        except exceptions.GoogleAPICallError as error:
            out("auth_" + name, code=error.grpc_status_code.name, message=error.message)


def tls():
    import grpc
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

    with open(os.environ["CA"], "rb") as file:
        credentials = grpc.ssl_channel_credentials(root_certificates=file.read())
    channel = grpc.secure_channel(os.environ["TLS_HOST"], credentials)
    publisher = pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=channel))
    bearer = [("authorization", "Bearer " + os.environ["ADMIN"])]
    topic = publisher.create_topic(name=TOPIC, metadata=bearer)
    listed = [t.name for t in publisher.list_topics(request={"project": f"projects/{PROJECT}"},
                                                    metadata=bearer)]
    out("tls", topic=topic.name, listed=listed)


def hold():
    """Holds every message it gets, never acking, until the server goes away."""
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    publisher.create_topic(name=TOPIC)
    # A long deadline: a stream that waited for its leases to end would hold shutdown for it.
    subscriber.create_subscription(name=sub("held"), topic=TOPIC, ack_deadline_seconds=600)
    for i in range(5):
        publisher.publish(TOPIC, f"h{i}".encode()).result(timeout=30)
    got = threading.Event()
    flow = pubsub_v1.types.FlowControl(max_messages=2)
    future = subscriber.subscribe(sub("held"), callback=lambda m: got.set(), flow_control=flow)
    out("holding", got=got.wait(timeout=30))
    try:
        future.result(timeout=60)
    except Exception as error:  # the server went away, as the test wants
        out("ended", error=type(error).__name__)


def errors():
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    cases = {
        "topic_exists": lambda: publisher.create_topic(name=TOPIC),
        "no_topic": lambda: publisher.get_topic(topic=f"projects/{PROJECT}/topics/missing"),
        "bad_name": lambda: publisher.create_topic(name="topics/nope"),
        "no_subscription": lambda: subscriber.get_subscription(subscription=sub("missing")),
        "bad_deadline": lambda: subscriber.create_subscription(
            name=sub("bad"), topic=TOPIC, ack_deadline_seconds=5),
        "no_messages": lambda: subscriber.pull(subscription=sub("work"), max_messages=0),
        "no_ack_ids": lambda: subscriber.acknowledge(subscription=sub("work"), ack_ids=[]),
        "bad_ack_id": lambda: subscriber.acknowledge(subscription=sub("work"), ack_ids=["nope"]),
        "bad_filter": lambda: subscriber.create_subscription(
            request={"name": sub("badfilter"), "topic": TOPIC, "filter": 'attributes.kind = x'}),
    }
    for name, call in cases.items():
        try:
            call()
            out("error_" + name, code="OK")
        except exceptions.GoogleAPICallError as error:
            out("error_" + name, code=error.grpc_status_code.name, message=error.message)


{"publish": publish, "receive": receive, "redeliver": redeliver, "order": order,
 "filtered": filtered, "seek": seek, "deadletter": deadletter, "auth": auth, "tls": tls, "hold": hold, "errors": errors}[os.environ["PHASE"]]()
