//! Owns the management API's routing table: one [`RouteTable`] registers each route with axum and
//! describes it in the OpenAPI document at the same time, so `/openapi.json` cannot drift from what
//! is served; the [`Op`] that describes one operation; and the extractors every ARM handler shares
//! (path, query, `api-version`, JSON body).
//!
//! What an ARM operation's [`Op`] declares is also what is checked: [`RouteTable::route`] puts a
//! layer in front of its handler that refuses an `api-version` outside [`Op::versions`] and a path
//! parameter breaking its rule (`subscriptionId`, `resourceGroupName`, and those of [`Op::param`]
//! and [`Op::path_rule`]), in that order, with ARM's 400s. A handler needs to check neither: it
//! takes the values the layer parsed ([`Parsed`]: a [`SubscriptionId`], a [`ResourceGroupName`],
//! the [`ResourceId`] of an [`Op::param`] route).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{Extensions, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;
use rekey_api::mapping::NamedSchemas;
use rekey_core::{Provider, ResourceGroupName, ResourceId, ResourceName, SubscriptionId};
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
    /// Path parameters beyond the common ones (the resource name's naming rule): documented
    /// shape, and the check that enforces it.
    params: Vec<PathParam>,
    /// Query, header and cookie parameters.
    extra_params: Vec<Param>,
    /// Operations that need a bearer token.
    pub auth: bool,
    /// The keyed resource type whose name [`Op::param`] checks.
    provider: Option<&'static Provider>,
}

/// Checks one path parameter's value; `Err` is the refusal the request gets. What it parsed, if
/// anything, it leaves in the request's extensions for [`Parsed`].
type PathCheck = Arc<dyn Fn(&str, &mut Extensions) -> Result<(), ApiError> + Send + Sync>;

/// A path parameter with a rule: documented as `rule`, enforced by `check`.
struct PathParam {
    name: &'static str,
    rule: ParamRule,
    check: PathCheck,
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
            provider: None,
        }
    }

    /// The api-versions this operation accepts.
    pub fn versions(mut self, versions: &'static [&'static str]) -> Self {
        self.api_versions = versions;
        self
    }

    /// The resource's own name (`provider.name_param`), following the provider's naming rule;
    /// a name breaking it is refused as [`ResourceName::parse`] refuses it.
    pub fn param(mut self, provider: &'static Provider) -> Self {
        let rule = &provider.name_rule;
        self.params.push(PathParam {
            name: provider.name_param,
            rule: ParamRule {
                pattern: rule.pattern,
                min_len: rule.min_len,
                max_len: rule.max_len,
            },
            check: Arc::new(move |raw, parsed| {
                parsed.insert(ResourceName::parse(provider, raw)?);
                Ok(())
            }),
        });
        self.provider = Some(provider);
        self
    }

    /// The shape of a path parameter; a value breaking it is refused with a 400 naming the
    /// parameter and its pattern.
    pub fn path_rule(self, name: &'static str, rule: ParamRule) -> Self {
        let regex = regex::Regex::new(rule.pattern).expect("rekey's own patterns compile");
        self.path_check(name, rule, move |raw| {
            let length = raw.chars().count();
            if regex.is_match(raw) && (rule.min_len..=rule.max_len).contains(&length) {
                return Ok(());
            }
            Err(ApiError::bad_request(
                "InvalidParameter",
                format!(
                    "The path parameter {name} must match {} and be {} to {} characters long; got '{raw}'.",
                    rule.pattern, rule.min_len, rule.max_len
                ),
            ))
        })
    }

    /// The shape of a path parameter, with the check (and refusal) the operation gives a value
    /// that breaks it.
    pub fn path_check(
        mut self,
        name: &'static str,
        rule: ParamRule,
        check: impl Fn(&str) -> Result<(), ApiError> + Send + Sync + 'static,
    ) -> Self {
        self.params.push(PathParam {
            name,
            rule,
            check: Arc::new(move |raw, _| check(raw)),
        });
        self
    }

    /// A path parameter that `parse` reads, refusing a value that breaks it with the refusal it
    /// gives; what it read is left for the handler ([`Parsed`]).
    pub fn path_value<T: Clone + Send + Sync + 'static>(
        mut self,
        name: &'static str,
        rule: ParamRule,
        parse: impl Fn(&str) -> Result<T, ApiError> + Send + Sync + 'static,
    ) -> Self {
        self.params.push(PathParam {
            name,
            rule,
            check: Arc::new(move |raw, parsed| {
                parsed.insert(parse(raw)?);
                Ok(())
            }),
        });
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
            TEXT => (TEXT.to_string(), string_schema()),
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
            content: Some((content_type.to_string(), string_schema())),
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
/// The state its handlers share is the application's, [`AppState`]; the table is generic over it
/// only so that a test can build a table of its own.
pub struct RouteTable<S = AppState> {
    /// Routes behind bearer-token authentication.
    pub arm: Router<S>,
    pub public: Router<S>,
    pub openapi: OpenApi,
}

fn json_content(schema: &str) -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(schema)))
        .build()
}

