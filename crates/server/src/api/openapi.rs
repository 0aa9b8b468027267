use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{freeze, incidents};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Klaxon API",
        version = "1",
        description = "Declare and run incidents. Authenticate with an API token \
            (`klaxon token create --name NAME --role responder`) sent as `Authorization: Bearer <token>`. \
            Errors have one shape: `{\"error\": {\"code\", \"message\", \"field\"}}`."
    ),
    paths(
        incidents::declare, incidents::list, incidents::show, incidents::edit, incidents::change_status,
        incidents::assign_role, incidents::release_role, incidents::add_note,
        incidents::add_follow_up, incidents::complete_follow_up, incidents::timeline,
        incidents::actions, incidents::retry_action, incidents::me, incidents::catalog, freeze::deploy_freeze,
    ),
    components(schemas(crate::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&BearerAuth),
    tags((name = "incidents", description = "Incidents, their timeline and their actions"),
         (name = "people", description = "Who is calling"))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("klx_…")
                    .build(),
            ),
        );
    }
}

/// The API's OpenAPI 3 document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
