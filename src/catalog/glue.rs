//! The AWS Glue catalog: each namespace is a Glue database, each table a Glue table that Athena
//! reads as Iceberg.
//!
//! Every create and commit leaves the Glue table as Athena needs it: `TableType=EXTERNAL_TABLE`,
//! Parameters `table_type=ICEBERG`, `metadata_location` and `previous_metadata_location`,
//! `StorageDescriptor.Location` (the table's folder) and `StorageDescriptor.Columns` from the
//! current schema with Athena types ([`athena_type`]; the Iceberg field id, optionality and doc go
//! in each column's Parameters and Comment, as Iceberg's Java Glue catalog writes them).
//!
//! The pointer moves with `UpdateTable` carrying the `VersionId` read when the table was loaded,
//! so Glue refuses the update if anyone committed since (`ConcurrentModificationException` →
//! [`CatalogError::Conflict`]). We also compare the current `metadata_location` first: that
//! catches a writer that committed before our swap started on servers that do not enforce
//! `VersionId` (moto), though only Glue's check closes the window between that read and the
//! update. When the answer to `UpdateTable` is lost (a timeout, or a conflict reported by the
//! SDK's own retry of a request that had landed), the table is read again: if it points at our
//! new metadata file (its name holds a UUID), the commit is ours and succeeded. Parameters that others set on the
//! table (a description, a classification) are kept. Commits skip Glue's table-version archive
//! (`SkipArchive`): a streaming ingest commits often, and every version would otherwise count
//! against Glue's per-table version quota; Iceberg keeps the history itself.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_glue::Client;
use aws_sdk_glue::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_glue::types::{Column, DatabaseInput, StorageDescriptor, Table, TableInput};
use iceberg::spec::{NestedFieldRef, PrimitiveType, Schema, TableMetadata, Type};

use super::{Catalog, CatalogError, Pointer, TableName};

/// The Glue table Parameters keys Athena and other Iceberg engines read.
pub const TABLE_TYPE: &str = "table_type";
pub const METADATA_LOCATION: &str = "metadata_location";
pub const PREVIOUS_METADATA_LOCATION: &str = "previous_metadata_location";

#[derive(Debug)]
pub struct GlueCatalog {
    region: Option<String>,
    endpoint: Option<String>,
    catalog_id: Option<String>,
    client: tokio::sync::OnceCell<Client>,
}

impl GlueCatalog {
    pub fn new(
        region: Option<String>,
        endpoint: Option<String>,
        catalog_id: Option<String>,
    ) -> Self {
        GlueCatalog {
            region,
            endpoint,
            catalog_id,
            client: Default::default(),
        }
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let sdk = crate::aws::sdk_config(self.region.as_deref()).await;
                let mut conf = aws_sdk_glue::config::Builder::from(&sdk).timeout_config(
                    aws_sdk_glue::config::timeout::TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(10))
                        .operation_attempt_timeout(Duration::from_secs(60))
                        .operation_timeout(Duration::from_secs(180))
                        .build(),
                );
                if let Some(endpoint) = &self.endpoint {
                    conf = conf.endpoint_url(endpoint);
                }
                Client::from_conf(conf.build())
            })
            .await
    }

    async fn get_table(&self, table: &TableName) -> Result<Option<Table>, CatalogError> {
        let got = self
            .client()
            .await
            .get_table()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(&table.namespace)
            .name(&table.table)
            .send()
            .await;
        match got {
            Ok(out) => Ok(out.table),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(glue_error(format!("GetTable {table}"), e)),
        }
    }

    /// The Glue table input for `metadata`, keeping the Parameters `existing` had.
    fn table_input(
        &self,
        table: &TableName,
        metadata_location: &str,
        previous: Option<&str>,
        metadata: &TableMetadata,
        existing: Option<&Table>,
    ) -> Result<TableInput, CatalogError> {
        let mut params: HashMap<String, String> = existing
            .and_then(|t| t.parameters.clone())
            .unwrap_or_default();
        params.insert(TABLE_TYPE.into(), "ICEBERG".into());
        params.insert(METADATA_LOCATION.into(), metadata_location.into());
        match previous {
            Some(p) => params.insert(PREVIOUS_METADATA_LOCATION.into(), p.into()),
            None => params.remove(PREVIOUS_METADATA_LOCATION),
        };
        let columns =
            glue_columns(metadata.current_schema()).map_err(|message| CatalogError::Glue {
                what: format!("table {table}"),
                message,
                retryable: false,
            })?;
        let sd = StorageDescriptor::builder()
            .location(metadata.location())
            .set_columns(Some(columns))
            .build();
        TableInput::builder()
            .name(&table.table)
            .table_type("EXTERNAL_TABLE")
            .set_description(existing.and_then(|t| t.description.clone()))
            .set_parameters(Some(params))
            .storage_descriptor(sd)
            .build()
            .map_err(|e| CatalogError::Glue {
                what: format!("table {table}"),
                message: e.to_string(),
                retryable: false,
            })
    }
}

