"""Schemathesis hooks of scripts/api-conformance.sh (loaded via SCHEMATHESIS_HOOKS).

`cargo lambda watch` answers 500 by itself, without invoking the function, to a body
that is not UTF-8 under a text content type such as JSON: such bodies test the local
emulator, not the function, so they are not generated. The function answers them 400
`invalid_body` (src/http/input.rs's tests; on AWS they arrive base64-encoded).
"""
import schemathesis


def _utf8(value):
    if isinstance(value, (bytes, bytearray)):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


@schemathesis.hook
def filter_body(ctx, body):
    return _utf8(body)
