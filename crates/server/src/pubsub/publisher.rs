//! `google.pubsub.v1.Publisher`: topics are buses, and a published message is an event on its
//! topic's bus (`switchyard_model::pubsub_message_event`).

use std::collections::BTreeMap;

use googleapis_tonic_google_pubsub_v1::google::pubsub::v1::{
    DeleteTopicRequest, GetTopicRequest, ListTopicSubscriptionsRequest,
    ListTopicSubscriptionsResponse, ListTopicsRequest, ListTopicsResponse, PublishRequest,
    PublishResponse, Topic, UpdateTopicRequest,
};
use switchyard_model::{BusSpec, pubsub_message_event};
use tonic::Status;

use super::grpc::status;
use super::{Call, names, page};
use crate::auth::Need;

/// Pub/Sub's most messages per Publish.
const MAX_MESSAGES: usize = 1_000;

pub(super) async fn create_topic(call: Call, topic: Topic) -> Result<Topic, Status> {
    let name = names::topic(&topic.name)?;
    call.require(Need::Admin)?;
    if call.app.catalog().bus(&name.id).is_some() {
        return Err(Status::already_exists("Topic already exists"));
    }
    call.app
        .put_bus(&name.id, BusSpec::default())
        .await
        .map_err(status)?;
    Ok(Topic {
        name: topic.name,
        labels: topic.labels,
        ..Topic::default()
    })
}

pub(super) async fn get_topic(call: Call, request: GetTopicRequest) -> Result<Topic, Status> {
    let name = names::topic(&request.topic)?;
    call.require(Need::Read)?;
    names::topic_bus(&call.app, &name)?;
    Ok(Topic {
        name: request.topic,
        ..Topic::default()
    })
}

/// Nothing of a topic but its name has an effect here, so an update changes nothing; it is
/// answered so that infrastructure code that sets labels applies cleanly.
pub(super) async fn update_topic(call: Call, request: UpdateTopicRequest) -> Result<Topic, Status> {
    let topic = request
        .topic
        .ok_or_else(|| Status::invalid_argument("UpdateTopic needs a topic"))?;
    let name = names::topic(&topic.name)?;
    call.require(Need::Admin)?;
    names::topic_bus(&call.app, &name)?;
    Ok(topic)
}

pub(super) async fn list_topics(
    call: Call,
    request: ListTopicsRequest,
) -> Result<ListTopicsResponse, Status> {
    let project = names::project(&request.project)?;
    call.require(Need::Read)?;
    let buses = call
        .app
        .catalog()
        .buses()
        .iter()
        .map(|b| b.record.name.clone())
        .collect();
    let (page, next_page_token) = page(buses, |b| b, request.page_size, &request.page_token);
    Ok(ListTopicsResponse {
        topics: page
            .iter()
            .map(|bus| Topic {
                name: names::topic_name(&project, bus),
                ..Topic::default()
            })
            .collect(),
        next_page_token,
    })
}

pub(super) async fn list_topic_subscriptions(
    call: Call,
    request: ListTopicSubscriptionsRequest,
) -> Result<ListTopicSubscriptionsResponse, Status> {
    let name = names::topic(&request.topic)?;
    call.require(Need::Read)?;
    let index = names::topic_bus(&call.app, &name)?;
    let subscriptions = index.subscriptions().map(|s| s.name.clone()).collect();
    let (page, next_page_token) =
        page(subscriptions, |s| s, request.page_size, &request.page_token);
    Ok(ListTopicSubscriptionsResponse {
        subscriptions: page
            .iter()
            .map(|s| names::subscription_name(&name.project, s))
            .collect(),
        next_page_token,
    })
}

/// A topic with subscriptions is not deleted (Pub/Sub would detach them): delete them first.
pub(super) async fn delete_topic(call: Call, request: DeleteTopicRequest) -> Result<(), Status> {
    let name = names::topic(&request.topic)?;
    call.require(Need::Admin)?;
    names::topic_bus(&call.app, &name)?;
    call.app.delete_bus(&name.id, false).await.map_err(status)
}

pub(super) async fn publish(
    call: Call,
    request: PublishRequest,
) -> Result<PublishResponse, Status> {
    let name = names::topic(&request.topic)?;
    call.require(Need::Publish(name.id.clone()))?;
    let index = names::topic_bus(&call.app, &name)?;
    if request.messages.is_empty() || request.messages.len() > MAX_MESSAGES {
        return Err(Status::invalid_argument(format!(
            "a Publish carries 1 to {MAX_MESSAGES} messages, not {}",
            request.messages.len()
        )));
    }
    let context = call.app.origin_context();
    let mut events = Vec::with_capacity(request.messages.len());
    for (index, message) in request.messages.into_iter().enumerate() {
        if message.data.is_empty() && message.attributes.is_empty() {
            return Err(Status::invalid_argument(format!(
                "message {index} has neither data nor attributes"
            )));
        }
        let attributes: BTreeMap<String, String> = message.attributes.into_iter().collect();
        let ordering_key = Some(message.ordering_key).filter(|k| !k.is_empty());
        let event = pubsub_message_event(
            &request.topic,
            &message.data,
            attributes,
            ordering_key,
            &context,
        )
        .map_err(|e| Status::invalid_argument(format!("message {index}: {e}")))?;
        events.push(Ok(event));
    }
    let answers = crate::publish::publish(&call.app, index, events)
        .await
        .map_err(status)?;
    let mut message_ids = Vec::with_capacity(answers.len());
    for (index, answer) in answers.into_iter().enumerate() {
        match answer {
            Ok(id) => message_ids.push(id),
            Err(error) => {
                return Err(Status::invalid_argument(format!(
                    "message {index}: {error}"
                )));
            }
        }
    }
    Ok(PublishResponse { message_ids })
}
