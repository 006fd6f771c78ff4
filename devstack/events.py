"""S3 event notifications on moto: a bucket whose ObjectCreated/ObjectRemoved events go to an SQS queue (moto sends
real notifications), and a syncd config pointed at them."""

from __future__ import annotations

import time

from devstack.services import MotoServer, Stack


def evented_bucket(moto: MotoServer, prefix: str) -> tuple[str, str]:
    """A new bucket on moto's S3 whose events go to a new queue; returns (bucket, queue URL)."""
    s3, sqs = moto.client("s3"), moto.client("sqs")
    bucket = f"{prefix}-{int(time.time() * 1000)}"
    s3.create_bucket(Bucket=bucket)
    queue = sqs.create_queue(QueueName=f"{bucket}-q")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    notify = {"QueueConfigurations": [{"QueueArn": arn, "Events": events}]}
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=notify)
    return bucket, queue


def on_moto_events(config: str, stack: Stack, bucket: str, queue: str) -> str:
    """``config`` (from ``Stack.config``) with S3 and SQS on moto and the source reading ``queue``."""
    moto = stack.moto.url
    config = config.replace(f'endpoint_url = "{stack.s3.url}"', f'endpoint_url = "{moto}"\nsqs_endpoint_url = "{moto}"')
    return config.replace(f'bucket = "{bucket}"\n', f'bucket = "{bucket}"\nqueue_url = "{queue}"\n', 1)
