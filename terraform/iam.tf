# IAM, least privilege. Who may do what:
#
#   role            S3 warehouse (PREFIX/<db>/...)        Glue                          other
#   ingest task     bronze: read, write, delete           bronze: get, create/update    metrics sidecar's log group
#   transform task  bronze: read; silver+gold: r/w/d      bronze: get; silver+gold:     -
#   (silver, gold)                                        get, create/update table
#   maintain task   all three layers: read, write, delete all three: get, update table  -
#   ingest exec     -                                     -                             pull image, write logs,
#                                                                                       read the medallion Kafka
#                                                                                       secret and agent config
#   jobs exec       -                                     -                             pull image, write logs
#   analyst         all three layers: read                all three: read               Athena workgroup, results
#   airflow policy  -                                     -                             run/stop/describe the
#                                                                                       job tasks, read their logs
#
# Every S3 grant names the bucket and the layer's prefix; every Glue grant names the catalog,
# the database and its tables (Glue checks all three ARNs for table actions); KMS use is only
# through the named service (kms:ViaService). No role has glue:CreateDatabase (glue.tf owns
# the databases) or any Delete on Glue. "*" resources appear only for actions that AWS does
# not scope to a resource, each marked where it is.

locals {
  glue_catalog_arn   = "arn:${local.partition}:glue:${local.region}:${local.account_id}:catalog"
  glue_database_arns = { for layer, db in local.namespaces : layer => "arn:${local.partition}:glue:${local.region}:${local.account_id}:database/${db}" }
  glue_table_arns    = { for layer, db in local.namespaces : layer => "arn:${local.partition}:glue:${local.region}:${local.account_id}:table/${db}/*" }

  # Key prefix of each layer's tables: PREFIX/<database>.
  layer_prefix = { for layer, db in local.namespaces : layer => "${var.warehouse_prefix}/${db}" }

  s3_service  = "s3.${local.region}.amazonaws.com"
  all_layers  = ["bronze", "silver", "gold"]
  ecs_trusted = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:*"

  # What writing and reading Iceberg files takes. Delete: replay and table maintenance remove
  # files no snapshot references. Multipart: large Parquet files are uploaded in parts.
  s3_write_actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
  s3_read_actions  = ["s3:GetObject"]

  glue_write_actions = ["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:CreateTable", "glue:UpdateTable"]
  glue_read_actions  = ["glue:GetDatabase", "glue:GetTable", "glue:GetTables"]
}

# --- trust policies -----------------------------------------------------------------------

# ECS tasks of this account and region only (confused-deputy guard).
data "aws_iam_policy_document" "ecs_tasks_trust" {
  statement {
    sid     = "EcsTasksOfThisAccount"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [local.ecs_trusted]
    }
  }
}

# --- ingest task role ---------------------------------------------------------------------

resource "aws_iam_role" "ingest" {
  name               = "${local.prefix}-ingest"
  description        = "medallion ingest --follow: lands Kafka records in the bronze layer"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json
}

data "aws_iam_policy_document" "ingest" {
  statement {
    sid       = "BronzeObjects"
    actions   = local.s3_write_actions
    resources = ["${aws_s3_bucket.warehouse.arn}/${local.layer_prefix.bronze}/*"]
  }

  statement {
    sid       = "ListBronze"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.warehouse.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [local.layer_prefix.bronze, "${local.layer_prefix.bronze}/*"]
    }
  }

  statement {
    sid       = "BronzeCatalog"
    actions   = local.glue_write_actions
    resources = [local.glue_catalog_arn, local.glue_database_arns.bronze, local.glue_table_arns.bronze]
  }

  statement {
    sid       = "WarehouseKeyThroughS3"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.data.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.s3_service]
    }
  }

  # The CloudWatch agent sidecar shares the task role: it writes the scraped metrics as
  # embedded-metric-format events into its own log group (CloudWatch turns them into metrics;
  # no cloudwatch:PutMetricData needed).
  statement {
    sid       = "MetricsSidecarLogEvents"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = [aws_cloudwatch_log_group.metrics.arn, "${aws_cloudwatch_log_group.metrics.arn}:log-stream:*"]
  }
}

