//! Owns the management API's routing table: one [`RouteTable`] registers each route with axum and
//! describes it in the OpenAPI document at the same time, so `/openapi.json` cannot drift from what
//! is served; the [`Op`] that describes one operation; and the extractors every ARM handler shares
//! (path, query, `api-version`, JSON body).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::Method;
use axum::routing::MethodRouter;
use axum::Router;
use rekey_api::mapping::NamedSchemas;
use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, ObjectBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Required, ResponseBuilder,
    Schema, Type,
};

use crate::error::ApiError;
use crate::state::AppState;

/// One operation's description for OpenAPI.
pub struct Op {
    pub id: String,
    pub summary: String,
    /// Request body: each content type it may come in with its schema name, and whether it must.
    body: Vec<(&'static str, String)>,
    body_required: bool,
    /// The answers, in the order documented.
    responses: Vec<Answer>,
    /// ARM operations take `api-version`.
    pub api_version: bool,
    /// The api-versions the operation accepts, documented as the parameter's enum.
    pub api_versions: &'static [&'static str],
    /// Patterns of path parameters beyond the common ones (the resource name's naming rule).
    pub params: Vec<(&'static str, ParamRule)>,
    /// Query, header and cookie parameters.
    extra_params: Vec<Param>,
    /// Operations that need a bearer token.
    pub auth: bool,
}

/// A documented query, header or cookie parameter.
struct Param {
    name: &'static str,
    location: ParameterIn,
    required: bool,
    description: String,
    schema: RefOr<Schema>,
}

/// One documented answer: status, description, body and headers.
struct Answer {
    status: u16,
    description: &'static str,
    /// Content type and schema.
    content: Option<(String, RefOr<Schema>)>,
    /// Headers the answer always carries: name and description.
    headers: Vec<(&'static str, &'static str)>,
}

/// The documented shape of a string path parameter.
#[derive(Debug, Clone, Copy)]
pub struct ParamRule {
    pub pattern: &'static str,
    pub min_len: usize,
    pub max_len: usize,
}

/// `subscriptionId` is a UUID in any letter case (ARM's own pattern).
const SUBSCRIPTION_ID: ParamRule = ParamRule {
    pattern: "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    min_len: 36,
    max_len: 36,
};

/// Resource group names: letters, digits, `_`, `-`, `.`, `(`, `)`, not ending in `.`
/// ([`rekey_core::ResourceGroupName`]).
const RESOURCE_GROUP_NAME: ParamRule = ParamRule {
    pattern: "^[-\\w._()]*[-\\w()]$",
    min_len: 1,
    max_len: 90,
};

impl Op {
    pub fn arm(id: impl Into<String>, summary: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            summary: summary.into(),
            body: Vec::new(),
            body_required: false,
            responses: Vec::new(),
            api_version: true,
            api_versions: &[],
            params: Vec::new(),
            extra_params: Vec::new(),
            auth: true,
        }
    }