/// An SDK error as a catalog error that says what failed, with a hint for missing permissions.
fn glue_error<E, R>(what: String, e: SdkError<E, R>) -> CatalogError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = e.code().unwrap_or_default().to_string();
    let mut message = DisplayErrorContext(&e).to_string();
    // The SDK reports "no credentials anywhere in the chain" as a failure to dispatch; a
    // provider that failed or timed out (IMDS, STS) is worth another try.
    let no_credentials = credentials_not_loaded(&e);
    let retryable = match &e {
        _ if no_credentials => false,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => matches!(
            code.as_str(),
            "ThrottlingException"
                | "InternalServiceException"
                | "OperationTimeoutException"
                | "ConcurrentModificationException"
                | "ResourceNotReadyException"
        ),
    };
    if no_credentials {
        message.push_str(
            " (no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
             AWS_PROFILE, or run with an instance or task role)",
        );
    }
    if code == "AccessDeniedException" {
        message.push_str(
            " (the role needs glue:GetDatabase, glue:GetTable, glue:GetTables, \
             glue:CreateTable and glue:UpdateTable on this catalog, database and table, and \
             glue:CreateDatabase only if the database does not exist yet; see terraform/iam.tf)",
        );
    }
    CatalogError::Glue {
        what,
        message,
        retryable,
    }
}

/// Whether the error's causes include "the credential chain found nothing".
fn credentials_not_loaded(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(c) = err.downcast_ref::<CredentialsError>() {
            return matches!(c, CredentialsError::CredentialsNotLoaded(_));
        }
        cur = err.source();
    }
    false
}