resource "aws_iam_role_policy" "ingest" {
  name   = "ingest"
  role   = aws_iam_role.ingest.id
  policy = data.aws_iam_policy_document.ingest.json
}

# --- transform task role (silver and gold) ------------------------------------------------

resource "aws_iam_role" "transform" {
  name               = "${local.prefix}-transform"
  description        = "medallion silver and gold: read bronze, write silver and gold"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json
}

data "aws_iam_policy_document" "transform" {
  statement {
    sid       = "ReadBronzeObjects"
    actions   = local.s3_read_actions
    resources = ["${aws_s3_bucket.warehouse.arn}/${local.layer_prefix.bronze}/*"]
  }

  statement {
    sid       = "SilverGoldObjects"
    actions   = local.s3_write_actions
    resources = [for l in ["silver", "gold"] : "${aws_s3_bucket.warehouse.arn}/${local.layer_prefix[l]}/*"]
  }

  statement {
    sid       = "ListLayers"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.warehouse.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = flatten([for l in local.all_layers : [local.layer_prefix[l], "${local.layer_prefix[l]}/*"]])
    }
  }

  statement {
    sid       = "ReadBronzeCatalog"
    actions   = local.glue_read_actions
    resources = [local.glue_catalog_arn, local.glue_database_arns.bronze, local.glue_table_arns.bronze]
  }

  statement {
    sid     = "SilverGoldCatalog"
    actions = local.glue_write_actions
    resources = concat(
      [local.glue_catalog_arn],
      [for l in ["silver", "gold"] : local.glue_database_arns[l]],
      [for l in ["silver", "gold"] : local.glue_table_arns[l]],
    )
  }

  statement {
    sid       = "WarehouseKeyThroughS3"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.data.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.s3_service]
    }
  }
}

resource "aws_iam_role_policy" "transform" {
  name   = "transform"
  role   = aws_iam_role.transform.id
  policy = data.aws_iam_policy_document.transform.json
}

# --- maintain task role (snapshot expiry, orphan files, compaction in every layer) ---------

resource "aws_iam_role" "maintain" {
  name               = "${local.prefix}-maintain"
  description        = "medallion maintain: expire snapshots and remove unreferenced files in all layers"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json
}

data "aws_iam_policy_document" "maintain" {
  statement {
    sid       = "LayerObjects"
    actions   = local.s3_write_actions
    resources = [for l in local.all_layers : "${aws_s3_bucket.warehouse.arn}/${local.layer_prefix[l]}/*"]
  }

  statement {
    sid       = "ListLayers"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.warehouse.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = flatten([for l in local.all_layers : [local.layer_prefix[l], "${local.layer_prefix[l]}/*"]])
    }
  }

  # Maintenance rewrites metadata of existing tables; it never creates one.
  statement {
    sid     = "LayerCatalog"
    actions = ["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:UpdateTable"]
    resources = concat(
      [local.glue_catalog_arn],
      values(local.glue_database_arns),
      values(local.glue_table_arns),
    )
  }

  statement {
    sid       = "WarehouseKeyThroughS3"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.data.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.s3_service]
    }
  }
}

resource "aws_iam_role_policy" "maintain" {
  name   = "maintain"
  role   = aws_iam_role.maintain.id
  policy = data.aws_iam_policy_document.maintain.json
}

# --- task execution roles (used by ECS itself, never by the containers) --------------------

data "aws_iam_policy_document" "execution_common" {
  # GetAuthorizationToken is account-wide: AWS does not scope it to a repository ("*" required).
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "PullMedallionImage"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
    resources = [aws_ecr_repository.medallion.arn]
  }
}

# Ingest: also the metrics sidecar image (through the pull-through cache), the Kafka password
# and the sidecar's configuration, all injected by ECS at task start.
resource "aws_iam_role" "ingest_execution" {
  name               = "${local.prefix}-ingest-execution"
  description        = "ECS execution role of the ingest service: image pulls, logs, Kafka secret"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json
}