    /// The api-versions this operation accepts.
    pub fn versions(mut self, versions: &'static [&'static str]) -> Self {
        self.api_versions = versions;
        self
    }

    /// Documents a path parameter's naming rule.
    pub fn param(mut self, name: &'static str, rule: &rekey_core::providers::NameRule) -> Self {
        self.params.push((
            name,
            ParamRule {
                pattern: rule.pattern,
                min_len: rule.min_len,
                max_len: rule.max_len,
            },
        ));
        self
    }

    /// Documents the shape of a path parameter.
    pub fn path_rule(mut self, name: &'static str, rule: ParamRule) -> Self {
        self.params.push((name, rule));
        self
    }

    /// Needs a bearer token but no `api-version` (rekey's own routes such as `/verify`).
    pub fn authenticated(id: impl Into<String>, summary: impl Into<String>) -> Self {
        Self {
            api_version: false,
            ..Self::arm(id, summary)
        }
    }

    pub fn public(id: impl Into<String>, summary: impl Into<String>) -> Self {
        Self {
            api_version: false,
            auth: false,
            ..Self::arm(id, summary)
        }
    }

    /// A JSON request body of the component `schema`.
    pub fn body(self, schema: impl Into<String>, required: bool) -> Self {
        self.body_as("application/json", schema, required)
    }

    /// A request body in `content_type` (call once per content type the operation reads).
    pub fn body_as(
        mut self,
        content_type: &'static str,
        schema: impl Into<String>,
        required: bool,
    ) -> Self {
        self.body.push((content_type, schema.into()));
        self.body_required = required;
        self
    }

    /// An answer; `schema` names a JSON component, or [`TEXT`] for a plain-text body.
    pub fn response(
        mut self,
        status: u16,
        description: &'static str,
        schema: Option<String>,
    ) -> Self {
        let content = schema.map(|schema| match schema.as_str() {
            TEXT => (TEXT.to_string(), string_schema().build().into()),
            name => (
                "application/json".to_string(),
                Ref::from_schema_name(name).into(),
            ),
        });
        self.responses.push(Answer {
            status,
            description,
            content,
            headers: Vec::new(),
        });
        self
    }

    /// An answer whose body is text of `content_type` (a page, a script, a stylesheet).
    pub fn response_text(
        mut self,
        status: u16,
        description: &'static str,
        content_type: &str,
    ) -> Self {
        self.responses.push(Answer {
            status,
            description,
            content: Some((content_type.to_string(), string_schema().build().into())),
            headers: Vec::new(),
        });
        self
    }

    /// A header the answer with `status` (documented before) always carries.
    pub fn response_header(
        mut self,
        status: u16,
        name: &'static str,
        description: &'static str,
    ) -> Self {
        self.responses
            .iter_mut()
            .find(|a| a.status == status)
            .unwrap_or_else(|| panic!("{}: no {status} answer to add {name} to", self.id))
            .headers
            .push((name, description));
        self
    }

    /// A query parameter.
    pub fn query(
        self,
        name: &'static str,
        required: bool,
        description: impl Into<String>,
        schema: impl Into<RefOr<Schema>>,
    ) -> Self {
        self.extra_param(ParameterIn::Query, name, required, description, schema)
    }

    /// A request header.
    pub fn header(
        self,
        name: &'static str,
        required: bool,
        description: impl Into<String>,
        schema: impl Into<RefOr<Schema>>,
    ) -> Self {
        self.extra_param(ParameterIn::Header, name, required, description, schema)
    }

    /// A cookie.
    pub fn cookie(
        self,
        name: &'static str,
        required: bool,
        description: impl Into<String>,
        schema: impl Into<RefOr<Schema>>,
    ) -> Self {
        self.extra_param(ParameterIn::Cookie, name, required, description, schema)
    }

    fn extra_param(
        mut self,
        location: ParameterIn,
        name: &'static str,
        required: bool,
        description: impl Into<String>,
        schema: impl Into<RefOr<Schema>>,
    ) -> Self {
        self.extra_params.push(Param {
            name,
            location,
            required,
            description: description.into(),
            schema: schema.into(),
        });
        self
    }
}

/// Routes and their OpenAPI description, built together.
pub struct RouteTable {
    /// Routes behind bearer-token authentication.
    pub arm: Router<AppState>,
    pub public: Router<AppState>,
    pub openapi: OpenApi,
}

fn json_content(schema: &str) -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(schema)))
        .build()
}

/// A response "schema" naming a plain-text body rather than a JSON component.
pub const TEXT: &str = "text/plain";

/// A string schema: the start of most parameter schemas.
pub fn string_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn param_schema(rule: Option<ParamRule>) -> ObjectBuilder {
    match rule {
        Some(rule) => string_schema()
            .pattern(Some(rule.pattern))
            .min_length(Some(rule.min_len))
            .max_length(Some(rule.max_len)),
        None => string_schema(),
    }
}

impl Default for RouteTable {
    fn default() -> Self {
        Self::new()
    }
}

impl RouteTable {
    pub fn new() -> Self {
        let mut openapi = OpenApiBuilder::new()
            .info(
                utoipa::openapi::InfoBuilder::new()
                    .title("rekey")
                    .version(env!("CARGO_PKG_VERSION"))
                    .description(Some("ARM-compatible management of dual access keys."))
                    .build(),
            )
            .build();
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        let mut all = Vec::new();
        rekey_api::mapping::schema_of::<rekey_api::ErrorResponse>(&mut all);
        let mut table = Self {
            arm: Router::new(),
            public: Router::new(),
            openapi,
        };
        table.schemas(all);
        table
    }

