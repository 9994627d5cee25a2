//! The AWS adapters of the pipeline's ports (SQS, DynamoDB, S3, Secrets Manager, SES),
//! the Lambda functions' configuration from their environment, and the stalled check
//! wired from it.

pub mod config;
pub mod directory_dynamodb;
pub mod dynamodb;
pub mod eventbridge;
pub mod progress_dynamodb;
pub mod s3;
pub mod s3_archive;
pub mod secrets_manager;
pub mod ses;
pub mod sqs;
pub mod sqs_dlq;
pub mod stalled;
