"""The S3 settings: one connection model for the `s3` source and an `s3://` warehouse.

The top-level `s3:` section holds the defaults; a source of `type: s3` may override any key.
Nothing here names a vendor: AWS, MinIO, R2, Ceph and moto differ only in `endpoint_url`,
`region` and `path_style`. Credentials not given here come from the usual AWS chain
(environment, `~/.aws` profile, web identity, instance metadata), as boto3 and pyarrow find them.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from icefloe.config.notify import NotificationConfig

__all__ = ["S3Settings", "S3SourceConfig"]


def _size(value: Any) -> int:
    from icefloe.config.models import parse_size

    return parse_size(value)


def _duration(value: Any) -> float:
    from icefloe.config.models import parse_duration

    return parse_duration(value)


class S3Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # e.g. http://127.0.0.1:9000 (MinIO), https://<account>.r2.cloudflarestorage.com; None: AWS
    endpoint_url: str | None = None
    region: str | None = None
    # a named profile of ~/.aws/config; None: AWS_PROFILE or the default chain
    profile: str | None = None
    # static keys (prefer the environment or a profile: these end up in a file)
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    # bucket in the path (http://host/bucket/key) instead of the host name: most self-hosted
    # stores need it; None lets boto3 choose (virtual hosts on AWS)
    path_style: bool | None = None
    # HTTP attempts per request inside botocore (standard retry mode: 5xx, throttling, resets)
    max_attempts: int = Field(default=5, ge=1)
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)
    # objects at least this big are read as ranged GETs of `part_size`, `parallel` at a time
    # (parallel 1: one plain GET), and uploaded (`icefloe ingest`) as multipart uploads of that
    # part size
    multipart_threshold: int = Field(default=16 << 20, ge=5 << 20)
    part_size: int = Field(default=8 << 20, ge=5 << 20)
    parallel: int = Field(default=4, ge=1, le=64)

    _s = field_validator("multipart_threshold", "part_size", mode="before")(lambda v: _size(v))
    _d = field_validator("connect_timeout", "read_timeout", mode="before")(lambda v: _duration(v))

    def merged(self, override: S3Settings) -> S3Settings:
        """These defaults with the keys `override` set explicitly."""
        values = self.model_dump()
        values.update({k: getattr(override, k) for k in override.model_fields_set if k in S3Settings.model_fields})
        return S3Settings.model_validate(values)


class S3SourceConfig(S3Settings):
    """`type: s3`: objects under `prefix` in `bucket`. Keys are relative to the prefix."""

    type: Literal["s3"]
    bucket: str
    prefix: str = ""
    # an object is whole once S3 lists it (a PUT or a multipart upload is atomic): no settle
    settle: float = 0.0
    ignore: list[str] = Field(default_factory=lambda: ["*.part", "*.tmp", ".*", "*~"])
    reconcile: float = Field(default=300.0, gt=0)
    # identity from bucket, ETag and size (no download); true: hash the bytes (sha256) instead,
    # read once more per object, so that equal bytes under different part sizes match
    hash_content: bool = False
    # without bucket notifications a running worker lists the prefix this often for new objects
    # (every page, so keep it modest on big buckets); 0: only the `reconcile` passes
    poll: float = Field(default=30.0, ge=0)
    # bucket notifications (SQS, NATS): hints that make a worker look at a key at once; the
    # reconcile listing stays the truth (sources/notify.py)
    notifications: list[NotificationConfig] = Field(default_factory=list)

    _d2 = field_validator("settle", "reconcile", "poll", mode="before")(lambda v: _duration(v))

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not value or "/" in value or value.startswith("s3:"):
            raise ValueError("bucket is the bare bucket name (put the folder into prefix:)")
        return value

    @field_validator("prefix")
    @classmethod
    def _folder(cls, value: str) -> str:
        value = value.strip("/")
        return value + "/" if value else ""

    def ignored(self, key: str) -> bool:
        return any(fnmatch.fnmatch(part, pattern) for part in key.split("/") for pattern in self.ignore)
