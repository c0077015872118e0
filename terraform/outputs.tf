# What the next steps need: where to push the image, what Airflow passes to EcsRunTaskOperator,
# where analysts point Athena, and the values of medallion's own configuration.

output "warehouse_bucket" {
  description = "Warehouse bucket."
  value       = aws_s3_bucket.warehouse.id
}

output "warehouse_location" {
  description = "medallion's warehouse.location (MEDALLION__WAREHOUSE__LOCATION)."
  value       = local.warehouse_location
}

output "athena_results_bucket" {
  description = "Athena query results bucket."
  value       = aws_s3_bucket.athena_results.id
}

output "log_bucket" {
  description = "Bucket of the S3 access logs and VPC flow logs."
  value       = aws_s3_bucket.logs.id
}

output "glue_databases" {
  description = "Glue database per layer (medallion's namespaces.bronze/silver/gold)."
  value       = { for layer, db in aws_glue_catalog_database.layer : layer => db.name }
}

output "athena_workgroup" {
  description = "Athena workgroup for the analysts."
  value       = aws_athena_workgroup.analysts.name
}

output "role_arns" {
  description = "IAM roles: ECS task roles, execution roles, analysts."
  value = {
    ingest           = aws_iam_role.ingest.arn
    transform        = aws_iam_role.transform.arn
    maintain         = aws_iam_role.maintain.arn
    ingest_execution = aws_iam_role.ingest_execution.arn
    jobs_execution   = aws_iam_role.jobs_execution.arn
    analyst          = aws_iam_role.analyst.arn
  }
}

output "airflow_policy_arn" {
  description = "Managed policy that lets Airflow (e.g. the MWAA execution role) run the job tasks."
  value       = aws_iam_policy.airflow.arn
}

output "kafka_bootstrap_brokers" {
  description = "MSK bootstrap brokers for SASL/SCRAM over TLS (port 9096)."
  value       = aws_msk_cluster.this.bootstrap_brokers_sasl_scram
}

output "kafka_cluster_arn" {
  description = "MSK cluster ARN."
  value       = aws_msk_cluster.this.arn
}

output "kafka_secret_arns" {
  description = "Secrets Manager secret ({username, password}) of each SASL/SCRAM user."
  value       = { for u, s in aws_secretsmanager_secret.kafka : u => s.arn }
}

output "ecr_repository_url" {
  description = "Push the medallion image here, tagged image_tag."
  value       = aws_ecr_repository.medallion.repository_url
}

output "ecs_cluster_arn" {
  description = "ECS cluster."
  value       = aws_ecs_cluster.this.arn
}

output "ecs_cluster_name" {
  description = "ECS cluster name (EcsRunTaskOperator's cluster)."
  value       = aws_ecs_cluster.this.name
}

output "ingest_service_name" {
  description = "ECS service running medallion ingest --follow."
  value       = aws_ecs_service.ingest.name
}

output "task_definition_arns" {
  description = "Task definitions (with revision) of ingest and the jobs."
  value = merge(
    { ingest = aws_ecs_task_definition.ingest.arn },
    { for job, td in aws_ecs_task_definition.job : job => td.arn },
  )
}

output "task_definition_families" {
  description = "Task definition families: EcsRunTaskOperator's task_definition (the latest revision runs)."
  value       = local.task_family
}

output "task_network_configuration" {
  description = "EcsRunTaskOperator's network_configuration for the job tasks."
  value = {
    awsvpcConfiguration = {
      subnets        = aws_subnet.private[*].id
      securityGroups = [aws_security_group.tasks.id]
      assignPublicIp = "DISABLED"
    }
  }
}

output "log_groups" {
  description = "CloudWatch log group of each task (EcsRunTaskOperator's awslogs_group; stream prefix = the key)."
  value       = { for k, g in aws_cloudwatch_log_group.medallion : k => g.name }
}

output "alarm_topic_arn" {
  description = "SNS topic of all alarms."
  value       = aws_sns_topic.alarms.arn
}

output "vpc_id" {
  description = "VPC of the deployment."
  value       = aws_vpc.this.id
}
