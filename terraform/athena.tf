# The analysts' Athena workgroup: engine version 3 (Iceberg v2 reads, merge-on-read deletes),
# settings enforced so a client cannot send results elsewhere or unencrypted, results
# encrypted with the data key in their own bucket, and a per-query scan limit.

resource "aws_athena_workgroup" "analysts" {
  name          = local.prefix
  description   = "Queries over the ${var.name} lakehouse (Glue databases ${join(", ", values(local.namespaces))})"
  state         = "ENABLED"
  force_destroy = false

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.athena_bytes_scanned_cutoff

    engine_version {
      selected_engine_version = "Athena engine version 3"
    }

    result_configuration {
      output_location = "s3://${aws_s3_bucket.athena_results.id}/athena/"

      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = aws_kms_key.data.arn
      }
    }
  }
}