/// A response "schema" naming a plain-text body rather than a JSON component.
pub const TEXT: &str = "text/plain";

/// The schema of a plain string (a parameter, a header, a text body), derived from `String`.
pub fn string_schema() -> RefOr<Schema> {
    <String as utoipa::PartialSchema>::schema()
}

/// The schema of a string parameter whose rule is known only at run time: a provider's naming rule,
/// this server's tenant, a query's pattern, an operation's api-versions. Bodies' schemas are all
/// derived from their types; a type's attributes can state only literals, so these cannot be.
pub fn constrained_string(
    pattern: Option<&str>,
    length: Option<(usize, usize)>,
    values: &[&str],
) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(pattern)
        .min_length(length.map(|(min, _)| min))
        .max_length(length.map(|(_, max)| max))
        .enum_values((!values.is_empty()).then_some(values.iter().copied()))
        .build()
        .into()
}

fn param_schema(rule: Option<ParamRule>) -> RefOr<Schema> {
    match rule {
        Some(rule) => {
            constrained_string(Some(rule.pattern), Some((rule.min_len, rule.max_len)), &[]).into()
        }
        None => string_schema(),
    }
}

impl<S: Clone + Send + Sync + 'static> Default for RouteTable<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> RouteTable<S> {
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

    /// Registers `{T}List`, ARM's list envelope of `T`, and returns its name.
    pub fn list_schema<T: utoipa::ToSchema>(&mut self) -> String {
        let mut all = Vec::new();
        let name = rekey_api::mapping::list_schema_of::<T>(&mut all);
        self.schemas(all);
        name
    }

    /// Serves `handler` for `method` at `path` (axum syntax, `{param}`), and documents it. An ARM
    /// operation's declared api-versions and path rules are enforced in front of the handler
    /// ([`DeclaredChecks`]).
    pub fn route(&mut self, method: Method, path: &str, op: Op, handler: MethodRouter<S>) {
        let auth = op.auth;
        let handler = match DeclaredChecks::of(path, &op) {
            Some(checks) => handler.layer(middleware::from_fn_with_state(
                Arc::new(checks),
                enforce_declared,
            )),
            None => handler,
        };
        self.document(method, path, op);
        self.serve(path, auth, handler);
    }

    /// Serves `handler` at `path` without documenting it; pair with [`RouteTable::document`].
    pub fn serve(&mut self, path: &str, auth: bool, handler: MethodRouter<S>) {
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
                other => op.params.iter().find(|p| p.name == other).map(|p| p.rule),
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
            let schema = constrained_string(None, None, op.api_versions);
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

/// What an ARM operation's [`Op`] declares about its request, as checks: the api-versions it
/// accepts, and each path parameter's check in the order the path names them.
struct DeclaredChecks {
    versions: &'static [&'static str],
    params: Vec<(String, PathCheck)>,
    provider: Option<&'static Provider>,
}

