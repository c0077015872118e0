# Customer-managed KMS keys, one per kind of data, so a grant on one is never a grant on all:
#   data  - the warehouse and the Athena results (analysts decrypt this one only)
#   kafka - MSK storage and the SASL/SCRAM secrets
#   ops   - CloudWatch log groups, the alarm topic, SSM parameters, ECS Exec sessions
# Each key policy gives the account root full control, which only lets IAM policies in this
# account grant use of the key (the roles in iam.tf do, scoped by kms:ViaService); services
# that encrypt on their own behalf are named explicitly.

locals {
  key_admin_statement = {
    Sid       = "AccountAdministersKeyThroughIam"
    Effect    = "Allow"
    Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
    Action    = "kms:*"
    Resource  = "*" # in a key policy "*" is this key
  }
}

resource "aws_kms_key" "data" {
  description             = "${var.name}: warehouse and Athena results (S3 SSE-KMS)"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days

  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [local.key_admin_statement]
  })
}

resource "aws_kms_alias" "data" {
  name          = "alias/${local.prefix}-data"
  target_key_id = aws_kms_key.data.key_id
}

resource "aws_kms_key" "kafka" {
  description             = "${var.name}: MSK storage and the SASL/SCRAM secrets"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days

  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [local.key_admin_statement]
  })
}

resource "aws_kms_alias" "kafka" {
  name          = "alias/${local.prefix}-kafka"
  target_key_id = aws_kms_key.kafka.key_id
}

resource "aws_kms_key" "ops" {
  description             = "${var.name}: CloudWatch logs, alarm topic, SSM parameters, ECS Exec"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      local.key_admin_statement,
      {
        # CloudWatch Logs encrypts the log groups of this account with the key.
        Sid       = "CloudWatchLogsEncryptsThisAccountsLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.${local.dns_suffix}" }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"
          }
        }
      },
      {
        # Alarms (CloudWatch) and the failed-job rule (EventBridge) publish to the encrypted
        # SNS topic; SNS asks KMS for a data key on their behalf.
        Sid       = "AlarmPublishersUseTheTopicKey"
        Effect    = "Allow"
        Principal = { Service = ["cloudwatch.amazonaws.com", "events.amazonaws.com"] }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
      },
    ]
  })
}

resource "aws_kms_alias" "ops" {
  name          = "alias/${local.prefix}-ops"
  target_key_id = aws_kms_key.ops.key_id
}
