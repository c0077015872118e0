# VPC: private subnets in two (or more) zones, no public ingress anywhere. The tasks reach AWS
# APIs through VPC endpoints (S3 gateway, the rest interface endpoints), so no NAT gateway is
# needed; enable_nat_gateway adds one for traffic that must leave AWS.

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true # interface endpoints' private DNS needs both

  tags = { Name = local.prefix }
}

# The default security group admits nothing (new resources must name their own group).
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id

  tags = { Name = "${local.prefix}-default-deny" }
}

resource "aws_subnet" "private" {
  count = length(var.private_subnet_cidrs)

  vpc_id                  = aws_vpc.this.id
  cidr_block              = var.private_subnet_cidrs[count.index]
  availability_zone       = local.azs[count.index]
  map_public_ip_on_launch = false

  tags = { Name = "${local.prefix}-private-${local.azs[count.index]}", Tier = "private" }
}

resource "aws_route_table" "private" {
  vpc_id = aws_vpc.this.id

  tags = { Name = "${local.prefix}-private" }
}

resource "aws_route_table_association" "private" {
  count = length(aws_subnet.private)

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private.id
}

# --- optional NAT -------------------------------------------------------------------------

resource "aws_subnet" "public" {
  count = var.enable_nat_gateway ? length(var.public_subnet_cidrs) : 0

  vpc_id                  = aws_vpc.this.id
  cidr_block              = var.public_subnet_cidrs[count.index]
  availability_zone       = local.azs[count.index % length(local.azs)]
  map_public_ip_on_launch = false # only the NAT gateway lives here, with its own Elastic IP

  tags = { Name = "${local.prefix}-public-${count.index}", Tier = "public" }
}

resource "aws_internet_gateway" "this" {
  count = var.enable_nat_gateway ? 1 : 0

  vpc_id = aws_vpc.this.id

  tags = { Name = local.prefix }
}

resource "aws_route_table" "public" {
  count = var.enable_nat_gateway ? 1 : 0

  vpc_id = aws_vpc.this.id

  tags = { Name = "${local.prefix}-public" }
}

resource "aws_route" "public_internet" {
  count = var.enable_nat_gateway ? 1 : 0

  route_table_id         = aws_route_table.public[0].id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this[0].id
}

resource "aws_route_table_association" "public" {
  count = var.enable_nat_gateway ? length(aws_subnet.public) : 0

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public[0].id
}

resource "aws_eip" "nat" {
  count = var.enable_nat_gateway ? 1 : 0

  domain = "vpc"

  tags = { Name = "${local.prefix}-nat" }
}

# One NAT gateway (not one per zone): outbound internet is an extra here, not a dependency.
resource "aws_nat_gateway" "this" {
  count = var.enable_nat_gateway ? 1 : 0

  allocation_id = aws_eip.nat[0].id
  subnet_id     = aws_subnet.public[0].id

  tags = { Name = local.prefix }

  depends_on = [aws_internet_gateway.this]
}

resource "aws_route" "private_nat" {
  count = var.enable_nat_gateway ? 1 : 0

  route_table_id         = aws_route_table.private.id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[0].id
}

# --- VPC endpoints ------------------------------------------------------------------------

# S3 through a gateway endpoint (free, and keeps warehouse traffic off any NAT). Its policy
# admits only this deployment's buckets and the bucket ECR serves image layers from, so a task
# cannot copy data to another account's bucket through it.
resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.private.id]

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "ThisDeploymentsBuckets"
        Effect    = "Allow"
        Principal = "*"
        Action = [
          "s3:GetObject",
          "s3:PutObject",
          "s3:DeleteObject",
          "s3:ListBucket",
          "s3:GetBucketLocation",
          "s3:AbortMultipartUpload",
          "s3:ListMultipartUploadParts",
          "s3:ListBucketMultipartUploads",
        ]
        Resource = [
          aws_s3_bucket.warehouse.arn,
          "${aws_s3_bucket.warehouse.arn}/*",
          aws_s3_bucket.athena_results.arn,
          "${aws_s3_bucket.athena_results.arn}/*",
        ]
        Condition = { StringEquals = { "aws:ResourceAccount" = local.account_id } }
      },
      {
        # Fargate downloads image layers from this AWS-owned bucket with URLs ECR signs.
        Sid       = "EcrImageLayers"
        Effect    = "Allow"
        Principal = "*"
        Action    = ["s3:GetObject"]
        Resource  = ["arn:${local.partition}:s3:::prod-${local.region}-starport-layer-bucket/*"]
      },
    ]
  })

  tags = { Name = "${local.prefix}-s3" }
}

