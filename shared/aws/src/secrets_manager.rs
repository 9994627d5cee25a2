//! Secrets from AWS Secrets Manager: the signing secrets (a JSON string) and the
//! outbound credentials.

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;

use okr_pipeline::secrets::{FromSecret, SecretStore, SecretsError};

/// Reads the secret `secret_id` (a name or ARN) as any [`FromSecret`] value.
#[derive(Debug, Clone)]
pub struct SecretsManagerStore {
    client: Client,
    secret_id: String,
}

impl SecretsManagerStore {
    /// A store reading `secret_id` through `client`.
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        SecretsManagerStore {
            client,
            secret_id: secret_id.into(),
        }
    }
}

#[async_trait]
impl<T: FromSecret + 'static> SecretStore<T> for SecretsManagerStore {
    async fn fetch(&self) -> Result<T, SecretsError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|error| SecretsError::Unavailable(Box::new(error)))?;
        let document = output
            .secret_string()
            .ok_or_else(|| SecretsError::Invalid("the secret has no string value".into()))?;
        T::from_secret(document)
    }
}
