//! lambda_runtime's hello world, built with the same profile as the functions: the
//! yardstick for their start-up (`tests/load/init.py`) and package size
//! (`tests/load/sizes.py`). It answers each invocation with its payload.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(event.payload)
    }))
    .await
}
