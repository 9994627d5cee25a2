//! Reads `template.yaml` and checks what `cfn-lint` and `sam validate` cannot know: that
//! the template fits this code. Every SQS event source reports batch item failures,
//! every queue has a dead-letter queue and a long enough visibility timeout, every role
//! grants only what its function uses, and every environment variable a function reads
//! is set (and nothing it doesn't read), with values the code accepts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use okr_aws::config::{
    AlertsConfig, IngestConfig, ProjectionConfig, SlackConfig, StalledConfig, SubscriptionsConfig,
    SummariesConfig, WarehouseConfig,
};
use okr_pipeline::config::Env;
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `template.yaml` as JSON, the short forms (`!Ref X`, `!GetAtt A.B`, `!Sub s`) turned
/// into their long forms (`{"Ref": "X"}`, `{"Fn::GetAtt": ["A", "B"]}`, `{"Fn::Sub": s}`).
fn template() -> Value {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    to_json(yaml)
}

fn to_json(yaml: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(n).unwrap(),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.as_str().expect("string keys").to_owned(), to_json(v)))
                .collect(),
        ),
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let value = to_json(tagged.value);
            match (tag, value) {
                ("Ref", value) => json!({ "Ref": value }),
                ("Condition", value) => json!({ "Condition": value }),
                ("GetAtt", Value::String(path)) => {
                    let (resource, attribute) = path.split_once('.').unwrap();
                    json!({ "Fn::GetAtt": [resource, attribute] })
                }
                (function, value) => json!({ format!("Fn::{function}"): value }),
            }
        }
    }
}

fn resources(template: &Value) -> &serde_json::Map<String, Value> {
    template["Resources"].as_object().unwrap()
}

fn of_type<'t>(template: &'t Value, kind: &str) -> Vec<(&'t str, &'t Value)> {
    resources(template)
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(name, r)| (name.as_str(), r))
        .collect()
}

/// The logical id a `Ref` or `GetAtt` points to.
fn target(value: &Value) -> Option<&str> {
    value["Ref"]
        .as_str()
        .or_else(|| value["Fn::GetAtt"][0].as_str())
}

/// Every resource `value` refers to, through `Ref`, `GetAtt` or `${...}` in a `Sub`.
fn references(value: &Value, template: &Value, found: &mut BTreeSet<String>) {
    let mut note = |name: &str| {
        if resources(template).contains_key(name) {
            found.insert(name.to_owned());
        }
    };
    match value {
        Value::Object(map) => {
            if let Some(name) = target(value) {
                note(name);
            } else if let Some(Value::String(text)) = map.get("Fn::Sub") {
                sub_names(text).iter().for_each(|name| note(name));
            } else {
                map.values().for_each(|v| references(v, template, found));
            }
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, template, found)),
        _ => {}
    }
}

/// The names in `${Name}` and `${Name.Attribute}`, not `${!literal}`.
fn sub_names(text: &str) -> Vec<String> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .filter(|name| !name.starts_with('!'))
        .map(|name| name.split('.').next().unwrap().to_owned())
        .collect()
}

/// A value as the function would see it: parameters at their defaults, resources as
/// stand-in names, `!If` at its "true" branch (every optional destination enabled).
fn resolve(value: &Value, template: &Value) -> String {
    let param = |name: &str| -> Option<String> {
        template["Parameters"]
            .get(name)
            .map(|p| match &p["Default"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
    };
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Object(map) if map.contains_key("Ref") => {
            let name = map["Ref"].as_str().unwrap();
            param(name).unwrap_or_else(|| format!("stand-in-{name}"))
        }
        Value::Object(map) if map.contains_key("Fn::If") => resolve(&map["Fn::If"][1], template),
        Value::Object(map) if map.contains_key("Fn::Sub") => {
            let mut text = map["Fn::Sub"].as_str().unwrap().to_owned();
            for name in sub_names(&text.clone()) {
                let value = param(&name).unwrap_or_else(|| format!("stand-in-{name}"));
                text = text.replace(&format!("${{{name}}}"), &value);
            }
            text
        }
        other => panic!("cannot resolve {other}"),
    }
}

struct Function<'t> {
    name: &'t str,
    binary: &'t str,
    properties: &'t Value,
    environment: BTreeMap<String, String>,
}

fn functions(template: &Value) -> Vec<Function<'_>> {
    of_type(template, "AWS::Serverless::Function")
        .into_iter()
        .map(|(name, resource)| {
            let properties = &resource["Properties"];
            let environment = properties["Environment"]["Variables"]
                .as_object()
                .map(|vars| {
                    vars.iter()
                        .map(|(k, v)| (k.clone(), resolve(v, template)))
                        .collect()
                })
                .unwrap_or_default();
            Function {
                name,
                binary: resource["Metadata"]["BuildProperties"]["Binary"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name}: no BuildProperties.Binary")),
                properties,
                environment,
            }
        })
        .collect()
}

fn function<'t>(functions: &'t [Function<'t>], binary: &str) -> &'t Function<'t> {
    functions
        .iter()
        .find(|f| f.binary == binary)
        .unwrap_or_else(|| panic!("no function builds {binary}"))
}

/// The SQS event sources of `function`: (queue logical id, its properties).
fn sqs_sources<'t>(function: &Function<'t>) -> Vec<(&'t str, &'t Value)> {
    function.properties["Events"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, e)| e["Type"] == "SQS")
        .map(|(_, e)| (target(&e["Properties"]["Queue"]).unwrap(), &e["Properties"]))
        .collect()
}

