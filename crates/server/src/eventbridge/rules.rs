//! Rules: PutRule, DescribeRule, ListRules, EnableRule, DisableRule, DeleteRule,
//! ListRuleNamesByTarget. A rule is its targets' subscriptions (each carries the rule's pattern,
//! state and schedule) plus an `EventBridgeRule` document for what they cannot say: a rule with
//! no targets, its description and role. Its subscriptions are the truth: `DescribeRule` reads
//! the pattern and state from them, so a change made through the REST API shows here.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchyard_store::{DocumentKind, DocumentRecord, SubscriptionRecord};

use super::shapes::{Paging, Tag, check_name, parse, required, with_token};
use super::{Call, EbError, buses, tags};

/// What the rule's document keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct RuleDoc {
    /// The `EventPattern` as written, so numbers keep their exact text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) schedule: Option<String>,
    pub(super) enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) role_arn: Option<String>,
}

/// One rule as both doors see it.
pub(super) struct Rule {
    pub(super) bus: String,
    pub(super) name: String,
    pub(super) doc: RuleDoc,
    /// Its targets' subscriptions, by target id.
    pub(super) targets: Vec<Arc<SubscriptionRecord>>,
}

impl Rule {
    /// The target whose subscription changed last: PutRule gives every target the rule's
    /// pattern and state, so they differ only after a REST edit of one, and that edit is then
    /// the rule's latest word.
    fn latest(&self) -> Option<&Arc<SubscriptionRecord>> {
        self.targets
            .iter()
            .max_by(|a, b| a.updated_ms.cmp(&b.updated_ms).then(b.id.cmp(&a.id)))
    }

    /// The pattern the rule routes by, as its subscriptions say.
    pub(super) fn pattern(&self) -> Option<String> {
        match self.latest() {
            Some(target) => target.spec.pattern.as_ref().map(|p| p.get().to_string()),
            None => self.doc.pattern.clone(),
        }
    }

    /// The document as the rule stands now, with what its subscriptions say.
    pub(super) fn doc_now(&self) -> RuleDoc {
        RuleDoc {
            pattern: self.pattern(),
            enabled: self.enabled(),
            ..self.doc.clone()
        }
    }

    pub(super) fn enabled(&self) -> bool {
        self.latest()
            .map_or(self.doc.enabled, |target| target.spec.enabled)
    }
}

fn key(bus: &str, name: &str) -> String {
    format!("{bus}/{name}")
}

/// The subscriptions that are targets of rule `name` on `bus`, by target id.
pub(super) fn targets_of(call: &Call<'_>, bus: &str, name: &str) -> Vec<Arc<SubscriptionRecord>> {
    let Some(index) = call.app.catalog().bus(bus) else {
        return Vec::new();
    };
    let mut targets: Vec<Arc<SubscriptionRecord>> = index
        .subscriptions()
        .filter(|s| s.spec.eventbridge.as_ref().is_some_and(|l| l.rule == name))
        .cloned()
        .collect();
    targets.sort_by(|a, b| target_id(a).cmp(target_id(b)));
    targets
}

pub(super) fn target_id(subscription: &SubscriptionRecord) -> &str {
    subscription
        .spec
        .eventbridge
        .as_ref()
        .map_or("", |l| l.target_id.as_str())
}

/// Every rule of a bus: its documents, plus any rule known only from its subscriptions (a
/// crash between writing them and the document leaves that; the next PutRule repairs it).
async fn all_of_bus(call: &Call<'_>, bus: &str) -> Result<Vec<Rule>, EbError> {
    let prefix = format!("{bus}/");
    let mut rules: Vec<Rule> = Vec::new();
    for record in call.app.documents(DocumentKind::EventBridgeRule).await? {
        if let Some(name) = record.name.strip_prefix(&prefix) {
            let doc = decode(&record)?;
            rules.push(Rule {
                bus: bus.to_string(),
                name: name.to_string(),
                targets: targets_of(call, bus, name),
                doc,
            });
        }
    }
    if let Some(index) = call.app.catalog().bus(bus) {
        let mut orphans: Vec<String> = index
            .subscriptions()
            .filter_map(|s| s.spec.eventbridge.as_ref().map(|l| l.rule.clone()))
            .filter(|rule| !rules.iter().any(|r| &r.name == rule))
            .collect();
        orphans.sort();
        orphans.dedup();
        for name in orphans {
            let targets = targets_of(call, bus, &name);
            let doc = RuleDoc {
                enabled: targets.first().is_some_and(|t| t.spec.enabled),
                schedule: targets.first().and_then(|t| t.spec.schedule.clone()),
                ..RuleDoc::default()
            };
            rules.push(Rule {
                bus: bus.to_string(),
                name,
                doc,
                targets,
            });
        }
    }
    rules.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rules)
}