/// The Glue columns of a schema: every top-level field with its Athena type.
pub fn glue_columns(schema: &Schema) -> Result<Vec<Column>, String> {
    schema
        .as_struct()
        .fields()
        .iter()
        .map(|f| {
            let mut params = HashMap::new();
            params.insert("iceberg.field.id".to_string(), f.id.to_string());
            params.insert("iceberg.field.optional".into(), (!f.required).to_string());
            params.insert("iceberg.field.current".into(), "true".into());
            Column::builder()
                .name(&f.name)
                .r#type(athena_type(&f.field_type)?)
                .set_comment(f.doc.clone())
                .set_parameters(Some(params))
                .build()
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// The Athena (Hive DDL) type of an Iceberg type, as the README's table documents it.
pub fn athena_type(t: &Type) -> Result<String, String> {
    Ok(match t {
        Type::Primitive(p) => match p {
            PrimitiveType::Boolean => "boolean".into(),
            PrimitiveType::Int => "int".into(),
            PrimitiveType::Long => "bigint".into(),
            PrimitiveType::Float => "float".into(),
            PrimitiveType::Double => "double".into(),
            PrimitiveType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
            PrimitiveType::Date => "date".into(),
            // Athena has no time of day type; Iceberg engines expose it as a string.
            PrimitiveType::Time => "string".into(),
            PrimitiveType::Timestamp | PrimitiveType::Timestamptz => "timestamp".into(),
            PrimitiveType::String | PrimitiveType::Uuid => "string".into(),
            PrimitiveType::Binary | PrimitiveType::Fixed(_) => "binary".into(),
            other => {
                return Err(format!(
                    "the Iceberg type {other} has no Athena equivalent (Athena reads format v2 types only)"
                ));
            }
        },
        Type::Struct(s) => {
            let fields: Result<Vec<String>, String> = s
                .fields()
                .iter()
                .map(|f: &NestedFieldRef| Ok(format!("{}:{}", f.name, athena_type(&f.field_type)?)))
                .collect();
            format!("struct<{}>", fields?.join(","))
        }
        Type::List(l) => format!("array<{}>", athena_type(&l.element_field.field_type)?),
        Type::Map(m) => format!(
            "map<{},{}>",
            athena_type(&m.key_field.field_type)?,
            athena_type(&m.value_field.field_type)?
        ),
    })
}

#[async_trait]
impl Catalog for GlueCatalog {
    fn describe(&self) -> String {
        let mut s = "Glue catalog".to_string();
        if let Some(id) = &self.catalog_id {
            s.push_str(&format!(" {id}"));
        }
        if let Some(r) = &self.region {
            s.push_str(&format!(" in {r}"));
        }
        if let Some(e) = &self.endpoint {
            s.push_str(&format!(" at {e}"));
        }
        s
    }

    async fn ensure_namespace(&self, namespace: &str, location: &str) -> Result<(), CatalogError> {
        let client = self.client().await;
        let got = client
            .get_database()
            .set_catalog_id(self.catalog_id.clone())
            .name(namespace)
            .send()
            .await;
        match got {
            Ok(_) => return Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) => {}
            Err(e) => return Err(glue_error(format!("GetDatabase {namespace}"), e)),
        }
        let input = DatabaseInput::builder()
            .name(namespace)
            .location_uri(location)
            .description("Iceberg tables written by medallion")
            .build()
            .map_err(|e| CatalogError::Glue {
                what: format!("database {namespace}"),
                message: e.to_string(),
                retryable: false,
            })?;
        match client
            .create_database()
            .set_catalog_id(self.catalog_id.clone())
            .database_input(input)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(glue_error(format!("CreateDatabase {namespace}"), e)),
        }
    }

    async fn list_tables(&self, namespace: &str) -> Result<Vec<String>, CatalogError> {
        let client = self.client().await;
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let out = match client
                .get_tables()
                .set_catalog_id(self.catalog_id.clone())
                .database_name(namespace)
                .set_next_token(token)
                .send()
                .await
            {
                Ok(out) => out,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_entity_not_found_exception()) =>
                {
                    return Ok(Vec::new());
                }
                Err(e) => return Err(glue_error(format!("GetTables {namespace}"), e)),
            };
            names.extend(
                out.table_list()
                    .iter()
                    .filter(|t| is_iceberg(t))
                    .map(|t| t.name.clone()),
            );
            token = out.next_token;
            if token.is_none() {
                break;
            }
        }
        names.sort();
        Ok(names)
    }

    async fn load(&self, table: &TableName) -> Result<Option<Pointer>, CatalogError> {
        let Some(t) = self.get_table(table).await? else {
            return Ok(None);
        };
        Ok(Some(iceberg_pointer(table, &t)?))
    }

    async fn create(
        &self,
        table: &TableName,
        metadata_location: &str,
        metadata: &TableMetadata,
    ) -> Result<(), CatalogError> {
        let input = self.table_input(table, metadata_location, None, metadata, None)?;
        match self
            .client()
            .await
            .create_table()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(&table.namespace)
            .table_input(input)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) =>
            {
                Err(CatalogError::AlreadyExists(table.clone()))
            }
            Err(e) => Err(glue_error(format!("CreateTable {table}"), e)),
        }
    }

    async fn swap(
        &self,
        table: &TableName,
        expected: &Pointer,
        new_location: &str,
        metadata: &TableMetadata,
    ) -> Result<(), CatalogError> {
        let conflict = || CatalogError::Conflict {
            table: table.clone(),
            expected: expected.metadata_location.clone(),
        };
        let current = self
            .get_table(table)
            .await?
            .ok_or_else(|| CatalogError::NotFound(table.clone()))?;
        let now = iceberg_pointer(table, &current)?;
        if now.metadata_location != expected.metadata_location
            || (expected.version.is_some() && now.version != expected.version)
        {
            return Err(conflict());
        }
        let input = self.table_input(
            table,
            new_location,
            Some(&expected.metadata_location),
            metadata,
            Some(&current),
        )?;
        match self
            .client()
            .await
            .update_table()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(&table.namespace)
            .table_input(input)
            .set_version_id(expected.version.clone().or(now.version))
            .skip_archive(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let conflicted = e
                    .as_service_error()
                    .is_some_and(|s| s.is_concurrent_modification_exception());
                let err = glue_error(format!("UpdateTable {table}"), e);
                if !(conflicted || err.is_retryable()) {
                    return Err(err);
                }
                // Did it land after all? Only our commit points at our new metadata file.
                match self.get_table(table).await {
                    Ok(Some(t))
                        if iceberg_pointer(table, &t)
                            .is_ok_and(|p| p.metadata_location == new_location) =>
                    {
                        Ok(())
                    }
                    Ok(_) if conflicted => Err(conflict()),
                    _ => Err(err),
                }
            }
        }
    }
}