impl DeclaredChecks {
    /// The checks of an ARM operation (one taking `api-version`); none for rekey's own routes,
    /// whose handlers answer in their own shapes (OAuth's errors, the web page's).
    fn of(path: &str, op: &Op) -> Option<Self> {
        if !op.api_version {
            return None;
        }
        assert!(
            !op.api_versions.is_empty(),
            "{}: an ARM operation names the api-versions it accepts",
            op.id
        );
        let params = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .filter_map(|name| {
                let check: PathCheck = match name {
                    "subscriptionId" => Arc::new(|raw, parsed| {
                        parsed.insert(SubscriptionId::parse(raw)?);
                        Ok(())
                    }),
                    "resourceGroupName" => Arc::new(|raw, parsed| {
                        parsed.insert(ResourceGroupName::parse(raw)?);
                        Ok(())
                    }),
                    other => op.params.iter().find(|p| p.name == other)?.check.clone(),
                };
                Some((name.to_string(), check))
            })
            .collect();
        Some(Self {
            versions: op.api_versions,
            params,
            provider: op.provider,
        })
    }

    /// The refusal of the first thing that breaks a declaration, in the order ARM handlers have
    /// always answered: a malformed query string, a path that does not decode (percent-encoded
    /// bytes that are not UTF-8), the api-version, then each path parameter in path order.
    async fn refusal(&self, parts: &mut Parts) -> Option<ApiError> {
        let query = match query_of(&parts.uri) {
            Ok(query) => query,
            Err(refusal) => return Some(refusal),
        };
        let params = match Path::<HashMap<String, String>>::from_request_parts(parts, &()).await {
            Ok(Path(params)) => params,
            Err(e) => return Some(path_refusal(e)),
        };
        if let Err(refusal) = ApiVersion::from_query(&query).check(self.versions) {
            return Some(refusal);
        }
        let parsed = &mut parts.extensions;
        let refusal = self.params.iter().find_map(|(name, check)| {
            let raw = params.get(name).map(String::as_str).unwrap_or_default();
            check(raw, parsed).err()
        });
        if refusal.is_none() {
            self.add_resource_id(parsed);
        }
        refusal
    }

    /// The resource id of an [`Op::param`] route, from the parts the checks parsed.
    fn add_resource_id(&self, parsed: &mut Extensions) {
        let Some(provider) = self.provider else {
            return;
        };
        let (Some(subscription), Some(group), Some(name)) = (
            parsed.get::<SubscriptionId>(),
            parsed.get::<ResourceGroupName>(),
            parsed.get::<ResourceName>(),
        ) else {
            return;
        };
        let id = ResourceId {
            subscription: subscription.clone(),
            group: group.clone(),
            provider,
            name: name.clone(),
        };
        parsed.insert(id);
    }
}

/// The layer [`RouteTable::route`] puts in front of an ARM operation's handler.
async fn enforce_declared(
    State(checks): State<Arc<DeclaredChecks>>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    if let Some(refusal) = checks.refusal(&mut parts).await {
        return refusal.into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

/// The query string as a map; a malformed one (say, percent-encoded bytes that are not UTF-8) is
/// ARM's 400 instead of axum's plain text.
fn query_of(uri: &axum::http::Uri) -> Result<HashMap<String, String>, ApiError> {
    Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|Query(q)| q)
        .map_err(|e| {
            ApiError::bad_request(
                "InvalidRequestFormat",
                format!("The query string is invalid: {e}."),
            )
        })
}

/// A path that does not decode, as ARM's 400 instead of axum's plain text.
fn path_refusal(e: axum::extract::rejection::PathRejection) -> ApiError {
    ApiError::bad_request(
        "InvalidRequestFormat",
        format!("The request path is invalid: {e}."),
    )
}

/// Path parameters, with a bad path answered as an ARM 400 instead of axum's plain text.
pub struct ArmPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ArmPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ArmPath(v))
            .map_err(path_refusal)
    }
}

