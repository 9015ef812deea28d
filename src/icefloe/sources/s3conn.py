"""Connections to S3-compatible stores from `S3Settings`: a boto3 client for the source, the
same settings as pyiceberg FileIO properties for an s3:// warehouse, and S3 failures sorted
into icefloe's errors (an outage retries; a missing object is the caller's to decide)."""

from __future__ import annotations

from typing import Any

from icefloe.config.s3 import S3Settings
from icefloe.errors import NotInstalledError, ObjectChangedError, StorageUnavailableError

__all__ = ["MISSING", "fileio_properties", "make_client", "s3_error", "status_of"]

# error codes that mean "no such object (version)": the caller decides what that means
MISSING = ("404", "NoSuchKey", "NotFound", "NoSuchVersion")
# the request was fine, the store was not: worth another attempt later
_BUSY = ("SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed", "ServiceUnavailable", "InternalError")


def _boto() -> Any:
    try:
        import boto3
    except ImportError:
        raise NotInstalledError("boto3", "s3") from None
    return boto3


def _session(settings: S3Settings) -> Any:
    boto3 = _boto()
    return boto3.session.Session(
        profile_name=settings.profile,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key.get_secret_value() if settings.secret_access_key else None,
        aws_session_token=settings.session_token.get_secret_value() if settings.session_token else None,
        region_name=settings.region,
    )


def make_client(settings: S3Settings) -> Any:
    """A thread-safe boto3 S3 client (one per source; boto3 sessions themselves are not)."""
    from botocore.config import Config

    options: dict[str, Any] = {}
    if settings.path_style is not None:
        options["s3"] = {"addressing_style": "path" if settings.path_style else "virtual"}
    config = Config(
        retries={"mode": "standard", "max_attempts": settings.max_attempts},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        max_pool_connections=max(10, settings.parallel * 2),
        # boto3 >= 1.36 adds CRC checksums to every upload by default; several S3-compatible
        # stores (older MinIO, Ceph, R2 at times) refuse those headers: only send what S3 requires
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        **options,
    )
    session = _session(settings)
    region = settings.region or session.region_name or "us-east-1"
    return session.client("s3", endpoint_url=settings.endpoint_url, region_name=region, config=config)


def fileio_properties(settings: S3Settings) -> dict[str, str]:
    """pyiceberg FileIO properties (PyArrowFileIO and FsspecFileIO share these names) for the
    same store, region and credentials the sources use."""
    props: dict[str, str] = {}
    if settings.endpoint_url:
        props["s3.endpoint"] = settings.endpoint_url
    key, secret, token = settings.access_key_id, settings.secret_access_key, settings.session_token
    region = settings.region
    if settings.profile is not None or region is None:
        # pyarrow knows no profiles, and without a region it asks AWS where the bucket is (not
        # possible for MinIO and friends): boto3 resolves both from the same chain the source uses
        session = _session(settings)
        region = region or session.region_name
        if settings.profile is not None and key is None:
            creds = session.get_credentials()
            if creds is not None:
                frozen = creds.get_frozen_credentials()
                props["s3.access-key-id"], props["s3.secret-access-key"] = frozen.access_key, frozen.secret_key
                if frozen.token:
                    props["s3.session-token"] = frozen.token
    props["s3.region"] = region or "us-east-1"
    if key is not None:
        props["s3.access-key-id"] = key
    if secret is not None:
        props["s3.secret-access-key"] = secret.get_secret_value()
    if token is not None:
        props["s3.session-token"] = token.get_secret_value()
    if settings.path_style is not None:
        props["s3.force-virtual-addressing"] = "false" if settings.path_style else "true"
    props["s3.connect-timeout"] = str(settings.connect_timeout)
    props["s3.request-timeout"] = str(settings.read_timeout)
    return props


def status_of(exc: BaseException) -> tuple[str, int]:
    """(error code, HTTP status) of a botocore ClientError; ("", 0) for anything else."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return "", 0
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def s3_error(exc: BaseException, where: str) -> Exception:
    """The icefloe error for a failed S3 call on `where` (s3://bucket/key or a bucket)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

    if isinstance(exc, ClientError):
        code, status = status_of(exc)
        if code in ("PreconditionFailed", "412") or status == 412:
            return ObjectChangedError(f"{where} changed while it was being read")
        if code == "NoSuchBucket":
            return StorageUnavailableError(f"{where}: the bucket does not exist")
        if status in (401, 403) or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            # the object may be fine and the credentials fixed: retried (max_attempts bounds it)
            return StorageUnavailableError(f"{where}: access denied ({code or status}); check the S3 credentials")
        if status >= 500 or code in _BUSY:
            return StorageUnavailableError(f"{where}: the store answered {code or status}, retrying later")
        return StorageUnavailableError(f"{where}: S3 error {code or status}: {exc}")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return StorageUnavailableError(f"{where}: no S3 credentials found (environment, profile or s3.access_key_id)")
    if isinstance(exc, (BotoCoreError, OSError)):
        # connection refused, reset, timed out, a stream cut short
        return StorageUnavailableError(f"{where}: S3 is unreachable: {exc}")
    return exc if isinstance(exc, Exception) else StorageUnavailableError(str(exc))
