#!/usr/bin/env python3
"""Mint an HS256 API token for local use (stdlib only; the service itself signs in Rust).

    python3 scripts/devtoken.py [--album ID]... [--ability NAME]... [--ttl SECONDS] [--exp EPOCH]

Reads the key from JWT_SECRET (default: the documented dev secret). Never use the dev
secret outside a local run.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import time

from seed_data import DEV_SECRET, SEED_ALBUM, SEED_USER


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(secret: str, albums, ability, exp: int, iat: int) -> str:
    """`ability`: one name, or a list of them, granted on every album."""
    abilities = [ability] if isinstance(ability, str) else list(ability)
    header = {"typ": "JWT", "alg": "HS256"}
    claims = {
        "exp": exp,
        "iat": iat,
        "user_id": SEED_USER,
        "abilities": {album: {"Access": {a: True for a in abilities}} for album in albums},
    }
    signing_input = ".".join(
        b64(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--album", action="append", help="album id (repeatable)")
    parser.add_argument("--ability", action="append", help="ability granted on each album (repeatable; default image_list)")
    parser.add_argument("--ttl", type=int, default=14400)
    parser.add_argument("--exp", type=int, help="absolute expiry (overrides --ttl)")
    parser.add_argument("--iat", type=int, help="issue time (default: now)")
    args = parser.parse_args()
    now = int(time.time())
    iat = args.iat if args.iat is not None else now
    exp = args.exp if args.exp is not None else now + args.ttl
    secret = os.environ.get("JWT_SECRET") or DEV_SECRET
    print(mint(secret, args.album or [SEED_ALBUM], args.ability or ["image_list"], exp, iat))


if __name__ == "__main__":
    main()