data "aws_iam_policy_document" "ingest_execution" {
  source_policy_documents = [data.aws_iam_policy_document.execution_common.json]

  statement {
    sid = "PullAgentImageThroughCache"
    actions = [
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchImportUpstreamImage", # first pull copies the public image into the cache
      "ecr:CreateRepository",         # ... into a repository the cache creates under its prefix
    ]
    resources = ["arn:${local.partition}:ecr:${local.region}:${local.account_id}:repository/${local.ecr_cache_prefix}/*"]
  }

  statement {
    sid       = "WriteIngestLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.medallion["ingest"].arn}:log-stream:*"] # both containers' stdout
  }

  statement {
    sid       = "ReadMedallionKafkaSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.kafka[var.kafka_username].arn]
  }

  statement {
    sid       = "KafkaKeyThroughSecretsManager"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.kafka.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "ReadAgentConfig"
    actions   = ["ssm:GetParameters"]
    resources = [aws_ssm_parameter.agent_config.arn, aws_ssm_parameter.prometheus_config.arn]
  }

  statement {
    sid       = "OpsKeyThroughSsm"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.ops.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ssm.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "ingest_execution" {
  name   = "ingest-execution"
  role   = aws_iam_role.ingest_execution.id
  policy = data.aws_iam_policy_document.ingest_execution.json
}

# Silver, gold, maintain: no secrets at all (they never talk to Kafka).
resource "aws_iam_role" "jobs_execution" {
  name               = "${local.prefix}-jobs-execution"
  description        = "ECS execution role of the silver, gold and maintain tasks: image pulls, logs"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json
}

data "aws_iam_policy_document" "jobs_execution" {
  source_policy_documents = [data.aws_iam_policy_document.execution_common.json]

  statement {
    sid       = "WriteJobLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for job in local.jobs : "${aws_cloudwatch_log_group.medallion[job].arn}:log-stream:*"]
  }
}

resource "aws_iam_role_policy" "jobs_execution" {
  name   = "jobs-execution"
  role   = aws_iam_role.jobs_execution.id
  policy = data.aws_iam_policy_document.jobs_execution.json
}

# --- analysts -----------------------------------------------------------------------------

data "aws_iam_policy_document" "analyst_trust" {
  statement {
    sid     = "AnalystsOfThisAccount"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = length(var.analyst_principal_arns) > 0 ? var.analyst_principal_arns : ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

resource "aws_iam_role" "analyst" {
  name               = "${local.prefix}-analyst"
  description        = "Query the ${var.name} lakehouse with Athena (read-only)"
  assume_role_policy = data.aws_iam_policy_document.analyst_trust.json
}

data "aws_iam_policy_document" "analyst" {
  statement {
    sid = "UseTheWorkgroup"
    actions = [
      "athena:StartQueryExecution",
      "athena:StopQueryExecution",
      "athena:GetQueryExecution",
      "athena:GetQueryResults",
      "athena:GetQueryResultsStream",
      "athena:GetQueryRuntimeStatistics",
      "athena:BatchGetQueryExecution",
      "athena:ListQueryExecutions",
      "athena:GetWorkGroup",
      "athena:CreateNamedQuery",
      "athena:GetNamedQuery",
      "athena:BatchGetNamedQuery",
      "athena:ListNamedQueries",
      "athena:DeleteNamedQuery",
    ]
    resources = [aws_athena_workgroup.analysts.arn]
  }

  statement {
    sid       = "BrowseTheGlueCatalogInAthena"
    actions   = ["athena:GetDataCatalog", "athena:ListDatabases", "athena:GetDatabase", "athena:ListTableMetadata", "athena:GetTableMetadata"]
    resources = ["arn:${local.partition}:athena:${local.region}:${local.account_id}:datacatalog/AwsDataCatalog"]
  }

  # The Athena console lists workgroups, catalogs and engine versions before anything else;
  # these List actions have no resource type, so AWS requires "*".
  statement {
    sid       = "AthenaConsoleListings"
    actions   = ["athena:ListWorkGroups", "athena:ListDataCatalogs", "athena:ListEngineVersions"]
    resources = ["*"]
  }

  statement {
    sid = "ReadTheThreeDatabases"
    actions = [
      "glue:GetDatabase",
      "glue:GetDatabases",
      "glue:GetTable",
      "glue:GetTables",
      "glue:GetPartition",
      "glue:GetPartitions",
      "glue:BatchGetPartition",
    ]
    resources = concat([local.glue_catalog_arn], values(local.glue_database_arns), values(local.glue_table_arns))
  }

  statement {
    sid       = "ReadWarehouseObjects"
    actions   = ["s3:GetObject"]
    resources = [for l in local.all_layers : "${aws_s3_bucket.warehouse.arn}/${local.layer_prefix[l]}/*"]
  }

  statement {
    sid       = "ListWarehouseLayers"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.warehouse.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = flatten([for l in local.all_layers : [local.layer_prefix[l], "${local.layer_prefix[l]}/*"]])
    }
  }

  statement {
    sid       = "LocateBuckets"
    actions   = ["s3:GetBucketLocation"]
    resources = [aws_s3_bucket.warehouse.arn, aws_s3_bucket.athena_results.arn]
  }

  statement {
    sid       = "WriteQueryResults"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    resources = ["${aws_s3_bucket.athena_results.arn}/athena/*"]
  }

  statement {
    sid       = "ListQueryResults"
    actions   = ["s3:ListBucket", "s3:ListBucketMultipartUploads"]
    resources = [aws_s3_bucket.athena_results.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["athena", "athena/*"]
    }
  }

  # Decrypt the warehouse, encrypt the results: both with the data key, both through S3.
  statement {
    sid       = "DataKeyThroughS3"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.data.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.s3_service]
    }
  }
}