fn is_iceberg(t: &Table) -> bool {
    t.parameters
        .as_ref()
        .and_then(|p| p.get(TABLE_TYPE))
        .is_some_and(|v| v.eq_ignore_ascii_case("ICEBERG"))
}

/// The pointer of a Glue table, which must be an Iceberg table.
fn iceberg_pointer(name: &TableName, t: &Table) -> Result<Pointer, CatalogError> {
    let location = t
        .parameters
        .as_ref()
        .and_then(|p| p.get(METADATA_LOCATION))
        .filter(|_| is_iceberg(t));
    match location {
        Some(l) => Ok(Pointer {
            metadata_location: l.clone(),
            version: t.version_id.clone(),
        }),
        None => Err(CatalogError::NotIceberg(name.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iceberg::spec::{ListType, MapType, NestedField, StructType};

    fn field(id: i32, name: &str, t: Type) -> NestedFieldRef {
        NestedField::optional(id, name, t).into()
    }

    #[test]
    fn athena_types_nest() {
        let p = |t| Type::Primitive(t);
        let s = Type::Struct(StructType::new(vec![
            field(
                2,
                "a",
                p(PrimitiveType::Decimal {
                    precision: 10,
                    scale: 2,
                }),
            ),
            field(3, "b", p(PrimitiveType::Timestamptz)),
        ]));
        assert_eq!(
            athena_type(&s).unwrap(),
            "struct<a:decimal(10,2),b:timestamp>"
        );
        let l = Type::List(ListType::new(field(4, "element", p(PrimitiveType::Uuid))));
        assert_eq!(athena_type(&l).unwrap(), "array<string>");
        let m = Type::Map(MapType::new(
            NestedField::required(5, "key", p(PrimitiveType::String)).into(),
            field(6, "value", l),
        ));
        assert_eq!(athena_type(&m).unwrap(), "map<string,array<string>>");
        assert_eq!(athena_type(&p(PrimitiveType::Fixed(16))).unwrap(), "binary");
        assert_eq!(athena_type(&p(PrimitiveType::Time)).unwrap(), "string");
    }
}