    /// Registers component schemas. Two different schemas under one name would make one type's
    /// operations document the other's bodies, so that is refused.
    pub fn schemas(&mut self, schemas: NamedSchemas) {
        let components = self.openapi.components.get_or_insert_with(Default::default);
        for (name, schema) in schemas {
            if let Some(existing) = components.schemas.get(&name) {
                assert!(
                    existing == &schema,
                    "two different OpenAPI schemas are named {name}: give one `#[schema(as = …)]`"
                );
            }
            components.schemas.insert(name, schema);
        }
    }

    /// Replaces the schema of `property` in the registered object schema `component`: for rules a
    /// wire type cannot state itself (the patterns of [`crate::rules`], owned by this crate).
    pub fn refine(&mut self, component: &str, property: &str, schema: impl Into<RefOr<Schema>>) {
        let components = self.openapi.components.get_or_insert_with(Default::default);
        match components.schemas.get_mut(component) {
            Some(RefOr::T(Schema::Object(object))) => {
                assert!(
                    object.properties.contains_key(property),
                    "{component} has no property {property}"
                );
                object
                    .properties
                    .insert(property.to_string(), schema.into());
            }
            _ => panic!("{component} is not a registered object schema"),
        }
    }

    /// Registers `{item}List`, ARM's list envelope of `item`, and returns its name.
    pub fn list_schema(&mut self, item: &str) -> String {
        let name = format!("{item}List");
        let schema = ObjectBuilder::new()
            .property(
                "value",
                utoipa::openapi::ArrayBuilder::new().items(Ref::from_schema_name(item)),
            )
            .required("value")
            .property("nextLink", string_schema())
            .build();
        self.schemas(vec![(name.clone(), schema.into())]);
        name
    }

    /// Serves `handler` for `method` at `path` (axum syntax, `{param}`), and documents it.
    pub fn route(&mut self, method: Method, path: &str, op: Op, handler: MethodRouter<AppState>) {
        let auth = op.auth;
        self.document(method, path, op);
        self.serve(path, auth, handler);
    }

    /// Serves `handler` at `path` without documenting it; pair with [`RouteTable::document`].
    pub fn serve(&mut self, path: &str, auth: bool, handler: MethodRouter<AppState>) {
        if auth {
            self.arm = std::mem::take(&mut self.arm).route(path, handler);
        } else {
            self.public = std::mem::take(&mut self.public).route(path, handler);
        }
    }

    /// Describes one operation in the OpenAPI document.
    pub fn document(&mut self, method: Method, path: &str, op: Op) {
        let mut builder = OperationBuilder::new()
            .operation_id(Some(op.id))
            .summary(Some(op.summary));
        for param in path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        {
            let rule = match param {
                "subscriptionId" => Some(SUBSCRIPTION_ID),
                "resourceGroupName" => Some(RESOURCE_GROUP_NAME),
                other => op.params.iter().find(|(n, _)| *n == other).map(|(_, r)| *r),
            };
            builder = builder.parameter(
                ParameterBuilder::new()
                    .name(param)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(param_schema(rule))),
            );
        }
        if op.auth {
            builder = builder
                .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
                .response(
                    "default",
                    ResponseBuilder::new()
                        .description("ARM error")
                        .content("application/json", json_content("ErrorResponse")),
                );
        }
        if op.api_version {
            let mut schema = string_schema();
            if !op.api_versions.is_empty() {
                schema = schema.enum_values(Some(op.api_versions.iter().copied()));
            }
            builder = builder.parameter(
                ParameterBuilder::new()
                    .name("api-version")
                    .parameter_in(ParameterIn::Query)
                    .required(Required::True)
                    .schema(Some(schema)),
            );
        }
        for param in op.extra_params {
            let mut parameter = ParameterBuilder::new()
                .name(param.name)
                .parameter_in(param.location)
                .required(if param.required {
                    Required::True
                } else {
                    Required::False
                })
                .schema(Some(param.schema));
            if !param.description.is_empty() {
                parameter = parameter.description(Some(param.description));
            }
            builder = builder.parameter(parameter);
        }
        if !op.body.is_empty() {
            let mut body = RequestBodyBuilder::new().required(Some(if op.body_required {
                Required::True
            } else {
                Required::False
            }));
            for (content_type, schema) in &op.body {
                body = body.content(*content_type, json_content(schema));
            }
            builder = builder.request_body(Some(body.build()));
        }
        for answer in op.responses {
            let mut response = ResponseBuilder::new().description(answer.description);
            if let Some((content_type, schema)) = answer.content {
                response = response.content(
                    content_type,
                    ContentBuilder::new().schema(Some(schema)).build(),
                );
            }
            for (name, description) in answer.headers {
                response = response.header(
                    name,
                    HeaderBuilder::new()
                        .schema(string_schema())
                        .description(Some(description))
                        .build(),
                );
            }
            builder = builder.response(answer.status.to_string(), response);
        }
        let http_method = match method {
            Method::GET => HttpMethod::Get,
            Method::PUT => HttpMethod::Put,
            Method::POST => HttpMethod::Post,
            Method::PATCH => HttpMethod::Patch,
            Method::DELETE => HttpMethod::Delete,
            Method::HEAD => HttpMethod::Head,
            ref other => panic!("route table has no OpenAPI mapping for {other}"),
        };
        self.openapi
            .paths
            .add_path_operation(path, vec![http_method], builder.build());
    }
}