fn number(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("expected a number, got {value}"))
}
#[test]
fn nine_functions_built_by_cargo_lambda_from_this_workspace() {
    let template = template();
    let functions = functions(&template);
    let mut binaries: Vec<_> = functions.iter().map(|f| f.binary).collect();
    binaries.sort();
    assert_eq!(
        binaries,
        [
            "email-summaries",
            "ingest",
            "people-snapshot",
            "progress-alerts",
            "progress-projection",
            "slack-notifier",
            "stalled-check",
            "subscription-sender",
            "warehouse-sink"
        ]
    );
    for (name, resource) in of_type(&template, "AWS::Serverless::Function") {
        assert_eq!(
            resource["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{name}"
        );
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap();
        assert!(
            root()
                .join("functions")
                .join(binary)
                .join("Cargo.toml")
                .exists(),
            "{name}: no package functions/{binary}"
        );
    }
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"][0]["Ref"], "Architecture");
    assert_eq!(template["Parameters"]["Architecture"]["Default"], "arm64");
}

#[test]
fn every_sqs_event_source_reports_batch_item_failures() {
    let template = template();
    let functions = functions(&template);
    let mut sources = 0;
    for function in &functions {
        for (queue, properties) in sqs_sources(function) {
            sources += 1;
            assert_eq!(
                properties["FunctionResponseTypes"],
                json!(["ReportBatchItemFailures"]),
                "{}: the event source of {queue}",
                function.name
            );
        }
    }
    assert_eq!(
        sources,
        okr_core::routing::Consumer::ALL.len(),
        "one event source per consumer queue"
    );
    assert!(
        of_type(&template, "AWS::Lambda::EventSourceMapping").is_empty(),
        "event sources are declared on the functions"
    );
}

#[test]
fn every_queue_has_its_own_dead_letter_queue_keeping_14_days() {
    let template = template();
    let queues = of_type(&template, "AWS::SQS::Queue");
    let mut dead_letter_queues = BTreeSet::new();
    for (name, queue) in &queues {
        let redrive = &queue["Properties"]["RedrivePolicy"];
        if redrive.is_null() {
            continue;
        }
        assert_eq!(
            number(&redrive["maxReceiveCount"]),
            u64::from(okr_pipeline::retry::MAX_RECEIVE_COUNT),
            "{name}: the retry schedule is planned for this many receives"
        );
        let dlq = target(&redrive["deadLetterTargetArn"]).unwrap();
        assert!(
            dead_letter_queues.insert(dlq.to_owned()),
            "{dlq} is the dead-letter queue of two queues"
        );
    }
    assert_eq!(
        dead_letter_queues.len(),
        okr_core::routing::Consumer::ALL.len()
    );
    for (name, queue) in &queues {
        let properties = &queue["Properties"];
        let is_dlq = dead_letter_queues.contains(*name);
        assert!(
            is_dlq || !properties["RedrivePolicy"].is_null(),
            "{name} has no dead-letter queue and is none"
        );
        // A standard queue's message expires by its first enqueue time: both keep 14 days.
        assert_eq!(
            number(&properties["MessageRetentionPeriod"]),
            14 * 24 * 3600,
            "{name}"
        );
        // The largest event ingest accepts must fit a message.
        assert!(
            number(&properties["MaximumMessageSize"])
                >= 2 * okr_pipeline::config::MAX_BODY_BYTES_LIMIT as u64,
            "{name}"
        );
        assert_eq!(properties["SqsManagedSseEnabled"], true, "{name}");
    }
    // Consumers read the source queues, never a dead-letter queue.
    for function in functions(&template) {
        for (queue, _) in sqs_sources(&function) {
            assert!(!dead_letter_queues.contains(queue), "{queue}");
        }
    }
}

#[test]
fn visibility_timeouts_are_six_times_the_consumer_timeout_and_its_window() {
    let template = template();
    for function in functions(&template) {
        let timeout = number(&function.properties["Timeout"]);
        for (queue, properties) in sqs_sources(&function) {
            let window = properties["MaximumBatchingWindowInSeconds"]
                .as_u64()
                .unwrap_or(0);
            let visibility =
                number(&resources(&template)[queue]["Properties"]["VisibilityTimeout"]);
            assert!(
                visibility >= 6 * timeout + window,
                "{queue}: visibility {visibility} s < 6 x {timeout} s + {window} s ({})",
                function.name
            );
            let batch = number(&properties["BatchSize"]);
            assert!(
                batch <= 10 || window > 0,
                "{queue}: batches over 10 need a window"
            );
            // A consumer that holds claims holds them as long as its queue hides a
            // message: it is told the same visibility timeout.
            let told = &function.properties["Environment"]["Variables"]["QUEUE_VISIBILITY_TIMEOUT_SECONDS"];
            if !told.is_null() {
                // A string, as every Lambda environment value is.
                assert_eq!(
                    told.as_str().and_then(|t| t.parse().ok()),
                    Some(visibility),
                    "{}",
                    function.name
                );
            }
        }
    }
}

#[test]
fn every_role_grants_only_what_its_function_uses() {
    let template = template();
    for function in functions(&template) {
        assert!(
            function.properties["Policies"].is_null(),
            "{}: permissions belong in its own role",
            function.name
        );
        let role = target(&function.properties["Role"])
            .unwrap_or_else(|| panic!("{}: no Role of its own", function.name));
        let role_resource = &resources(&template)[role];
        assert_eq!(role_resource["Type"], "AWS::IAM::Role");
        assert!(role_resource["Properties"]["ManagedPolicyArns"].is_null());

        // What the function touches: its environment, event sources and log group.
        let mut uses = BTreeSet::new();
        references(&function.properties["Environment"], &template, &mut uses);
        references(&function.properties["Events"], &template, &mut uses);
        references(&function.properties["LoggingConfig"], &template, &mut uses);
        uses.remove("WebhooksApi");

        let mut grants = BTreeSet::new();
        let mut actions = BTreeSet::new();
        for policy in role_resource["Properties"]["Policies"].as_array().unwrap() {
            for statement in policy["PolicyDocument"]["Statement"].as_array().unwrap() {
                // A statement for an optional destination: as when it is enabled.
                let statement = match statement.get("Fn::If") {
                    // X-Ray's segment writes, which name no resource: checked on their own
                    // (tracing_is_one_switch_...).
                    Some(branches) if branches[0] == "TracingActive" => continue,
                    Some(branches) => &branches[1],
                    None => statement,
                };
                assert_eq!(statement["Effect"], "Allow");
                for action in one_or_many(&statement["Action"]) {
                    let action = action.as_str().unwrap();
                    assert!(!action.contains('*'), "{role}: wildcard action {action}");
                    actions.insert(action);
                }
                if statement["Action"] == "secretsmanager:PutSecretValue" {
                    // Only the signing secret is written (a handshake's secret kept).
                    assert_eq!(
                        statement["Resource"],
                        json!({"Ref": "SigningSecret"}),
                        "{role}"
                    );
                }
                if statement["Action"] == "ses:SendEmail" {
                    // Not a resource of the stack: SES identities, From the sender only.
                    assert_from_the_sender_only(statement, role);
                    continue;
                }
                for resource in one_or_many(&statement["Resource"]) {
                    assert_ne!(resource, &json!("*"), "{role}: Resource \"*\"");
                    let mut named = BTreeSet::new();
                    references(resource, &template, &mut named);
                    assert!(
                        !named.is_empty(),
                        "{role}: {resource} is not a resource of this stack"
                    );
                    grants.extend(named);
                }
            }
        }
        assert_eq!(
            grants, uses,
            "{role} must grant exactly the resources {} uses",
            function.name
        );
        // And only the calls its adapters make.
        let logs = ["logs:CreateLogStream", "logs:PutLogEvents"];
        // ChangeMessageVisibility: a consumer sets when its failed records come back.
        let consume = [
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility",
        ];
        let idempotency = [
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        ];
        let secret = ["secretsmanager:GetSecretValue"];
        let expected: BTreeSet<&str> = match function.binary {
            // PutSecretValue: a handshake's secret kept (on the signing secret only,
            // checked below).
            "ingest" => [
                &logs[..],
                &secret,
                &["secretsmanager:PutSecretValue"],
                &["sqs:SendMessage", "sqs:GetQueueAttributes"],
            ]
            .concat(),
            // GetItem/PutItem: its circuit breaker's item (checked below).
            "warehouse-sink" => [
                &logs[..],
                &consume,
                &["s3:PutObject"],
                &["dynamodb:GetItem", "dynamodb:PutItem"],
            ]
            .concat(),
            // And the directory scanned, for the owner's department.
            "slack-notifier" => [
                &logs[..],
                &consume,
                &secret,
                &idempotency,
                &["dynamodb:Scan"],
            ]
            .concat(),
            // And SES, for alert emails.
            "progress-alerts" => [
                &logs[..],
                &consume,
                &secret,
                &idempotency,
                &["ses:SendEmail"],
            ]
            .concat(),
            // The read model scanned, what was sent recorded, SES.
            "email-summaries" => [
                &logs[..],
                &secret,
                &idempotency,
                &["dynamodb:Scan", "ses:SendEmail"],
            ]
            .concat(),
            // Conditional puts over the item read; the directory scanned (a batch with
            // HR records reads it whole) and written by conditional puts.
            "progress-projection" => [
                &logs[..],
                &consume,
                &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan"],
            ]
            .concat(),
            // The read model and the directory scanned, each alert's state and what was
            // sent recorded, SES.
            "stalled-check" => [
                &logs[..],
                &secret,
                &idempotency,
                &["dynamodb:Scan", "ses:SendEmail"],
            ]
            .concat(),
            // The directory scanned, the day's object written (under people/v1/ only,
            // checked below).
            "people-snapshot" => [&logs[..], &["dynamodb:Scan", "s3:PutObject"]].concat(),
            // Both documents read; what was sent, the breakers and health recorded.
            // And the stack's event bus, when PublishToEventBus is true.
            "subscription-sender" => [
                &logs[..],
                &consume,
                &secret,
                &idempotency,
                &["events:PutEvents"],
            ]
            .concat(),
            other => panic!("no expected actions for {other}"),
        }
        .into_iter()
        .collect();
        assert_eq!(actions, expected, "{role}");
    }
}

#[test]
fn the_stalled_check_runs_daily_passing_its_time_and_needs_no_email() {
    let template = template();
    let function = &resources(&template)["StalledCheckFunction"];
    // Not only with a sender: the alerts channel, PagerDuty or direct messages suffice.
    assert!(function["Condition"].is_null());
    let schedule = &function["Properties"]["Events"]["Schedule"];
    assert_eq!(schedule["Type"], "ScheduleV2");
    let properties = &schedule["Properties"];
    assert_eq!(properties["ScheduleExpression"]["Ref"], "StalledSchedule");
    assert_eq!(
        properties["ScheduleExpressionTimezone"]["Ref"],
        "SummaryTimeZone"
    );
    assert_eq!(
        template["Parameters"]["StalledSchedule"]["Default"], "cron(0 9 * * ? *)",
        "daily at 09:00"
    );
    // The sample event is what Scheduler passes, its time filled in.
    let sample =
        std::fs::read_to_string(root().join("events/stalled-check/scheduled.json")).unwrap();
    let input = properties["Input"]
        .as_str()
        .unwrap()
        .replace("<aws.scheduler.scheduled-time>", "2026-12-07T09:00:00Z");
    let parse = |text: &str| -> okr_consumers::email::send::ScheduledRun {
        serde_json::from_str(text).unwrap()
    };
    assert_eq!(parse(&input).scheduled_time, parse(&sample).scheduled_time);
    assert_eq!(
        parse(&sample).scheduled_time,
        Some(time::macros::datetime!(2026-12-07 09:00 UTC))
    );
    // The bot token's secret exists only when direct messages are on.
    assert_eq!(
        resources(&template)["SlackBotTokenSecret"]["Condition"],
        "StalledDirect"
    );
}

/// `statement` lets its function send as the configured sender only: on SES
/// identities (in the sandbox SES authorizes the recipients' identities too), on the
/// condition that the From address is `EmailSender`.
fn assert_from_the_sender_only(statement: &Value, role: &str) {
    assert_eq!(
        statement["Resource"]["Fn::Sub"],
        "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/*",
        "{role}"
    );
    assert_eq!(
        statement["Condition"],
        json!({"StringEquals": {"ses:FromAddress": {"Ref": "EmailSender"}}}),
        "{role}"
    );
}

#[test]
fn the_summaries_run_on_a_schedule_in_the_chosen_zone_passing_its_time() {
    let template = template();
    let function = &resources(&template)["EmailSummariesFunction"];
    assert_eq!(function["Condition"], "HasEmail");
    let schedule = &function["Properties"]["Events"]["Schedule"];
    assert_eq!(schedule["Type"], "ScheduleV2");
    let properties = &schedule["Properties"];
    assert_eq!(properties["ScheduleExpression"]["Ref"], "SummarySchedule");
    assert_eq!(
        properties["ScheduleExpressionTimezone"]["Ref"],
        "SummaryTimeZone"
    );
    assert_eq!(
        template["Parameters"]["SummarySchedule"]["Default"], "cron(0 8 ? * MON *)",
        "Mondays at 08:00"
    );
    // What Scheduler passes, with its time filled in, is what the function reads; the
    // same time for every retry of a run.
    let input = properties["Input"]
        .as_str()
        .unwrap()
        .replace("<aws.scheduler.scheduled-time>", "2026-11-30T08:00:00Z");
    let run: okr_consumers::email::send::ScheduledRun = serde_json::from_str(&input).unwrap();
    assert_eq!(
        run.scheduled_time,
        Some(time::macros::datetime!(2026-11-30 08:00 UTC))
    );
    // The zone the template offers is one the function accepts.
    let zone = template["Parameters"]["SummaryTimeZone"]["Default"]
        .as_str()
        .unwrap();
    okr_consumers::email::schedule::zone(zone).unwrap();
}

#[test]
fn the_warehouse_sink_reaches_only_its_breakers_item_in_the_idempotency_table() {
    let template = template();
    let role = &resources(&template)["WarehouseSinkRole"];
    let statements: Vec<&Value> = role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            one_or_many(&s["Action"])
                .iter()
                .any(|a| a.as_str().is_some_and(|a| a.starts_with("dynamodb:")))
        })
        .collect();
    assert_eq!(statements.len(), 1);
    assert_eq!(target(&statements[0]["Resource"]), Some("IdempotencyTable"));
    let key = format!("breaker:{}", okr_pipeline::breaker::WAREHOUSE);
    assert_eq!(
        statements[0]["Condition"],
        json!({"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [key]}})
    );
}

#[test]
fn a_breaker_open_over_15_minutes_raises_an_alarm_for_every_destination() {
    let template = template();
    let alarm = &resources(&template)["BreakerOpenAlarm"]["Properties"];
    // The metric and dimension the consumers write.
    let record = okr_pipeline::metrics::BreakerRecord {
        destination: okr_pipeline::breaker::SLACK,
        open_for: Some(std::time::Duration::from_secs(901)),
        deferred: 3,
    };
    let line: Value = serde_json::from_str(&okr_pipeline::metrics::breaker_line(
        "slack-notifier",
        &record,
        time::OffsetDateTime::UNIX_EPOCH,
    ))
    .unwrap();
    assert_eq!(line["BreakerOpenSeconds"], 901);
    assert_eq!(line["DeferredRecords"], 3);
    assert_eq!(line["BreakerOpen"], 1);
    let directive = &line["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Dimensions"], json!([["Destination"]]));
    let queries = alarm["Metrics"].as_array().unwrap();
    let watched: BTreeSet<&str> = queries
        .iter()
        .filter(|q| !q["MetricStat"].is_null())
        .map(|q| {
            let metric = &q["MetricStat"]["Metric"];
            assert_eq!(metric["Namespace"], okr_pipeline::metrics::NAMESPACE);
            assert_eq!(metric["MetricName"], "BreakerOpenSeconds");
            assert_eq!(q["MetricStat"]["Stat"], "Maximum");
            assert_eq!(metric["Dimensions"][0]["Name"], "Destination");
            metric["Dimensions"][0]["Value"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        watched,
        okr_pipeline::breaker::DESTINATIONS.into_iter().collect()
    );
    let returned: Vec<&Value> = queries.iter().filter(|q| q["ReturnData"] == true).collect();
    assert_eq!(returned.len(), 1);
    assert!(
        returned[0]["Expression"]
            .as_str()
            .unwrap()
            .starts_with("MAX([")
    );
    assert_eq!(alarm["Threshold"], 900);
    assert_eq!(alarm["ComparisonOperator"], "GreaterThanOrEqualToThreshold");
}

fn one_or_many(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// The variables each function reads: its configuration read through a recording
/// lookup fed with the template's values.
fn read_with(
    environment: &BTreeMap<String, String>,
    read: impl FnOnce(&Env<&dyn Fn(&str) -> Option<String>>),
) -> BTreeSet<String> {
    let looked_up = std::cell::RefCell::new(BTreeSet::new());
    let lookup = |name: &str| {
        looked_up.borrow_mut().insert(name.to_owned());
        environment.get(name).cloned()
    };
    read(&Env(&lookup));
    looked_up.into_inner()
}

#[test]
fn every_variable_the_code_reads_is_set_with_a_value_it_accepts() {
    let template = template();
    let functions = functions(&template);

    let ingest = function(&functions, "ingest");
    let read = read_with(&ingest.environment, |env| {
        let config = IngestConfig::from_env(env).unwrap();
        assert_eq!(
            config.max_body_bytes,
            okr_pipeline::config::DEFAULT_MAX_BODY_BYTES
        );
        assert_eq!(config.secret_id, "stand-in-SigningSecret");
    });
    assert_eq!(read, ingest.environment.keys().cloned().collect());

    let warehouse = function(&functions, "warehouse-sink");
    let read = read_with(&warehouse.environment, |env| {
        let config = WarehouseConfig::from_env(env).unwrap();
        assert_eq!(
            config.idempotency_table.as_deref(),
            Some("stand-in-IdempotencyTable")
        );
        assert_eq!(config.url, the_bucket());
    });
    assert_eq!(read, warehouse.environment.keys().cloned().collect());

    let slack = function(&functions, "slack-notifier");
    let read = read_with(&slack.environment, |env| {
        let config = SlackConfig::from_env(env).unwrap();
        assert_eq!(
            config.digest_threshold,
            okr_consumers::slack::DEFAULT_DIGEST_THRESHOLD
        );
    });
    assert_eq!(read, slack.environment.keys().cloned().collect());
    assert_eq!(
        slack.environment["SLACK_NOTIFY_TYPES"],
        okr_core::routing::DEFAULT_NOTIFY_TYPES,
        "the template's default routing is the code's"
    );
    assert_eq!(
        slack.environment["SLACK_NOTIFY_TYPES"], ingest.environment["SLACK_NOTIFY_TYPES"],
        "ingest and the notifier route the same types"
    );

    // A deployment that sets the sender (the default sends no email).
    let with_sender = |environment: &BTreeMap<String, String>| {
        let mut environment = environment.clone();
        assert_eq!(environment["EMAIL_SENDER"], "", "no sender by default");
        environment.insert("EMAIL_SENDER".into(), "okr@example.com".into());
        environment
    };
    let alerts = function(&functions, "progress-alerts");
    let alerts_environment = with_sender(&alerts.environment);
    let mut alerts_window = std::time::Duration::ZERO;
    let read = read_with(&alerts_environment, |env| {
        let config = AlertsConfig::from_env(env).unwrap();
        let defaults = AlertsConfig::from_env(&Env(|name: &str| match name {
            "ALERTS_SLACK_WEBHOOK_SECRET_ID" | "IDEMPOTENCY_TABLE" => Some("x".to_owned()),
            "QUEUE_VISIBILITY_TIMEOUT_SECONDS" => Some("365".to_owned()),
            _ => None,
        }))
        .unwrap();
        assert_eq!(config.thresholds, defaults.thresholds);
        assert_eq!(config.window, defaults.window);
        alerts_window = config.window;
        assert_eq!(config.pagerduty_events_url, defaults.pagerduty_events_url);
        assert!(config.slack_webhook_secret_id.is_some());
        assert!(config.pagerduty_routing_key_secret_id.is_some());
        let email = config.email.unwrap();
        assert_eq!(email.recipients_secret_id, "stand-in-EmailRecipientsSecret");
    });
    assert_eq!(read, alerts.environment.keys().cloned().collect());

    let summaries = function(&functions, "email-summaries");
    let read = read_with(&with_sender(&summaries.environment), |env| {
        let config = SummariesConfig::from_env(env).unwrap();
        assert_eq!(
            config.email.recipients_secret_id,
            "stand-in-EmailRecipientsSecret"
        );
        assert_eq!(config.progress_table, "stand-in-ProgressTable");
        assert_eq!(config.time_zone, chrono_tz::UTC);
        assert_eq!(
            config.stalled_after,
            std::time::Duration::from_secs(14 * 24 * 3600)
        );
        assert_eq!(config.pace, std::time::Duration::from_secs(1));
    });
    assert_eq!(read, summaries.environment.keys().cloned().collect());

    // The stalled check, with a sender and the direct messages on (`resolve` takes
    // every condition as true).
    let stalled = function(&functions, "stalled-check");
    let read = read_with(&with_sender(&stalled.environment), |env| {
        let config = StalledConfig::from_env(env).unwrap();
        assert_eq!(config.progress_table, "stand-in-ProgressTable");
        assert_eq!(config.directory_table, "stand-in-DirectoryTable");
        assert_eq!(
            config.stalled_after,
            std::time::Duration::from_secs(14 * 24 * 3600)
        );
        assert_eq!(config.window, alerts_window);
        assert_eq!(config.email_sender.as_deref(), Some("okr@example.com"));
        assert_eq!(
            config.slack_bot_token_secret_id.as_deref(),
            Some("stand-in-SlackBotTokenSecret")
        );
        assert_eq!(
            config.slack_api_url,
            okr_pipeline::outbound::slack_api::SLACK_API
        );
        assert!(config.slack_webhook_secret_id.is_some());
        assert!(config.pagerduty_routing_key_secret_id.is_some());
    });
    assert_eq!(read, stalled.environment.keys().cloned().collect());
    // The same rule and window as the summaries and the alerts.
    assert_eq!(
        stalled.environment["STALLED_AFTER_DAYS"],
        summaries.environment["STALLED_AFTER_DAYS"]
    );
    assert_eq!(
        stalled.environment["ALERT_WINDOW_HOURS"],
        alerts.environment["ALERT_WINDOW_HOURS"]
    );

    let projection = function(&functions, "progress-projection");
    let read = read_with(&projection.environment, |env| {
        let config = ProjectionConfig::from_env(env).unwrap();
        assert_eq!(config.table, "stand-in-ProgressTable");
        assert_eq!(config.thresholds, okr_core::rules::Thresholds::default());
    });
    assert_eq!(read, projection.environment.keys().cloned().collect());
    // The read model shows the rules the alerts apply: the same settings.
    for name in [
        "ALERT_PACE_TOLERANCE",
        "ALERT_LOW_THRESHOLD",
        "ALERT_LOW_AFTER",
        "ALERT_DROP_POINTS",
    ] {
        assert_eq!(
            projection.environment[name], alerts.environment[name],
            "{name}"
        );
    }

    let sender = function(&functions, "subscription-sender");
    let read = read_with(&sender.environment, |env| {
        let config = SubscriptionsConfig::from_env(env).unwrap();
        assert_eq!(config.document_secret_id, "stand-in-SubscriptionsDocument");
        assert_eq!(config.secrets_secret_id, "stand-in-SubscriptionSecrets");
        assert_eq!(config.idempotency_table, "stand-in-IdempotencyTable");
        // With PublishToEventBus true.
        assert_eq!(config.event_bus.as_deref(), Some("stand-in-EventBus"));
    });
    assert_eq!(read, sender.environment.keys().cloned().collect());
    assert_eq!(
        template["Parameters"]["PublishToEventBus"]["Default"], "false",
        "no bus unless asked"
    );
    // The sender may publish to the bus only while it is on.
    let statements = &resources(&template)["SubscriptionSenderRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        ["Statement"];
    let bus_statement = statements
        .as_array()
        .unwrap()
        .iter()
        .find_map(|s| {
            s.get("Fn::If")
                .filter(|b| b[1]["Action"] == "events:PutEvents")
        })
        .expect("a PutEvents statement");
    assert_eq!(bus_statement[0], "EventBusOn");
    assert_eq!(bus_statement[2], json!({"Ref": "AWS::NoValue"}));
    // One switch: ingest queues every event exactly when the sender has a bus.
    let variables =
        |name: &str| &resources(&template)[name]["Properties"]["Environment"]["Variables"];
    assert_eq!(
        variables("IngestFunction")["PUBLISH_TO_EVENT_BUS"],
        json!({"Ref": "PublishToEventBus"})
    );
    assert_eq!(
        variables("SubscriptionSenderFunction")["EVENT_BUS_NAME"],
        json!({"Fn::If": ["EventBusOn", {"Ref": "EventBus"}, ""]})
    );
    assert_eq!(
        template["Conditions"]["EventBusOn"],
        json!({"Fn::Equals": [{"Ref": "PublishToEventBus"}, "true"]})
    );
    // Ingest reads the same document, to queue only what a subscription takes.
    assert_eq!(
        sender.environment["SUBSCRIPTIONS_SECRET_ID"],
        ingest.environment["SUBSCRIPTIONS_SECRET_ID"]
    );

    // Logs: JSON at the chosen level (AWS_LAMBDA_LOG_FORMAT, AWS_LAMBDA_LOG_LEVEL).
    for function in &functions {
        let logging = &function.properties["LoggingConfig"];
        assert_eq!(logging["LogFormat"], "JSON", "{}", function.name);
        assert_eq!(logging["ApplicationLogLevel"]["Ref"], "LogLevel");
    }
}

#[test]
fn one_route_payload_urls_for_every_source_and_a_ttl_table() {
    let template = template();
    let functions = functions(&template);
    let events: Vec<_> = function(&functions, "ingest").properties["Events"]
        .as_object()
        .unwrap()
        .values()
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["Type"], "HttpApi");
    assert_eq!(events[0]["Properties"]["Path"], "/webhooks/{source}");

    let outputs: Vec<String> = template["Outputs"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|o| o["Value"]["Fn::Sub"].as_str().map(str::to_owned))
        .collect();
    for source in okr_core::Source::ALL {
        let suffix = format!("/webhooks/{source}");
        assert!(
            outputs
                .iter()
                .any(|o| o.starts_with("https://${WebhooksApi}") && o.ends_with(&suffix)),
            "no payload URL output for {source}"
        );
    }

    let (_, table) = of_type(&template, "AWS::DynamoDB::Table")[0];
    let table = &table["Properties"];
    assert_eq!(
        table["KeySchema"],
        json!([{"AttributeName": "id", "KeyType": "HASH"}])
    );
    assert_eq!(
        table["TimeToLiveSpecification"],
        json!({"AttributeName": "expires_at", "Enabled": true})
    );
}

#[test]
fn alarms_watch_every_dead_letter_queue_and_ingest() {
    let template = template();
    let alarms = of_type(&template, "AWS::CloudWatch::Alarm");
    let watched: BTreeSet<&str> = alarms
        .iter()
        .filter(|(_, a)| a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible")
        .filter_map(|(_, a)| target(&a["Properties"]["Dimensions"][0]["Value"]))
        .collect();
    let dead_letter_queues: BTreeSet<&str> = of_type(&template, "AWS::SQS::Queue")
        .iter()
        .filter_map(|(_, q)| target(&q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]))
        .collect();
    assert_eq!(watched, dead_letter_queues);
    let ingest_metric = |namespace: &str, metric: &str| {
        alarms.iter().any(|(_, a)| {
            a["Properties"]["Namespace"] == namespace && a["Properties"]["MetricName"] == metric
        })
    };
    assert!(ingest_metric("AWS/Lambda", "Errors"));
    assert!(ingest_metric(
        okr_pipeline::metrics::NAMESPACE,
        "Unavailable"
    ));
    let unavailable = alarms
        .iter()
        .find(|(_, a)| a["Properties"]["MetricName"] == "Unavailable")
        .unwrap()
        .1;
    // The metric's [Service] dimension set, as ingest writes it.
    assert_eq!(
        unavailable["Properties"]["Dimensions"],
        json!([{"Name": "Service", "Value": "ingest"}])
    );
    for (name, alarm) in &alarms {
        assert!(
            !alarm["Properties"]["AlarmActions"].is_null(),
            "{name} notifies nobody"
        );
    }
}

#[test]
fn alarms_watch_every_function_every_queue_age_and_every_source_signatures() {
    let template = template();
    let alarms = of_type(&template, "AWS::CloudWatch::Alarm");
    let watched = |namespace: &str, metric: &str| -> BTreeSet<&str> {
        alarms
            .iter()
            .filter(|(_, a)| {
                a["Properties"]["Namespace"] == namespace && a["Properties"]["MetricName"] == metric
            })
            .filter_map(|(_, a)| target(&a["Properties"]["Dimensions"][0]["Value"]))
            .collect()
    };
    // Errors of every function, the consumers included.
    let functions: BTreeSet<&str> = of_type(&template, "AWS::Serverless::Function")
        .iter()
        .map(|(name, _)| *name)
        .collect();
    assert_eq!(watched("AWS/Lambda", "Errors"), functions);
    // The age of the oldest message in every consumer queue.
    let consumer_queues: BTreeSet<&str> = of_type(&template, "AWS::SQS::Queue")
        .iter()
        .filter(|(_, q)| !q["Properties"]["RedrivePolicy"].is_null())
        .map(|(name, _)| *name)
        .collect();
    assert_eq!(
        consumer_queues.len(),
        okr_core::routing::Consumer::ALL.len()
    );
    assert_eq!(
        watched("AWS/SQS", "ApproximateAgeOfOldestMessage"),
        consumer_queues
    );
    // Per source: signatures failing while nothing is accepted, on the metrics and
    // dimensions ingest writes.
    for source in okr_core::Source::ALL {
        let record = okr_pipeline::metrics::IngestRecord {
            source: Some(source),
            reason: "invalid_signature",
            status: 401,
            enqueue_failures: 0,
        };
        let line: Value = serde_json::from_str(&okr_pipeline::metrics::emf_line(
            &record,
            time::OffsetDateTime::UNIX_EPOCH,
        ))
        .unwrap();
        let directive = &line["_aws"]["CloudWatchMetrics"][1];
        assert_eq!(directive["Dimensions"], json!([["Service", "Source"]]));
        let dimensions = json!([
            {"Name": "Service", "Value": line["Service"]},
            {"Name": "Source", "Value": source.as_str()},
        ]);
        let (name, alarm) = alarms
            .iter()
            .find(|(_, a)| {
                a["Properties"]["Metrics"]
                    .as_array()
                    .is_some_and(|queries| {
                        queries
                            .iter()
                            .any(|q| q["MetricStat"]["Metric"]["Dimensions"] == dimensions)
                    })
            })
            .unwrap_or_else(|| panic!("no signature alarm for {source}"));
        let queries = alarm["Properties"]["Metrics"].as_array().unwrap();
        let metrics: BTreeSet<&str> = queries
            .iter()
            .filter(|q| q["MetricStat"]["Metric"]["Dimensions"] == dimensions)
            .map(|q| q["MetricStat"]["Metric"]["MetricName"].as_str().unwrap())
            .collect();
        let written: BTreeSet<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(metrics, written, "{name}");
        assert_eq!(
            queries
                .iter()
                .filter(|q| q["ReturnData"] == true)
                .map(|q| q["Expression"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["IF(FILL(invalid, 0) >= 5 AND FILL(accepted, 0) == 0, 1, 0)"],
            "{name}"
        );
    }
}

/// `WAREHOUSE_URL` as the template sets it: the stack's bucket, no prefix.
fn the_bucket() -> okr_consumers::warehouse::WarehouseUrl {
    okr_consumers::warehouse::WarehouseUrl::S3 {
        bucket: "stand-in-WarehouseBucket".into(),
        prefix: String::new(),
    }
}

/// The `s3:PutObject` statement of the role of the function with `properties`.
fn put_object<'t>(template: &'t Value, properties: &Value) -> &'t Value {
    let role = target(&properties["Role"]).unwrap();
    resources(template)[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Action"] == "s3:PutObject")
        .unwrap()
}

#[test]
fn the_warehouse_bucket_is_encrypted_private_and_queried_where_the_sink_writes() {
    let template = template();
    let (_, bucket) = of_type(&template, "AWS::S3::Bucket")[0];
    let bucket = &bucket["Properties"];
    assert!(!bucket["BucketEncryption"].is_null());
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(bucket["PublicAccessBlockConfiguration"][setting], true);
    }
    let table = &resources(&template)["EventsTable"];
    let input = &table["Properties"]["TableInput"];
    assert_eq!(input["Parameters"]["projection.enabled"], "true");
    // The sink writes WAREHOUSE_URL/LAYOUT_PREFIX/date=.../ with WAREHOUSE_URL the bucket.
    let layout = okr_consumers::warehouse::LAYOUT_PREFIX;
    let location = input["StorageDescriptor"]["Location"]["Fn::Sub"]
        .as_str()
        .unwrap();
    assert_eq!(location, format!("s3://${{WarehouseBucket}}/{layout}/"));
    assert_eq!(
        input["Parameters"]["storage.location.template"]["Fn::Sub"],
        format!("s3://${{WarehouseBucket}}/{layout}/date=${{!date}}/")
    );
    assert_eq!(
        input["PartitionKeys"],
        json!([{"Name": "date", "Type": "string"}])
    );
    let functions = functions(&template);
    let sink = function(&functions, "warehouse-sink").properties;
    assert_eq!(
        sink["Environment"]["Variables"]["WAREHOUSE_URL"]["Fn::Sub"],
        "s3://${WarehouseBucket}"
    );
    let put = put_object(&template, sink);
    // The table's layout, and replays' objects apart from it: nothing else.
    let prefixes: Vec<&str> = one_or_many(&put["Resource"])
        .iter()
        .map(|r| r["Fn::Sub"].as_str().unwrap())
        .collect();
    assert_eq!(
        prefixes,
        [
            format!("${{WarehouseBucket.Arn}}/{layout}/*"),
            format!(
                "${{WarehouseBucket.Arn}}/{}/*",
                okr_consumers::warehouse::REPLAYS_PREFIX
            ),
        ]
    );
}

#[test]
fn the_people_table_reads_the_rows_the_snapshot_writes_where_it_writes_them() {
    let template = template();
    let input = &resources(&template)["PeopleTable"]["Properties"]["TableInput"];
    assert_eq!(input["Name"], "okr_people");
    assert_eq!(input["Parameters"]["projection.enabled"], "true");
    // The function writes WAREHOUSE_URL/PEOPLE_PREFIX/date=.../people.ndjson.gz.
    let prefix = okr_consumers::warehouse::people::PEOPLE_PREFIX;
    let key = okr_consumers::warehouse::people::snapshot_key(time::macros::date!(2026 - 12 - 07));
    assert_eq!(key, format!("{prefix}/date=2026-12-07/people.ndjson.gz"));
    assert_eq!(
        input["StorageDescriptor"]["Location"]["Fn::Sub"],
        format!("s3://${{WarehouseBucket}}/{prefix}/")
    );
    assert_eq!(
        input["Parameters"]["storage.location.template"]["Fn::Sub"],
        format!("s3://${{WarehouseBucket}}/{prefix}/date=${{!date}}/")
    );
    // Its columns are the row's fields, in order, with their types.
    let row = okr_consumers::warehouse::people::PersonRow {
        endpoint: "peopleforce".into(),
        id: "1".into(),
        name: None,
        email: None,
        manager_id: None,
        manager_email: None,
        team_lead: None,
        team_lead_email: None,
        department: None,
        division: None,
        position: None,
        active: true,
    };
    let fields: Vec<(String, &str)> = serde_json::to_value(&row)
        .unwrap()
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| {
            let kind = if value.is_boolean() {
                "boolean"
            } else {
                "string"
            };
            (name.clone(), kind)
        })
        .collect();
    let columns: Vec<(String, &str)> = input["StorageDescriptor"]["Columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["Name"].as_str().unwrap().to_owned(),
                c["Type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(columns, fields, "the columns are the row's fields");

    let functions = functions(&template);
    let snapshot = function(&functions, "people-snapshot");
    let read = read_with(&snapshot.environment, |env| {
        let config = okr_aws::config::PeopleSnapshotConfig::from_env(env).unwrap();
        assert_eq!(config.url, the_bucket());
    });
    assert_eq!(read, snapshot.environment.keys().cloned().collect());
    let put = put_object(&template, snapshot.properties);
    assert_eq!(
        put["Resource"]["Fn::Sub"],
        format!("${{WarehouseBucket.Arn}}/{prefix}/*"),
        "the snapshots' prefix only"
    );
    // Daily, passing its time.
    let schedule = &snapshot.properties["Events"]["Schedule"];
    assert_eq!(schedule["Type"], "ScheduleV2");
    let sample =
        std::fs::read_to_string(root().join("events/people-snapshot/scheduled.json")).unwrap();
    let run: okr_consumers::email::send::ScheduledRun = serde_json::from_str(&sample).unwrap();
    assert!(run.scheduled_time.is_some());
    assert!(
        schedule["Properties"]["Input"]
            .as_str()
            .unwrap()
            .contains("<aws.scheduler.scheduled-time>")
    );
}

#[test]
fn secrets_start_without_real_values_and_the_signing_secret_accepts_nothing() {
    let template = template();
    let secrets = of_type(&template, "AWS::SecretsManager::Secret");
    assert_eq!(
        secrets.len(),
        9,
        "signing, endpoints, Slack, alerts Slack, PagerDuty, email recipients, Slack bot token, subscriptions and their secrets"
    );
    for (name, secret) in &secrets {
        assert!(
            secret["Properties"]["GenerateSecretString"].is_null(),
            "{name}"
        );
        match secret["Properties"]["SecretString"].as_str() {
            None => {}
            Some(document) if *name == "EmailRecipientsSecret" => {
                // Nobody yet, in the format the functions read.
                let parsed = okr_consumers::email::recipients::Recipients::parse(document).unwrap();
                assert!(parsed.listed.is_empty());
            }
            Some(document) if *name == "SubscriptionsDocument" => {
                // No subscription yet, in the format ingest and the sender read.
                let parsed = okr_core::subscriptions::Subscriptions::parse(document).unwrap();
                assert!(parsed.subscriptions.is_empty());
            }
            Some(document) if *name == "SubscriptionSecrets" => {
                let parsed: okr_core::subscriptions::SubscriptionSecrets =
                    <_ as okr_pipeline::secrets::FromSecret>::from_secret(document).unwrap();
                assert!(parsed.is_empty());
            }
            Some(document) if *name == "EndpointsDocument" => {
                // No endpoints beyond the four built in, in the format ingest reads.
                let parsed = okr_core::endpoints::Endpoints::parse(document).unwrap();
                assert_eq!(parsed, okr_core::endpoints::Endpoints::builtin());
            }
            Some(document) => {
                // The signing secret: no source configured yet.
                let parsed = okr_core::signing::SigningSecrets::parse(document).unwrap();
                for source in okr_core::Source::ALL {
                    assert!(parsed.for_endpoint(source).is_empty(), "{name}: {source}");
                }
            }
        }
    }
}

#[test]
fn the_progress_table_has_the_key_and_index_the_store_uses() {
    let template = template();
    let table = &resources(&template)["ProgressTable"]["Properties"];
    assert_eq!(
        table["KeySchema"],
        json!([{"AttributeName": "key", "KeyType": "HASH"}])
    );
    let indexes = table["GlobalSecondaryIndexes"].as_array().unwrap();
    assert_eq!(indexes.len(), 1);
    assert_eq!(
        indexes[0]["IndexName"],
        okr_aws::progress_dynamodb::BY_WRITTEN_AT
    );
    assert_eq!(
        indexes[0]["KeySchema"],
        json!([
            {"AttributeName": "feed", "KeyType": "HASH"},
            {"AttributeName": "written_at", "KeyType": "RANGE"}
        ])
    );
    assert_eq!(indexes[0]["Projection"]["ProjectionType"], "ALL");
}

#[test]
fn the_delivery_log_groups_output_names_the_log_group_of_ingest_and_of_every_queue_consumer() {
    let template = template();
    // The functions an HTTP request or a queue runs: ingest and the consumers.
    let mut expected: Vec<String> = functions(&template)
        .iter()
        .filter(|f| {
            f.properties["Events"].as_object().is_some_and(|events| {
                events
                    .values()
                    .any(|e| e["Type"] == "SQS" || e["Type"] == "HttpApi")
            })
        })
        .map(|f| {
            f.properties["LoggingConfig"]["LogGroup"]["Ref"]
                .as_str()
                .unwrap_or_else(|| panic!("{} has no log group of its own", f.name))
                .to_owned()
        })
        .collect();
    expected.sort();
    let joined = &template["Outputs"]["DeliveryLogGroups"]["Value"]["Fn::Join"];
    assert_eq!(joined[0], ",");
    let mut named: Vec<String> = joined[1]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Ref"].as_str().unwrap().to_owned())
        .collect();
    named.sort();
    assert_eq!(named, expected);
    assert_eq!(named.len(), 6, "ingest and the five consumers");
}

#[test]
fn tracing_is_one_switch_for_every_function_and_spans_leave_only_for_an_endpoint() {
    let template = template();
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Tracing"], json!({"Ref": "Tracing"}));
    let tracing = &template["Parameters"]["Tracing"];
    assert_eq!(
        tracing["Default"], "PassThrough",
        "X-Ray costs: off unless asked"
    );
    assert_eq!(tracing["AllowedValues"], json!(["Active", "PassThrough"]));
    assert_eq!(
        globals["Environment"]["Variables"]["OTEL_EXPORTER_OTLP_ENDPOINT"],
        json!({"Ref": "OtlpEndpoint"})
    );
    // The default endpoint, as the functions read it: nothing is exported.
    let default = template["Parameters"]["OtlpEndpoint"]["Default"]
        .as_str()
        .unwrap()
        .to_owned();
    let env = |name: &str| (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| default.clone());
    assert_eq!(
        okr_pipeline::trace::Export::from_env(&env),
        okr_pipeline::trace::Export::Off
    );
    assert!(
        functions(&template)
            .iter()
            .all(|f| f.properties["Tracing"].is_null()
                && !f.environment.contains_key("OTEL_EXPORTER_OTLP_ENDPOINT")),
        "no function overrides the switch"
    );

    // Active tracing may write segments from every function's role, and only then: a
    // statement of the role's own policy (created with the role, so Lambda, which checks
    // the permission when tracing is turned on, never sees the role without it).
    assert_eq!(
        template["Conditions"]["TracingActive"],
        json!({"Fn::Equals": [{"Ref": "Tracing"}, "Active"]})
    );
    for function in functions(&template) {
        let role = target(&function.properties["Role"]).unwrap();
        let statements: Vec<&Value> = resources(&template)[role]["Properties"]["Policies"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap())
            .filter(|s| s["Fn::If"][0] == "TracingActive")
            .collect();
        assert_eq!(statements.len(), 1, "{role}");
        let branches = &statements[0]["Fn::If"];
        assert_eq!(
            branches[1],
            json!({
                "Effect": "Allow",
                "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                "Resource": "*"
            }),
            "{role}"
        );
        assert_eq!(branches[2], json!({"Ref": "AWS::NoValue"}), "{role}");
    }
}
