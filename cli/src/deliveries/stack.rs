//! `okr-webhooks deliveries --stack NAME`: the deliveries and journeys of a deployed
//! stack, from the log lines its functions write (`delivery`, `journey step`), with
//! CloudWatch Logs Insights over the log groups the stack's `DeliveryLogGroups` output
//! names. The query filters on the server; the lines are checked against the same
//! filter here too, and parsed as the functions' JSON log lines.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_sdk_cloudwatchlogs::types::QueryStatus;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use okr_consumers::deliveries::{Delivery, Filter};
use okr_pipeline::journal::Step;

/// The output naming the log groups, comma-separated.
pub const LOG_GROUPS_OUTPUT: &str = "DeliveryLogGroups";
/// How long a query may take before the command gives up.
const QUERY_WAIT: Duration = Duration::from_secs(60);

/// The deliveries `filter` matches in `stack`'s logs between `since` and now, newest
/// first, and (with an event id in the filter) the event's journey.
pub async fn read(
    stack: &str,
    filter: &Filter,
    since: OffsetDateTime,
) -> Result<(Vec<Delivery>, Vec<Step>)> {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let groups: Vec<String> = crate::stack::output(&aws, stack, LOG_GROUPS_OUTPUT)
        .await?
        .split(',')
        .map(str::to_owned)
        .collect();
    let client = aws_sdk_cloudwatchlogs::Client::new(&aws);
    let now = OffsetDateTime::now_utc();
    let window = (since, now);
    let lines = query(&client, &groups, window, &deliveries_query(filter)).await?;
    let mut deliveries: Vec<Delivery> = lines
        .iter()
        .filter_map(|line| delivery(line))
        .filter(|d| filter.matches(d))
        .collect();
    deliveries.sort_by_key(|d| std::cmp::Reverse(d.time));
    deliveries.truncate(filter.limit());
    let steps = match &filter.event_id {
        Some(id) => {
            let lines = query(&client, &groups, window, &journey_query(id)).await?;
            let mut steps: Vec<Step> = lines
                .iter()
                .filter_map(|line| step(line))
                .filter(|s| s.event_id == *id)
                .collect();
            steps.sort_by_key(|s| s.time);
            steps
        }
        None => Vec::new(),
    };
    Ok((deliveries, steps))
}

/// `value` as a Logs Insights string literal.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The query for the deliveries `filter` matches.
fn deliveries_query(filter: &Filter) -> String {
    let mut wanted = vec!["fields.message = \"delivery\"".to_owned()];
    let fields = [
        ("endpoint", &filter.endpoint),
        ("outcome", &filter.outcome),
        ("event_id", &filter.event_id),
        ("type", &filter.event_type),
    ];
    for (field, value) in fields {
        if let Some(value) = value {
            wanted.push(format!("fields.{field} = {}", quoted(value)));
        }
    }
    format!(
        "fields @timestamp, @message\n| filter {}\n| sort @timestamp desc\n| limit {}",
        wanted.join(" and "),
        filter.limit()
    )
}

/// The query for `event_id`'s journey.
fn journey_query(event_id: &str) -> String {
    format!(
        "fields @timestamp, @message\n| filter fields.message = \"journey step\" and fields.event_id = {}\n| sort @timestamp asc\n| limit 1000",
        quoted(event_id)
    )
}

/// Run `query` over `groups` in `window`: each result's `@message`.
async fn query(
    client: &aws_sdk_cloudwatchlogs::Client,
    groups: &[String],
    (since, until): (OffsetDateTime, OffsetDateTime),
    query: &str,
) -> Result<Vec<String>> {
    let started = client
        .start_query()
        .set_log_group_names(Some(groups.to_vec()))
        .start_time(since.unix_timestamp())
        .end_time(until.unix_timestamp() + 1)
        .query_string(query)
        .send()
        .await
        .context("cannot start the Logs Insights query")?;
    let id = started
        .query_id()
        .context("Logs Insights gave no query id")?;
    let deadline = tokio::time::Instant::now() + QUERY_WAIT;
    loop {
        let results = client
            .get_query_results()
            .query_id(id)
            .send()
            .await
            .context("cannot read the Logs Insights query's results")?;
        match results.status() {
            Some(QueryStatus::Complete) => {
                return Ok(results
                    .results()
                    .iter()
                    .filter_map(|row| {
                        row.iter()
                            .find(|f| f.field() == Some("@message"))
                            .and_then(|f| f.value())
                            .map(str::to_owned)
                    })
                    .collect());
            }
            Some(QueryStatus::Running | QueryStatus::Scheduled) | None => {}
            Some(other) => bail!("the Logs Insights query ended {}", other.as_str()),
        }
        if tokio::time::Instant::now() > deadline {
            // Not left running (and paid for) after the command gave up.
            let _ = client.stop_query().query_id(id).send().await;
            bail!("the Logs Insights query did not finish in a minute");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A function's JSON log line: its time and its fields, when its message is `message`.
fn fields<'l>(
    line: &'l Value,
    message: &str,
) -> Option<(OffsetDateTime, &'l serde_json::Map<String, Value>)> {
    let fields = line.get("fields")?.as_object()?;
    if fields.get("message")?.as_str()? != message {
        return None;
    }
    let time = OffsetDateTime::parse(line.get("timestamp")?.as_str()?, &Rfc3339).ok()?;
    Some((time, fields))
}

fn text(fields: &serde_json::Map<String, Value>, name: &str) -> String {
    match fields.get(name) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn number(fields: &serde_json::Map<String, Value>, name: &str) -> u64 {
    match fields.get(name) {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

/// A `delivery` line as the delivery it records.
fn delivery(line: &str) -> Option<Delivery> {
    let line: Value = serde_json::from_str(line).ok()?;
    let (time, fields) = fields(&line, "delivery")?;
    let some = |name| Some(text(fields, name)).filter(|t| !t.is_empty());
    Some(Delivery {
        time,
        endpoint: text(fields, "endpoint"),
        method: text(fields, "method"),
        status: number(fields, "status") as u16,
        outcome: text(fields, "outcome"),
        reason: text(fields, "reason"),
        event_id: some("event_id"),
        event_type: some("type"),
        body_bytes: number(fields, "body_bytes") as usize,
        body_sha256: some("body_sha256"),
        headers: serde_json::from_str(&text(fields, "headers")).unwrap_or_default(),
        body: None,
        trace_id: some("trace_id"),
    })
}

/// A `journey step` line as its step.
fn step(line: &str) -> Option<Step> {
    let line: Value = serde_json::from_str(line).ok()?;
    let (time, fields) = fields(&line, "journey step")?;
    Some(Step {
        event_id: text(fields, "event_id"),
        consumer: text(fields, "consumer"),
        outcome: text(fields, "outcome"),
        time,
        attempt: number(fields, "attempt") as u32,
        detail: text(fields, "detail"),
        replay: Some(text(fields, "replay")).filter(|r| !r.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_filters_on_the_fields_and_quotes_what_it_is_given() {
        let filter = Filter {
            endpoint: Some("peopleforce".into()),
            outcome: Some("refused".into()),
            event_type: Some("a\"b".into()),
            ..Filter::default()
        };
        assert_eq!(
            deliveries_query(&filter),
            "fields @timestamp, @message\n| filter fields.message = \"delivery\" and fields.endpoint = \"peopleforce\" and fields.outcome = \"refused\" and fields.type = \"a\\\"b\"\n| sort @timestamp desc\n| limit 100"
        );
    }
}