/// Path parameters, with a bad path answered as an ARM 400 instead of axum's plain text.
pub struct ArmPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ArmPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ArmPath(v))
            .map_err(|e| {
                ApiError::bad_request(
                    "InvalidRequestFormat",
                    format!("The request path is invalid: {e}."),
                )
            })
    }
}

/// The query string as a map, with a malformed one (say, percent-encoded bytes that are not UTF-8)
/// answered as an ARM 400 instead of axum's plain text.
pub struct ArmQuery(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for ArmQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .map(|Query(q)| ArmQuery(q))
            .map_err(|e| {
                ApiError::bad_request(
                    "InvalidRequestFormat",
                    format!("The query string is invalid: {e}."),
                )
            })
    }
}

/// The `api-version` query parameter, checked by the handler against the versions its type supports.
pub struct ApiVersion(Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ApiVersion {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Query(query) =
            Query::<HashMap<String, String>>::try_from_uri(&parts.uri).map_err(|e| {
                ApiError::bad_request(
                    "InvalidRequestFormat",
                    format!("The query string is invalid: {e}."),
                )
            })?;
        Ok(ApiVersion(query.get("api-version").cloned()))
    }
}

impl ApiVersion {
    /// From an already parsed query string.
    pub fn from_query(query: &HashMap<String, String>) -> Self {
        ApiVersion(query.get("api-version").cloned())
    }

    /// The version as sent (empty when missing); meaningful after [`ApiVersion::check`].
    pub fn as_str(&self) -> &str {
        self.0.as_deref().unwrap_or_default()
    }

    pub fn check(&self, supported: &[&str]) -> Result<(), ApiError> {
        match &self.0 {
            None => Err(ApiError::bad_request(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )),
            Some(v) if supported.contains(&v.as_str()) => Ok(()),
            Some(v) => Err(ApiError::bad_request(
                "InvalidApiVersionParameter",
                format!(
                    "The api-version '{v}' is invalid. The supported versions are '{}'.",
                    supported.join(",")
                ),
            )),
        }
    }
}

/// Parses a JSON request body; an empty or malformed one is ARM's `InvalidRequestContent`.
pub fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: the body is empty.",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "InvalidRequestContent",
            format!("The request content was invalid and could not be deserialized: {e}."),
        )
    })
}

/// Parses a JSON object body into `T`. serde would also build a struct from a JSON array (its
/// fields in order), so `[{}]` would pass for `{"tags":{}}`; ARM bodies are objects, so anything
/// else is refused first.
pub fn object_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let value = json_body(body)?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "InvalidRequestContent",
            "The request content must be a JSON object.",
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        ApiError::bad_request(
            "InvalidRequestContent",
            format!("The request content is invalid: {e}."),
        )
    })
}
