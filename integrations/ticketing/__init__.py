"""Outbound webhooks to ticketing systems (Jira, ServiceNow, paging tools).

No AWS or Kubernetes permissions: plain HTTPS to the URLs an admin configured. `ssrf` decides
whether a URL may be contacted at all, `signing` makes the headers a receiver verifies, and
`transport` sends one request to the address `ssrf` approved.
"""