resource "aws_security_group" "endpoints" {
  name        = "${local.prefix}-vpc-endpoints"
  description = "Interface VPC endpoints: HTTPS from inside the VPC only"
  vpc_id      = aws_vpc.this.id

  tags = { Name = "${local.prefix}-vpc-endpoints" }
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_https" {
  security_group_id = aws_security_group.endpoints.id
  description       = "HTTPS from the VPC to the AWS API endpoints"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = var.vpc_cidr
}

resource "aws_vpc_endpoint" "interface" {
  for_each = toset(var.interface_endpoints)

  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${local.region}.${each.value}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = aws_subnet.private[*].id
  security_group_ids  = [aws_security_group.endpoints.id]
  private_dns_enabled = true

  tags = { Name = "${local.prefix}-${each.value}" }
}

# --- security groups of the workloads -------------------------------------------------------

# medallion's tasks: no ingress at all (the metrics sidecar scrapes over localhost inside the
# task); egress only to the brokers, the endpoints and S3.
resource "aws_security_group" "tasks" {
  name        = "${local.prefix}-tasks"
  description = "medallion ECS tasks: no ingress; egress to MSK, VPC endpoints and S3"
  vpc_id      = aws_vpc.this.id

  tags = { Name = "${local.prefix}-tasks" }
}

resource "aws_vpc_security_group_egress_rule" "tasks_kafka" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "Kafka SASL/SCRAM over TLS to the MSK brokers"
  ip_protocol                  = "tcp"
  from_port                    = 9096
  to_port                      = 9096
  referenced_security_group_id = aws_security_group.kafka.id
}

resource "aws_vpc_security_group_egress_rule" "tasks_endpoints" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "HTTPS to the interface VPC endpoints"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.endpoints.id
}

resource "aws_vpc_security_group_egress_rule" "tasks_s3" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to S3 through the gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = aws_vpc_endpoint.s3.prefix_list_id
}

# Only with the NAT gateway: HTTPS to anywhere (nothing else leaves the VPC).
resource "aws_vpc_security_group_egress_rule" "tasks_internet_https" {
  count = var.enable_nat_gateway ? 1 : 0

  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to the internet through the NAT gateway"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# MSK brokers: 9096 (SASL/SCRAM + TLS) from the tasks and the configured client CIDRs; no
# plaintext or unauthenticated listener exists (kafka.tf).
resource "aws_security_group" "kafka" {
  name        = "${local.prefix}-kafka"
  description = "MSK brokers: SASL/SCRAM over TLS from medallion tasks and listed clients"
  vpc_id      = aws_vpc.this.id

  tags = { Name = "${local.prefix}-kafka" }
}

resource "aws_vpc_security_group_ingress_rule" "kafka_from_tasks" {
  security_group_id            = aws_security_group.kafka.id
  description                  = "Kafka SASL/SCRAM over TLS from medallion tasks"
  ip_protocol                  = "tcp"
  from_port                    = 9096
  to_port                      = 9096
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_vpc_security_group_ingress_rule" "kafka_from_clients" {
  for_each = toset(var.kafka_client_cidrs)

  security_group_id = aws_security_group.kafka.id
  description       = "Kafka SASL/SCRAM over TLS from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 9096
  to_port           = 9096
  cidr_ipv4         = each.value
}

# --- flow logs ----------------------------------------------------------------------------

resource "aws_flow_log" "vpc" {
  vpc_id               = aws_vpc.this.id
  traffic_type         = var.flow_log_traffic_type
  log_destination_type = "s3"
  log_destination      = "${aws_s3_bucket.logs.arn}/vpc-flow-logs/"

  tags = { Name = "${local.prefix}-flow-logs" }

  depends_on = [aws_s3_bucket_policy.logs]
}
