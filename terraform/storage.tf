# Buckets: the warehouse (Iceberg tables of the three layers), the Athena query results, and a
# log bucket that receives the other two's access logs and the VPC flow logs. All three are
# private (public access block, owner-enforced objects), versioned, encrypted by default and
# reachable only over TLS.

# --- warehouse ----------------------------------------------------------------------------

resource "aws_s3_bucket" "warehouse" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery choice with its own cost and second region; versioning plus the noncurrent-version window cover accidental deletes.
  #checkov:skip=CKV2_AWS_62:Nothing consumes S3 event notifications: medallion learns about new data from its own Iceberg commits, not from S3 events.
  bucket = local.warehouse_bucket_name
}

resource "aws_s3_bucket_versioning" "warehouse" {
  bucket = aws_s3_bucket.warehouse.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "warehouse" {
  bucket = aws_s3_bucket.warehouse.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.data.arn
    }
    bucket_key_enabled = true # one KMS call per bucket key, not per Parquet file
  }
}

resource "aws_s3_bucket_public_access_block" "warehouse" {
  bucket = aws_s3_bucket.warehouse.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "warehouse" {
  bucket = aws_s3_bucket.warehouse.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_logging" "warehouse" {
  bucket        = aws_s3_bucket.warehouse.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3-access/${local.warehouse_bucket_name}/"
}

resource "aws_s3_bucket_policy" "warehouse" {
  bucket = aws_s3_bucket.warehouse.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [local.deny_insecure_transport["warehouse"]]
  })

  depends_on = [aws_s3_bucket_public_access_block.warehouse]
}

# Lifecycle. Iceberg never overwrites a key: every data file, manifest, manifest list and
# metadata.json is written once under a new name, and old ones disappear only when medallion's
# table maintenance (snapshot expiry, orphan-file removal) deletes them. S3 cannot tell a
# metadata.json that a table still needs from an old one (the current metadata of a table not
# written for a year is still current, and lifecycle filters have no wildcards for
# */metadata/), so no rule ever expires a *current* warehouse object by age: that would break
# tables. What the rules do instead:
#   - a deleted warehouse object (expired snapshot's files, old metadata.json, orphans) stays as
#     a noncurrent version for warehouse_noncurrent_version_days - a window to undo a bad
#     maintenance run - and is then removed for good, with its delete marker;
#   - dead letters are rows of an Iceberg table too, bronze's _dlq (dlq_table), so its data/
#     and metadata/ files are never expired by age either; old dead letters leave only through
#     maintenance. Once deleted, they stay as noncurrent versions for just
#     dlq_noncurrent_version_days (7): dead letters can hold personal data from malformed source
#     records and should not linger for the warehouse's longer undo window. The DLQ rule
#     overlaps the warehouse-wide one; when two lifecycle expirations overlap, S3 honours the one
#     that expires sooner, so the shorter DLQ window wins under the _dlq prefix;
#   - incomplete multipart uploads (a writer killed mid-file) are aborted everywhere.
resource "aws_s3_bucket_lifecycle_configuration" "warehouse" {
  bucket = aws_s3_bucket.warehouse.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_days
    }
  }

  rule {
    id     = "warehouse-noncurrent-versions"
    status = "Enabled"

    filter {
      prefix = "${var.warehouse_prefix}/"
    }

    noncurrent_version_expiration {
      noncurrent_days = var.warehouse_noncurrent_version_days
    }

    expiration {
      expired_object_delete_marker = true
    }
  }

  # Dead letters: only noncurrent versions (files maintenance deleted) under the _dlq table's
  # prefix, sooner than the rule above. Both rules match these keys; S3 applies the shorter
  # noncurrent expiration of overlapping rules, so this one wins here. No `expiration { days }`:
  # aging out current files would break the table. The trailing slash keeps tables whose names
  # merely start with the DLQ table's name out of the filter.
  rule {
    id     = "dlq-table-noncurrent-versions"
    status = "Enabled"

    filter {
      prefix = "${var.warehouse_prefix}/${local.namespaces["bronze"]}/${var.dlq_table}/"
    }

    noncurrent_version_expiration {
      noncurrent_days = var.dlq_noncurrent_version_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.warehouse]
}

