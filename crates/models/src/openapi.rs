//! OpenAPI support (feature `openapi`): the schemas the DTOs' derived
//! `utoipa::ToSchema` cannot say by themselves.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// The schema of [`Metadata`](crate::Metadata): a type alias cannot derive
/// one, so fields of that type name this with
/// `#[schema(value_type = MetadataSchema)]`. It is the component `Metadata`,
/// a free-form JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataSchema;

impl utoipa::PartialSchema for MetadataSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("Free-form JSON object."))
            .into()
    }
}

impl utoipa::ToSchema for MetadataSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Metadata")
    }
}
