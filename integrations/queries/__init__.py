"""Investigation queries: one interface (`base.QueryEngine`), three engines.

- `athena.AthenaEngine`: Amazon Athena over the CloudTrail table in S3 (production).
- `embedded.DuckDbEngine`: DuckDB over CloudTrail `.json.gz` files in the S3 layout on a local disk
  (the embedded default, and the test engine).
- `integrations.aws.logs.LogsInsightsEngine`: CloudWatch Logs Insights over EKS audit logs.

Engines take plain values (`QueryRequest`) and return frozen dataclasses; callers never see an SDK
type. Every engine binds parameters: user input never becomes SQL text.
"""
