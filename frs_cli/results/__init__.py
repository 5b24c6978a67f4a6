"""What a scan hands on: rows written as CSV, JSON lines or JSON, the review page,
and an evidence clip per appearance."""
