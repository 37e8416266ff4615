"""The human review app: `evalarena review` (see docs/review.md)."""