# --- Athena query results -----------------------------------------------------------------

resource "aws_s3_bucket" "athena_results" {
  #checkov:skip=CKV_AWS_144:Query results are disposable (they expire after athena_results_expiration_days); replicating them to a second region buys nothing.
  #checkov:skip=CKV2_AWS_62:Nothing consumes S3 event notifications of query results.
  bucket = local.results_bucket_name
}

resource "aws_s3_bucket_versioning" "athena_results" {
  bucket = aws_s3_bucket.athena_results.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "athena_results" {
  bucket = aws_s3_bucket.athena_results.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.data.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "athena_results" {
  bucket = aws_s3_bucket.athena_results.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "athena_results" {
  bucket = aws_s3_bucket.athena_results.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_logging" "athena_results" {
  bucket        = aws_s3_bucket.athena_results.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3-access/${local.results_bucket_name}/"
}

resource "aws_s3_bucket_policy" "athena_results" {
  bucket = aws_s3_bucket.athena_results.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [local.deny_insecure_transport["athena_results"]]
  })

  depends_on = [aws_s3_bucket_public_access_block.athena_results]
}

resource "aws_s3_bucket_lifecycle_configuration" "athena_results" {
  bucket = aws_s3_bucket.athena_results.id

  rule {
    id     = "expire-query-results"
    status = "Enabled"

    filter {}

    expiration {
      days = var.athena_results_expiration_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.athena_results]
}

# --- logs ---------------------------------------------------------------------------------

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_145:S3 server access log delivery supports only SSE-S3 (AES256) on the target bucket, not SSE-KMS; the bucket is encrypted with SSE-S3.
  #checkov:skip=CKV_AWS_144:Access and flow logs are kept in-region for audits; replicating them is a separate compliance decision.
  #checkov:skip=CKV2_AWS_62:Nothing consumes S3 event notifications of log deliveries.
  bucket = local.log_bucket_name
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256" # the only default encryption S3 access-log delivery accepts
    }
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket = aws_s3_bucket.logs.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_policy" "logs" {
  bucket = aws_s3_bucket.logs.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      local.deny_insecure_transport["logs"],
      {
        Sid       = "S3ServerAccessLogsOfThisAccountsBuckets"
        Effect    = "Allow"
        Principal = { Service = "logging.s3.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.logs.arn}/s3-access/*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
          ArnLike      = { "aws:SourceArn" = [aws_s3_bucket.warehouse.arn, aws_s3_bucket.athena_results.arn] }
        }
      },
      {
        Sid       = "VpcFlowLogsAclCheck"
        Effect    = "Allow"
        Principal = { Service = "delivery.logs.amazonaws.com" }
        Action    = "s3:GetBucketAcl"
        Resource  = aws_s3_bucket.logs.arn
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
      {
        Sid       = "VpcFlowLogsWrite"
        Effect    = "Allow"
        Principal = { Service = "delivery.logs.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.logs.arn}/vpc-flow-logs/AWSLogs/${local.account_id}/*"
        Condition = {
          StringEquals = {
            "aws:SourceAccount" = local.account_id
            "s3:x-amz-acl"      = "bucket-owner-full-control"
          }
        }
      },
    ]
  })

  depends_on = [aws_s3_bucket_public_access_block.logs]
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "expire-logs"
    status = "Enabled"

    filter {}

    expiration {
      days = var.access_log_expiration_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 7
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.logs]
}

# Every bucket refuses plain-HTTP requests.
locals {
  bucket_arns = {
    warehouse      = aws_s3_bucket.warehouse.arn
    athena_results = aws_s3_bucket.athena_results.arn
    logs           = aws_s3_bucket.logs.arn
  }

  deny_insecure_transport = {
    for k, arn in local.bucket_arns : k => {
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [arn, "${arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }
  }
}
