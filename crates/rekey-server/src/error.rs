//! Owns [`ApiError`], the one type every management failure becomes, and its mapping to an ARM error
//! response (status, `{"error":{code,message}}`, and `WWW-Authenticate` for 401). Messages never
//! carry a secret: they are built from names, ids and the caller's own non-secret input.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rekey_api::ErrorResponse;
use rekey_core::{InvalidInput, ResourceId};
use rekey_store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    Conflict {
        code: &'static str,
        message: String,
    },
    /// 400 with an ARM code.
    BadRequest {
        code: &'static str,
        message: String,
    },
    /// 401; `challenge` is the `WWW-Authenticate` value.
    Unauthenticated {
        code: &'static str,
        message: String,
        challenge: String,
    },
    Forbidden {
        code: &'static str,
        message: String,
    },
    NotFound {
        code: &'static str,
        message: String,
    },
    MethodNotAllowed(String),
    /// 413: the request body is larger than the server accepts.
    PayloadTooLarge,
    /// 408: the client did not send its request body in time.
    RequestTimeout,
    /// The store or a cache could not confirm a change; the client should retry.
    Unavailable,
    Internal,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &str, &str) {
        match self {
            ApiError::BadRequest { code, message } => (StatusCode::BAD_REQUEST, code, message),
            ApiError::Unauthenticated { code, message, .. } => {
                (StatusCode::UNAUTHORIZED, code, message)
            }
            ApiError::Forbidden { code, message } => (StatusCode::FORBIDDEN, code, message),
            ApiError::NotFound { code, message } => (StatusCode::NOT_FOUND, code, message),
            ApiError::Conflict { code, message } => (StatusCode::CONFLICT, code, message),
            ApiError::MethodNotAllowed(message) => {
                (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
            }
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                "The request body is larger than this server accepts.",
            ),
            ApiError::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "RequestTimeout",
                "The request body did not arrive in time; the connection is closed.",
            ),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The service is temporarily unavailable. Please retry the request.",
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "The server encountered an internal error. Please retry the request.",
            ),
        }
    }

    /// A store failure seen while working on `id` (when there is one), as ARM would report it.
    pub fn from_store(err: StoreError, id: Option<&ResourceId>) -> Self {
        match err {
            StoreError::SubscriptionNotFound(sub) => ApiError::NotFound {
                code: "SubscriptionNotFound",
                message: format!("The subscription '{sub}' could not be found."),
            },
            StoreError::ResourceGroupNotFound(group) => ApiError::NotFound {
                code: "ResourceGroupNotFound",
                message: format!("Resource group '{group}' could not be found."),
            },
            StoreError::ResourceNotFound(raw) => ApiError::NotFound {
                code: "ResourceNotFound",
                message: match id {
                    Some(id) => format!(
                        "The Resource '{}/{}' under resource group '{}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
                        id.provider.type_name(),
                        id.name,
                        id.group
                    ),
                    None => format!("The Resource '{raw}' was not found."),
                },
            },
            StoreError::AssignmentUpdateNotPermitted(_) => ApiError::BadRequest {
                code: "RoleAssignmentUpdateNotPermitted",
                message: "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.".into(),
            },
            StoreError::AssignmentExists(_) => ApiError::Conflict {
                code: "RoleAssignmentExists",
                message: "The role assignment already exists.".into(),
            },
            StoreError::Unavailable(e) => {
                tracing::warn!(error = %e, "the database is unavailable");
                ApiError::Unavailable
            }
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::Internal
            }
        }
    }
}

impl From<InvalidInput> for ApiError {
    fn from(e: InvalidInput) -> Self {
        ApiError::BadRequest {
            code: e.code,
            message: e.message,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::from_store(e, None)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let mut response = (status, Json(ErrorResponse::new(code, message))).into_response();
        if let ApiError::Unavailable = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let ApiError::Unauthenticated { challenge, .. } = &self {
            if let Ok(value) = HeaderValue::from_str(challenge) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}
