"""The API document's example data, shared by the local tools (demo data, fixtures,
dev tokens, benchmarks). The Rust tests keep their own copy on purpose."""

# For local runs only: signs the tokens in events/ and those `make run` prints.
DEV_SECRET = "dev-secret-for-local-runs-only-0123456789abcdef"
SEED_ALBUM = "00100000123BB121"
SEED_USER = "dc850635-9cda-4c7c-8102-bed25f39055e"
# The nine images the document's request deletes.
SEED_IDS = [
    "7dca41d5-d76a-4ebb-9e00-dd13c13fc238",
    "dcd964c3-f54e-413c-ab2e-41c8608f5d16",
    "8c35c2bf-318b-4657-a06c-68c8a012f757",
    "295ec432-fcb7-4eae-b881-7ab2f5126a23",
    "2f05ca7d-3347-4add-9959-41aac32eaf26",
    "4ff0f180-e325-4478-a001-406856255f31",
    "d9f1a5cf-b871-4d67-8a2a-88bf37760ae8",
    "6942945b-87fa-42d6-831b-8db4bc3d2f51",
    "cb61c3ed-6418-4d89-83e7-64f12fb9cfac",
]
