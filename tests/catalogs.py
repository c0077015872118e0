"""How the PyIceberg checks open medallion's catalog: the embedded sqlite catalog
(--catalog-db, --warehouse) or AWS Glue with an S3 warehouse (--glue-endpoint, --s3-endpoint;
credentials and region from the standard AWS environment variables)."""

import os
import pathlib


def add_catalog_args(ap):
    ap.add_argument("--catalog-db", help="the embedded sqlite catalog file")
    ap.add_argument("--warehouse", help="the embedded catalog's warehouse folder")
    ap.add_argument("--catalog-name", default="medallion")
    ap.add_argument("--glue-endpoint", help="a Glue API endpoint (moto server in the tests)")
    ap.add_argument("--s3-endpoint", help="an S3 endpoint (SeaweedFS in the tests)")


def open_catalog(a):
    if a.glue_endpoint:
        from pyiceberg.catalog.glue import GlueCatalog

        region = os.environ.get("AWS_REGION", "us-east-1")
        key = os.environ["AWS_ACCESS_KEY_ID"]
        secret = os.environ["AWS_SECRET_ACCESS_KEY"]
        props = {
            "glue.endpoint": a.glue_endpoint,
            "glue.region": region,
            "glue.access-key-id": key,
            "glue.secret-access-key": secret,
            "s3.region": region,
            "s3.access-key-id": key,
            "s3.secret-access-key": secret,
        }
        if a.s3_endpoint:
            props["s3.endpoint"] = a.s3_endpoint
        return GlueCatalog(a.catalog_name, **props)
    if not (a.catalog_db and a.warehouse):
        raise SystemExit("give --catalog-db and --warehouse, or --glue-endpoint")
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog(
        a.catalog_name,
        uri=f"sqlite:///{pathlib.Path(a.catalog_db).resolve()}",
        warehouse=pathlib.Path(a.warehouse).resolve().as_uri(),
    )