fn decode(record: &DocumentRecord) -> Result<RuleDoc, EbError> {
    serde_json::from_str(&record.body).map_err(|e| {
        EbError::from(switchyard_store::StoreError::Corrupt {
            table: "documents",
            detail: format!("rule {}: {e}", record.name),
        })
    })
}

/// The rule, or `ResourceNotFoundException` in EventBridge's words.
pub(super) async fn find(call: &Call<'_>, bus: &str, name: &str) -> Result<Rule, EbError> {
    all_of_bus(call, bus)
        .await?
        .into_iter()
        .find(|rule| rule.name == name)
        .ok_or_else(|| EbError::not_found(format!("Rule {name} does not exist on EventBus {bus}.")))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Put {
    name: Option<String>,
    event_bus_name: Option<String>,
    event_pattern: Option<String>,
    schedule_expression: Option<String>,
    state: Option<String>,
    description: Option<String>,
    role_arn: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
}

pub(super) async fn put(call: Call<'_>) -> Result<Value, EbError> {
    let input: Put = parse(call.input.clone())?;
    let name = required(input.name, "name")?;
    check_name("Name", &name)?;
    let bus = buses::find(&call, input.event_bus_name.as_deref())?.name;
    let pattern = input.event_pattern.filter(|p| !p.trim().is_empty());
    let schedule = input.schedule_expression.filter(|s| !s.trim().is_empty());
    if pattern.is_none() && schedule.is_none() {
        return Err(EbError::validation(
            "Parameter(s) EventPattern or ScheduleExpression must be specified.",
        ));
    }
    if let Some(pattern) = &pattern {
        switchyard_pattern::Pattern::parse(pattern).map_err(|e| {
            EbError::client(
                "InvalidEventPatternException",
                format!("Event pattern is not valid. Reason: {e}"),
            )
        })?;
    }
    if let Some(schedule) = &schedule {
        switchyard_model::Schedule::parse(schedule)?;
    }
    let enabled = match input.state.as_deref() {
        None | Some("ENABLED") => true,
        Some("DISABLED") => false,
        Some(other) => {
            return Err(EbError::validation(format!(
                "State {other:?} is not one switchyard has: use ENABLED or DISABLED"
            )));
        }
    };
    switchyard_model::validate_description(input.description.as_deref())?;
    let existing = find(&call, &bus, &name).await.ok();
    let doc = RuleDoc {
        pattern,
        schedule,
        enabled,
        description: input.description,
        role_arn: input.role_arn,
    };
    let arn = call.arns().rule(&bus, &name);
    if existing.is_none() {
        tags::put_initial(&call, &arn, input.tags).await?;
    }
    // Subscriptions first: they are the truth, and a crash before the document is written
    // leaves them right (the next PutRule writes the document).
    for target in existing.iter().flat_map(|rule| &rule.targets) {
        let mut spec = target.spec.clone();
        apply(&doc, &mut spec)?;
        call.app.put_subscription(&bus, &target.name, spec).await?;
    }
    store(&call, &bus, &name, &doc).await?;
    Ok(json!({"RuleArn": arn}))
}

/// What the rule says about each of its subscriptions.
pub(super) fn apply(
    doc: &RuleDoc,
    spec: &mut switchyard_model::SubscriptionSpec,
) -> Result<(), EbError> {
    spec.pattern = doc
        .pattern
        .as_deref()
        .map(|p| serde_json::value::RawValue::from_string(p.to_string()))
        .transpose()
        .map_err(|e| EbError::client("InvalidEventPatternException", e.to_string()))?;
    spec.enabled = doc.enabled;
    spec.schedule = doc.schedule.clone();
    Ok(())
}

async fn store(call: &Call<'_>, bus: &str, name: &str, doc: &RuleDoc) -> Result<(), EbError> {
    let body = serde_json::to_string(doc).map_err(|e| EbError::validation(e.to_string()))?;
    call.app
        .put_document(DocumentKind::EventBridgeRule, &key(bus, name), body)
        .await?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Named {
    name: Option<String>,
    event_bus_name: Option<String>,
    #[serde(default)]
    force: bool,
}

pub(super) async fn describe(call: Call<'_>) -> Result<Value, EbError> {
    let input: Named = parse(call.input.clone())?;
    let name = required(input.name, "name")?;
    let bus = buses::find(&call, input.event_bus_name.as_deref())?.name;
    let rule = find(&call, &bus, &name).await?;
    Ok(view(&call, &rule))
}

fn view(call: &Call<'_>, rule: &Rule) -> Value {
    let mut view = json!({
        "Name": rule.name,
        "Arn": call.arns().rule(&rule.bus, &rule.name),
        "State": if rule.enabled() { "ENABLED" } else { "DISABLED" },
        "EventBusName": rule.bus,
        "CreatedBy": *call.app.config().aws.account,
    });
    if let Some(pattern) = rule.pattern() {
        view["EventPattern"] = json!(pattern);
    }
    if let Some(schedule) = &rule.doc.schedule {
        view["ScheduleExpression"] = json!(schedule);
    }
    if let Some(description) = &rule.doc.description {
        view["Description"] = json!(description);
    }
    if let Some(role) = &rule.doc.role_arn {
        view["RoleArn"] = json!(role);
    }
    view
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct List {
    name_prefix: Option<String>,
    event_bus_name: Option<String>,
    #[serde(flatten)]
    paging: Paging,
}

pub(super) async fn list(call: Call<'_>) -> Result<Value, EbError> {
    let input: List = parse(call.input.clone())?;
    let bus = buses::find(&call, input.event_bus_name.as_deref())?.name;
    let prefix = input.name_prefix.unwrap_or_default();
    let mut rules: Vec<Rule> = all_of_bus(&call, &bus)
        .await?
        .into_iter()
        .filter(|rule| rule.name.starts_with(&prefix))
        .collect();
    let token = input.paging.page(&mut rules, |rule| &rule.name)?;
    let items: Vec<Value> = rules.iter().map(|rule| view(&call, rule)).collect();
    Ok(with_token(json!({"Rules": items}), token))
}

/// EnableRule and DisableRule: every target's subscription, then the document.
pub(super) async fn set_state(call: Call<'_>, enabled: bool) -> Result<Value, EbError> {
    let input: Named = parse(call.input.clone())?;
    let name = required(input.name, "name")?;
    let bus = buses::find(&call, input.event_bus_name.as_deref())?.name;
    let rule = find(&call, &bus, &name).await?;
    for target in &rule.targets {
        let mut spec = target.spec.clone();
        spec.enabled = enabled;
        call.app.put_subscription(&bus, &target.name, spec).await?;
    }
    let doc = RuleDoc {
        enabled,
        pattern: rule.pattern(),
        ..rule.doc
    };
    store(&call, &bus, &name, &doc).await?;
    Ok(json!({}))
}

/// DeleteRule: refused while the rule has targets, as in EventBridge, unless `Force` (which
/// in EventBridge is for managed rules; here it removes the targets first).
pub(super) async fn delete(call: Call<'_>) -> Result<Value, EbError> {
    let input: Named = parse(call.input.clone())?;
    let name = required(input.name, "name")?;
    let bus = buses::find(&call, input.event_bus_name.as_deref())?.name;
    let Ok(rule) = find(&call, &bus, &name).await else {
        // Deleting a rule that is not there succeeds, as in EventBridge.
        return Ok(json!({}));
    };
    if !rule.targets.is_empty() && !input.force {
        return Err(EbError::validation(
            "Rule can't be deleted since it has targets.",
        ));
    }
    for target in &rule.targets {
        call.app.delete_subscription(&bus, &target.name).await?;
    }
    call.forget(DocumentKind::EventBridgeRule, &key(&bus, &name))
        .await?;
    tags::forget(&call, &call.arns().rule(&bus, &name)).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ByTarget {
    target_arn: Option<String>,
    event_bus_name: Option<String>,
    #[serde(flatten)]
    paging: Paging,
}

pub(super) async fn names_by_target(call: Call<'_>) -> Result<Value, EbError> {
    let input: ByTarget = parse(call.input.clone())?;
    let arn = required(input.target_arn, "targetArn")?;
    let bus = buses::find(&call, input.event_bus_name.as_deref())?.name;
    let mut names: Vec<String> = all_of_bus(&call, &bus)
        .await?
        .into_iter()
        .filter(|rule| {
            rule.targets
                .iter()
                .any(|t| super::targets::arn_of(t).as_deref() == Some(arn.as_str()))
        })
        .map(|rule| rule.name)
        .collect();
    let token = input.paging.page(&mut names, |n| n)?;
    Ok(with_token(json!({"RuleNames": names}), token))
}