resource "aws_iam_role_policy" "analyst" {
  name   = "analyst"
  role   = aws_iam_role.analyst.id
  policy = data.aws_iam_policy_document.analyst.json
}

# --- Airflow / MWAA -----------------------------------------------------------------------
# Lets Airflow's EcsRunTaskOperator start the silver, gold and maintain tasks on this cluster,
# follow them and fetch their logs. Attached to airflow_role_name when given.

data "aws_iam_policy_document" "airflow" {
  statement {
    sid       = "RunJobTasks"
    actions   = ["ecs:RunTask"]
    resources = [for job in local.jobs : "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task-definition/${local.task_family[job]}:*"]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [aws_ecs_cluster.this.arn]
    }
  }

  statement {
    sid       = "FollowJobTasks"
    actions   = ["ecs:DescribeTasks", "ecs:StopTask"]
    resources = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:task/${aws_ecs_cluster.this.name}/*"]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [aws_ecs_cluster.this.arn]
    }
  }

  # Only for reattach=True (find a still-running task after an Airflow worker restart).
  # ListTasks is scoped by the cluster condition; DescribeTaskDefinition has no resource type,
  # so AWS requires "*" (it reveals definitions, never secrets' values).
  statement {
    sid       = "ReattachListTasks"
    actions   = ["ecs:ListTasks"]
    resources = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:container-instance/${aws_ecs_cluster.this.name}/*"]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [aws_ecs_cluster.this.arn]
    }
  }

  statement {
    sid       = "ReattachDescribeTaskDefinition"
    actions   = ["ecs:DescribeTaskDefinition"]
    resources = ["*"]
  }

  statement {
    sid       = "PassJobRoles"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.transform.arn, aws_iam_role.maintain.arn, aws_iam_role.jobs_execution.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  statement {
    sid       = "FetchJobLogs"
    actions   = ["logs:GetLogEvents"]
    resources = [for job in local.jobs : "${aws_cloudwatch_log_group.medallion[job].arn}:log-stream:*"]
  }
}

resource "aws_iam_policy" "airflow" {
  name        = "${local.prefix}-airflow-run-jobs"
  description = "Run, follow and read the logs of the medallion silver/gold/maintain ECS tasks"
  policy      = data.aws_iam_policy_document.airflow.json
}

resource "aws_iam_role_policy_attachment" "airflow" {
  count = var.airflow_role_name == null ? 0 : 1

  role       = var.airflow_role_name
  policy_arn = aws_iam_policy.airflow.arn
}
