# Amazon MSK (provisioned) in the private subnets: TLS between clients and brokers and between
# brokers, storage encrypted with the kafka key, SASL/SCRAM as the only way in, broker logs to
# CloudWatch. Why MSK and why SCRAM rather than IAM auth: README.md, "Kafka".
#
# Debezium is not deployed here. It produces into this cluster as the SCRAM user "debezium"
# (kafka_extra_scram_users): as an MSK Connect connector (Debezium PostgreSQL or MySQL plugin,
# in these subnets, client CIDR in kafka_client_cidrs) or as Debezium Server on ECS.

resource "aws_msk_configuration" "this" {
  name           = "${local.prefix}-kafka"
  kafka_versions = [var.kafka_version]
  description    = "medallion: no auto-created topics, replicated writes, bounded retention"

  # Debezium and medallion's dlq_topic create their topics explicitly; a typo in a consumer's
  # subscription must not create one. With two brokers, two replicas and one in-sync replica
  # keep topics writable through a broker's rolling restart (patching).
  server_properties = <<-PROPERTIES
    auto.create.topics.enable=false
    default.replication.factor=${min(var.kafka_broker_count, 3)}
    min.insync.replicas=${var.kafka_broker_count >= 3 ? 2 : 1}
    num.partitions=6
    unclean.leader.election.enable=false
    log.retention.hours=${var.kafka_log_retention_hours}
  PROPERTIES

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_cloudwatch_log_group" "kafka" {
  name              = "/msk/${local.prefix}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.ops.arn
}

resource "aws_msk_cluster" "this" {
  cluster_name           = local.prefix
  kafka_version          = var.kafka_version
  number_of_broker_nodes = var.kafka_broker_count
  enhanced_monitoring    = var.kafka_enhanced_monitoring

  broker_node_group_info {
    instance_type   = var.kafka_broker_instance_type
    client_subnets  = aws_subnet.private[*].id
    security_groups = [aws_security_group.kafka.id]

    storage_info {
      ebs_storage_info {
        volume_size = var.kafka_broker_volume_gib
      }
    }

    connectivity_info {
      public_access {
        type = "DISABLED"
      }
    }
  }

  configuration_info {
    arn      = aws_msk_configuration.this.arn
    revision = aws_msk_configuration.this.latest_revision
  }

  encryption_info {
    encryption_at_rest_kms_key_arn = aws_kms_key.kafka.arn

    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }

  client_authentication {
    unauthenticated = false

    sasl {
      scram = true
      iam   = false
    }
  }

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.kafka.name
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.kafka_broker_count % length(var.private_subnet_cidrs) == 0
      error_message = "kafka_broker_count must be a multiple of the number of private subnets."
    }
  }
}

# --- SASL/SCRAM users ---------------------------------------------------------------------
# MSK reads SCRAM credentials from Secrets Manager secrets whose names start with AmazonMSK_
# and that are encrypted with a customer-managed key (the AWS-managed Secrets Manager key is
# refused). The secret holds {"username", "password"}; ECS injects the password into medallion
# as MEDALLION__SOURCE__KAFKA__SECRET_PROPERTIES__SASL.PASSWORD (compute.tf).

locals {
  kafka_users = toset(concat([var.kafka_username], var.kafka_extra_scram_users))
}

resource "random_password" "kafka" {
  for_each = local.kafka_users

  length  = 40
  special = false # no quoting surprises in librdkafka or connector properties
}

resource "aws_secretsmanager_secret" "kafka" {
  #checkov:skip=CKV2_AWS_57:MSK SCRAM secrets have no managed rotation; rotating one means a new password in the secret, then restarting its clients (ECS re-reads it at task start). Documented in README.md.
  for_each = local.kafka_users

  name                    = "AmazonMSK_${local.prefix}_${each.value}"
  description             = "SASL/SCRAM credentials of Kafka user ${each.value} on MSK cluster ${local.prefix}"
  kms_key_id              = aws_kms_key.kafka.arn
  recovery_window_in_days = var.secret_recovery_window_days
}

resource "aws_secretsmanager_secret_version" "kafka" {
  for_each = local.kafka_users

  secret_id = aws_secretsmanager_secret.kafka[each.value].id
  secret_string = jsonencode({
    username = each.value
    password = random_password.kafka[each.value].result
  })
}

# On association MSK attaches its own resource policy to each secret (kafka.amazonaws.com may
# GetSecretValue); Terraform does not manage that policy, so it does not fight MSK over it.
resource "aws_msk_scram_secret_association" "this" {
  cluster_arn     = aws_msk_cluster.this.arn
  secret_arn_list = [for u in local.kafka_users : aws_secretsmanager_secret.kafka[u].arn]

  depends_on = [aws_secretsmanager_secret_version.kafka]
}
