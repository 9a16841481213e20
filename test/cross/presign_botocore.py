#!/usr/bin/env python3
"""Prints the presigned URL botocore makes for one object, at a fixed time.

The peer of `ota-server presign` (same arguments): presign_crosscheck.sh
compares the two outputs byte for byte. With --batch it reads many argument
lists from stdin instead, one a line, arguments separated by U+001F, and
prints one URL (or "ERROR: why") a line: importing boto3 takes most of a
second, paid once for every case. The clock is fixed by replacing the datetime
that botocore.auth reads (get_current_datetime in botocore >= 1.31,
datetime.datetime.utcnow before), so X-Amz-Date is --time.
"""
import argparse
import datetime
import functools
import sys
import types
from unittest import mock

import boto3
import botocore.auth
from botocore.config import Config

OPERATIONS = {
    "GET": "get_object",
    "PUT": "put_object",
    "HEAD": "head_object",
    "DELETE": "delete_object",
}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--endpoint", required=True, help="http(s)://host[:port]")
    p.add_argument("--bucket", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--method", default="GET", choices=sorted(OPERATIONS))
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--access-key", required=True)
    p.add_argument("--secret-key", required=True)
    p.add_argument("--session-token")
    p.add_argument("--time", required=True, help="YYYYMMDDTHHMMSSZ")
    p.add_argument("--expires", type=int, default=3600)
    p.add_argument("--style", default="path", choices=("path", "virtual"))
    return p.parse_args(argv)


def fixed_clock(when):
    """Context managers that make botocore.auth see `when` (naive UTC) as now."""

    class FixedDateTime(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return when

        @classmethod
        def now(cls, tz=None):
            return when if tz is None else when.replace(tzinfo=tz)

    shim = types.ModuleType("datetime")
    shim.__dict__.update(datetime.__dict__)
    shim.datetime = FixedDateTime
    patches = [mock.patch.object(botocore.auth, "datetime", shim)]
    if hasattr(botocore.auth, "get_current_datetime"):
        patches.append(mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: when))
    return patches


@functools.lru_cache(maxsize=None)
def s3_client(access_key, secret_key, session_token, region, endpoint, style):
    """One client per configuration: making one costs a tenth of a second, and a batch asks for few."""
    session = boto3.session.Session(
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=session_token,
        region_name=region,
    )
    return session.client(
        "s3",
        endpoint_url=endpoint,
        config=Config(signature_version="s3v4", s3={"addressing_style": style}),
    )


def presign(args):
    when = datetime.datetime.strptime(args.time, "%Y%m%dT%H%M%SZ")
    client = s3_client(args.access_key, args.secret_key, args.session_token, args.region, args.endpoint, args.style)
    patches = fixed_clock(when)
    for p in patches:
        p.start()
    try:
        return client.generate_presigned_url(
            OPERATIONS[args.method],
            Params={"Bucket": args.bucket, "Key": args.key},
            ExpiresIn=args.expires,
        )
    finally:
        for p in reversed(patches):
            p.stop()


def batch(lines):
    for line in lines:
        try:
            print(presign(parse_args(line.rstrip("\n").split("\x1f"))), flush=True)
        except (Exception, SystemExit) as e:  # argparse exits on bad arguments: one case's failure, not all
            print(f"ERROR: {e!r}", flush=True)
    return 0


def main(argv):
    if argv == ["--batch"]:
        return batch(sys.stdin)
    print(presign(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
