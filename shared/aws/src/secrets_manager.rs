//! Secrets from AWS Secrets Manager: the signing secrets (a JSON string) and the
//! outbound credentials.

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;

use okr_core::Source;
use okr_core::signing::{SigningSecret, has_secret};
use okr_pipeline::secrets::{Adopted, FromSecret, SecretStore, SecretWriter, SecretsError};
use serde_json::Value;

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

/// A handshake's secret, kept in the signing-secrets secret under the endpoint's name:
/// read, checked that the endpoint has none, and written as a new version. Secrets
/// Manager has no conditional write, so two handshakes for one endpoint within the same
/// moment could both pass the check; a handshake comes once, when the webhook is made,
/// and later ones meet the kept secret.
#[async_trait]
impl SecretWriter for SecretsManagerStore {
    async fn adopt(
        &self,
        endpoint: Source,
        secret: &SigningSecret,
    ) -> Result<Adopted, SecretsError> {
        let unavailable =
            |error: Box<dyn std::error::Error + Send + Sync>| SecretsError::Unavailable(error);
        let current = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| unavailable(Box::new(e)))?;
        let mut document = match current.secret_string().map(serde_json::from_str::<Value>) {
            Some(Ok(Value::Object(map))) => map,
            _ => {
                return Err(SecretsError::Invalid(
                    "the signing secrets are not a JSON object".into(),
                ));
            }
        };
        if has_secret(document.get(endpoint.as_str())) {
            return Ok(Adopted::AlreadySet);
        }
        document.insert(
            endpoint.as_str().to_owned(),
            Value::String(secret.expose().to_owned()),
        );
        let text = Value::Object(document).to_string();
        self.client
            .put_secret_value()
            .secret_id(&self.secret_id)
            .secret_string(text)
            .send()
            .await
            .map_err(|e| unavailable(Box::new(e)))?;
        Ok(Adopted::Kept)
    }
}
