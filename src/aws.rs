//! The AWS SDK configuration both the S3 warehouse and the Glue catalog start from: the
//! standard chain (`aws-config`) for credentials and region, with the region the pipeline
//! configuration names, if any, taking precedence.

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Loads the standard AWS configuration; endpoints are set per service client.
pub async fn sdk_config(region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    loader.load().await
}