/// A path value the layer of [`RouteTable::route`] parsed for an ARM operation: a
/// [`SubscriptionId`], a [`ResourceGroupName`], a [`ResourceName`], or the [`ResourceId`] of an
/// [`Op::param`] route. Asking for one the operation's path does not have is a bug in the route,
/// answered 500.
pub struct Parsed<T>(pub T);

impl<T: Clone + Send + Sync + 'static, S: Send + Sync> FromRequestParts<S> for Parsed<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<T>()
            .cloned()
            .map(Parsed)
            .ok_or_else(|| {
                tracing::error!(
                    value = std::any::type_name::<T>(),
                    path = parts.uri.path(),
                    "a handler asked for a path value its route does not parse"
                );
                ApiError::Internal
            })
    }
}

/// The query string as a map, with a malformed one answered as an ARM 400 ([`query_of`]).
pub struct ArmQuery(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for ArmQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        query_of(&parts.uri).map(ArmQuery)
    }
}

/// The `api-version` query parameter as sent. On an ARM route the layer of [`RouteTable::route`]
/// has already checked it against [`Op::versions`]; handlers take it only to echo it (in the URLs of
/// long-running operations).
pub struct ApiVersion(Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ApiVersion {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ApiVersion::from_query(&query_of(&parts.uri)?))
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;

    const SUB: &str = "00000000-0000-0000-0000-000000000001";

    /// A route whose handler checks nothing: whatever is refused, the table refused.
    fn table_with_an_unchecking_handler() -> Router {
        let mut table = RouteTable::<()>::new();
        table.route(
            Method::GET,
            "/subscriptions/{subscriptionId}/widgets/{widgetName}",
            Op::arm("Widgets_Get", "Gets a widget.")
                .versions(&["2024-01-01"])
                .path_rule(
                    "widgetName",
                    ParamRule {
                        pattern: "^[a-z]+$",
                        min_len: 1,
                        max_len: 5,
                    },
                ),
            get(|| async { "served" }),
        );
        table.arm.with_state(())
    }

    async fn send(uri: &str) -> (StatusCode, String, String) {
        let response = table_with_an_unchecking_handler()
            .oneshot(axum::http::Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        if status == StatusCode::OK {
            return (status, body, String::new());
        }
        let error: Value = serde_json::from_str(&body).unwrap();
        let code = error["error"]["code"].as_str().unwrap().to_string();
        let message = error["error"]["message"].as_str().unwrap().to_string();
        (status, code, message)
    }

    #[tokio::test]
    async fn declared_api_versions_and_path_rules_guard_a_handler_that_checks_nothing() {
        let good = format!("/subscriptions/{SUB}/widgets/gear?api-version=2024-01-01");
        assert_eq!(send(&good).await.0, StatusCode::OK);

        let (status, code, message) = send(&format!(
            "/subscriptions/{SUB}/widgets/gear?api-version=2099-01-01"
        ))
        .await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "InvalidApiVersionParameter")
        );
        assert!(message.contains("'2099-01-01'") && message.contains("'2024-01-01'"));

        let (status, code, _) = send(&format!("/subscriptions/{SUB}/widgets/gear")).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "MissingApiVersionParameter")
        );

        // The path rule: too long, and outside the pattern.
        for name in ["gearbox", "Gear1"] {
            let (status, code, message) = send(&format!(
                "/subscriptions/{SUB}/widgets/{name}?api-version=2024-01-01"
            ))
            .await;
            assert_eq!(
                (status, code.as_str()),
                (StatusCode::BAD_REQUEST, "InvalidParameter"),
                "{name}"
            );
            assert!(message.contains("widgetName") && message.contains(name));
        }

        // The common rule every ARM path's subscriptionId follows.
        let (status, code, _) =
            send("/subscriptions/not-a-guid/widgets/gear?api-version=2024-01-01").await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "InvalidSubscriptionId")
        );

        // Several things wrong: the api-version is answered first, as ARM's handlers always did.
        let (_, code, _) = send("/subscriptions/not-a-guid/widgets/Gear1?api-version=x").await;
        assert_eq!(code, "InvalidApiVersionParameter");
    }
}
