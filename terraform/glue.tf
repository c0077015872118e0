# One Glue database (Iceberg namespace) per layer. medallion creates the tables in them on
# first write (CreateTable) and moves each table's metadata pointer with UpdateTable; the
# databases are Terraform's, so no medallion role is allowed glue:CreateDatabase.
#
# Each database's location is s3://BUCKET/PREFIX/<database>, the folder under which medallion
# puts that namespace's tables (s3://BUCKET/PREFIX/<database>/<table>/{data,metadata}/). The IAM
# policies in iam.tf grant S3 access by exactly these prefixes.

resource "aws_glue_catalog_database" "layer" {
  for_each = local.namespaces

  name         = each.value
  description  = "medallion ${each.key} layer of pipeline ${var.name} (Iceberg tables, written by medallion)"
  location_uri = "${local.warehouse_location}/${each.value}"
}
