//! A deployed stack's outputs: the names of its tables, for the commands that read them
//! with the user's own AWS credentials.

use anyhow::{Context, Result};

/// The output naming the read model's table.
pub const PROGRESS_OUTPUT: &str = "ProgressTableName";
/// The output naming the idempotency table (each subscription's health).
pub const IDEMPOTENCY_OUTPUT: &str = "IdempotencyTableName";
/// The output naming the directory's table.
pub const DIRECTORY_OUTPUT: &str = "DirectoryTableName";

/// The value of a stack's output `output` (a table's name).
pub async fn output(aws: &aws_config::SdkConfig, stack: &str, output: &str) -> Result<String> {
    let described = aws_sdk_cloudformation::Client::new(aws)
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .with_context(|| format!("cannot describe the stack {stack}"))?;
    described
        .stacks()
        .iter()
        .flat_map(|s| s.outputs())
        .find(|o| o.output_key() == Some(output))
        .and_then(|o| o.output_value())
        .map(str::to_owned)
        .with_context(|| format!("the stack {stack} has no {output} output (deployed before it was added? sam deploy it again)"))
}
